"""One trial of ``compress --auto``: a recipe, or a per-layer search after a uniform precision missed the budget.

A :class:`TrialSpec` names what to try; :func:`run_trial` does it on a
:class:`~tfdeploy.compression.session.CompressionSession` and returns measured :class:`Trial` rows.
:func:`run_isolated` does the same in a fresh Python process (``python -m
tfdeploy.compression.trials``), so a trial that leaks memory (every TFLite conversion in TF 2.21),
crashes or is killed costs only itself, and its peak memory is measured on its own.

The two per-layer searches:

* ``int8-float-layers`` (after ``ptq-int8``): TFLite's quantization debugger ranks quantized
  tensors by error, and the fewest worst ones are kept in float until the budget is met.
* ``int4-layers`` (after ``ptq-int4-weights``): each layer is quantized alone to int4 and ranked
  by output error per byte; a binary search finds the fewest top-ranked layers to keep at int8
  (the smallest plan within the budget).

Example:
    >>> trials = run_trial(session, TrialSpec("recipe", "ptq-int8"), budget_points=1.0)   # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import json
import math
import re
import time
from typing import Any, Callable, Sequence

from tfdeploy import backend
from tfdeploy.compression.budget import Budget
from tfdeploy.compression.config import CompressConfig
from tfdeploy.compression.isolation import config_from_json, config_to_json
from tfdeploy.compression.litert_quantization import (LayerPlan, mixed_assignment, plan_of, quantize_weights,
                                                      rank_sensitivity)
from tfdeploy.compression.recipes import Recipe
from tfdeploy.compression.recipes.litert_quantizer import (float_tflite, output_error_against, sensitivity_samples,
                                                           write_quantized)
from tfdeploy.compression.registry import Artifact
from tfdeploy.compression.report import VariantReport
from tfdeploy.compression.session import CompressionSession
from tfdeploy.compression.tflite import converter_for, representative_dataset
from tfdeploy.errors import TfdeployError
from tfdeploy.files import write_atomic
from tfdeploy.io_spec import Arrays
from tfdeploy.measure.processes import PROGRESS_PREFIX, child_main, child_progress, peak_rss_bytes, run_child

SELECTIVE_STEPS = (1, 2, 4, 8)  # layers kept in float after ptq-int8 misses, tried in turn
FOLLOW_UPS = {Recipe.PTQ_INT8.value: "int8-float-layers", Recipe.PTQ_INT4_WEIGHTS.value: "int4-layers"}


@dataclasses.dataclass(frozen=True)
class TrialSpec:
    """What one trial tries: ``kind`` is ``recipe`` (``name`` is a recipe), ``distill`` (a student of
    ``width``, or the ``student`` file without one) or a per-layer search kind."""

    kind: str
    name: str
    width: float | None = None


DISTILLED = "distill,distill+tflite,distill+ptq-int8"  # a student, then its float and int8 TFLite versions


@dataclasses.dataclass
class Trial:
    """One measured candidate (``error`` set when the candidate could not be made).

    ``quality`` is the driving metric and ``drop`` how much worse than the original it is, both in the
    metric's reporting units (accuracy in %, drops in points).
    """

    name: str
    gzip_bytes: int | None
    quality: float | None
    drop: float | None
    latency_ms: float | None
    passed: bool
    seconds: float
    kept_float: list[str] = dataclasses.field(default_factory=list)
    layers: dict[str, str] = dataclasses.field(default_factory=dict)
    plan: dict[str, Any] | None = None
    path: str = ""
    runtime: str | None = None
    peak_rss_bytes: int | None = None
    error: str | None = None


def trial_of(variant: VariantReport, budget: Budget, seconds: float, kept: Sequence[str] = (),
             plan: LayerPlan | None = None) -> Trial:
    """A :class:`Trial` row from a measured variant, judged by ``budget``."""
    raw = variant.summary.get(budget.metric)
    if variant.failed or raw is None:
        return Trial(name=variant.name, gzip_bytes=variant.gzip_bytes, quality=None, drop=None,
                     latency_ms=variant.latency_ms, passed=False, seconds=seconds,
                     error=variant.error or f"{budget.metric} not measurable here (see the compress report notes)")
    quality = raw * budget.scale
    return Trial(name=variant.name, gzip_bytes=variant.gzip_bytes, quality=quality, drop=budget.drop(quality),
                 latency_ms=variant.latency_ms, passed=budget.allows(quality), seconds=seconds,
                 kept_float=list(kept), layers=dict(variant.layers), plan=None if plan is None else plan.to_dict(),
                 path=variant.path or "", runtime=variant.runtime)


def run_trial(session: CompressionSession, spec: TrialSpec, budget: Budget) -> list[Trial]:
    """Makes and measures what ``spec`` names (a per-layer search yields one row per plan it tried)."""
    if spec.kind == "recipe":
        began = time.perf_counter()
        variant = session.run_recipe(Recipe(spec.name))
        return [trial_of(variant, budget, time.perf_counter() - began)]
    if spec.kind == "distill":
        return distilled_student(session, spec, budget)
    searches = {"int8-float-layers": int8_float_layers, "int4-layers": int4_layers}
    if spec.kind not in searches:
        raise TfdeployError(f"Unknown trial kind; use recipe, distill, {', '.join(searches)}. "
                            f"Received: kind={spec.kind!r}")
    return searches[spec.kind](session, budget)


def distilled_student(session: CompressionSession, spec: TrialSpec, budget: Budget) -> list[Trial]:
    """A distilled student and its float32 and int8 TFLite versions, one row each (named ``spec.name``, ``+tflite``...)."""
    prefix = spec.name[:-len("distill")]
    changes = {} if spec.width is None else {"student": None, "student_width": spec.width}
    student = session.variant(prefix, **changes)
    rows = []
    for recipe in Recipe.parse_list(DISTILLED):
        began = time.perf_counter()
        variant = student.run_recipe(recipe)
        rows.append(trial_of(variant, budget, time.perf_counter() - began))
        if variant.failed and recipe is Recipe.DISTILL:  # its TFLite versions would fail the same way
            break
    return rows


# --- int8 with the worst tensors in float (TFLite quantization debugger) --------------------------


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
    target = session.out_dir / f"{name}.tflite"
    predictor = session.runnable(blob, target)
    artifact = Artifact(write_atomic(target, blob), predictor, None, [f"kept in float: {', '.join(denylisted)}"])
    return session.measure(name, artifact, time.perf_counter() - start)


def int8_float_layers(session: CompressionSession, budget: Budget) -> list[Trial]:
    """int8 with the 1, 2, 4, 8 worst tensors in float, until one meets the budget."""
    representative = session.representative()
    session.progress("  int8 misses the budget: ranking layers by quantization error (TFLite quantization debugger)")
    ranked, trials = sensitive_tensors(session, representative), []
    for count in SELECTIVE_STEPS:
        if count > len(ranked):
            break
        kept = [name for name, _ in ranked[:count]]
        began = time.perf_counter()
        variant = _selective_int8(session, kept, representative, f"ptq-int8-float{count}")
        trials.append(trial_of(variant, budget, time.perf_counter() - began, kept))
        if trials[-1].passed:
            break
    return trials


# --- int4 with the most sensitive layers at int8 (LiteRT quantizer) -------------------------------


def int4_layers(session: CompressionSession, budget: Budget) -> list[Trial]:
    """The fewest sensitivity-ranked layers kept at int8 (binary search) that bring int4 within the budget."""
    float_blob, algorithm = float_tflite(session), session.config.weight_algorithm
    session.progress("  int4 misses the budget: ranking layers by int4 sensitivity (LiteRT quantizer)")
    ranked = rank_sensitivity(float_blob, output_error_against(float_blob, sensitivity_samples(session)), algorithm,
                              session.progress)
    ops = backend.weighted_ops(float_blob)
    tried: dict[int, Trial] = {}

    def measure(keep: int) -> Trial:
        if keep not in tried:
            tried[keep] = _int4_plan(session, ops, ranked, keep, algorithm, budget)
        return tried[keep]

    low, high = 1, len(ranked)
    if not measure(high).passed:
        return list(tried.values())
    while low < high:  # invariant: keeping `high` passes
        middle = (low + high) // 2
        low, high = (low, middle) if measure(middle).passed else (middle + 1, high)
    return [tried[k] for k in sorted(tried)]


def _int4_plan(session: CompressionSession, ops: Sequence[backend.WeightedOp], ranked: Sequence[Any], keep: int,
               algorithm: Any, budget: Budget) -> Trial:
    began, name = time.perf_counter(), f"ptq-int4-int8x{keep}"
    assignment = mixed_assignment(ops, ranked, keep)
    blob, notes = quantize_weights(float_tflite(session), assignment, algorithm)
    plan = plan_of(ops, assignment)
    artifact = write_quantized(session, name, blob, [f"{keep} most sensitive layer(s) at int8", *notes],
                               path=session.out_dir / f"{name}.tflite")
    variant = session.measure(name, artifact, time.perf_counter() - began)
    return trial_of(variant, budget, time.perf_counter() - began, plan=plan)


# --- in a fresh process -----------------------------------------------------------------------------


def run_isolated(config: CompressConfig, spec: TrialSpec, budget: Budget, on_line: Callable[[str], None],
                 timeout: float, env: dict[str, str] | None = None) -> list[Trial]:
    """:func:`run_trial` in a fresh process; returns its rows, each with the child's peak memory."""
    payload = json.dumps({"config": config_to_json(config), "spec": dataclasses.asdict(spec),
                          "budget": dataclasses.asdict(budget)})
    def progress_line(line: str) -> None:
        if line.startswith(PROGRESS_PREFIX):
            on_line(line[len(PROGRESS_PREFIX):])

    result = run_child("tfdeploy.compression.trials", [payload], f"Trial {spec.name}", f"trial={spec.name!r}",
                       timeout=timeout, on_line=progress_line, env=env)
    return [Trial(**row, peak_rss_bytes=result["peak_rss_bytes"]) for row in result["trials"]]


def _child(args: argparse.Namespace) -> dict[str, Any]:
    from tfdeploy.progress import LineProgress

    request = json.loads(args.request)
    progress = LineProgress(child_progress)
    session = CompressionSession(config_from_json(request["config"], progress))
    trials = run_trial(session, TrialSpec(**request["spec"]), Budget(**request["budget"]))
    rows = [{k: v for k, v in dataclasses.asdict(t).items() if k != "peak_rss_bytes"} for t in trials]
    return {"trials": rows, "peak_rss_bytes": peak_rss_bytes()}


def main() -> None:
    child_main("One compress --auto trial in a fresh process.",
               lambda parser: parser.add_argument("request", help="JSON: config, spec, budget"), _child)


if __name__ == "__main__":
    main()
