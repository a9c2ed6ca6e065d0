"""Classification: accuracy (top-1, or per thresholded unit) and top-k accuracy, by scikit-learn.

Example:
    >>> ACCURACY.scale, ACCURACY.unit
    (100.0, '%')
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tfdeploy import backend
from tfdeploy.quality.heads import class_ids, decisions, rows
from tfdeploy.quality.registry import Against, Collected, Direction, Head, MetricSpec, Output

THRESHOLD = 0.5  # of sigmoid units' probabilities


def _accuracy(output: Output, param: Any) -> Collected:
    def accuracy(truth: np.ndarray, predicted: np.ndarray) -> float:
        sk = backend.sklearn_metrics()
        if output.head is Head.CLASSES:
            return sk.accuracy_score(class_ids(truth, output.units), decisions(output, predicted))
        # a sigmoid unit, or several (element-wise, as Keras's binary_accuracy)
        return sk.accuracy_score(rows(truth, output.units).ravel(), decisions(output, predicted, THRESHOLD).ravel())

    return Collected(accuracy)


def _top_k(output: Output, k: Any) -> Collected:
    def top_k(truth: np.ndarray, predicted: np.ndarray) -> float:
        return backend.sklearn_metrics().top_k_accuracy_score(class_ids(truth, output.units),
                                                              rows(predicted, output.units), k=int(k),
                                                              labels=np.arange(output.units))

    return Collected(top_k)


ACCURACY = MetricSpec(
    "accuracy", "share of samples whose top class (or each 0.5-thresholded sigmoid unit) is the label",
    Direction.HIGHER, Against.LABELS, frozenset({Head.CLASSES, Head.BINARY, Head.MULTILABEL}), _accuracy,
    unit="%", scale=100.0,
    keras_names=("accuracy", "acc", "categorical_accuracy", "sparse_categorical_accuracy", "binary_accuracy",
                 "CategoricalAccuracy", "SparseCategoricalAccuracy", "BinaryAccuracy"))

TOP_K = MetricSpec(
    "top_k", "share of samples whose label is among the k highest class scores (top_k=3 for k=3)",
    Direction.HIGHER, Against.LABELS, frozenset({Head.CLASSES}), _top_k, unit="%", scale=100.0, param="k",
    default_param=5, keras_names=("top_k_categorical_accuracy", "sparse_top_k_categorical_accuracy",
                                  "TopKCategoricalAccuracy", "SparseTopKCategoricalAccuracy"))
