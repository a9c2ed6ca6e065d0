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
import resource
import signal
import subprocess
import sys
import threading
from typing import Any, Callable, Mapping, Sequence

from tfdeploy.errors import TfdeployError

PROGRESS_PREFIX = "progress: "  # marks a child's progress lines among whatever else TF writes to stderr


def run_child(module: str, args: Sequence[str], what: str, received: str, timeout: float = 300,
              on_line: Callable[[str], None] | None = None, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Runs ``python -m module *args`` in a fresh process and returns the JSON object it printed last.

    Args:
        module: The child module (its ``main`` uses :func:`child_main`).
        args: Its command-line arguments.
        what: The measurement, for error messages ("Cold-start measurement").
        received: The ``Received: ...`` part of error messages (the inputs at fault).
        timeout: Seconds before the child is killed.
        on_line: Called with each line the child writes to standard error, as it comes (progress).
        env: Extra environment variables for the child.

    Returns:
        The child's result.

    Raises:
        TfdeployError: If the child fails (its last error line is included), is killed, times out or
            prints no JSON.

    Example:
        >>> run_child("tfdeploy.measure.hot_swap", ["1", "2"], "Hot-swap rehearsal", "old='1', new='2'")   # doctest: +SKIP
    """
    command = [sys.executable, "-m", module, *map(str, args)]
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": _import_path(),
                                  **(env or {})})
    errors: list[str] = []
    outputs: list[str] = []
    readers = [threading.Thread(target=_read_lines, args=(child.stderr, errors, on_line), daemon=True),
               threading.Thread(target=_read_lines, args=(child.stdout, outputs, None), daemon=True)]
    for reader in readers:
        reader.start()
    try:
        child.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()
        raise TfdeployError(f"{what} failed: no result within {timeout:g} s. Received: {received}") from None
    finally:
        for reader in readers:
            reader.join()
    if child.returncode != 0:
        last = next((line for line in reversed(errors) if line.strip()), None)
        if child.returncode < 0:
            last = f"the process was killed by signal {-child.returncode} ({_signal_name(-child.returncode)})"
        raise TfdeployError(f"{what} failed: {last or 'no output'}. Received: {received}")
    lines = [line for line in outputs if line.strip()]
    try:
        return json.loads(lines[-1])
    except (IndexError, ValueError):
        raise TfdeployError(f"{what} failed: the process printed no JSON result "
                            f"({(lines or ['no output'])[-1][:200]}). Received: {received}") from None


def _import_path() -> str:
    """This process's import path for the child, so the modules a user's metric or layer came from import there too."""
    inherited = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    here = [os.path.abspath(p or os.curdir) for p in sys.path if os.path.isdir(p or os.curdir)]
    return os.pathsep.join(dict.fromkeys(inherited + here))


def _read_lines(stream: Any, into: list[str], on_line: Callable[[str], None] | None) -> None:
    with stream:
        for line in stream:
            into.append(line.rstrip("\n"))
            if on_line is not None:
                on_line(line.rstrip("\n"))


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return "unknown"


def peak_rss_bytes(children: bool = False) -> int:
    """Peak resident memory of this process (or of its largest finished child), in bytes.

    For this process it is the kernel's high-water mark of the current program (``VmHWM``, reset
    by ``exec``), not ``ru_maxrss``, which a child started by ``fork``/``exec`` inherits from its
    parent on Linux.
    """
    if not children and _status_bytes("VmHWM"):
        return _status_bytes("VmHWM")
    usage = resource.getrusage(resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF)
    return int(usage.ru_maxrss) * 1024


def current_rss_bytes() -> int:
    """Resident memory of this process now (``VmRSS``), in bytes; 0 where ``/proc`` is missing.

    Example:
        >>> current_rss_bytes() > 0
        True
    """
    return _status_bytes("VmRSS")


def _status_bytes(field: str) -> int:
    """A memory field of ``/proc/self/status`` (``VmRSS``, ``VmHWM``) in bytes; 0 where it is missing."""
    try:
        for line in open("/proc/self/status"):
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def child_progress(message: str) -> None:
    """In a child process: one progress line for the parent (:data:`PROGRESS_PREFIX` on stderr)."""
    print(PROGRESS_PREFIX + message, file=sys.stderr, flush=True)


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
