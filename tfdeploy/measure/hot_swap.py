"""Hot swap: latency while version N+1 loads beside N, then takes the traffic.

:func:`hot_swap` reproduces TF Serving's availability-preserving version update in one process:
client threads send requests back to back to version N while N+1 is loaded (and, when ``warm``,
its warmup file replayed), then the traffic switches to N+1 in one assignment. The samples are
split into three windows: steady (N only), swap (N serving while N+1 loads) and after the switch.
:func:`hot_swap_in_fresh_process` runs it in a new Python process
(``python -m tfdeploy.measure.hot_swap``), so no run benefits from another's warm caches.

Example:
    >>> reports = [hot_swap_in_fresh_process("models/m/1", "models/m/2", warm) for warm in (False, True)]  # doctest: +SKIP
    >>> plot_hot_swap(reports, "hot_swap.png")                                                          # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import threading
import time
from pathlib import Path
from typing import Any, Sequence

from tfdeploy import plots
from tfdeploy.errors import TfdeployError
from tfdeploy.io_spec import Arrays
from tfdeploy.measure.predictors import Predictor, request_batch, saved_model_predictor
from tfdeploy.measure.processes import child_main, run_child
from tfdeploy.measure.timing import LatencyStats, RequestLog
from tfdeploy.model.loading import is_saved_model_dir
from tfdeploy.progress import ProgressLike, as_progress
from tfdeploy.report import Block, Report, Table, Text
from tfdeploy.serving.warmup import has_warmup, replay_version_warmup

CHILD_MODULE = "tfdeploy.measure.hot_swap"  # what hot_swap_in_fresh_process runs
WARM_CALLS = 20  # untimed requests to version N before the clients start
FIRST_AFTER_SWITCH = 5  # first requests on N+1 listed in the report


@dataclasses.dataclass
class HotSwapReport(Report):
    """Latency around a version update in one process."""

    old_version: str
    new_version: str
    warmed: bool
    concurrency: int
    load_start_s: float
    ready_s: float
    switch_s: float
    end_s: float
    steady: LatencyStats
    swap_window: LatencyStats
    after_switch: LatencyStats
    first_after_switch_ms: list[float]
    errors: list[str]
    samples: list[tuple[float, float, str]] = dataclasses.field(default_factory=list, repr=False)

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        data.pop("samples")
        return data

    def blocks(self) -> list[Block]:
        rows = [(name, s.requests, s.p50_ms, s.p99_ms, s.p999_ms, s.max_ms)
                for name, s in (("steady (N)", self.steady), ("swap window (N+1 loading)", self.swap_window),
                                ("after switch (N+1)", self.after_switch))]
        head = (f"hot swap {Path(self.old_version).name} -> {Path(self.new_version).name}, N+1 "
                f"{'warmed (warmup replayed before the switch)' if self.warmed else 'cold'}, "
                f"{self.concurrency} client(s); load took {self.ready_s - self.load_start_s:.2f} s")
        return [Text(head), Table(rows, header=("window", "requests", "p50 ms", "p99 ms", "p999 ms", "max ms")),
                Text(f"first requests after the switch (ms): {', '.join(f'{v:.1f}' for v in self.first_after_switch_ms)}"),
                *([Text(f"errors: {len(self.errors)}")] if self.errors else [])]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "HotSwapReport":
        """The report from :meth:`to_dict` plus ``samples`` (what the child process prints).

        Example:
            >>> HotSwapReport.from_dict({**report.to_dict(), "samples": report.samples}) == report   # doctest: +SKIP
            True
        """
        stats = {key: LatencyStats(**data[key]) for key in ("steady", "swap_window", "after_switch")}
        return cls(**{**data, **stats, "samples": [tuple(sample) for sample in data.get("samples", [])]})


@dataclasses.dataclass(frozen=True)
class _SwapTimes:
    """When N+1's load started, when it was ready, and when the traffic switched (s since traffic began)."""

    load_start: float
    ready: float
    switch: float


class _Traffic:
    """Client threads sending requests back to back to whichever version is current."""

    def __init__(self, predictor: Predictor, x: Arrays, concurrency: int) -> None:
        self.log = RequestLog()
        self._current = (predictor, "N")
        self._x = x
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._client, daemon=True) for _ in range(concurrency)]

    def _client(self) -> None:
        while not self._stop.is_set():
            predictor, label = self._current  # one read: each request goes to one version
            self.log.request(lambda: predictor.predict_batch(self._x), tag=label)

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def switch(self, predictor: Predictor, label: str) -> None:
        """The availability-preserving switch: the next requests go to ``predictor``."""
        self._current = (predictor, label)

    def stop(self) -> float:
        """Stops the clients; returns the time of the end (s since traffic began)."""
        self._stop.set()
        for thread in self._threads:
            thread.join()
        return self.log.elapsed_s()


def _check_versions(old_version: str | os.PathLike, new_version: str | os.PathLike, warm: bool) -> tuple[Path, Path]:
    old_path, new_path = Path(old_version), Path(new_version)
    for path in (old_path, new_path):
        if not is_saved_model_dir(path):
            raise TfdeployError(f"Hot swap needs SavedModel version directories. Received: path={str(path)!r}")
    if warm and not has_warmup(new_path):
        raise TfdeployError(f"Version N+1 has no warmup file to replay; write it with `tfdeploy warmup write`. "
                            f"Received: path={str(new_path)!r}")
    return old_path, new_path


def _serving_version(path: Path, batch_size: int, seed: int) -> tuple[Predictor, Arrays]:
    """Version N as it serves before the update: loaded, warmup replayed, warm; and the request to send."""
    predictor = saved_model_predictor(path)
    if has_warmup(path):
        replay_version_warmup(path, predictor.loaded.signatures)
    x = request_batch(predictor.io, batch_size, None, seed)
    for _ in range(WARM_CALLS):
        predictor.predict_batch(x)
    return predictor, x


def _load_and_switch(new_path: Path, warm: bool, traffic: _Traffic) -> _SwapTimes:
    """Loads N+1 while the clients keep sending to N (replaying its warmup if ``warm``), then switches."""
    load_start = traffic.log.elapsed_s()
    new = saved_model_predictor(new_path)
    if warm:
        replay_version_warmup(new_path, new.loaded.signatures)
    ready = traffic.log.elapsed_s()
    traffic.switch(new, "N+1")
    return _SwapTimes(load_start=load_start, ready=ready, switch=traffic.log.elapsed_s())


def _window(samples: Sequence[tuple[float, float, str]], lo: float, hi: float, label: str | None = None) -> list[float]:
    return [ms for t, ms, who in samples if lo <= t < hi and (label is None or who == label)]


def _report(old_path: Path, new_path: Path, warm: bool, concurrency: int, times: _SwapTimes, end: float,
            log: RequestLog) -> HotSwapReport:
    steady = _window(log.samples, 0, times.load_start)
    swap = _window(log.samples, times.load_start, times.switch)
    after = _window(log.samples, times.switch, end, "N+1")
    if not steady or not after:
        raise TfdeployError(f"Too few requests to measure (steady {len(steady)}, after {len(after)}); "
                            f"lengthen steady_s/after_s. Received: requests={len(log.samples)}")
    first_after = [ms for t, ms, who in sorted(log.samples) if who == "N+1"][:FIRST_AFTER_SWITCH]
    return HotSwapReport(
        old_version=str(old_path), new_version=str(new_path), warmed=warm, concurrency=concurrency,
        load_start_s=times.load_start, ready_s=times.ready, switch_s=times.switch, end_s=end,
        steady=LatencyStats.of(steady), swap_window=LatencyStats.of(swap or steady[-1:]),
        after_switch=LatencyStats.of(after), first_after_switch_ms=first_after, errors=log.errors,
        samples=log.samples,
    )


def hot_swap(old_version: str | os.PathLike, new_version: str | os.PathLike, warm: bool, concurrency: int = 2,
             steady_s: float = 3.0, after_s: float = 4.0, batch_size: int = 1, seed: int = 0,
             progress: ProgressLike = None) -> HotSwapReport:
    """Measures latency while version N+1 loads beside N in this process, then takes the traffic.

    Args:
        old_version: Version N's directory (serving from the start, already warmed).
        new_version: Version N+1's directory (loaded while N serves).
        warm: Replay N+1's warmup file before switching traffic to it.
        concurrency: Client threads sending requests back to back.
        steady_s: Seconds of traffic before the load starts.
        after_s: Seconds of traffic after the switch.
        batch_size: Batch size of each request.
        seed: Seed of the synthesized request.
        progress: Where the phases are reported (see :mod:`tfdeploy.progress`).

    Returns:
        A :class:`HotSwapReport` (with the raw samples for :func:`plot_hot_swap`).

    Raises:
        TfdeployError: If a version cannot be loaded or N+1 has no warmup file while ``warm``.

    Example:
        >>> report = hot_swap("models/m/1", "models/m/2", warm=True, steady_s=1, after_s=1)   # doctest: +SKIP
        >>> report.after_switch.p999_ms / report.steady.p999_ms
        1.3
    """
    old_path, new_path = _check_versions(old_version, new_version, warm)
    say = as_progress(progress)
    say(f"Loading version N ({old_path}) and warming it")
    old, x = _serving_version(old_path, batch_size, seed)
    traffic = _Traffic(old, x, concurrency)
    traffic.start()
    try:
        say(f"Steady traffic on N for {steady_s:.0f} s with {concurrency} client(s)")
        time.sleep(steady_s)
        say(f"Loading N+1 ({new_path}) in the background{' and replaying its warmup' if warm else ''}")
        times = _load_and_switch(new_path, warm, traffic)
        say(f"Switched to N+1; {after_s:.0f} s more traffic")
        time.sleep(after_s)
    finally:
        end = traffic.stop()
    return _report(old_path, new_path, warm, concurrency, times, end, traffic.log)


def plot_hot_swap(reports: Sequence[HotSwapReport], path: str | os.PathLike) -> Path:
    """Writes a timeline PNG (latency over time, load start and switch marked), one panel per run.

    Example:
        >>> plot_hot_swap([cold, warm], "hot_swap.png")     # doctest: +SKIP
        PosixPath('hot_swap.png')
    """
    return plots.hot_swap_timeline(reports, path)


def hot_swap_in_fresh_process(old_version: str | os.PathLike, new_version: str | os.PathLike, warm: bool,
                              concurrency: int = 2, steady_s: float = 3.0, after_s: float = 4.0,
                              batch_size: int = 1, seed: int = 0, timeout: float = 600) -> HotSwapReport:
    """Runs :func:`hot_swap` in a new Python process, so no run benefits from another's warm caches.

    Args:
        old_version: Version N's directory.
        new_version: Version N+1's directory.
        warm: Replay N+1's warmup file before the switch.
        concurrency: Client threads.
        steady_s: Seconds of traffic before the load.
        after_s: Seconds of traffic after the switch.
        batch_size: Batch size of each request.
        seed: Seed of the synthesized request.
        timeout: Seconds before the child process is killed.

    Returns:
        A :class:`HotSwapReport` with its samples.

    Raises:
        TfdeployError: If the run fails (the child's last error line is included).

    Example:
        >>> hot_swap_in_fresh_process("models/m/1", "models/m/2", warm=True).warmed   # doctest: +SKIP
        True
    """
    args = [str(old_version), str(new_version), "--concurrency", str(concurrency), "--steady-s", str(steady_s),
            "--after-s", str(after_s), "--batch-size", str(batch_size), "--seed", str(seed)]
    data = run_child(CHILD_MODULE, args + (["--warm"] if warm else []), "Hot-swap run",
                     f"old={str(old_version)!r}, new={str(new_version)!r}", timeout)
    return HotSwapReport.from_dict(data)


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("old_version")
    parser.add_argument("new_version")
    parser.add_argument("--warm", action="store_true")
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--steady-s", type=float, default=3.0)
    parser.add_argument("--after-s", type=float, default=4.0)
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)


def _run(args: argparse.Namespace) -> dict[str, Any]:
    report = hot_swap(args.old_version, args.new_version, args.warm, args.concurrency, args.steady_s,
                      args.after_s, args.batch_size, args.seed)
    return {**report.to_dict(), "samples": report.samples}


def main() -> None:  # pragma: no cover - exercised through hot_swap_in_fresh_process
    """``python -m tfdeploy.measure.hot_swap``: one run, printed as JSON.

    Example:
        >>> main()   # python -m tfdeploy.measure.hot_swap models/m/1 models/m/2 --warm   # doctest: +SKIP
    """
    child_main("One hot-swap run (used by hot_swap_in_fresh_process).", _arguments, _run)


if __name__ == "__main__":
    main()
