"""Accuracy-aware compression: the smallest (or fastest) variant within an accuracy budget.

Candidates are the recipes registered with an :class:`~tfdeploy.compression.registry.AutoHint`,
tried in order of expected gain (:data:`CANDIDATES`). Each
is measured on the labelled validation set; the search stops early once a candidate meets the
budget and no remaining candidate is expected to beat it, and respects ``max_trials`` and
``timeout_s``. When full-int8 misses the budget, the layers whose quantization hurts most are
found with TFLite's quantization debugger (RMSE of each quantized tensor relative to its scale)
and the fewest of them are kept in float (selective quantization) until the budget is met.

Example:
    >>> report = auto_compress(AutoConfig(CompressConfig("m.keras", "out", data="d.npz"),
    ...                                   max_accuracy_drop=1.0))      # doctest: +SKIP
    >>> report.chosen
    'prune-int8'
"""

from __future__ import annotations

import dataclasses
import enum
import math
import re
import shutil
import time
from pathlib import Path
from typing import Any, Sequence

from tfdeploy import backend, faults
from tfdeploy.compression.config import CompressConfig
from tfdeploy.compression.registry import Artifact
from tfdeploy.compression.report import VariantReport
from tfdeploy.compression.session import CompressionSession
from tfdeploy.errors import TfdeployError
from tfdeploy.files import refuse_existing, write_atomic
from tfdeploy.io_spec import Arrays
from tfdeploy.measure.predictors import tflite_predictor
from tfdeploy.compression.tflite import converter_for, representative_dataset
from tfdeploy.compression.recipes import REGISTRY, Recipe
from tfdeploy.report import Block, Table, Text, Report, format_bytes


class Objective(str, enum.Enum):
    """What ``compress --auto`` minimises among the candidates within the accuracy budget."""

    SIZE = "size"        # gzip bytes: what is stored and shipped
    LATENCY = "latency"  # median single-example latency in the serving runtime


@dataclasses.dataclass(frozen=True)
class Candidate:
    """A compression candidate and its expected outcome (used for ordering and early stopping).

    Attributes:
        recipe: The compress recipe that makes it.
        expected_size: Expected gzip size as a fraction of the original's.
        expected_latency: Expected latency as a fraction of the original's.
    """

    recipe: Recipe
    expected_size: float
    expected_latency: float


# From the registry, in order of expected gain (the hints were measured on the built-in example, docs/benchmarks.md).
CANDIDATES: tuple[Candidate, ...] = tuple(
    Candidate(Recipe(spec.name), spec.auto.expected_size, spec.auto.expected_latency)  # type: ignore[union-attr]
    for spec in REGISTRY.candidates())
SELECTIVE_STEPS = (1, 2, 4, 8)  # layers kept in float, tried in turn
AUTO_REPORTS = ("auto_report.json", "auto_report.md")


@dataclasses.dataclass
class Trial:
    """One measured candidate (``error`` set when the candidate could not be made)."""

    name: str
    gzip_bytes: int | None
    accuracy: float | None
    drop_points: float | None
    latency_ms: float | None
    passed: bool
    seconds: float
    kept_float: list[str] = dataclasses.field(default_factory=list)
    path: str = ""
    error: str | None = None


@dataclasses.dataclass
class AutoReport(Report):
    """Outcome of :func:`auto_compress`."""

    model: str
    objective: str
    budget: str
    original_accuracy: float
    trials: list[Trial]
    chosen: str
    chosen_path: str
    stopped_because: str

    def blocks(self) -> list[Block]:
        rows = [(t.name, format_bytes(t.gzip_bytes), None if t.accuracy is None else round(100 * t.accuracy, 2),
                 None if t.drop_points is None else round(t.drop_points, 2),
                 "error" if t.error else "passed" if t.passed else "failed", t.latency_ms, round(t.seconds, 1))
                for t in self.trials]
        kept = [f"{t.name}: kept in float {', '.join(t.kept_float)}" for t in self.trials if t.kept_float]
        kept += [f"{t.name} could not be made: {t.error}" for t in self.trials if t.error]
        return [
            Text(f"auto-compress {self.model}: objective {self.objective}, budget {self.budget}, original accuracy "
                 f"{100 * self.original_accuracy:.2f}%"),
            Table(rows, header=("candidate", "gzip", "accuracy %", "drop (pts)", "budget", "latency ms", "time s")),
            *map(Text, kept), Text(f"chosen: {self.chosen} -> {self.chosen_path} ({self.stopped_because})")]


@dataclasses.dataclass
class AutoConfig:
    """Options of :func:`auto_compress`.

    Attributes:
        compress: Model, data, output directory and recipe options (its ``recipes`` are ignored).
        max_accuracy_drop: The budget: points (``relative=False``) or percent of the original accuracy.
        relative: Read the budget as a percentage of the original accuracy.
        objective: Minimise gzip size or latency among candidates within budget.
        candidates: Candidates in order of expected gain.
        max_trials: Stop after this many measured candidates (selective retries not counted).
        timeout_s: Stop starting new candidates after this many seconds.
        keep_all: Keep every trial's artifact (otherwise only the chosen one).
    """

    compress: CompressConfig
    max_accuracy_drop: float = 1.0
    relative: bool = False
    objective: Objective = Objective.SIZE
    candidates: Sequence[Candidate] = CANDIDATES
    max_trials: int | None = None
    timeout_s: float | None = None
    keep_all: bool = False


def _score(trial_or_variant: Any, objective: Objective) -> float:
    return trial_or_variant.gzip_bytes if objective is Objective.SIZE else trial_or_variant.latency_ms


def _trial(variant: VariantReport, original_accuracy: float, budget_points: float, seconds: float,
           kept: Sequence[str] = ()) -> Trial:
    if variant.failed or variant.accuracy is None:
        return Trial(name=variant.name, gzip_bytes=variant.gzip_bytes, accuracy=None, drop_points=None,
                     latency_ms=variant.latency_ms, passed=False, seconds=seconds,
                     error=variant.error or "not measurable here (see the compress report notes)")
    drop = 100 * (original_accuracy - variant.accuracy)
    return Trial(name=variant.name, gzip_bytes=variant.gzip_bytes, accuracy=variant.accuracy, drop_points=drop,
                 latency_ms=variant.latency_ms, passed=drop <= budget_points + 1e-9, seconds=seconds,
                 kept_float=list(kept), path=variant.path)


def _debugger(session: CompressionSession, converter: Any, representative: Arrays, options: Any) -> Any:
    """TFLite's quantization debugger; its debug data are lists in the quantized model's input order."""
    tf = backend.tf()
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    samples = representative_dataset(session.io, representative)
    converter.representative_dataset = samples
    made: dict[str, Any] = {}

    def debug_dataset() -> Any:
        details = made["debugger"]._quant_interpreter.get_input_details()
        order = [re.sub(r"^serving_default_|:\d+$", "", d["name"]) for d in details]
        for sample in samples():
            yield [sample[key] for key in order]

    made["debugger"] = tf.lite.experimental.QuantizationDebugger(converter=converter, debug_dataset=debug_dataset,
                                                                 debug_options=options)
    return made["debugger"]


def sensitive_tensors(session: CompressionSession, representative: Arrays) -> list[tuple[str, float]]:
    """Quantized tensors ranked by quantization error, worst first.

    The error is TFLite's quantization-debugger RMSE of each quantized tensor against its float
    twin, divided by the tensor's scale (≈0.29 is pure rounding noise; more means the int8 range
    does not fit the tensor). Ties keep graph order.
    """
    import csv
    import io

    tf = backend.tf()
    options = tf.lite.experimental.QuantizationDebugOptions(
        layer_direct_compare_metrics={"scale": lambda float_values, quant_values, scale, zero_point: scale})
    with converter_for(session.loaded.model, session.io) as converter:
        debugger = _debugger(session, converter, representative, options)
        debugger.run()
        dump = io.StringIO()
        debugger.layer_statistics_dump(dump)
    ranked = []
    for row in csv.DictReader(io.StringIO(dump.getvalue())):
        scale = float(row["scale"] or 0)
        if scale > 0:
            ranked.append((row["tensor_name"], math.sqrt(float(row["mean_squared_error"])) / scale))
    return sorted(ranked, key=lambda item: -item[1])


def _selective_int8(session: CompressionSession, denylisted: Sequence[str], representative: Arrays,
                    name: str) -> VariantReport:
    tf = backend.tf()
    start = time.perf_counter()
    options = tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=list(denylisted))
    with converter_for(session.loaded.model, session.io) as converter:
        blob = bytes(_debugger(session, converter, representative, options).get_nondebug_quantized_model())
    path = write_atomic(session.out_dir / f"{name}.tflite", blob)
    artifact = Artifact(path, tflite_predictor(blob, name), None, [f"kept in float: {', '.join(denylisted)}"])
    return session.measure(name, artifact, time.perf_counter() - start)


@faults.boundary("compress --auto")
def auto_compress(config: AutoConfig) -> AutoReport:
    """Searches the candidates for the best variant within the accuracy budget.

    Returns:
        An :class:`AutoReport`; the chosen artifact is in ``compress.out_dir`` (the original model
        when nothing meets the budget), the trial table in ``auto_report.json``.

    Raises:
        TfdeployError: Without labelled validation data, or for a negative budget.

    Example:
        >>> auto_compress(AutoConfig(CompressConfig("m.keras", "out", data="d.npz"), 0.5)).chosen  # doctest: +SKIP
        'ptq-int8'
    """
    if config.max_accuracy_drop < 0:
        raise TfdeployError(f"The accuracy budget cannot be negative. Received: max_accuracy_drop={config.max_accuracy_drop}")
    if config.compress.data is None:
        raise TfdeployError("--auto needs labelled validation data to measure accuracy: pass --data with y (and "
                            "x_val/y_val) or an image directory. Received: data=None")
    out_dir = Path(config.compress.out_dir)
    previous = [*out_dir.glob("auto-*"), *(out_dir / name for name in AUTO_REPORTS)] if out_dir.is_dir() else []
    refuse_existing(previous, config.compress.overwrite)
    trials_dir = out_dir / "trials"
    session = CompressionSession(dataclasses.replace(config.compress, out_dir=trials_dir, overwrite=True),
                                 recipes=[c.recipe for c in config.candidates])
    if session.base_accuracy is None:
        raise TfdeployError("--auto needs labels: the data has no y/y_val (or the model is not a classifier). "
                            f"Received: data={session.data.source!r}")
    base = session.base_accuracy
    budget = config.max_accuracy_drop * (100 * base) / 100 if config.relative else config.max_accuracy_drop
    budget_text = (f"{config.max_accuracy_drop}% of {100 * base:.2f}% = {budget:.3f} points" if config.relative
                   else f"{budget} points")
    trials, best, stopped = _search(config, session, base, budget)
    chosen_name, chosen_path = _publish_choice(config, session, best, trials)
    report = AutoReport(model=str(session.loaded.path), objective=config.objective.value, budget=budget_text,
                        original_accuracy=base, trials=trials, chosen=chosen_name, chosen_path=chosen_path,
                        stopped_because=stopped if best else "no candidate met the budget: the original stays")
    write_atomic(out_dir / AUTO_REPORTS[0], report.to_json())
    write_atomic(out_dir / AUTO_REPORTS[1], "# Accuracy-aware compression\n\n" + report.to_markdown(relative_to=out_dir))
    return report


def _stop_reason(config: AutoConfig, session: CompressionSession, index: int, elapsed: float,
                 best: Trial | None) -> str | None:
    """Why the search stops before candidate ``index`` (``None``: go on)."""
    if config.max_trials is not None and index >= config.max_trials:
        return f"max trials ({config.max_trials}) reached"
    if config.timeout_s is not None and elapsed > config.timeout_s:
        return f"timeout ({config.timeout_s} s) reached"
    if best is not None:
        original = session.original
        expected = [(c.expected_size * original.gzip_bytes if config.objective is Objective.SIZE
                     else c.expected_latency * original.latency_ms) for c in config.candidates[index:]]
        if min(expected) >= _score(best, config.objective):
            return f"{best.name} meets the budget and no remaining candidate is expected to beat it"
    return None


def _search(config: AutoConfig, session: CompressionSession, base: float,
            budget: float) -> tuple[list[Trial], Trial | None, str]:
    """Tries the candidates in turn; returns the trials, the best within budget and why the search stopped."""
    say, start = session.progress, time.perf_counter()
    trials: list[Trial] = []
    best: Trial | None = None
    for index, candidate in enumerate(config.candidates):
        stopped = _stop_reason(config, session, index, time.perf_counter() - start, best)
        if stopped:
            return trials, best, stopped
        began = time.perf_counter()
        variant = session.run_recipe(candidate.recipe, label=f"[trial {index + 1}] ")
        trial = _trial(variant, base, budget, time.perf_counter() - began)
        trials.append(trial)
        if trial.error:
            say(f"  {trial.name}: could not be made ({trial.error}); the search goes on")
        else:
            say(f"  {trial.name}: {format_bytes(trial.gzip_bytes)} gzip, accuracy {100 * trial.accuracy:.2f}% "
                f"(drop {trial.drop_points:.2f} pts) -> {'passed' if trial.passed else 'failed'}")
        if not trial.passed and candidate.recipe is Recipe.PTQ_INT8:
            trial = _selective_search(session, base, budget, trials) or trial
        if trial.passed and (best is None or _score(trial, config.objective) < _score(best, config.objective)):
            best = trial
    return trials, best, "every candidate tried"


def _selective_search(session: CompressionSession, base: float, budget: float, trials: list[Trial]) -> Trial | None:
    say = session.progress
    representative = session.representative()
    say("  int8 misses the budget: ranking layers by quantization error (TFLite quantization debugger)")
    ranked = sensitive_tensors(session, representative)
    for count in SELECTIVE_STEPS:
        if count > len(ranked):
            break
        kept = [name for name, _ in ranked[:count]]
        began = time.perf_counter()
        variant = _selective_int8(session, kept, representative, f"ptq-int8-float{count}")
        trial = _trial(variant, base, budget, time.perf_counter() - began, kept)
        trials.append(trial)
        say(f"  {trial.name}: kept {count} in float -> accuracy {100 * trial.accuracy:.2f}% "
            f"(drop {trial.drop_points:.2f} pts) {'passed' if trial.passed else 'failed'}")
        if trial.passed:
            return trial
    return None


def _publish_choice(config: AutoConfig, session: CompressionSession, best: Trial | None,
                    trials: list[Trial]) -> tuple[str, str]:
    out_dir = Path(config.compress.out_dir)
    if best is None:
        name, source = "original", Path(session.loaded.path)
    else:
        name, source = best.name, Path(best.path)
    target = out_dir / f"auto-{name}{source.suffix if source.is_file() else ''}"
    if source.is_dir():
        shutil.copytree(source, target, dirs_exist_ok=True)
    else:
        write_atomic(target, source.read_bytes())
    if not config.keep_all:
        shutil.rmtree(out_dir / "trials", ignore_errors=True)
        for trial in trials:
            trial.path = "" if trial is not best else str(target)
    return name, str(target)
