"""Quantization below 8 bits and per layer with ``litert-quantizer``, starting from the float ``.tflite``.

A :class:`LayerPlan` says which precision each weighted layer gets (``int4``, ``int8`` or
``float``); :func:`quantize_weights` applies it (weights stored at that precision, computed in
float), :func:`quantize_int16x8` quantizes int8 weights with int16 activations, and
:func:`rank_sensitivity` measures how much each layer alone suffers at int4, so a search can keep
the few sensitive layers at int8. What each layer really got is read back from the flatbuffer
(:func:`layer_precisions`), never from the plan.

Example:
    >>> plan = LayerPlan.parse("default=int4,Conv1=int8,predictions=float")
    >>> plan.default.value, plan.layers[0]
    ('int4', ('Conv1', <Precision.INT8: 'int8'>))
"""

from __future__ import annotations

import dataclasses
import enum
import json
import os
import re
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from tfdeploy import backend
from tfdeploy.errors import TfdeployError
from tfdeploy.io_spec import Arrays
from tfdeploy.measure.processes import announce_stage
from tfdeploy.progress import Progress


class Precision(str, enum.Enum):
    """What a layer's weights are stored as."""

    INT4 = "int4"
    INT8 = "int8"
    FLOAT = "float"

    @property
    def bits(self) -> int | None:
        return {"int4": 4, "int8": 8}.get(self.value)


class WeightAlgorithm(str, enum.Enum):
    """How int4/int8 weight scales are chosen (``litert-quantizer`` algorithms)."""

    OCTAV = "octav"      # clipping chosen to minimise the quantization MSE (best at int4)
    MSE = "mse"          # clipping by an MSE grid search
    MIN_MAX = "min-max"  # the full range of each channel

    @property
    def backend_name(self) -> str:
        return {"octav": "OCTAV", "mse": "MSE", "min-max": "MIN_MAX_UNIFORM_QUANT"}[self.value]


@dataclasses.dataclass(frozen=True)
class LayerPlan:
    """Per-layer precisions: ``default`` for every weighted layer, then ``layers`` in order (later wins).

    A key is a layer name as the report lists it (``block_1_expand``) or a regular expression
    searched in the layer name and in the op's scope (its output tensor names).

    Example:
        >>> LayerPlan.parse({"default": "int4", "layers": {"predictions": "int8"}}).to_dict()
        {'default': 'int4', 'layers': {'predictions': 'int8'}}
    """

    default: Precision = Precision.INT4
    layers: tuple[tuple[str, Precision], ...] = ()

    @classmethod
    def parse(cls, value: str | os.PathLike | Mapping[str, Any] | LayerPlan | None) -> LayerPlan:
        """A plan from ``"default=int4,NAME=int8,..."``, a ``.json`` file, a dict or a plan (``None``: all int4)."""
        if value is None or isinstance(value, LayerPlan):
            return value or cls()
        if isinstance(value, Mapping):
            return cls._from_mapping(value, "layer_plan")
        text = str(value)
        if text.endswith(".json") or Path(text).is_file():
            try:
                return cls._from_mapping(json.loads(Path(text).read_text()), text)
            except (OSError, ValueError) as exc:
                raise TfdeployError(f"Cannot read the layer plan: {exc}. Give a JSON file "
                                    f'{{"default": "int4", "layers": {{"NAME": "int8"}}}}. Received: path={text!r}') from None
        pairs = [item.split("=", 1) for item in text.split(",") if item.strip()]
        if any(len(pair) != 2 for pair in pairs):
            raise TfdeployError("A layer plan is NAME=PRECISION pairs separated by commas (default=int4,Conv1=int8) "
                                f"or a .json file. Received: layer_plan={text!r}")
        return cls._from_mapping({"layers": {k.strip(): v.strip() for k, v in pairs}}, text)

    @classmethod
    def _from_mapping(cls, data: Mapping[str, Any], source: str) -> LayerPlan:
        layers = dict(data.get("layers", {}))
        default = data.get("default", layers.pop("default", Precision.INT4.value))
        try:
            return cls(Precision(default), tuple((str(k), Precision(v)) for k, v in layers.items()))
        except ValueError as exc:
            raise TfdeployError(f"Unknown precision in the layer plan ({exc}); use one of "
                                f"{', '.join(p.value for p in Precision)}. Received: layer_plan={source!r}") from None

    def to_dict(self) -> dict[str, Any]:
        return {"default": self.default.value, "layers": {k: v.value for k, v in self.layers}}

    def assign(self, ops: Sequence[backend.WeightedOp]) -> dict[int, Precision]:
        """The precision of each weighted op (by op index); a key that matches no layer is an error."""
        assignment = {op.index: self.default for op in ops}
        for key, precision in self.layers:
            matched = ([op for op in ops if op.layer == key]  # an exact layer name first, else a regular expression
                       or [op for op in ops if _search(key, op.layer) or _search(key, op.scope)])
            if not matched:
                names = ", ".join(op.layer for op in ops[:25])
                raise TfdeployError(f"Layer plan entry {key!r} matches no weighted layer of the model; its layers are "
                                    f"{names}{' ...' if len(ops) > 25 else ''}. Received: layer_plan key={key!r}")
            assignment.update({op.index: precision for op in matched})
        return assignment


def _search(pattern: str, text: str) -> bool:
    try:
        return re.search(pattern, text) is not None
    except re.error:
        return False


def _rules(ops: Sequence[backend.WeightedOp], assignment: Mapping[int, Precision],
           algorithm: WeightAlgorithm) -> tuple[list[backend.QuantRule], list[str]]:
    """One exact-scope rule per op; int4 on an op without an int4 kernel becomes int8 (noted)."""
    rules, raised = [], []
    for op in ops:
        precision = assignment.get(op.index, Precision.FLOAT)
        if precision is Precision.INT4 and not backend.weight_only_supported(op.op, 4, algorithm.backend_name):
            precision = Precision.INT8
            raised.append(op.op)
        rules.append(backend.QuantRule(f"^{re.escape(op.scope)}$", op.op, precision.bits, None,
                                       algorithm.backend_name))
    notes = [f"{raised.count(kind)} {kind} layer(s) kept at int8: litert-quantizer has no int4 weight-only kernel "
             f"for {kind}" for kind in sorted(set(raised))]
    return rules, notes


def quantize_weights(float_blob: bytes, plan: LayerPlan | Mapping[int, Precision],
                     algorithm: WeightAlgorithm = WeightAlgorithm.OCTAV) -> tuple[bytes, list[str]]:
    """Weight-only quantization of a float ``.tflite`` following ``plan`` (or an op-index assignment).

    Returns:
        The flatbuffer and notes (layers raised to int8 where int4 has no kernel).

    Example:
        >>> blob, notes = quantize_weights(float_blob, LayerPlan())     # doctest: +SKIP
    """
    ops = backend.weighted_ops(float_blob)
    if not ops:
        raise TfdeployError("The model has no layer with constant weights (Conv, Dense, Embedding) for litert-quantizer "
                            "to quantize; ptq-float16 or the original suit it. Received: weighted_layers=0")
    assignment = plan.assign(ops) if isinstance(plan, LayerPlan) else dict(plan)
    rules, notes = _rules(ops, assignment, algorithm)
    return _quantize(float_blob, rules), notes


def quantize_int16x8(float_blob: bytes, calibration: Arrays) -> bytes:
    """int8 weights and int16 activations (static, calibrated on ``calibration``), LiteRT's 16x8 mode."""
    rules = [backend.QuantRule(".*", "*", weight_bits=8, activation_bits=16)]
    key, names = backend.tflite_signature(float_blob)
    count = len(next(iter(calibration.values())))
    feeds = [{name: np.asarray(calibration[name][i:i + 1]) for name in names} for i in range(count)]
    return _quantize(float_blob, rules, {key: feeds})


def _quantize(float_blob: bytes, rules: Sequence[backend.QuantRule], calibration: Any = None) -> bytes:
    announce_stage("calibrate and quantize (litert-quantizer)" if calibration else "quantize (litert-quantizer)")
    try:
        return backend.quantize_flatbuffer(float_blob, rules, calibration)
    except (ValueError, RuntimeError, KeyError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        raise TfdeployError(f"litert-quantizer could not quantize the model: {type(exc).__name__}: {first}. "
                            f"Received: rules={len(rules)}") from exc


def layer_precisions(blob: bytes) -> dict[str, str]:
    """What each weighted layer of a ``.tflite`` stores its weights as, read from the flatbuffer."""
    return {op.layer: op.weight_dtype for op in backend.weighted_ops(blob)}


def summarize_layers(layers: Mapping[str, str]) -> str:
    """``"52 weighted layers: 36 int4, 16 int8"``."""
    counts: dict[str, int] = {}
    for dtype in layers.values():
        counts[dtype] = counts.get(dtype, 0) + 1
    return f"{len(layers)} weighted layers: " + ", ".join(f"{n} {dtype}" for dtype, n in sorted(counts.items()))


@dataclasses.dataclass(frozen=True)
class Sensitivity:
    """How much one layer alone hurts at int4: ``error`` of the outputs, ``extra_bytes`` int8 costs over int4."""

    layer: str
    index: int
    error: float
    extra_bytes: int

    @property
    def per_byte(self) -> float:
        return self.error / max(self.extra_bytes, 1)


def rank_sensitivity(float_blob: bytes, output_error: Callable[[bytes], float],
                     algorithm: WeightAlgorithm = WeightAlgorithm.OCTAV,
                     progress: Progress | None = None) -> list[Sensitivity]:
    """Quantizes each int4-capable layer alone to int4 and ranks layers by output error per byte saved, worst first.

    Keeping a layer at int8 costs half a byte per weight over int4, so layers are ordered by
    ``error / extra_bytes``: the first ones buy the most accuracy for the fewest bytes.
    """
    ops = [op for op in backend.weighted_ops(float_blob)
           if backend.weight_only_supported(op.op, 4, algorithm.backend_name)]
    ranked = []
    with (progress or Progress()).task("  int4 sensitivity per layer", total=len(ops), unit="layer") as task:
        for op in ops:
            blob = _quantize(float_blob, _rules(ops, {op.index: Precision.INT4}, algorithm)[0])
            ranked.append(Sensitivity(op.layer, op.index, output_error(blob), (op.weight_elements + 1) // 2))
            task.advance()
    return sorted(ranked, key=lambda item: -item.per_byte)


def relative_output_error(reference: Arrays, outputs: Arrays) -> float:
    """Mean over outputs of ‖outputs − reference‖ / ‖reference‖ (0 for identical outputs)."""
    errors = [float(np.linalg.norm(outputs[k].astype(np.float64) - reference[k].astype(np.float64))
                    / max(float(np.linalg.norm(reference[k].astype(np.float64))), 1e-12)) for k in reference]
    return float(np.mean(errors))


def mixed_assignment(ops: Sequence[backend.WeightedOp], ranked: Sequence[Sensitivity],
                     keep_int8: int) -> dict[int, Precision]:
    """int4 everywhere except the ``keep_int8`` first layers of ``ranked`` (int8)."""
    assignment = {op.index: Precision.INT4 for op in ops}
    assignment.update({item.index: Precision.INT8 for item in ranked[:keep_int8]})
    return assignment


def plan_of(ops: Sequence[backend.WeightedOp], assignment: Mapping[int, Precision]) -> LayerPlan:
    """The :class:`LayerPlan` (layer names) that reproduces an op-index assignment, to reuse with ``--layer-plan``."""
    default = Precision.INT4
    return LayerPlan(default, tuple((op.layer, assignment[op.index]) for op in ops
                                    if assignment.get(op.index, default) is not default))
