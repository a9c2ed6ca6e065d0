"""Fidelity to the original model, which needs no labels: agreement, differences, cosine, KL and SNR.

Each accumulates batch by batch (sums, counts, maxima), so a large evaluation set is never held
twice. ``truth`` is the original's output on the same inputs.

The signal-to-noise ratio of an output over the evaluation set is
``10 · log10(Σ original² / Σ (variant − original)²)`` in dB: 20 dB is an error of a tenth of the
signal's amplitude, 40 dB of a hundredth. Identical outputs give :data:`SNR_CAP`.

Example:
    >>> acc = SNR.make(Output("y", Head.VALUES, 1, False), None)
    >>> acc.update(np.array([[1.0], [2.0]]), np.array([[1.1], [1.9]]))
    >>> round(acc.result(), 2)
    23.98
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from tfdeploy.quality.heads import decisions, probabilities, rows
from tfdeploy.quality.registry import Against, Direction, Head, MetricSpec, Output

SNR_CAP = 200.0  # dB: what identical outputs (no error energy) report
ALL_HEADS = frozenset(Head)
CLASSIFIERS = frozenset({Head.CLASSES, Head.BINARY})
PROBABILITIES = frozenset({Head.CLASSES, Head.BINARY, Head.MULTILABEL})


class _Sums:
    """Sums of per-row values over batches; ``result`` is their mean (or the maximum with ``keep="max"``)."""

    def __init__(self, output: Output, per_row: Any, keep: str = "mean") -> None:
        self.output, self.per_row, self.keep = output, per_row, keep
        self.total, self.count, self.largest = 0.0, 0, None  # type: ignore[var-annotated]

    def update(self, truth: np.ndarray, predicted: np.ndarray) -> None:
        values = np.asarray(self.per_row(self.output, truth, predicted), dtype="float64")
        if values.size:
            self.total += float(values.sum())
            self.count += values.size
            top = float(values.max())
            self.largest = top if self.largest is None else max(self.largest, top)

    def result(self) -> float | None:
        if self.keep == "max":
            return self.largest
        return self.total / self.count if self.count else None


class _Snr:
    def __init__(self, output: Output, param: Any) -> None:
        self.signal, self.noise = 0.0, 0.0

    def update(self, truth: np.ndarray, predicted: np.ndarray) -> None:
        truth = np.asarray(truth, dtype="float64")
        self.signal += float(np.sum(truth ** 2))
        self.noise += float(np.sum((np.asarray(predicted, dtype="float64") - truth) ** 2))

    def result(self) -> float | None:
        if self.noise == 0:
            return SNR_CAP if self.signal > 0 else None
        if self.signal == 0:
            return None
        return min(SNR_CAP, 10 * math.log10(self.signal / self.noise))


def _agreement(output: Output, truth: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    return (decisions(output, truth) == decisions(output, predicted)).ravel()


def _abs_diff(output: Output, truth: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    return np.abs(np.asarray(predicted, "float64") - np.asarray(truth, "float64")).ravel()


def _cosine(output: Output, truth: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    a = np.asarray(truth, "float64").reshape(len(truth), -1)
    b = np.asarray(predicted, "float64").reshape(len(predicted), -1)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    both_zero = (np.linalg.norm(a, axis=1) == 0) & (np.linalg.norm(b, axis=1) == 0)
    return np.where(norms > 0, (a * b).sum(axis=1) / np.where(norms > 0, norms, 1), both_zero.astype(float))


def _kl(output: Output, truth: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    eps = 1e-7
    p = np.clip(probabilities(output, truth), eps, 1.0)
    q = np.clip(probabilities(output, predicted), eps, 1.0)
    if output.head is Head.CLASSES:
        return (p * np.log(p / q)).sum(axis=1)
    p1, q1 = np.clip(p, eps, 1 - eps), np.clip(q, eps, 1 - eps)  # Bernoulli KL per unit, averaged over units
    return (p1 * np.log(p1 / q1) + (1 - p1) * np.log((1 - p1) / (1 - q1))).mean(axis=1)


def _rows_of(per_row: Any) -> Any:
    def on_rows(output: Output, truth: np.ndarray, predicted: np.ndarray) -> np.ndarray:
        return per_row(output, rows(truth, output.units), rows(predicted, output.units))

    return on_rows


AGREEMENT = MetricSpec("agreement", "share of samples whose top class (or thresholded unit) matches the original's",
                       Direction.HIGHER, Against.ORIGINAL, CLASSIFIERS,
                       lambda output, param: _Sums(output, _rows_of(_agreement)), unit="%", scale=100.0)
MEAN_ABS_DIFF = MetricSpec("mean_abs_diff", "mean |variant - original| over every value", Direction.LOWER,
                           Against.ORIGINAL, ALL_HEADS, lambda output, param: _Sums(output, _abs_diff))
MAX_ABS_DIFF = MetricSpec("max_abs_diff", "largest |variant - original| over every value", Direction.LOWER,
                          Against.ORIGINAL, ALL_HEADS, lambda output, param: _Sums(output, _abs_diff, keep="max"))
COSINE = MetricSpec("cosine", "mean cosine similarity of each sample's output with the original's",
                    Direction.HIGHER, Against.ORIGINAL, ALL_HEADS, lambda output, param: _Sums(output, _cosine))
KL = MetricSpec("kl", "mean KL divergence of the variant's probabilities from the original's", Direction.LOWER,
                Against.ORIGINAL, PROBABILITIES, lambda output, param: _Sums(output, _rows_of(_kl)))
SNR = MetricSpec("snr", "signal-to-noise ratio: 10·log10(Σ original² / Σ (variant - original)²) over the set",
                 Direction.HIGHER, Against.ORIGINAL, ALL_HEADS, _Snr, unit="dB", has_drop=False)
