"""Magnitude pruning without TFMOT's wrappers: one mask per kernel, updated on TFMOT's schedule.

TFMOT 0.8.1 prunes only the layer types in its registry (no ``DepthwiseConv2D``, no ``GRU``), only
on flat tf_keras models. Magnitude pruning itself needs no wrapper: a Keras callback recomputes
each kernel's mask on TFMOT's ``PolynomialDecay`` schedule (sparsity rises from ``initial`` at
``begin_step`` to ``final`` at ``end_step`` with a cubic ease-out, every ``frequency`` steps) and
re-applies the masks after every training step, so pruned weights stay zero. It works on any
Keras 3 or tf_keras model (nested models, recurrent layers, custom layers) and leaves the model's
structure as it is.

Example:
    >>> schedule = Schedule(final=0.5, begin_step=0, end_step=700, frequency=70)
    >>> round(schedule.sparsity_at(700), 3), round(schedule.sparsity_at(350), 3)
    (0.5, 0.438)
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from tfdeploy import backend

# Weight names that hold a layer's connections (the weights magnitude pruning zeroes).
PRUNABLE_WEIGHTS = ("kernel", "depthwise_kernel", "pointwise_kernel", "recurrent_kernel", "embeddings")


@dataclasses.dataclass(frozen=True)
class Schedule:
    """TFMOT's ``PolynomialDecay`` (power 3): the sparsity to prune to at each update step."""

    final: float
    begin_step: int
    end_step: int
    frequency: int
    initial: float = 0.0

    def sparsity_at(self, step: int) -> float:
        """Target sparsity at ``step`` (``initial`` before ``begin_step``, ``final`` after ``end_step``)."""
        span = max(1, self.end_step - self.begin_step)
        progress = min(1.0, max(0.0, (step - self.begin_step) / span))
        return self.final + (self.initial - self.final) * (1.0 - progress) ** 3

    def updates_at(self, step: int) -> bool:
        """Whether masks are recomputed at ``step``."""
        if step < self.begin_step or step > self.end_step:
            return False
        return (step - self.begin_step) % self.frequency == 0 or step == self.end_step


@dataclasses.dataclass
class Target:
    """One prunable weight: where it lives and its current mask."""

    path: str
    layer_type: str
    variable: Any
    mask: np.ndarray | None = None


def weight_short_name(variable: Any) -> str:
    """``dense/kernel:0`` / ``kernel`` -> ``kernel``."""
    return str(getattr(variable, "name", "")).split("/")[-1].split(":")[0]


def prunable_weights(model: Any, structured: bool = False) -> tuple[list[Target], list[str]]:
    """Kernels of every layer (nested models included) and the layers skipped with the reason.

    With ``structured`` (2:4), kernels whose input dimension is not a multiple of 4 are skipped.
    """
    targets, skipped = [], []
    for path, layer in backend.leaf_layers(model):
        for variable in layer.weights:
            if weight_short_name(variable) not in PRUNABLE_WEIGHTS or len(variable.shape) < 2:
                continue
            if structured and _input_dim(variable.shape) % 4:
                skipped.append(f"{path} ({type(layer).__name__}): input dimension {_input_dim(variable.shape)} "
                               "is not a multiple of 4")
                continue
            targets.append(Target(path=f"{path}/{weight_short_name(variable)}", layer_type=type(layer).__name__,
                                  variable=variable))
    return targets, skipped


def _input_dim(shape: Any) -> int:
    return int(shape[-2]) if len(shape) >= 2 else int(shape[0])


def magnitude_mask(values: np.ndarray, sparsity: float, structured: bool = False) -> np.ndarray:
    """A 0/1 mask zeroing the ``sparsity`` fraction of smallest-magnitude values.

    With ``structured`` it keeps the 2 largest of every 4 consecutive weights along the input
    dimension (2:4 sparsity), whatever ``sparsity`` is.

    Example:
        >>> magnitude_mask(np.array([[0.1, -2.0], [0.5, 0.05]]), 0.5).astype(int).tolist()
        [[0, 1], [1, 0]]
    """
    magnitude = np.abs(values)
    if structured:
        moved = np.moveaxis(magnitude, -2, -1)  # input dimension last
        groups = moved.reshape(-1, 4)
        keep = np.zeros_like(groups, dtype=bool)
        top = np.argsort(-groups, axis=1, kind="stable")[:, :2]
        np.put_along_axis(keep, top, True, axis=1)
        return np.moveaxis(keep.reshape(moved.shape), -1, -2).astype(values.dtype)
    count = int(round(sparsity * magnitude.size))
    mask = np.ones(magnitude.size, dtype=values.dtype)
    if count > 0:
        mask[np.argsort(magnitude, axis=None, kind="stable")[:count]] = 0
    return mask.reshape(values.shape)


def update_masks(targets: list[Target], sparsity: float, structured: bool) -> None:
    """Recomputes every mask from the current weights."""
    for target in targets:
        target.mask = magnitude_mask(np.asarray(target.variable.numpy()), sparsity, structured)


def apply_masks(targets: list[Target]) -> None:
    """Zeroes the masked weights in place."""
    for target in targets:
        if target.mask is not None:
            target.variable.assign(np.asarray(target.variable.numpy()) * target.mask)


def pruning_callback(keras: Any, targets: list[Target], schedule: Schedule, structured: bool = False) -> Any:
    """A Keras callback (of ``keras``'s flavour) that prunes ``targets`` on ``schedule`` while training.

    Masks are recomputed at the schedule's update steps and applied after every step; at the end
    of training the final sparsity is applied, so the model is exactly as sparse as asked.
    """

    class MagnitudePruning(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.step = 0

        def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
            self.step += 1
            if schedule.updates_at(self.step):
                update_masks(targets, schedule.sparsity_at(self.step), structured)
            apply_masks(targets)

        def on_train_end(self, logs: dict | None = None) -> None:
            update_masks(targets, schedule.final, structured)
            apply_masks(targets)

    return MagnitudePruning()


def kernel_sparsity(model: Any) -> tuple[float | None, dict[str, float]]:
    """Fraction of zero weights over every prunable kernel, overall and by layer type.

    Nested models are included; TFMOT wrappers are seen through (their inner layer's type counts).
    """
    zeros: dict[str, int] = {}
    totals: dict[str, int] = {}
    for _, layer in backend.leaf_layers(model):
        kind = type(getattr(layer, "layer", layer)).__name__
        for weight in layer.weights:
            name = weight_short_name(weight)
            if name not in PRUNABLE_WEIGHTS and not name.endswith("_kernel"):
                continue
            values = np.asarray(weight.numpy())
            if values.ndim < 2:
                continue
            zeros[kind] = zeros.get(kind, 0) + int(np.sum(values == 0))
            totals[kind] = totals.get(kind, 0) + values.size
    if not totals:
        return None, {}
    return sum(zeros.values()) / sum(totals.values()), {kind: zeros[kind] / totals[kind] for kind in sorted(totals)}
