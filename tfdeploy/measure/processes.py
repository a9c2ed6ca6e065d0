"""Measurements in fresh Python processes: a child module prints one JSON line, the parent reads it.

A fresh process is the only honest cold start (TF's lazy initialisation has happened in any
process that already ran the model), and it keeps one run from warming the caches of the next.
:func:`run_child` starts ``python -m MODULE ARGS`` with TF's C++ logging silenced and returns the
JSON object on the last line of its standard output; :func:`child_main` is the child's side.

Example:
    >>> result = run_child("tfdeploy.measure.coldstart", ["models/m/1"], "Cold-start measurement",
    ...                    "path='models/m/1'")      # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from typing import Any, Callable, Sequence

from tfdeploy.errors import TfdeployError


def run_child(module: str, args: Sequence[str], what: str, received: str, timeout: float = 300) -> dict[str, Any]:
    """Runs ``python -m module *args`` in a fresh process and returns the JSON object it printed last.

    Args:
        module: The child module (its ``main`` uses :func:`child_main`).
        args: Its command-line arguments.
        what: The measurement, for error messages ("Cold-start measurement").
        received: The ``Received: ...`` part of error messages (the inputs at fault).
        timeout: Seconds before the child is killed.

    Returns:
        The child's result.

    Raises:
        TfdeployError: If the child fails (its last error line is included), times out or prints no JSON.

    Example:
        >>> run_child("tfdeploy.measure.hot_swap", ["1", "2"], "Hot-swap run", "old='1', new='2'")   # doctest: +SKIP
    """
    command = [sys.executable, "-m", module, *map(str, args)]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                                env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    except subprocess.TimeoutExpired:
        raise TfdeployError(f"{what} failed: no result within {timeout:g} s. Received: {received}") from None
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise TfdeployError(f"{what} failed: {last}. Received: {received}")
    lines = result.stdout.strip().splitlines()
    try:
        return json.loads(lines[-1])
    except (IndexError, ValueError):
        raise TfdeployError(f"{what} failed: the process printed no JSON result "
                            f"({(lines or ['no output'])[-1][:200]}). Received: {received}") from None


def child_main(description: str, add_arguments: Callable[[argparse.ArgumentParser], None],
               run: Callable[[argparse.Namespace], Any]) -> None:
    """The child's entry point: parses its arguments, prints ``run(args)`` as one JSON line.

    A :class:`TfdeployError` is printed to standard error as ``Error: ...`` with exit status 2,
    which :func:`run_child` turns back into a :class:`TfdeployError`. This is a program's
    ``main``, the one place here that prints.

    Example:
        >>> child_main("One run.", lambda parser: parser.add_argument("path"), lambda args: {"path": args.path})  # doctest: +SKIP
    """
    parser = argparse.ArgumentParser(description=description)
    add_arguments(parser)
    args = parser.parse_args()
    try:
        result = run(args)
    except TfdeployError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        sys.exit(2)
    print(json.dumps(result))
