"""Progress of long library calls: messages, and tasks with a count, elapsed time and an estimate.

Every long call takes ``progress=``: a :class:`Progress`, a plain callable (it receives each line
of text), ``"auto"``, or ``None``/``False`` for silence. ``"auto"`` (:func:`auto_progress`) draws
tqdm's bar: an updating line on a terminal, a widget in Jupyter (with ``ipywidgets``), and plain
timestamped lines when the stream is not a terminal (CI logs), at most one every few seconds.

Example:
    >>> from tfdeploy.progress import LineProgress
    >>> lines = []
    >>> progress = LineProgress(lines.append)
    >>> with progress.task("fine-tune", total=2, unit="epoch") as task:
    ...     task.advance()
    ...     task.advance()
    >>> lines[-1].startswith("fine-tune: 100%")
    True
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from typing import Any, Callable, Iterator, TextIO, Union


class Task:
    """One long step: call :meth:`advance` as units complete; ``info`` shows beside the count."""

    def __init__(self, description: str, total: int | None, unit: str) -> None:
        self.description, self.total, self.unit = description, total, unit
        self.n, self.info, self.start = 0, {}, time.perf_counter()

    def advance(self, n: int = 1, **info: Any) -> None:
        self.n += n
        self.info.update(info)
        self._update(n)

    def _update(self, n: int) -> None:
        pass

    def _close(self) -> None:
        pass

    def meter(self) -> str:
        """``description: 40%|...| 2/5 [00:12<00:18, 6.00s/epoch] info`` without the bar."""
        from tqdm import tqdm

        elapsed = time.perf_counter() - self.start
        postfix = ", ".join(f"{k}={_short(v)}" for k, v in self.info.items()) or None
        bar_format = _PLAIN_FORMAT if self.total else _COUNT_FORMAT if self.n else _ELAPSED_FORMAT
        return tqdm.format_meter(self.n, self.total, elapsed, prefix=self.description, unit=self.unit,
                                 postfix=postfix, bar_format=bar_format)


_PLAIN_FORMAT = "{l_bar}{n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate_fmt}{postfix}]"
_COUNT_FORMAT = "{desc}: {n_fmt} {unit} [{elapsed}{postfix}]"
_ELAPSED_FORMAT = "{desc}: done in {elapsed}"


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


class Progress:
    """Silent progress: the base every kind of progress extends (``--quiet``)."""

    def say(self, message: str) -> None:
        """One line about what starts now."""

    def __call__(self, message: str) -> None:
        self.say(message)

    def _task(self, description: str, total: int | None, unit: str) -> Task:
        return Task(description, total, unit)

    @contextlib.contextmanager
    def task(self, description: str, total: int | None = None, unit: str = "step") -> Iterator[Task]:
        """A long step of ``total`` units (``None``: unknown, only elapsed time is shown)."""
        task = self._task(description, total, unit)
        try:
            yield task
        finally:
            task._close()


class LineProgress(Progress):
    """Plain lines through ``write`` (CI logs, tests): a task's meter every ``every_s`` seconds and at its end."""

    def __init__(self, write: Callable[[str], None], every_s: float = 10.0) -> None:
        self.write, self.every_s = write, every_s

    def say(self, message: str) -> None:
        self.write(message)

    def _task(self, description: str, total: int | None, unit: str) -> Task:
        progress = self

        class LineTask(Task):
            last = time.perf_counter()

            def _update(self, n: int) -> None:
                now = time.perf_counter()
                if now - self.last >= progress.every_s or (self.total and self.n >= self.total):
                    self.last = now
                    progress.write(self.meter())

            def _close(self) -> None:
                if not self.total or self.n < self.total:
                    progress.write(self.meter())

        return LineTask(description, total, unit)


class TqdmProgress(Progress):
    """tqdm bars on ``file`` (an updating line on a terminal), or Jupyter widgets with ``notebook=True``."""

    def __init__(self, file: TextIO | None = None, notebook: bool = False) -> None:
        self.file, self.notebook = file, notebook

    def _bar_class(self) -> Any:
        if self.notebook:
            from tqdm.notebook import tqdm
        else:
            from tqdm import tqdm
        return tqdm

    def say(self, message: str) -> None:
        if self.notebook:
            print(message)  # a notebook shows stdout plainly, stderr tinted as an error
        else:
            self._bar_class().write(message, file=self.file or sys.stderr)

    def _task(self, description: str, total: int | None, unit: str) -> Task:
        kwargs = {} if self.notebook else {"file": self.file or sys.stderr, **_width(self.file or sys.stderr)}
        if total is None:
            kwargs["bar_format"] = "{desc}: {elapsed}"
        bar = self._bar_class()(total=total, desc=description, unit=f" {unit}", leave=True, **kwargs)
        done = threading.Event()

        def tick() -> None:  # a step without a count still shows its elapsed time moving
            while not done.wait(1.0):
                bar.refresh()

        if total is None:
            threading.Thread(target=tick, daemon=True).start()

        class BarTask(Task):
            def _update(self, n: int) -> None:
                if self.info:
                    bar.set_postfix({k: _short(v) for k, v in self.info.items()}, refresh=False)
                bar.update(n)

            def _close(self) -> None:
                done.set()
                bar.close()

        return BarTask(description, total, unit)


def _width(stream: TextIO) -> dict[str, Any]:
    """Follow the terminal's width, or 100 columns where it reports none (``script``, some CI ptys)."""
    try:
        columns = os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, OSError, ValueError):
        columns = 0
    return {"dynamic_ncols": True} if columns > 0 else {"ncols": 100}


ProgressLike = Union[Progress, Callable[[str], None], str, bool, None]


def in_notebook() -> bool:
    """True inside a Jupyter kernel (IPython with a ZMQ shell)."""
    shell = sys.modules.get("IPython") and getattr(sys.modules["IPython"], "get_ipython", lambda: None)()
    return type(shell).__name__ == "ZMQInteractiveShell"


def auto_progress(stream: TextIO | None = None) -> Progress:
    """tqdm on a terminal, widgets in Jupyter (plain lines without ipywidgets), plain lines otherwise."""
    stream = stream or sys.stderr
    if in_notebook():
        try:
            import ipywidgets  # noqa: F401  (tqdm.notebook needs it)

            return TqdmProgress(notebook=True)
        except ImportError:
            return LineProgress(lambda line: print(line, file=stream), every_s=5.0)
    if getattr(stream, "isatty", lambda: False)():
        return TqdmProgress(stream)
    return LineProgress(lambda line: print(line, file=stream, flush=True))


def as_progress(value: ProgressLike) -> Progress:
    """Turns any accepted ``progress=`` value into a :class:`Progress`.

    Example:
        >>> as_progress(None).say("nothing happens")
    """
    if isinstance(value, Progress):
        return value
    if value is None or value is False:
        return Progress()
    if value is True or value == "auto":
        return auto_progress()
    if callable(value):
        return LineProgress(value)
    raise TypeError(f"progress must be a Progress, a callable, 'auto', True, False or None. Received: progress={value!r}")
