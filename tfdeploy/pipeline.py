"""The one-command pipeline: setup -> compress -> export -> serving config -> verify -> bench.

This is the only place where the steps are chained; each step stays a single command of its own.

Example:
    >>> from tfdeploy.pipeline import DeployConfig, deploy
    >>> report = deploy(DeployConfig(out_dir="run", example=True))    # doctest: +SKIP
    >>> print(report)
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

from tfdeploy import faults, runtime
from tfdeploy.compression.config import CompressConfig
from tfdeploy.compression.recipes import Recipe
from tfdeploy.compression.report import CompressionReport, VariantReport
from tfdeploy.compression.session import compress
from tfdeploy.compression.tflite import Int8Granularity
from tfdeploy.errors import TfdeployError
from tfdeploy.files import write_atomic
from tfdeploy.measure.benchmark import BenchConfig, bench
from tfdeploy.model.examples import prepare_example
from tfdeploy.serving.config import ServedModel, ServingConfig, write_serving_config
from tfdeploy.serving.export import ExportConfig, export
from tfdeploy.serving.verification import verify
from tfdeploy.progress import Progress, ProgressLike, as_progress
from tfdeploy.report import Block, Heading, Report, Table, Text

DEFAULT_DEPLOY_RECIPES = (Recipe.STRIP, Recipe.PTQ_INT8, Recipe.PRUNE_INT8, Recipe.QAT)


@dataclasses.dataclass
class DeployConfig:
    """Options of :func:`deploy`.

    Attributes:
        out_dir: Everything goes here: ``compressed/``, ``models/NAME/<version>``, ``serving/``, reports.
        model: The trained model; ``None`` with ``example=True``.
        example: Start from the built-in MobileNetV2 / Fashion-MNIST example (the shipped, converged model).
        train_example: Train the example from scratch for ``example_epochs`` instead.
        data: Fine-tune/calibration/evaluation data (the example brings its own).
        recipes: Compression recipes to run.
        serve_variant: The variant exported for TF Serving: ``original`` or one of ``recipes``
            (a ``.tflite`` variant is exported as ``model.tflite`` beside the source SavedModel).
        model_name: TF Serving model name (default: ``fashion`` for the example, else the file's stem).
        epochs: Fine-tune epochs of the TFMOT recipes.
        example_epochs: Training epochs of the example with ``train_example``.
        int8_granularity: Weight scales of post-training int8.
        warmup_batch_sizes: One warmup request per batch size.
        bench_requests: Requests per batch size in the closing benchmark.
        seed: Seed for everything (``seed_everything``).
        deterministic: Enable op determinism.
        gpu_memory_growth: GPU memory growth on every GPU.
        gpu_memory_limit_mb: Per-GPU memory cap instead of growth.
        custom_objects: Custom layers needed to load the model.
        safe_mode: Refuse Lambda layers (``False``: ``--unsafe-deserialization``).
        output: The output accuracy is measured on (default: the first classification head).
        metrics: What the variants are judged by (see :class:`~tfdeploy.compression.CompressConfig`).
        isolate: Make the recipes in a worker process (a native crash fails one recipe, not the run).
        resume: Keep the recipes an earlier run of ``out_dir`` made; export, configure, verify and bench again.
        select_tf_ops: Let TFLite conversion fall back to TensorFlow select ops (Flex delegate).
        overwrite: Replace an existing ``out_dir`` run.
    """

    out_dir: str | os.PathLike
    model: str | os.PathLike | None = None
    example: bool = False
    data: str | os.PathLike | None = None
    recipes: Sequence[Recipe] = DEFAULT_DEPLOY_RECIPES
    serve_variant: str = Recipe.STRIP.value
    model_name: str | None = None
    epochs: int = 2
    train_example: bool = False
    example_epochs: int = 5
    int8_granularity: Int8Granularity = Int8Granularity.PER_TENSOR
    warmup_batch_sizes: tuple[int, ...] = (1, 8, 32)
    bench_requests: int = 200
    seed: int = 0
    deterministic: bool = False
    gpu_memory_growth: bool = True
    gpu_memory_limit_mb: int | None = None
    custom_objects: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    safe_mode: bool = True
    output: str | None = None
    metrics: Sequence[str] = ()
    isolate: bool = True
    resume: bool = False
    select_tf_ops: bool = False
    overwrite: bool = False
    progress: ProgressLike = "auto"


@dataclasses.dataclass
class DeployReport(Report):
    """Every step's report, in order."""

    out_dir: str
    steps: dict[str, Any]
    seconds: dict[str, float]
    files: list[str]

    def blocks(self) -> list[Block]:
        blocks: list[Block] = [Heading("tfdeploy deploy report", level=1, in_text=False),
                               Text(f"Output directory: {self.out_dir}", in_text=False)]
        for name, report in self.steps.items():
            blocks.append(Heading(name))
            inner = report.blocks() if isinstance(report, Report) else [Text(str(report))]
            blocks += [b for b in inner if not (isinstance(b, Heading) and b.level == 1)]
        total = sum(self.seconds.values())
        return blocks + [Heading("time"), Table([*self.seconds.items(), ("total", round(total, 1))],
                                                header=("step", "seconds")),
                         Text("files: " + ", ".join(self.files))]


@faults.boundary("deploy", where="out_dir")
def deploy(config: DeployConfig) -> DeployReport:
    """Runs the whole path from a trained model to a verified TF Serving version.

    Steps: GPU setup and seeds -> (example) -> compress -> export the chosen variant as the next
    version with warmup -> serving config -> verify (warmup replay, cold start, parity) -> bench.

    Returns:
        A :class:`DeployReport`, also written as ``report.json`` and ``report.md``.

    Raises:
        TfdeployError: From any step, or for inconsistent options.

    Example:
        >>> deploy(DeployConfig("run", example=True, recipes=[Recipe.PTQ_INT8])).files   # doctest: +SKIP
    """
    _check(config)
    out, say = _fresh_out_dir(config), as_progress(config.progress)
    clock = _StepClock(say)
    steps: dict[str, Any] = {}
    clock.start("setup", "setup: GPUs and seeds")
    steps["gpus"] = runtime.configure_gpus(config.gpu_memory_growth, config.gpu_memory_limit_mb)
    steps["seeds"] = runtime.seed_everything(config.seed, deterministic_ops=config.deterministic)
    model, data = config.model, config.data
    if config.example:
        clock.start("example", "example: MobileNetV2 on Fashion-MNIST")
        steps["example"] = prepare_example(out / "example", train=config.train_example, epochs=config.example_epochs,
                                           progress=say)
        model, data = steps["example"].model_path, steps["example"].data_path
    clock.start("compress", "compress")
    steps["compress"] = compression = _compress(config, model, data, out, say)
    chosen = _chosen_variant(config, compression, out)
    clock.start("export", f"export '{chosen.name}' for TF Serving")
    name = config.model_name or ("fashion" if config.example else Path(str(model)).stem.replace(".", "_"))
    steps["export"] = exported = export(ExportConfig(
        model=chosen.path, base_dir=out / "models" / name, source_model=model if chosen.format == ".tflite" else None,
        warmup_data=data, warmup_batch_sizes=config.warmup_batch_sizes, custom_objects=config.custom_objects,
        safe_mode=config.safe_mode, progress=say))
    clock.start("serving config", "serving config")
    steps["serving config"] = write_serving_config(ServingConfig(
        models=[ServedModel(name=name, base_dir=str(out / "models" / name))], out_dir=out / "serving", overwrite=True))
    clock.start("verify", "verify")
    keras_source = model if chosen.name == "original" or chosen.format == ".tflite" else chosen.path
    steps["verify"] = verification = verify(exported.version_dir, source_model=keras_source, progress=say,
                                            custom_objects=config.custom_objects, safe_mode=config.safe_mode)
    clock.start("bench", "bench")
    runnable = [v.path for v in compression.variants if v.format == ".tflite" and v.latency_ms is not None]
    steps["bench"] = bench(BenchConfig(artifacts=[exported.version_dir] + runnable[:2], batch_sizes=(1, 8),
                                       requests=config.bench_requests, cold_start=False, data=data,
                                       plot_path=out / "bench_latency.png", progress=say))
    report = DeployReport(out_dir=str(out), steps=steps, seconds=clock.stop(),
                          files=[str(out / "report.json"), str(out / "report.md")])
    write_atomic(out / "report.json", report.to_json())
    write_atomic(out / "report.md", report.to_markdown(relative_to=out))
    if not verification.passed:
        failed = ", ".join(check.name for check in verification.failed())
        raise TfdeployError(f"The exported version failed verification ({failed}); see {out / 'report.md'}. "
                            f"Received: version_dir={exported.version_dir!r}")
    return report


class _StepClock:
    """Wall time per step; announces each step as it starts."""

    def __init__(self, say: Any) -> None:
        self.say, self.seconds, self._current = say, {}, None

    def start(self, name: str, title: str) -> None:
        self.stop()
        self._current = (name, time.perf_counter())
        self.say(f"== {title} ==")

    def stop(self) -> dict[str, float]:
        if self._current is not None:
            name, began = self._current
            self.seconds[name] = round(time.perf_counter() - began, 1)
            self._current = None
        return self.seconds


def _check(config: DeployConfig) -> None:
    if (config.model is None) == (not config.example):
        raise TfdeployError("Give a MODEL or --example (not both). "
                            f"Received: model={config.model!r}, example={config.example}")
    variants = ["original"] + [r.value for r in config.recipes]
    if config.serve_variant not in variants:
        raise TfdeployError(f"The variant to serve must be 'original' or one of the recipes run ({variants[1:]}). "
                            f"Received: serve_variant={config.serve_variant!r}")


def _fresh_out_dir(config: DeployConfig) -> Path:
    out = Path(config.out_dir)
    if config.resume and (out / "compressed").is_dir():  # the recipes made stay; every later step runs again
        for step in ("models", "serving"):
            shutil.rmtree(out / step, ignore_errors=True)
        return out
    if out.exists() and any(out.iterdir()):
        if not config.overwrite:
            raise TfdeployError(f"The output directory is not empty; pass --overwrite. Received: out_dir={str(out)!r}")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    return out


def _compress(config: DeployConfig, model: Any, data: Any, out: Path, say: Progress) -> CompressionReport:
    return compress(CompressConfig(
        model=model, out_dir=out / "compressed", recipes=config.recipes, data=data, epochs=config.epochs,
        int8_granularity=config.int8_granularity, seed=config.seed, custom_objects=config.custom_objects,
        safe_mode=config.safe_mode, output=config.output, metrics=config.metrics, select_tf_ops=config.select_tf_ops,
        isolate=config.isolate, resume=config.resume, overwrite=config.resume, progress=say))


def _chosen_variant(config: DeployConfig, compression: CompressionReport, out: Path) -> VariantReport:
    chosen = next(v for v in compression.variants if v.name == config.serve_variant)
    if chosen.failed:
        raise TfdeployError(f"The variant to serve, {chosen.name}, failed: {chosen.error}. Choose another with "
                            f"--serve-variant (see {out / 'compressed' / 'report.md'}). Received: "
                            f"serve_variant={config.serve_variant!r}")
    return chosen
