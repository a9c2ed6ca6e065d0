"""Latency benchmarks: percentiles under load, cold start, and (with two versions) hot-swap spikes.

:func:`bench` drives each artifact in the runtime that would serve it (Keras ``tf.function``,
SavedModel signature, TFLite interpreter) with ``concurrency`` client threads, per batch size,
and reports p50/p90/p99/p999, mean and throughput (warm-up requests excluded), plus the cold
start of a fresh process with and without the version's warmup file
(:mod:`tfdeploy.measure.coldstart`) and, with ``hot_swap``, the latency around a version update
(:mod:`tfdeploy.measure.hot_swap`). Timing lives in :mod:`tfdeploy.measure.timing`.

Example:
    >>> report = bench(BenchConfig(["models/fashion/1", "out/ptq-int8.tflite"], batch_sizes=(1, 8)))  # doctest: +SKIP
    >>> print(report)
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

from tfdeploy import faults, plots
from tfdeploy.errors import TfdeployError
from tfdeploy.files import refuse_existing, write_atomic
from tfdeploy.measure.coldstart import measure_cold_start
from tfdeploy.measure.hot_swap import HotSwapReport, hot_swap_in_fresh_process, plot_hot_swap
from tfdeploy.measure.predictors import Predictor, predictor_for_file, request_batch
from tfdeploy.measure.timing import LatencyStats, run_load
from tfdeploy.model.loading import is_saved_model_dir
from tfdeploy.progress import Progress, ProgressLike, as_progress
from tfdeploy.report import Block, Image, Report, Table, Text
from tfdeploy.serving.warmup import has_warmup


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
        hot_swap: Also measure a version update (two SavedModel versions, N then N+1) in fresh
            processes, with N+1 cold and warmed.
        hot_swap_steady_s: Seconds of traffic on N before N+1 loads.
        hot_swap_after_s: Seconds of traffic after the switch.
        data: Real inputs (``.npz``/image directory/Dataset) instead of synthesized ones.
        seed: Seed of the synthesized inputs.
        custom_objects: Custom layers needed to load Keras artifacts.
        safe_mode: Refuse Lambda layers (``False``: ``--unsafe-deserialization``).
        overwrite: Replace existing ``json_path``/``plot_path`` files.
        json_path: Write the report as JSON here.
        plot_path: Write a PNG here: the hot-swap timeline, else the latency percentiles.
        progress: Where progress goes (see :mod:`tfdeploy.progress`).
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
    hot_swaps: list[HotSwapReport] = dataclasses.field(default_factory=list)
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


def _check(config: BenchConfig) -> None:
    refuse_existing([Path(p) for p in (config.json_path, config.plot_path) if p], config.overwrite)
    if config.concurrency < 1 or not config.batch_sizes or min(config.batch_sizes) < 1:
        raise TfdeployError(f"Concurrency and batch sizes must be positive. Received: concurrency={config.concurrency}, "
                            f"batch_sizes={list(config.batch_sizes)}")
    if config.hot_swap and (len(config.artifacts) != 2 or not all(is_saved_model_dir(a) for a in config.artifacts)):
        raise TfdeployError("--hot-swap takes exactly two SavedModel version directories, N then N+1. "
                            f"Received: artifacts={[str(a) for a in config.artifacts]}")
    for artifact in config.artifacts:
        if not Path(artifact).exists():
            raise TfdeployError(f"No artifact at this path. Received: path={str(artifact)!r}")


def _measure_batch(path: Path, predictors: list[Predictor], batch: int, config: BenchConfig,
                   say: Progress) -> BenchResult:
    """Latency of one artifact at one batch size under ``config.concurrency`` clients."""
    x = request_batch(predictors[0].io, batch, config.data, config.seed)
    with say.task(f"  {path.name}: batch {batch}, {config.concurrency} client(s)", total=config.requests,
                  unit="request") as task:
        load = run_load(lambda i: predictors[i % len(predictors)].predict(x), config.requests,
                        config.duration_s, config.concurrency, config.warmup_requests, task)
    if not load.samples:
        raise TfdeployError(f"Every request to {path.name} failed: {load.errors[:1]}. Received: path={str(path)!r}")
    latencies = [ms for _, ms in load.samples]
    return BenchResult(
        artifact=str(path), runtime=predictors[0].runtime, batch_size=batch, concurrency=config.concurrency,
        stats=LatencyStats.of(latencies), throughput_rps=len(latencies) / load.wall_s,
        throughput_samples_s=len(latencies) * batch / load.wall_s, errors=len(load.errors))


def _cold_starts(path: Path, say: Progress) -> dict[str, dict[str, Any]]:
    """Cold start in fresh processes: without warmup, and with it when the version has a warmup file."""
    modes = [False] + ([True] if is_saved_model_dir(path) and has_warmup(path) else [])
    results = {}
    with say.task(f"  {path.name}: cold start in fresh processes", total=len(modes), unit="process") as task:
        for warm in modes:
            results["with_warmup" if warm else "without_warmup"] = measure_cold_start(path, replay_warmup=warm)
            task.advance()
    return results


def _hot_swaps(config: BenchConfig, say: Progress) -> list[HotSwapReport]:
    old, new = config.artifacts
    swaps = []
    for warm in (False, True):
        with say.task(f"Hot swap with N+1 {'warmed' if warm else 'cold'} (fresh process)"):
            swaps.append(hot_swap_in_fresh_process(
                old, new, warm, concurrency=config.concurrency, steady_s=config.hot_swap_steady_s,
                after_s=config.hot_swap_after_s, batch_size=config.batch_sizes[0], seed=config.seed))
    return swaps


@faults.boundary("bench")
def bench(config: BenchConfig) -> BenchReport:
    """Benchmarks each artifact at each batch size; see the module docstring.

    Args:
        config: A :class:`BenchConfig`.

    Returns:
        A :class:`BenchReport`.

    Raises:
        TfdeployError: For artifacts that cannot be loaded or bad options.

    Example:
        >>> bench(BenchConfig(["m.tflite"], requests=100)).results[0].stats.p50_ms   # doctest: +SKIP
        0.41
    """
    _check(config)
    report = BenchReport(results=[], cold_starts={})
    say = as_progress(config.progress)
    for artifact in config.artifacts:
        path = Path(artifact)
        say(f"Loading {path}")
        # TFLite interpreters are not thread-safe: one per client thread.
        predictors = [predictor_for_file(path, threads=config.threads, custom_objects=config.custom_objects,
                                         safe_mode=config.safe_mode)
                      for _ in range(config.concurrency if path.suffix == ".tflite" else 1)]
        report.results += [_measure_batch(path, predictors, batch, config, say) for batch in config.batch_sizes]
        if config.cold_start:
            report.cold_starts[str(path)] = _cold_starts(path, say)
    if config.hot_swap:
        report.hot_swaps = _hot_swaps(config, say)
    if config.json_path:
        report.files.append(str(write_atomic(Path(config.json_path), report.to_json())))
    if config.plot_path:
        plotted = plot_hot_swap(report.hot_swaps, config.plot_path) if report.hot_swaps else \
            plot_latencies(report.results, config.plot_path)
        report.files.append(str(plotted))
    return report


def plot_latencies(results: Sequence[BenchResult], path: str | os.PathLike) -> Path:
    """Writes a PNG bar chart of p50/p99/p999 per artifact and batch size.

    Example:
        >>> plot_latencies(report.results, "latency.png")     # doctest: +SKIP
        PosixPath('latency.png')
    """
    return plots.latency_percentiles([f"{Path(r.artifact).name}\nbatch {r.batch_size}" for r in results],
                                     *([getattr(r.stats, key) for r in results] for key in ("p50_ms", "p99_ms", "p999_ms")),
                                     path=path)
