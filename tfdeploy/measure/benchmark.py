"""Latency benchmarks: percentiles, cold start, and hot-swap spikes.

* :func:`bench` drives each artifact in the runtime that would serve it (Keras ``tf.function``,
  SavedModel signature, TFLite interpreter) with ``concurrency`` client threads, per batch size,
  and reports p50/p90/p99/p999, mean and throughput (warm-up requests excluded), plus the cold
  start of a fresh process with and without the version's warmup file.
* :func:`hot_swap` reproduces TF Serving's availability-preserving version update: steady traffic
  on version N while N+1 loads in a background thread of the same process, then the switch —
  with N+1 warmed (warmup replayed before the switch) or cold.

Example:
    >>> report = bench(BenchConfig(["models/fashion/1", "out/ptq-int8.tflite"], batch_sizes=(1, 8)))  # doctest: +SKIP
    >>> print(report)
"""

from __future__ import annotations

import dataclasses
import math
import os
import threading
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from tfdeploy import faults
from tfdeploy.errors import TfdeployError
from tfdeploy.files import refuse_existing, write_atomic
from tfdeploy.io_spec import Arrays, ModelIO, as_feed, batch_size, synthesize
from tfdeploy.measure.predictors import is_saved_model_dir, predictor_for_file
from tfdeploy.progress import ProgressLike, Task, as_progress
from tfdeploy.report import Block, Image, Table, Text, Report

PERCENTILES = (50.0, 90.0, 99.0, 99.9)


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile: the smallest value with at least ``q``% of the samples at or below it.

    Example:
        >>> percentile(list(range(1, 101)), 99)
        99.0
    """
    if len(values) == 0:
        raise TfdeployError("No latency samples to summarise. Received: values=[]")
    ordered = sorted(values)
    rank = max(1, math.ceil(round(q * len(ordered) / 100, 9)))  # round: 99.9% of 1000 is 999, not 999.0000001
    return float(ordered[min(rank, len(ordered)) - 1])


@dataclasses.dataclass
class LatencyStats(Report):
    """Summary of a set of request latencies (ms)."""

    requests: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    p999_ms: float
    mean_ms: float
    max_ms: float

    @classmethod
    def of(cls, latencies_ms: Sequence[float]) -> "LatencyStats":
        p50, p90, p99, p999 = (percentile(latencies_ms, q) for q in PERCENTILES)
        return cls(requests=len(latencies_ms), p50_ms=p50, p90_ms=p90, p99_ms=p99, p999_ms=p999,
                   mean_ms=float(np.mean(latencies_ms)), max_ms=float(np.max(latencies_ms)))


@dataclasses.dataclass
class LoadResult:
    """Raw samples of one load run: (start time since run start s, latency ms) per request."""

    samples: list[tuple[float, float]]
    errors: list[str]
    wall_s: float


def run_load(call: Callable[[int], None], requests: int | None, duration_s: float | None, concurrency: int,
             warmup_requests: int = 0, task: Task | None = None) -> LoadResult:
    """Runs ``call(thread_index)`` from ``concurrency`` threads until ``requests`` or ``duration_s``.

    Each thread first makes ``warmup_requests`` untimed calls. Exceptions are recorded, not raised.
    ``task`` (a :class:`~tfdeploy.progress.Task`) advances once per finished request.
    """
    if (requests is None) == (duration_s is None):
        raise TfdeployError("Give either a number of requests or a duration. "
                            f"Received: requests={requests}, duration_s={duration_s}")
    lock = threading.Lock()
    samples: list[tuple[float, float]] = []
    errors: list[str] = []
    issued = [0]
    for index in range(concurrency):
        for _ in range(warmup_requests):
            call(index)
    start = time.perf_counter()
    deadline = None if duration_s is None else start + duration_s

    def worker(index: int) -> None:
        while True:
            with lock:
                if requests is not None and issued[0] >= requests:
                    return
                issued[0] += 1
            begin = time.perf_counter()
            if deadline is not None and begin >= deadline:
                return
            try:
                call(index)
            except Exception as exc:  # a failed request is data, not a crash
                with lock:
                    errors.append(f"{type(exc).__name__}: {exc}")
                continue
            end = time.perf_counter()
            with lock:
                samples.append((begin - start, (end - begin) * 1000))
                if task is not None:
                    task.advance()

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return LoadResult(samples=samples, errors=errors, wall_s=time.perf_counter() - start)


@dataclasses.dataclass
class BenchResult:
    """One artifact at one batch size."""

    artifact: str
    runtime: str
    batch_size: int
    concurrency: int
    stats: LatencyStats
    throughput_rps: float
    throughput_samples_s: float
    errors: int


@dataclasses.dataclass
class BenchConfig:
    """Options of :func:`bench`.

    Attributes:
        artifacts: Keras files, SavedModel version directories, ``.tflite`` files.
        batch_sizes: Batch sizes to measure.
        requests: Timed requests per artifact and batch size (``None`` when ``duration_s`` is set).
        duration_s: Seconds per artifact and batch size instead of a request count.
        concurrency: Client threads.
        warmup_requests: Untimed requests per thread before timing.
        threads: TFLite interpreter threads.
        cold_start: Also measure first-request latency in fresh processes.
        data: Real inputs (``.npz``/image directory/Dataset) instead of synthesized ones.
        seed: Seed of the synthesized inputs.
        custom_objects: Custom layers needed to load Keras artifacts.
        safe_mode: Refuse Lambda layers (``False``: ``--unsafe-deserialization``).
        overwrite: Replace existing ``json_path``/``plot_path`` files.
    """

    artifacts: Sequence[str | os.PathLike]
    batch_sizes: Sequence[int] = (1,)
    requests: int | None = 200
    duration_s: float | None = None
    concurrency: int = 1
    warmup_requests: int = 10
    threads: int | None = None
    cold_start: bool = True
    hot_swap: bool = False
    hot_swap_steady_s: float = 3.0
    hot_swap_after_s: float = 4.0
    data: str | os.PathLike | Any = None
    seed: int = 0
    overwrite: bool = False
    custom_objects: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    safe_mode: bool = True
    json_path: str | os.PathLike | None = None
    plot_path: str | os.PathLike | None = None
    progress: ProgressLike = "auto"


@dataclasses.dataclass
class BenchReport(Report):
    """Latency of every artifact and batch size, measured in one run (same machine noise)."""

    results: list[BenchResult]
    cold_starts: dict[str, dict[str, Any]]
    hot_swaps: list["HotSwapReport"] = dataclasses.field(default_factory=list)
    files: list[str] = dataclasses.field(default_factory=list)

    def blocks(self) -> list[Block]:
        header = ("artifact", "runtime", "batch", "conc", "requests", "p50 ms", "p90 ms", "p99 ms", "p999 ms",
                  "mean ms", "req/s", "errors")
        rows = [(Path(r.artifact).name, r.runtime, r.batch_size, r.concurrency, r.stats.requests, r.stats.p50_ms,
                 r.stats.p90_ms, r.stats.p99_ms, r.stats.p999_ms, r.stats.mean_ms, r.throughput_rps, r.errors)
                for r in self.results]
        lines: list[Block] = [Table(rows, header=header)]
        base = self.results[0] if self.results else None
        for r in self.results[1:]:
            if base and r.batch_size == base.batch_size and r.artifact != base.artifact:
                lines.append(Text(f"{Path(r.artifact).name} vs {Path(base.artifact).name} (batch {r.batch_size}): "
                                  f"p50 ×{r.stats.p50_ms / base.stats.p50_ms:.2f}, "
                                  f"p99 ×{r.stats.p99_ms / base.stats.p99_ms:.2f}"))
        for artifact, cold in self.cold_starts.items():
            for mode, result in cold.items():
                if result:
                    lines.append(Text(f"cold start {Path(artifact).name} ({mode.replace('_', ' ')}): load "
                                      f"{result['load_ms']:.0f} ms, first request {result['first_ms']:.1f} ms = "
                                      f"{result['first_over_steady']:.1f}× steady p50 {result['steady_p50_ms']:.2f} ms"))
        for swap in self.hot_swaps:
            lines += swap.blocks()
        return lines + [Image(path, "benchmark plot") if path.endswith(".png") else Text(f"wrote {path}")
                        for path in self.files]


def request_inputs(io: ModelIO, batch: int, data: Any, seed: int) -> Arrays:
    """One request's named inputs: the first ``batch`` samples of ``data`` (cycled), else synthesized."""
    if data is None:
        return synthesize(io, batch, np.random.default_rng(seed))
    from tfdeploy.model.data import read_data

    x = read_data(data, io, hold_out=False).x
    index = np.arange(batch) % batch_size(x)
    return {t.name: as_feed(x[t.name][index], t) for t in io.inputs}


@faults.boundary("bench")
def bench(config: BenchConfig) -> BenchReport:
    """Benchmarks each artifact at each batch size; see the module docstring.

    Returns:
        A :class:`BenchReport`.

    Raises:
        TfdeployError: For artifacts that cannot be loaded or bad options.

    Example:
        >>> bench(BenchConfig(["m.tflite"], requests=100)).results[0].stats.p50_ms   # doctest: +SKIP
        0.41
    """
    refuse_existing([Path(p) for p in (config.json_path, config.plot_path) if p], config.overwrite)
    if config.concurrency < 1 or not config.batch_sizes or min(config.batch_sizes) < 1:
        raise TfdeployError(f"Concurrency and batch sizes must be positive. Received: concurrency={config.concurrency}, "
                            f"batch_sizes={list(config.batch_sizes)}")
    if config.hot_swap and (len(config.artifacts) != 2 or not all(is_saved_model_dir(Path(a)) for a in config.artifacts)):
        raise TfdeployError("--hot-swap takes exactly two SavedModel version directories, N then N+1. "
                            f"Received: artifacts={[str(a) for a in config.artifacts]}")
    results: list[BenchResult] = []
    cold_starts: dict[str, dict[str, Any]] = {}
    say = as_progress(config.progress)
    for artifact in config.artifacts:
        path = Path(artifact)
        if not path.exists():
            raise TfdeployError(f"No artifact at this path. Received: path={str(path)!r}")
        say(f"Loading {path}")
        # TFLite interpreters are not thread-safe: one per client thread.
        predictors = [predictor_for_file(path, threads=config.threads, custom_objects=config.custom_objects,
                                         safe_mode=config.safe_mode)
                      for _ in range(config.concurrency if path.suffix == ".tflite" else 1)]
        for batch in config.batch_sizes:
            x = request_inputs(predictors[0].io, batch, config.data, config.seed)
            with say.task(f"  {path.name}: batch {batch}, {config.concurrency} client(s)", total=config.requests,
                          unit="request") as task:
                load = run_load(lambda i: predictors[i % len(predictors)].predict(x), config.requests,
                                config.duration_s, config.concurrency, config.warmup_requests, task)
            if not load.samples:
                raise TfdeployError(f"Every request to {path.name} failed: {load.errors[:1]}. Received: path={str(path)!r}")
            latencies = [ms for _, ms in load.samples]
            results.append(BenchResult(
                artifact=str(path), runtime=predictors[0].runtime, batch_size=batch, concurrency=config.concurrency,
                stats=LatencyStats.of(latencies), throughput_rps=len(latencies) / load.wall_s,
                throughput_samples_s=len(latencies) * batch / load.wall_s, errors=len(load.errors)))
        if config.cold_start:
            from tfdeploy.measure.coldstart import measure_cold_start
            from tfdeploy.serving.warmup import WARMUP_FILE

            modes = [False] + ([True] if is_saved_model_dir(path) and (path / WARMUP_FILE).is_file() else [])
            with say.task(f"  {path.name}: cold start in fresh processes", total=len(modes), unit="process") as task:
                for warm in modes:
                    cold_starts.setdefault(str(path), {})["with_warmup" if warm else "without_warmup"] = \
                        measure_cold_start(path, replay_warmup=warm)
                    task.advance()
    report = BenchReport(results=results, cold_starts=cold_starts)
    if config.hot_swap:
        old, new = config.artifacts
        for warm in (False, True):
            with say.task(f"Hot swap with N+1 {'warmed' if warm else 'cold'} (fresh process)"):
                report.hot_swaps.append(hot_swap_in_fresh_process(
                    old, new, warm, concurrency=config.concurrency, steady_s=config.hot_swap_steady_s,
                    after_s=config.hot_swap_after_s, batch_size=config.batch_sizes[0], seed=config.seed))
    if config.json_path:
        report.files.append(str(write_atomic(Path(config.json_path), report.to_json())))
    if config.plot_path:
        plotted = plot_hot_swap(report.hot_swaps, config.plot_path) if report.hot_swaps else \
            plot_latencies(report.results, config.plot_path)
        report.files.append(str(plotted))
    return report


def plot_latencies(results: Sequence[BenchResult], path: str | os.PathLike) -> Path:
    """Writes a PNG bar chart of p50/p99/p999 per artifact and batch size."""
    from tfdeploy import plots

    return plots.latency_percentiles([f"{Path(r.artifact).name}\nbatch {r.batch_size}" for r in results],
                                     *([getattr(r.stats, key) for r in results] for key in ("p50_ms", "p99_ms", "p999_ms")),
                                     path=path)


# ------------------------------------------------------------------------------------------------
# hot swap
# ------------------------------------------------------------------------------------------------

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


def hot_swap(old_version: str | os.PathLike, new_version: str | os.PathLike, warm: bool, concurrency: int = 2,
             steady_s: float = 3.0, after_s: float = 4.0, batch_size: int = 1, seed: int = 0,
             progress: ProgressLike = None) -> HotSwapReport:
    """Measures latency while version N+1 loads beside N in this process, then takes the traffic.

    Args:
        old_version: Version N's directory (serving from the start, already warmed).
        new_version: Version N+1's directory (loaded in a background thread during the run).
        warm: Replay N+1's warmup file before switching traffic to it.
        concurrency: Client threads sending requests back to back.
        steady_s: Seconds of traffic before the load starts.
        after_s: Seconds of traffic after the switch.
        batch_size: Batch size of each request.

    Returns:
        A :class:`HotSwapReport` (with the raw samples for :func:`plot_hot_swap`).

    Raises:
        TfdeployError: If a version cannot be loaded or N+1 has no warmup file while ``warm``.
    """
    from tfdeploy.measure.predictors import saved_model_predictor
    from tfdeploy.serving.warmup import WARMUP_FILE, read_warmup, replay_warmup

    old_path, new_path = Path(old_version), Path(new_version)
    for path in (old_path, new_path):
        if not is_saved_model_dir(path):
            raise TfdeployError(f"Hot swap needs SavedModel version directories. Received: path={str(path)!r}")
    if warm and not (new_path / WARMUP_FILE).is_file():
        raise TfdeployError(f"Version N+1 has no warmup file to replay; write it with `tfdeploy warmup write`. "
                            f"Received: path={str(new_path)!r}")
    progress = as_progress(progress)
    progress(f"Loading version N ({old_path}) and warming it")
    old = saved_model_predictor(old_path)
    if (old_path / WARMUP_FILE).is_file():
        replay_warmup(old.loaded.signatures, read_warmup(old_path / WARMUP_FILE))
    x = request_inputs(old.io, batch_size, None, seed)
    for _ in range(20):
        old.predict_batch(x)
    current: dict[str, Any] = {"predictor": old, "label": "N"}
    events: dict[str, float] = {}
    lock = threading.Lock()
    samples: list[tuple[float, float, str]] = []
    errors: list[str] = []
    stop = threading.Event()
    start = time.perf_counter()

    def client() -> None:
        while not stop.is_set():
            serving = current["predictor"], current["label"]
            begin = time.perf_counter()
            try:
                serving[0].predict_batch(x)
            except Exception as exc:
                with lock:
                    errors.append(f"{type(exc).__name__}: {exc}")
                continue
            end = time.perf_counter()
            with lock:
                samples.append((begin - start, (end - begin) * 1000, serving[1]))

    def loader() -> None:
        events["load_start"] = time.perf_counter() - start
        new = saved_model_predictor(new_path)
        if warm:
            replay_warmup(new.loaded.signatures, read_warmup(new_path / WARMUP_FILE))
        events["ready"] = time.perf_counter() - start
        current["predictor"], current["label"] = new, "N+1"  # the availability-preserving switch
        events["switch"] = time.perf_counter() - start

    clients = [threading.Thread(target=client, daemon=True) for _ in range(concurrency)]
    for thread in clients:
        thread.start()
    progress(f"Steady traffic on N for {steady_s:.0f} s with {concurrency} client(s)")
    time.sleep(steady_s)
    progress(f"Loading N+1 ({new_path}) in the background{' and replaying its warmup' if warm else ''}")
    load_thread = threading.Thread(target=loader, daemon=True)
    load_thread.start()
    load_thread.join()
    progress(f"Switched to N+1; {after_s:.0f} s more traffic")
    time.sleep(after_s)
    stop.set()
    for thread in clients:
        thread.join()
    end = time.perf_counter() - start

    def window(lo: float, hi: float, label: str | None = None) -> list[float]:
        return [ms for t, ms, who in samples if lo <= t < hi and (label is None or who == label)]

    steady = window(0, events["load_start"])
    swap = window(events["load_start"], events["switch"])
    after = window(events["switch"], end, "N+1")
    if not steady or not after:
        raise TfdeployError(f"Too few requests to measure (steady {len(steady)}, after {len(after)}); "
                            "lengthen steady_s/after_s.")
    first_after = [ms for t, ms, who in sorted(samples) if who == "N+1"][:5]
    return HotSwapReport(
        old_version=str(old_path), new_version=str(new_path), warmed=warm, concurrency=concurrency,
        load_start_s=events["load_start"], ready_s=events["ready"], switch_s=events["switch"], end_s=end,
        steady=LatencyStats.of(steady), swap_window=LatencyStats.of(swap or steady[-1:]),
        after_switch=LatencyStats.of(after), first_after_switch_ms=first_after, errors=errors, samples=samples,
    )


def plot_hot_swap(reports: Sequence[HotSwapReport], path: str | os.PathLike) -> Path:
    """Writes a timeline PNG (latency over time, load start and switch marked), one panel per run."""
    from tfdeploy import plots

    return plots.hot_swap_timeline(reports, path)


def hot_swap_in_fresh_process(old_version: str | os.PathLike, new_version: str | os.PathLike, warm: bool,
                              concurrency: int = 2, steady_s: float = 3.0, after_s: float = 4.0,
                              batch_size: int = 1, seed: int = 0, timeout: float = 600) -> HotSwapReport:
    """Runs :func:`hot_swap` in a new Python process, so no run benefits from another's warm caches."""
    import json
    import subprocess
    import sys

    command = [sys.executable, "-m", "tfdeploy.measure.benchmark", str(old_version), str(new_version),
               "--concurrency", str(concurrency), "--steady-s", str(steady_s), "--after-s", str(after_s),
               "--batch-size", str(batch_size), "--seed", str(seed)] + (["--warm"] if warm else [])
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise TfdeployError(f"Hot-swap run failed: {last}. Received: old={str(old_version)!r}, new={str(new_version)!r}")
    data = json.loads(result.stdout.strip().splitlines()[-1])
    stats = {key: LatencyStats(**data[key]) for key in ("steady", "swap_window", "after_switch")}
    data.update(stats)
    data["samples"] = [tuple(sample) for sample in data["samples"]]
    return HotSwapReport(**data)


def main() -> None:  # pragma: no cover - exercised through hot_swap_in_fresh_process
    import argparse
    import json
    import sys

    parser = argparse.ArgumentParser(description="One hot-swap run (used by hot_swap_in_fresh_process).")
    parser.add_argument("old_version")
    parser.add_argument("new_version")
    parser.add_argument("--warm", action="store_true")
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--steady-s", type=float, default=3.0)
    parser.add_argument("--after-s", type=float, default=4.0)
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    try:
        report = hot_swap(args.old_version, args.new_version, args.warm, args.concurrency, args.steady_s,
                          args.after_s, args.batch_size, args.seed)
    except TfdeployError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        sys.exit(2)
    print(json.dumps({**report.to_dict(), "samples": report.samples}))


if __name__ == "__main__":
    main()
