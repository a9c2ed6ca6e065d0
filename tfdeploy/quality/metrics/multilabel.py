"""Several independent sigmoid units: micro and macro F1 at a threshold, and mean average precision.

Example:
    >>> MICRO_F1.param, MICRO_F1.default_param
    ('threshold', 0.5)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tfdeploy import backend
from tfdeploy.quality.heads import decisions, probabilities, rows
from tfdeploy.quality.metrics.ranking import per_label
from tfdeploy.quality.registry import Against, Collected, Direction, Head, MetricSpec, Output


def _f1(output: Output, threshold: Any, average: str) -> Collected:
    def f1(truth: np.ndarray, predicted: np.ndarray) -> float:
        truth = rows(truth, output.units).astype("int64")
        made = decisions(output, predicted, float(threshold))
        mode = "binary" if output.head is Head.BINARY else average
        return backend.sklearn_metrics().f1_score(truth, made, average=mode, zero_division=0)

    return Collected(f1)


def _mean_average_precision(output: Output, param: Any) -> Collected:
    def mean_ap(truth: np.ndarray, predicted: np.ndarray) -> float | None:
        score = backend.sklearn_metrics().average_precision_score
        return per_label(score)(rows(truth, output.units), probabilities(output, predicted))

    return Collected(mean_ap)


MICRO_F1 = MetricSpec("micro_f1", "F1 over every (sample, label) decision at a threshold (micro_f1=0.3)",
                      Direction.HIGHER, Against.LABELS, frozenset({Head.MULTILABEL, Head.BINARY}),
                      lambda output, t: _f1(output, t, "micro"), param="threshold", default_param=0.5,
                      keras_names=("f1_score", "F1Score"))
MACRO_F1 = MetricSpec("macro_f1", "F1 of each label at a threshold, averaged over labels (macro_f1=0.3)",
                      Direction.HIGHER, Against.LABELS, frozenset({Head.MULTILABEL}),
                      lambda output, t: _f1(output, t, "macro"), param="threshold", default_param=0.5)
MAP = MetricSpec("map", "mean average precision over the labels that have positives",
                 Direction.HIGHER, Against.LABELS, frozenset({Head.MULTILABEL}), _mean_average_precision)
