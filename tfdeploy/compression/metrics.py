"""What each variant bought, measured against the original on the same inputs.

Quality is judged by a :class:`~tfdeploy.quality.plan.QualityPlan` (``--metric``, the model's compiled
metrics, or defaults by output head; fidelity to the original always), size against the original
file, latency in the runtime that would serve the variant.

Example:
    >>> evaluator = Evaluator(io, x_eval, y_eval, EvaluationChoice(), original_predictor, original_path, 50)  # doctest: +SKIP
    >>> evaluator.measure("ptq-int8", artifact, seconds=3.2).metric_drops                                  # doctest: +SKIP
    {'click': {'auc': 0.0004, 'logloss': 0.0011, ...}}
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Mapping, Sequence

from tfdeploy.compression.pruning import kernel_sparsity
from tfdeploy.compression.registry import Artifact
from tfdeploy.compression.report import MetricInfo, VariantReport
from tfdeploy.io_spec import Arrays, ModelIO
from tfdeploy.measure.predictors import Predictor, median_latency_ms
from tfdeploy.model.loading import artifact_size, count_params
from tfdeploy.quality.evaluation import Measured, measure, measure_outputs
from tfdeploy.quality.plan import MetricRef, build_plan


@dataclasses.dataclass(frozen=True)
class EvaluationChoice:
    """How the plan is chosen: ``--metric`` specs, the file's compile config, the output listed first."""

    metrics: Sequence[str] = ()
    compiled: Mapping[str, Any] | None = None
    compiled_from: str = "the model file"
    first_output: str | None = None


class Evaluator:
    """The original's reference outputs, quality and size; measures artifacts against them.

    Args:
        io: The model's inputs and outputs.
        x_eval: Evaluation inputs (validation data, or synthetic inputs without data).
        y_eval: Labels by output name (``None``: fidelity only).
        choice: How the metrics are chosen.
        original: Runs the original model.
        original_path: The original's file (sizes are ratios to it).
        latency_repeats: Timed single-example calls per artifact.
    """

    def __init__(self, io: ModelIO, x_eval: Arrays, y_eval: Arrays | None, choice: EvaluationChoice,
                 original: Predictor, original_path: Path, latency_repeats: int) -> None:
        self.io, self.x_eval, self.y_eval, self.latency_repeats = io, x_eval, y_eval, latency_repeats
        self.reference = original.predict(x_eval)
        self.plan = build_plan(io, self.reference, y_eval, choice.metrics, choice.compiled, choice.first_output,
                               choice.compiled_from)
        self.base = measure_outputs(self.plan, y_eval, self.reference)
        self.original_size = artifact_size(original_path)
        self.head = next((o for o in self.plan.outputs_of(MetricRef("agreement"))), None)

    @property
    def samples(self) -> int:
        return len(next(iter(self.x_eval.values())))

    @property
    def driving(self) -> MetricRef:
        return self.plan.driving

    @property
    def base_quality(self) -> float | None:
        """The original's driving metric, raw."""
        return self.base.value(self.plan.driving, self.plan)

    def metric_info(self) -> dict[str, MetricInfo]:
        """Units, scale and direction of each chosen metric, by its spec string (reports render with them)."""
        info = {}
        for ref in self.plan.chosen:
            spec = ref.spec()
            info[str(ref)] = MetricInfo(spec.unit, spec.scale, spec.direction.value, spec.summary, spec.has_drop)
        return info

    def evaluate(self, predictor: Predictor) -> Measured:
        """``predictor`` measured by the plan, batch by batch, on the evaluation set."""
        return measure(predictor, self.x_eval, self.y_eval, self.reference, self.plan)

    def measure(self, name: str, artifact: Artifact, seconds: float | None, params_model: Any) -> VariantReport:
        """Sizes, sparsity, quality, fidelity and latency of one artifact against the original."""
        size, size0 = artifact_size(artifact.path), self.original_size
        model = artifact.sparsity_model
        sparsity, by_type = kernel_sparsity(model) if model is not None else artifact.sparsity or (None, {})
        report = VariantReport(
            name=name, path=str(artifact.path), format=artifact.path.suffix or "savedmodel", raw_bytes=size.raw_bytes,
            gzip_bytes=size.gzip_bytes, raw_ratio=size.raw_bytes / size0.raw_bytes,
            gzip_ratio=size.gzip_bytes / size0.gzip_bytes,
            params=artifact.params or count_params(model if model is not None else params_model),
            sparsity=sparsity, sparsity_by_layer_type=by_type, seconds=seconds, notes=list(artifact.notes),
            layers=dict(artifact.layers), training=list(artifact.training))
        if artifact.predictor is not None:
            self.fill(report, self.evaluate(artifact.predictor))
            report.latency_ms = median_latency_ms(artifact.predictor, self.x_eval, repeats=self.latency_repeats)
            report.runtime = artifact.predictor.runtime
        return report

    def fill(self, report: VariantReport, measured: Measured) -> None:
        """Writes ``measured`` into ``report``: every metric, its drop from the original, the chosen ones summed up."""
        plan, base = self.plan, self.base
        report.metrics = measured.values
        report.metric_drops = {output: {key: _worsening(plan, key, base.values[output].get(key), value)
                                        for key, value in values.items()} for output, values in measured.values.items()}
        report.summary = {str(ref): measured.value(ref, plan) for ref in plan.chosen}
        report.summary_drops = {str(ref): measured.drop(base, ref, plan) for ref in plan.chosen}
        report.eval_seconds = measured.seconds
        accuracy = MetricRef("accuracy")
        if any(c.key == "accuracy" for c in plan.columns):
            report.accuracy = measured.value(accuracy, plan)
            report.accuracy_drop = measured.drop(base, accuracy, plan)
        report.agreement = measured.value(MetricRef("agreement", self.head), plan) if self.head else None
        report.max_abs_diff_by_output = {o: v["max_abs_diff"] for o, v in measured.values.items()
                                         if v.get("max_abs_diff") is not None}
        report.max_abs_diff = max(report.max_abs_diff_by_output.values(), default=None)
        report.snr_db = measured.value(MetricRef("snr"), plan)


def _worsening(plan: Any, key: str, base: float | None, value: float | None) -> float | None:
    column = next(c for c in plan.columns if c.key == key)
    if base is None or value is None:
        return None
    return column.spec.direction.worsening(base, value, column.spec.target)
