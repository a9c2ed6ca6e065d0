"""What the CLI's user sees: its own messages, not TensorFlow's C++ logs (kept in a log file instead).

TensorFlow, absl and the TFLite converter write to file descriptors 1 and 2 from C++ (oneDNN notices,
``failed call to cuInit`` on machines without a GPU, ``fully_quantize: 0, ...``), which no Python
setting silences completely. :func:`capture_native_output` points both descriptors at a log file for
the length of a command, keeps Python's ``sys.stdout`` on the real standard output (the report), and
gives the CLI a :class:`Console` on the real standard error for progress and errors. Python warnings
and absl's Python logging go to ``sys.stderr``, which is the log file while capturing.

Only the CLI uses this: ``import tfdeploy`` leaves a notebook's or script's logging alone.

Example:
    >>> with capture_native_output(Path("run/logs")) as console:   # doctest: +SKIP
    ...     console.say("this reaches the terminal")
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Iterator, TextIO

LOG_NAME = "tfdeploy.log"


class Console:
    """The user's terminal: ``stream`` is the real standard error; ``log_path`` holds what was captured."""

    def __init__(self, stream: TextIO, log_path: Path | None = None) -> None:
        self.stream, self.log_path = stream, log_path

    def say(self, message: str) -> None:
        print(message, file=self.stream, flush=True)

    def finish(self, directory: Path | None, failed: bool) -> Path | None:
        """Keeps the captured log in ``directory/logs/`` (when that directory exists), names it after a failure.

        The temporary log is removed unless it is the only copy of a failed command's log.
        Returns where the log is kept, if anywhere.
        """
        if self.log_path is None:
            return None
        sys.stderr.flush()
        kept = None
        if directory is not None and directory.is_dir():
            try:
                (directory / "logs").mkdir(exist_ok=True)
                kept = Path(shutil.copyfile(self.log_path, directory / "logs" / LOG_NAME))
            except OSError:
                kept = None
        if failed:
            kept = kept or self.log_path
            self.say(f"TensorFlow's log: {kept}")
        if kept != self.log_path:
            self.log_path.unlink(missing_ok=True)
        return kept


def _fd_is(stream: TextIO, fd: int) -> bool:
    try:
        return stream.fileno() == fd
    except (AttributeError, OSError, ValueError):
        return False


@contextlib.contextmanager
def capture_native_output(enabled: bool = True) -> Iterator[Console]:
    """Sends fds 1 and 2 to a temporary log file while the block runs (see the module docstring).

    Does nothing (the console is plain ``sys.stderr``) when ``enabled`` is false or when stdout and
    stderr are not the process's fds 1 and 2 (click's test runner, pytest's capture, a notebook).
    """
    if not (enabled and _fd_is(sys.stdout, 1) and _fd_is(sys.stderr, 2)):
        yield Console(sys.stderr)
        return
    sys.stdout.flush()
    sys.stderr.flush()
    handle, name = tempfile.mkstemp(prefix="tfdeploy-", suffix=".log")
    saved_out, saved_err = os.dup(1), os.dup(2)
    real_stdout = sys.stdout
    console = Console(os.fdopen(os.dup(saved_err), "w", buffering=1, encoding="utf-8", errors="replace"), Path(name))
    os.dup2(handle, 1)
    os.dup2(handle, 2)
    os.close(handle)
    sys.stdout = os.fdopen(os.dup(saved_out), "w", buffering=1, encoding="utf-8", errors="replace")
    try:
        yield console
    finally:
        for stream in (sys.stdout, sys.stderr, console.stream):
            stream.flush()
        sys.stdout.close()
        sys.stdout = real_stdout
        os.dup2(saved_out, 1)
        os.dup2(saved_err, 2)
        os.close(saved_out)
        os.close(saved_err)
        console.stream.close()
