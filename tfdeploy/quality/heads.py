"""What each output is (class scores, a sigmoid unit, several, or values), and its values in the forms metrics need.

The head decides the metrics that apply and the defaults a practitioner would pick. It comes from
the output's activation when the model says it (Keras models), else from its values and its labels
(a plain SavedModel): rows of non-negative scores that sum to 1 are class probabilities, integer
labels make class logits, 0/1 labels make a sigmoid's.

Example:
    >>> head_of(TensorInfo("click", "float32", (1,), "sigmoid")).head
    <Head.BINARY: 'binary'>
    >>> head_of(TensorInfo("price", "float32", (1,), "linear")).head
    <Head.VALUES: 'values'>
"""

from __future__ import annotations

import numpy as np

from tfdeploy.io_spec import TensorInfo
from tfdeploy.quality.registry import Head, Output


def _is_binary_labels(labels: np.ndarray | None) -> bool:
    return labels is not None and labels.size > 0 and bool(np.isin(labels, (0, 1)).all())


def _sums_to_one(values: np.ndarray | None, units: int) -> bool:
    if values is None or values.size == 0:
        return False
    rows = values.reshape(-1, units).astype("float64")
    return bool(np.all(rows >= 0) and np.allclose(rows.sum(axis=1), 1.0, atol=1e-3))


def _in_unit_interval(values: np.ndarray | None) -> bool:
    return values is not None and values.size > 0 and bool(np.all((values >= 0) & (values <= 1)))


def _class_labels(labels: np.ndarray | None, units: int, samples: int) -> bool:
    """Integer class ids (one per sample) or one-hot rows: labels of one-of-``units`` classes."""
    if labels is None or labels.size == 0:
        return False
    if labels.size == samples and np.issubdtype(labels.dtype, np.integer):
        return bool(labels.min() >= 0 and labels.max() < units)
    return labels.size == samples * units and _is_binary_labels(labels) and bool(
        np.all(labels.reshape(samples, units).sum(axis=1) == 1))


def head_of(info: TensorInfo, values: np.ndarray | None = None, labels: np.ndarray | None = None) -> Output:
    """The :class:`~tfdeploy.quality.registry.Output` ``info`` is, given its values and labels when known.

    Example:
        >>> head_of(TensorInfo("p", "float32", (10,), "softmax")).head
        <Head.CLASSES: 'classes'>
    """
    units = int(info.shape[-1] or 1) if info.shape else 1
    samples = 0 if values is None else len(values)
    activation = info.activation
    if not info.is_float:
        return Output(info.name, Head.VALUES, units, False)
    if units == 1 and len(info.shape) <= 1:
        if activation == "sigmoid" or activation is None and _in_unit_interval(values) and (
                labels is None or _is_binary_labels(labels)):
            return Output(info.name, Head.BINARY, 1, True)
        if activation in (None, "linear") and _is_binary_labels(labels) and not _in_unit_interval(values):
            return Output(info.name, Head.BINARY, 1, False)  # logits of a sigmoid unit
        return Output(info.name, Head.VALUES, 1, False)
    if activation == "softmax" or activation is None and _sums_to_one(values, units):
        return Output(info.name, Head.CLASSES, units, True)
    if activation == "sigmoid" or activation is None and _in_unit_interval(values) and (
            labels is None or _is_binary_labels(labels)):
        return Output(info.name, Head.MULTILABEL, units, True)
    if activation in (None, "linear") and len(info.shape) == 1 and _class_labels(labels, units, samples):
        return Output(info.name, Head.CLASSES, units, False)  # logits
    if activation in (None, "linear") and _is_binary_labels(labels) and labels is not None \
            and labels.size == samples * units:
        return Output(info.name, Head.MULTILABEL, units, False)
    return Output(info.name, Head.VALUES, units, False)


def rows(values: np.ndarray, units: int) -> np.ndarray:
    """``values`` as ``(samples, units)`` rows (per-frame outputs are flattened to one row per frame)."""
    return np.asarray(values).reshape(-1, units)


def probabilities(output: Output, values: np.ndarray) -> np.ndarray:
    """The output's probabilities as rows: itself, or the softmax/sigmoid of its logits."""
    values = rows(values, output.units).astype("float64")
    if output.probabilities:
        return values
    if output.head is Head.CLASSES:
        shifted = np.exp(values - values.max(axis=1, keepdims=True))
        return shifted / shifted.sum(axis=1, keepdims=True)
    return 1.0 / (1.0 + np.exp(-values))


def class_ids(labels: np.ndarray, units: int) -> np.ndarray:
    """Integer class ids from ids or one-hot rows."""
    labels = np.asarray(labels)
    if labels.ndim >= 2 and labels.shape[-1] == units and units > 1:
        return np.argmax(labels.reshape(-1, units), axis=1)
    return labels.reshape(-1).astype("int64")


def decisions(output: Output, values: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """The predicted class (class scores) or 0/1 per unit (sigmoid units) for each row."""
    if output.head is Head.CLASSES:
        return np.argmax(rows(values, output.units), axis=1)
    return (probabilities(output, values) > threshold).astype("int64")
