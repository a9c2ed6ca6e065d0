"""What each variant bought, measured against the original on the same inputs.

Example:
    >>> evaluator = Evaluator(io, x_eval, y_eval, "label", original_predictor, original_path)   # doctest: +SKIP
    >>> evaluator.measure("ptq-int8", artifact, seconds=3.2).accuracy_drop                      # doctest: +SKIP
    0.004
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from tfdeploy.compression.pruning import kernel_sparsity
from tfdeploy.compression.registry import Artifact
from tfdeploy.compression.report import VariantReport
from tfdeploy.io_spec import Arrays, ModelIO, top1
from tfdeploy.measure.predictors import Predictor, median_latency_ms
from tfdeploy.model.loading import artifact_size, count_params


class Evaluator:
    """The original's reference outputs, accuracy and size; measures artifacts against them.

    Args:
        io: The model's inputs and outputs.
        x_eval: Evaluation inputs (validation data, or synthetic inputs without data).
        y_eval: Labels by output name (``None``: agreement only).
        label_output: The output accuracy is measured on.
        head: The output agreement is measured on.
        original: Runs the original model.
        original_path: The original's file (sizes are ratios to it).
        latency_repeats: Timed single-example calls per artifact.
    """

    def __init__(self, io: ModelIO, x_eval: Arrays, y_eval: Arrays | None, label_output: str | None,
                 head: str | None, original: Predictor, original_path: Path, latency_repeats: int) -> None:
        self.io, self.x_eval, self.y_eval, self.label_output, self.head = io, x_eval, y_eval, label_output, head
        self.latency_repeats = latency_repeats
        self.reference = original.predict(x_eval)
        self.base_accuracy = self.accuracy_of(self.reference)
        self.original_size = artifact_size(original_path)

    @property
    def samples(self) -> int:
        return len(next(iter(self.x_eval.values())))

    def accuracy_of(self, outputs: Arrays) -> float | None:
        """Top-1 accuracy of the labelled output against integer or one-hot labels."""
        if self.y_eval is None or self.label_output is None:
            return None
        name = self.label_output
        predicted = top1(outputs[name], binary=self.io.output(name).is_binary)
        if predicted is None:
            return None
        labels = self.y_eval[name]
        labels = np.argmax(labels, axis=1) if labels.ndim == 2 and labels.shape[1] > 1 else labels.reshape(-1)
        return float(np.mean(predicted == labels))

    def agreement_of(self, outputs: Arrays) -> float | None:
        """Top-1 agreement with the original on the agreement head."""
        if self.head is None:
            return None
        binary = self.io.output(self.head).is_binary
        ref, got = top1(self.reference[self.head], binary), top1(outputs[self.head], binary)
        return None if ref is None else float(np.mean(ref == got))

    def measure(self, name: str, artifact: Artifact, seconds: float | None, params_model: Any) -> VariantReport:
        """Sizes, sparsity, accuracy, agreement and latency of one artifact against the original."""
        size, size0 = artifact_size(artifact.path), self.original_size
        model = artifact.sparsity_model
        sparsity, by_type = kernel_sparsity(model) if model is not None else (None, {})
        report = VariantReport(
            name=name, path=str(artifact.path), format=artifact.path.suffix or "savedmodel", raw_bytes=size.raw_bytes,
            gzip_bytes=size.gzip_bytes, raw_ratio=size.raw_bytes / size0.raw_bytes,
            gzip_ratio=size.gzip_bytes / size0.gzip_bytes, params=count_params(model if model is not None else params_model),
            sparsity=sparsity, sparsity_by_layer_type=by_type, seconds=seconds, notes=list(artifact.notes),
            layers=dict(artifact.layers), training=list(artifact.training))
        if artifact.predictor is not None:
            self._measure_outputs(report, artifact.predictor)
        return report

    def _measure_outputs(self, report: VariantReport, predictor: Predictor) -> None:
        outputs = predictor.predict(self.x_eval)
        report.accuracy = self.accuracy_of(outputs)
        if report.accuracy is not None and self.base_accuracy is not None:
            report.accuracy_drop = self.base_accuracy - report.accuracy
        report.agreement = self.agreement_of(outputs)
        report.max_abs_diff_by_output = {
            k: float(np.max(np.abs(outputs[k].astype(np.float64) - self.reference[k].astype(np.float64))))
            for k in self.io.output_names if k in outputs}  # a distilled student may serve one output
        report.max_abs_diff = max(report.max_abs_diff_by_output.values())
        report.latency_ms = median_latency_ms(predictor, self.x_eval, repeats=self.latency_repeats)
        report.runtime = predictor.runtime
