"""Binary outcomes and ranking: ROC AUC, PR AUC, logloss, calibration error and positive rate, by scikit-learn.

What a click-through ranker is judged by: how well it orders positives above negatives (AUC), how
good its probabilities are (logloss), and whether they are calibrated (the mean prediction against
the observed positive rate, and the expected calibration error over 15 bins).

Example:
    >>> ROC_AUC.direction, LOGLOSS.direction
    (<Direction.HIGHER: 'higher'>, <Direction.LOWER: 'lower'>)
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from tfdeploy import backend
from tfdeploy.quality.heads import class_ids, probabilities, rows
from tfdeploy.quality.registry import Against, Collected, Direction, Head, MetricSpec, Output

CALIBRATION_BINS = 15


def per_label(score: Callable[[np.ndarray, np.ndarray], float]) -> Callable[[np.ndarray, np.ndarray], float | None]:
    """``score`` averaged over the label columns that hold both classes (undefined on the others)."""
    def average(truth: np.ndarray, predicted: np.ndarray) -> float | None:
        values = [score(truth[:, j], predicted[:, j]) for j in range(truth.shape[1])
                  if 0 < truth[:, j].sum() < len(truth)]
        return float(np.mean(values)) if values else None

    return average


def _auc(output: Output, param: Any, score_name: str) -> Collected:
    def auc(truth: np.ndarray, predicted: np.ndarray) -> float | None:
        score = getattr(backend.sklearn_metrics(), score_name)
        p = probabilities(output, predicted)
        if output.head is Head.CLASSES:
            ids = class_ids(truth, output.units)
            if len(np.unique(ids)) < 2 or score_name != "roc_auc_score":
                return None
            try:
                return score(ids, p, multi_class="ovr", labels=np.arange(output.units))
            except ValueError:  # a class without samples
                return None
        return per_label(score)(rows(truth, output.units), p)

    return Collected(auc)


def _logloss(output: Output, param: Any) -> Collected:
    def logloss(truth: np.ndarray, predicted: np.ndarray) -> float:
        sk, p = backend.sklearn_metrics(), probabilities(output, predicted)
        if output.head is Head.CLASSES:
            return sk.log_loss(class_ids(truth, output.units), p, labels=np.arange(output.units))
        return sk.log_loss(rows(truth, output.units).ravel(), p.ravel(), labels=[0, 1])

    return Collected(logloss)


def _confidence(output: Output, truth: np.ndarray, predicted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(predicted probability, observed outcome) pairs: top-class confidence and correctness for class scores."""
    p = probabilities(output, predicted)
    if output.head is Head.CLASSES:
        return p.max(axis=1), (np.argmax(p, axis=1) == class_ids(truth, output.units)).astype("float64")
    return p.ravel(), rows(truth, output.units).ravel().astype("float64")


def _ece(output: Output, param: Any) -> Collected:
    def ece(truth: np.ndarray, predicted: np.ndarray) -> float:
        confidence, outcome = _confidence(output, truth, predicted)
        bins = np.minimum((confidence * CALIBRATION_BINS).astype(int), CALIBRATION_BINS - 1)
        counts = np.bincount(bins, minlength=CALIBRATION_BINS)
        gaps = np.abs(np.bincount(bins, outcome, CALIBRATION_BINS) - np.bincount(bins, confidence, CALIBRATION_BINS))
        return float(gaps.sum() / max(counts.sum(), 1))

    return Collected(ece)


def _calibration(output: Output, param: Any) -> Collected:
    def calibration(truth: np.ndarray, predicted: np.ndarray) -> float | None:
        observed = float(np.mean(rows(truth, output.units)))
        return None if observed == 0 else float(np.mean(probabilities(output, predicted))) / observed

    return Collected(calibration)


SCORES = frozenset({Head.BINARY, Head.MULTILABEL})
ROC_AUC = MetricSpec("auc", "ROC AUC: how often a positive is scored above a negative (macro over labels)",
                     Direction.HIGHER, Against.LABELS, SCORES | {Head.CLASSES},
                     lambda output, param: _auc(output, param, "roc_auc_score"), keras_names=("auc", "roc_auc"))
PR_AUC = MetricSpec("pr_auc", "area under the precision-recall curve (average precision; macro over labels)",
                    Direction.HIGHER, Against.LABELS, SCORES,
                    lambda output, param: _auc(output, param, "average_precision_score"),
                    keras_names=("average_precision",))
LOGLOSS = MetricSpec("logloss", "cross-entropy of the predicted probabilities with the labels",
                     Direction.LOWER, Against.LABELS, SCORES | {Head.CLASSES}, _logloss,
                     keras_names=("logloss", "log_loss", "binary_crossentropy", "BinaryCrossentropy",
                                  "categorical_crossentropy", "CategoricalCrossentropy",
                                  "sparse_categorical_crossentropy", "SparseCategoricalCrossentropy"))
ECE = MetricSpec("ece", f"expected calibration error: |observed - predicted| over {CALIBRATION_BINS} probability bins",
                 Direction.LOWER, Against.LABELS, SCORES | {Head.CLASSES}, _ece)
CALIBRATION = MetricSpec("calibration", "mean predicted probability / observed positive rate (1 is calibrated)",
                         Direction.TARGET, Against.LABELS, SCORES, _calibration, target=1.0)
