"""Measuring a variant by a :class:`~tfdeploy.quality.plan.QualityPlan`, streamed over the evaluation set.

The variant runs batch by batch on the evaluation inputs; each batch updates every metric's
accumulator and is dropped, so a large evaluation set is never held per variant (the label metrics
that need every sample, such as AUC, keep only their own output's column; the original's outputs
are held once, as the reference). Every variant is measured on the same samples, in the same
order, and the time spent is reported.

Example:
    >>> measured = measure(predictor, x_eval, labels, reference, plan)       # doctest: +SKIP
    >>> measured.value(MetricRef("auc"), plan), round(measured.seconds, 2)   # doctest: +SKIP
    (0.7012, 0.41)
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Mapping

from tfdeploy.io_spec import Arrays, batch_size, take
from tfdeploy.quality.plan import MetricRef, QualityPlan
from tfdeploy.quality.registry import Accumulator, Against, Direction

EVAL_BATCH = 1024  # samples per predictor call while evaluating

Values = dict[str, dict[str, float | None]]  # output -> metric key -> raw value


@dataclasses.dataclass
class Measured:
    """One variant's metric values (raw, not scaled) by output, and the seconds the evaluation took."""

    values: Values
    seconds: float = 0.0

    def value(self, ref: MetricRef, plan: QualityPlan) -> float | None:
        """``ref``'s raw value: on its output, or the worst over the outputs it judges."""
        spec, key = ref.spec(), ref.key
        found = [self.values[o][key] for o in plan.outputs_of(ref)
                 if o in self.values and self.values[o].get(key) is not None]
        if not found:
            return None
        if spec.direction is Direction.TARGET:
            return max(found, key=lambda v: abs(v - spec.target))
        return min(found) if spec.direction is Direction.HIGHER else max(found)

    def shown(self, ref: MetricRef, plan: QualityPlan) -> float | None:
        """:meth:`value` in reporting units (accuracy in %, SNR in dB)."""
        return ref.spec().shown(self.value(ref, plan))

    def drop(self, base: Measured, ref: MetricRef, plan: QualityPlan) -> float | None:
        """How much worse than ``base`` on ``ref``, raw (negative: better; × the metric's scale to report it)."""
        mine, theirs, spec = self.value(ref, plan), base.value(ref, plan), ref.spec()
        if mine is None or theirs is None:
            return None
        return spec.direction.worsening(theirs, mine, spec.target)


class Evaluation:
    """Accumulators of every column of a plan for one variant; fed one batch of outputs at a time."""

    def __init__(self, plan: QualityPlan, labels: Arrays | None, reference: Arrays) -> None:
        self.plan, self.labels, self.reference = plan, labels or {}, reference
        self.accumulators: list[tuple[Any, Accumulator]] = [(c, c.spec.make(c.output, c.param)) for c in plan.columns]

    def update(self, rows: slice, outputs: Mapping[str, Any]) -> None:
        for column, accumulator in self.accumulators:
            name = column.output.name
            if name not in outputs:
                continue  # a distilled student may serve one output
            truth = self.labels[name] if column.spec.against is Against.LABELS else self.reference[name]
            accumulator.update(truth[rows], outputs[name])

    def result(self) -> Values:
        values: Values = {}
        for column, accumulator in self.accumulators:
            values.setdefault(column.output.name, {})[column.key] = _finite(accumulator.result())
        return values


def _finite(value: float | None) -> float | None:
    return None if value is None or value != value else value  # NaN: undefined on this data


def measure(predictor: Any, x: Arrays, labels: Arrays | None, reference: Arrays, plan: QualityPlan,
            batch: int = EVAL_BATCH) -> Measured:
    """Runs ``predictor`` over ``x`` in batches and measures it by ``plan`` (labels and the original's ``reference``)."""
    began, evaluation = time.perf_counter(), Evaluation(plan, labels, reference)
    total = batch_size(x)
    for start in range(0, total, batch):
        rows = slice(start, min(start + batch, total))
        evaluation.update(rows, predictor.predict(take(x, rows)))
    return Measured(evaluation.result(), time.perf_counter() - began)


def measure_outputs(plan: QualityPlan, labels: Arrays | None, reference: Arrays,
                    outputs: Arrays | None = None) -> Measured:
    """A variant measured from outputs already computed (``None``: the original, perfectly faithful to itself)."""
    began, evaluation = time.perf_counter(), Evaluation(plan, labels, reference)
    evaluation.update(slice(0, batch_size(reference)), reference if outputs is None else outputs)
    return Measured(evaluation.result(), time.perf_counter() - began)
