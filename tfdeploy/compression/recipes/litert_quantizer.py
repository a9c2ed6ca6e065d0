"""Post-training quantization with ``litert-quantizer`` on the float ``.tflite``: ``ptq-int4-weights``,
``ptq-int16x8`` and ``ptq-mixed`` (a per-layer int4 / int8 / float plan).

Each starts from the session's float32 TFLite conversion (made once and shared), writes one
``.tflite`` and records, read back from the flatbuffer, what each weighted layer stores.

Example:
    >>> from tfdeploy.compression.recipes import Recipe
    >>> Recipe.PTQ_INT4_WEIGHTS.spec.output.value
    '.tflite'
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from tfdeploy.compression.litert_quantization import (LayerPlan, Precision, layer_precisions, mixed_assignment,
                                                      plan_of, quantize_int16x8, quantize_weights, rank_sensitivity,
                                                      relative_output_error, summarize_layers)
from tfdeploy.compression.registry import Artifact, AutoHint, OutputKind, RecipeSpec
from tfdeploy.compression.tflite import FLEX_NOTE
from tfdeploy.errors import TfdeployError
from tfdeploy.files import write_atomic
from tfdeploy.io_spec import Arrays
from tfdeploy.measure.predictors import tflite_predictor
from tfdeploy import backend

if TYPE_CHECKING:
    from tfdeploy.compression.session import CompressionSession

SENSITIVITY_SAMPLES = 64


def float_tflite(session: CompressionSession) -> bytes:
    """The float32 ``.tflite`` of the session's model (converted once per session)."""
    conversion = session.float_conversion()
    if conversion.flex_ops:
        raise TfdeployError("litert-quantizer cannot quantize a model that needs TensorFlow select ops: "
                            + FLEX_NOTE.format(ops=", ".join(conversion.flex_ops))
                            + f". Use ptq-dynamic or ptq-float16. Received: model={str(session.loaded.path)!r}")
    return conversion.blob


def write_quantized(session: CompressionSession, recipe: Any, blob: bytes, notes: Sequence[str] = (),
                    path: Path | None = None) -> Artifact:
    """Writes ``blob`` (to ``path``, default the recipe's target) with what each layer got."""
    target = path or session.target(recipe, ".tflite")
    predictor = session.runnable(blob, target)
    layers = layer_precisions(blob)
    return Artifact(write_atomic(target, blob), predictor, session.loaded.model if session.is_keras else None,
                    [summarize_layers(layers), *notes], layers=layers)


def int4_weights(session: CompressionSession, recipe: Any) -> Artifact:
    algorithm = session.config.weight_algorithm
    blob, notes = quantize_weights(float_tflite(session), LayerPlan(Precision.INT4), algorithm)
    return write_quantized(session, recipe, blob, [f"int4 weights ({algorithm.value} scales, per channel), float "
                                                   "activations", *notes])


def int16x8(session: CompressionSession, recipe: Any) -> Artifact:
    float_blob = float_tflite(session)
    if "WHILE" in backend.builtin_ops(float_blob):
        loops = ", ".join(f"{path} ({kind})" for path, kind in backend.recurrent_layers(session.loaded.model))
        raise TfdeployError(f"litert-quantizer cannot calibrate the TFLite WHILE loop that {loops or 'a recurrent layer'}"
                            " becomes (its calibrator finds no tensor data inside the loop). Use ptq-int4-weights or "
                            "ptq-dynamic for this model; LSTM layers avoid the loop (fused kernels). "
                            f"Received: model={str(session.loaded.path)!r}")
    strings = [t.name for t in session.io.inputs if t.is_string]
    if strings:
        raise TfdeployError(f"litert-quantizer's calibrator takes numeric inputs only, and this model takes strings "
                            f"({', '.join(strings)}). Use ptq-int8 (TensorFlow's calibrator), ptq-dynamic or "
                            f"ptq-int4-weights for it. Received: model={str(session.loaded.path)!r}")
    calibration = session.representative()
    blob = quantize_int16x8(float_blob, calibration)
    count = len(next(iter(calibration.values())))
    return write_quantized(session, recipe, blob, [f"int8 weights, int16 activations, calibrated on {count} samples"])


def sensitivity_samples(session: CompressionSession) -> Arrays:
    """Inputs for ranking layers: calibration data (not the evaluation set) when there is data."""
    samples = session.representative() if session.data is not None else session.x_eval
    return {k: v[:SENSITIVITY_SAMPLES] for k, v in samples.items()}


def output_error_against(float_blob: bytes, samples: Arrays) -> Any:
    """``blob -> relative output error`` of a quantized model against ``float_blob`` on ``samples``."""
    reference = tflite_predictor(float_blob, "float").predict(samples)
    return lambda blob: relative_output_error(reference, tflite_predictor(blob, "candidate").predict(samples))


def mixed(session: CompressionSession, recipe: Any) -> Artifact:
    """``--layer-plan`` if given; otherwise int4 with the outlier-sensitive layers (> 2× the median error) at int8."""
    float_blob, algorithm = float_tflite(session), session.config.weight_algorithm
    if session.config.layer_plan is not None:
        plan = LayerPlan.parse(session.config.layer_plan)
        blob, notes = quantize_weights(float_blob, plan, algorithm)
        return write_quantized(session, recipe, blob, [f"layer plan {plan.to_dict()}", *notes])
    ranked = rank_sensitivity(float_blob, output_error_against(float_blob, sensitivity_samples(session)), algorithm,
                              session.progress)
    threshold = 2 * statistics.median(item.error for item in ranked) if ranked else 0.0
    sensitive = sorted((item for item in ranked if item.error > threshold), key=lambda item: -item.error)
    ops = backend.weighted_ops(float_blob)
    assignment = mixed_assignment(ops, sensitive, len(sensitive))
    blob, notes = quantize_weights(float_blob, assignment, algorithm)
    worst = ", ".join(f"{item.layer} ({item.error:.3g})" for item in sensitive[:5])
    return write_quantized(session, recipe, blob, [
        f"no --layer-plan: int4, with the {len(sensitive)} layer(s) whose int4 output error is over 2x the median "
        f"kept at int8{': ' + worst if worst else ''}", f"plan: {plan_of(ops, assignment).to_dict()}", *notes])


PTQ_INT4_WEIGHTS = RecipeSpec("ptq-int4-weights", "int4 weights, float activations (LiteRT quantizer)",
                              OutputKind.TFLITE, run=int4_weights,
                              auto=AutoHint(priority=0, expected_size=0.17, expected_latency=0.012))
PTQ_INT16X8 = RecipeSpec("ptq-int16x8", "int8 weights, int16 activations, calibrated on --data (LiteRT quantizer)",
                         OutputKind.TFLITE, run=int16x8, needs_data=True,
                         auto=AutoHint(priority=7, expected_size=0.40, expected_latency=0.03))
PTQ_MIXED = RecipeSpec("ptq-mixed", "per-layer int4 / int8 / float weights from --layer-plan or sensitivity "
                       "(LiteRT quantizer)", OutputKind.TFLITE, run=mixed)
