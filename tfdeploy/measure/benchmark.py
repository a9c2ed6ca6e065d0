"""Latency benchmarks: percentiles under load, cold start, and (with two versions) hot-swap spikes.

:func:`bench` drives each artifact in the runtime that would serve it (Keras ``tf.function``,
SavedModel signature, TFLite interpreter) with ``concurrency`` client threads, per batch size,
and reports p50/p90/p99/p999, mean and throughput (warm-up requests excluded), plus the cold
start of a fresh process with and without the version's warmup file
(:mod:`tfdeploy.measure.coldstart`) and, with ``hot_swap``, the latency around a version update
(:mod:`tfdeploy.measure.hot_swap`). Timing lives in :mod:`tfdeploy.measure.timing`. A running TF Serving
is measured the same way through its gRPC or REST API (``grpc://HOST:PORT/MODEL``,
``http://HOST:PORT/v1/models/MODEL``; :mod:`tfdeploy.measure.remote`), local and remote targets mixed.

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
from tfdeploy.measure.hot_swap import MIN_SWAPS, HotSwapConfig, HotSwapReport, rehearse_hot_swap
from tfdeploy.measure.predictors import Predictor, predictor_for_file, request_batch
from tfdeploy.measure.remote import is_remote, parse_target, remote_predictor
from tfdeploy.measure.remote_swap import (PublishConfig, RemoteSwapReport, check_publish, plot_remote_swap,
                                          publish_under_traffic)
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
        artifacts: Keras files, SavedModel version directories, ``.tflite`` files, and TF Serving targets:
            ``grpc://HOST:PORT/MODEL[/VERSION|@LABEL]``, ``http://HOST:PORT/v1/models/MODEL[/versions/N|/labels/L]``.
        batch_sizes: Batch sizes to measure.
        requests: Timed requests per artifact and batch size (``None`` when ``duration_s`` is set).
        duration_s: Seconds per artifact and batch size instead of a request count.
        concurrency: Client threads.
        warmup_requests: Untimed requests per thread before timing.
        threads: TFLite interpreter threads.
        cold_start: Also measure first-request latency in fresh processes (never for remote targets).
        hot_swap: Also rehearse version updates (two SavedModel versions, N then N+1) the way TF
            Serving loads them, in a fresh process per configuration (:mod:`tfdeploy.measure.hot_swap`).
        hot_swap_steady_s: Seconds of traffic on N before the first swap.
        hot_swap_after_s: Seconds of traffic after each swap.
        ablation: With ``hot_swap``: run no fixes → warmup → + load pool → + jemalloc.
        serving_config: With ``hot_swap``: the ``tfdeploy serving-config`` directory (or its
            ``platform_config.txt``) whose session config loads the versions (default: its defaults).
        swaps: With ``hot_swap``: version swaps per configuration.
        data: Real inputs (``.npz``/image directory/Dataset) instead of synthesized ones.
        seed: Seed of the synthesized inputs.
        signature_name: Signature called on remote targets (TF Serving's ``model_spec.signature_name``).
        publish: With ``hot_swap`` and one remote target: a Keras model file exported as the model's next
            version into ``base_dir`` while the target serves traffic (:mod:`tfdeploy.measure.remote_swap`).
        base_dir: With ``publish``: the model's base directory that the server watches.
        publish_timeout_s: With ``publish``: seconds to wait for the new version to answer.
        custom_objects: Custom layers needed to load Keras artifacts.
        safe_mode: Refuse Lambda layers (``False``: ``--unsafe-deserialization``).
        overwrite: Replace existing ``json_path``/``plot_path`` files.
        json_path: Write the report as JSON here.
        plot_path: Write a PNG here: the latency percentiles, or with ``hot_swap`` one timeline per
            configuration (``NAME-<configuration>.png``).
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
    hot_swap_after_s: float = 3.0
    ablation: bool = False
    serving_config: str | os.PathLike | None = None
    swaps: int = MIN_SWAPS
    data: str | os.PathLike | Any = None
    seed: int = 0
    signature_name: str = "serving_default"
    publish: str | os.PathLike | None = None
    base_dir: str | os.PathLike | None = None
    publish_timeout_s: float = 120.0
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
    hot_swap: HotSwapReport | None = None
    files: list[str] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)
    remote_swap: RemoteSwapReport | None = None

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        return {**data, "ablation": self.hot_swap.ablation} if self.hot_swap is not None else data

    def blocks(self) -> list[Block]:
        header = ("artifact", "runtime", "batch", "conc", "requests", "p50 ms", "p90 ms", "p99 ms", "p999 ms",
                  "mean ms", "req/s", "errors")
        rows = [(_name(r.artifact), r.runtime, r.batch_size, r.concurrency, r.stats.requests, r.stats.p50_ms,
                 r.stats.p90_ms, r.stats.p99_ms, r.stats.p999_ms, r.stats.mean_ms, r.throughput_rps, r.errors)
                for r in self.results]
        lines: list[Block] = [Table(rows, header=header)]
        base = self.results[0] if self.results else None
        for r in self.results[1:]:
            if base and r.batch_size == base.batch_size and r.artifact != base.artifact:
                lines.append(Text(f"{_name(r.artifact)} vs {_name(base.artifact)} (batch {r.batch_size}): "
                                  f"p50 ×{r.stats.p50_ms / base.stats.p50_ms:.2f}, "
                                  f"p99 ×{r.stats.p99_ms / base.stats.p99_ms:.2f}"))
        for artifact, cold in self.cold_starts.items():
            for mode, result in cold.items():
                if result:
                    lines.append(Text(f"cold start {Path(artifact).name} ({mode.replace('_', ' ')}): load "
                                      f"{result['load_ms']:.0f} ms, first request {result['first_ms']:.1f} ms = "
                                      f"{result['first_over_steady']:.1f}× steady p50 {result['steady_p50_ms']:.2f} ms"))
        lines += [Text(note) for note in self.notes]
        if self.hot_swap is not None:
            lines += self.hot_swap.blocks()
        if self.remote_swap is not None:
            lines += self.remote_swap.blocks()
        return lines + [Image(path, "benchmark plot") if path.endswith(".png") else Text(f"wrote {path}")
                        for path in self.files]


def _name(artifact: str | os.PathLike) -> str:
    """How the report names an artifact: a remote target's URL, a local file's name."""
    return str(artifact) if is_remote(artifact) else Path(artifact).name


def _check(config: BenchConfig) -> None:
    refuse_existing([Path(p) for p in (config.json_path, config.plot_path) if p], config.overwrite)
    if config.concurrency < 1 or not config.batch_sizes or min(config.batch_sizes) < 1:
        raise TfdeployError(f"Concurrency and batch sizes must be positive. Received: concurrency={config.concurrency}, "
                            f"batch_sizes={list(config.batch_sizes)}")
    if config.publish is not None or (config.hot_swap and any(is_remote(a) for a in config.artifacts)):
        _check_publish(config)
    elif config.hot_swap and (len(config.artifacts) != 2 or not all(is_saved_model_dir(a) for a in config.artifacts)):
        raise TfdeployError("--hot-swap takes exactly two SavedModel version directories, N then N+1. "
                            f"Received: artifacts={[str(a) for a in config.artifacts]}")
    for artifact in config.artifacts:
        if is_remote(artifact):
            parse_target(str(artifact))
        elif not Path(artifact).exists():
            raise TfdeployError(f"No artifact at this path. Received: path={str(artifact)!r}")


def _check_publish(config: BenchConfig) -> None:
    """``--hot-swap --publish MODEL --base-dir DIR`` on one remote target (the target itself is checked later)."""
    if not (config.hot_swap and config.publish is not None and config.base_dir is not None
            and len(config.artifacts) == 1 and is_remote(config.artifacts[0])):
        raise TfdeployError("A hot update of a running TF Serving takes one remote target with --hot-swap --publish "
                            "MODEL --base-dir DIR (the model to export as its next version, the base directory the "
                            f"server watches). Received: artifacts={[str(a) for a in config.artifacts]}, "
                            f"hot_swap={config.hot_swap}, publish={config.publish!r}, base_dir={config.base_dir!r}")
    check_publish(_publish_config(config, None))


def _publish_config(config: BenchConfig, say: Progress | None) -> PublishConfig:
    return PublishConfig(
        str(config.artifacts[0]), config.publish, config.base_dir, signature_name=config.signature_name,
        concurrency=config.concurrency, batch_size=config.batch_sizes[0], warmup_batch_sizes=config.batch_sizes,
        steady_s=config.hot_swap_steady_s, after_s=config.hot_swap_after_s, timeout_s=config.publish_timeout_s,
        data=config.data, seed=config.seed, custom_objects=config.custom_objects, safe_mode=config.safe_mode,
        progress=say)


def _measure_batch(artifact: str, predictors: list[Predictor], batch: int, config: BenchConfig,
                   say: Progress) -> BenchResult:
    """Latency of one artifact at one batch size under ``config.concurrency`` clients."""
    x = request_batch(predictors[0].io, batch, config.data, config.seed)
    with say.task(f"  {_name(artifact)}: batch {batch}, {config.concurrency} client(s)", total=config.requests,
                  unit="request") as task:
        load = run_load(lambda i: predictors[i % len(predictors)].predict(x), config.requests,
                        config.duration_s, config.concurrency, config.warmup_requests, task)
    if not load.samples:
        raise TfdeployError(f"Every request to {_name(artifact)} failed: {load.errors[:1]}. "
                            f"Received: {'target' if is_remote(artifact) else 'path'}={artifact!r}")
    latencies = [ms for _, ms in load.samples]
    return BenchResult(
        artifact=artifact, runtime=predictors[0].runtime, batch_size=batch, concurrency=config.concurrency,
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


def _hot_swap(config: BenchConfig, say: Progress) -> HotSwapReport:
    old, new = config.artifacts
    return rehearse_hot_swap(HotSwapConfig(
        old, new, serving_config=config.serving_config, ablation=config.ablation, swaps=config.swaps,
        concurrency=config.concurrency, steady_s=config.hot_swap_steady_s, gap_s=config.hot_swap_after_s,
        batch_size=config.batch_sizes[0], seed=config.seed, plot_path=config.plot_path, progress=say))


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
        if is_remote(artifact):
            say(f"Connecting to {artifact}")
            predictor = remote_predictor(str(artifact), config.signature_name)  # thread-safe: one for every client
            report.results += [_measure_batch(str(artifact), [predictor], batch, config, say)
                               for batch in config.batch_sizes]
            predictor.loaded.close()
            if config.cold_start:
                report.notes.append(f"cold start: not measured for remote targets ({artifact})")
            continue
        path = Path(artifact)
        say(f"Loading {path}")
        # TFLite interpreters are not thread-safe: one per client thread.
        predictors = [predictor_for_file(path, threads=config.threads, custom_objects=config.custom_objects,
                                         safe_mode=config.safe_mode)
                      for _ in range(config.concurrency if path.suffix == ".tflite" else 1)]
        report.results += [_measure_batch(str(path), predictors, batch, config, say) for batch in config.batch_sizes]
        if config.cold_start:
            report.cold_starts[str(path)] = _cold_starts(path, say)
    if config.publish is not None:
        report.remote_swap = publish_under_traffic(_publish_config(config, say))
    elif config.hot_swap:
        report.hot_swap = _hot_swap(config, say)
    if config.json_path:
        report.files.append(str(write_atomic(Path(config.json_path), report.to_json())))
    if config.plot_path:
        report.files += [str(plot_latencies(report.results, config.plot_path))] if not config.hot_swap else []
    if config.plot_path and report.remote_swap is not None:
        report.files.append(str(plot_remote_swap(report.remote_swap, config.plot_path)))
    return report


def plot_latencies(results: Sequence[BenchResult], path: str | os.PathLike) -> Path:
    """Writes a PNG bar chart of p50/p99/p999 per artifact and batch size.

    Example:
        >>> plot_latencies(report.results, "latency.png")     # doctest: +SKIP
        PosixPath('latency.png')
    """
    return plots.latency_percentiles([f"{_name(r.artifact)}\nbatch {r.batch_size}" for r in results],
                                     *([getattr(r.stats, key) for r in results] for key in ("p50_ms", "p99_ms", "p999_ms")),
                                     path=path)
