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
from typing import Any, Callable, Mapping, Sequence, TypeVar

from tfdeploy.errors import TfdeployError

T = TypeVar("T")

PROGRESS_PREFIX = "progress: "  # marks a child's progress lines among whatever else TF writes to stderr
STAGE_PREFIX = "stage: "  # a child names the step it starts, so that a native crash in it can be named
CHILD_ENV = "TFDEPLOY_CHILD"  # set in every child tfdeploy starts
ONEDNN_ENV = "TF_ENABLE_ONEDNN_OPTS"  # TensorFlow reads it once, when it is imported
CRASH_SIGNALS = {"SIGSEGV": "a segmentation fault", "SIGBUS": "a bus error", "SIGILL": "an illegal instruction",
                 "SIGABRT": "an abort", "SIGFPE": "a floating-point exception",
                 "SIGKILL": "a kill (most often the kernel's out-of-memory killer)"}


class ChildCrashed(TfdeployError):
    """A child process died by a signal (a native crash, or the out-of-memory killer): ``signal`` names it."""

    def __init__(self, message: str, signal_name: str) -> None:
        super().__init__(message)
        self.signal = signal_name


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
        ChildCrashed: If the child is killed by a signal.
        TfdeployError: If the child fails (its last error line is included), times out or prints no JSON.

    Example:
        >>> run_child("tfdeploy.measure.hot_swap", ["1", "2"], "Hot-swap rehearsal", "old='1', new='2'")   # doctest: +SKIP
    """
    command = [sys.executable, "-m", module, *map(str, args)]
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env=child_environment(env))
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
    if child.returncode < 0:
        raise ChildCrashed(f"{what} failed: the process was killed by {describe_signal(-child.returncode)}. "
                           f"Received: {received}", _signal_name(-child.returncode))
    if child.returncode != 0:
        last = next((line for line in reversed(errors) if line.strip()), None)
        raise TfdeployError(f"{what} failed: {last or 'no output'}. Received: {received}")
    lines = [line for line in outputs if line.strip()]
    try:
        return json.loads(lines[-1])
    except (IndexError, ValueError):
        raise TfdeployError(f"{what} failed: the process printed no JSON result "
                            f"({(lines or ['no output'])[-1][:200]}). Received: {received}") from None


def child_environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a child tfdeploy starts: this one, TF's C++ logging quiet, this import path, ``extra``."""
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": _import_path(), CHILD_ENV: "1", **(extra or {})}


def onednn_enabled(env: Mapping[str, str] | None = None) -> bool:
    """Whether TensorFlow (started with ``env``, default this process's) uses its oneDNN CPU kernels (the default)."""
    value = (env if env is not None else os.environ).get(ONEDNN_ENV, "")
    return value.strip().lower() not in ("0", "false", "off")


def surviving_onednn(run: Callable[[Mapping[str, str]], T], env: Mapping[str, str] | None = None) -> tuple[T, str | None]:
    """``run(env)`` of a child; if it crashed natively with oneDNN on, once more with oneDNN off.

    Returns:
        The result and, after a retry, a note naming the crash ("rerun without oneDNN after SIGSEGV").

    Raises:
        ChildCrashed: If it crashed with oneDNN off too (or it was off already).
    """
    env = dict(env or {})
    try:
        return run(env), None
    except ChildCrashed as crash:
        if not onednn_enabled({**os.environ, **env}):
            raise
        result = run({**env, ONEDNN_ENV: "0"})
        return result, f"rerun without oneDNN after {crash.signal}: it crashed with TensorFlow's oneDNN CPU kernels on"


def describe_signal(number: int) -> str:
    """``SIGSEGV (a segmentation fault)`` for a signal number."""
    name = _signal_name(number)
    return f"{name} ({CRASH_SIGNALS[name]})" if name in CRASH_SIGNALS else f"signal {number} ({name})"


def announce_stage(stage: str) -> None:
    """In a child tfdeploy started: names the step about to run (fine-tune, calibrate, convert, ...) on stderr."""
    if os.environ.get(CHILD_ENV) == "1":
        print(STAGE_PREFIX + stage, file=sys.stderr, flush=True)


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
