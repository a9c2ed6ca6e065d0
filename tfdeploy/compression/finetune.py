"""Fine-tuning a compressed model: one loss per output, labels where the data has them.

Every output gets a target: its labels when the data labels it (sparse or one-hot cross-entropy
for class scores, binary cross-entropy for a sigmoid unit, mean squared error otherwise) or, when
it does not, the original model's own outputs (soft targets). Data goes through ``tf.data``, so
string, integer and float inputs train alike, in either Keras.

Example:
    >>> targets = training_targets(io, data, teacher)                  # doctest: +SKIP
    >>> fit(model, backend.keras3(), data.x, targets, FitOptions(epochs=2))   # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping, Sequence

import numpy as np

from tfdeploy import backend
from tfdeploy.io_spec import Arrays, ModelIO, TensorInfo, as_feed, batch_size
from tfdeploy.measure.processes import announce_stage
from tfdeploy.progress import as_progress

SPARSE_CE, CE, BCE, MSE = "sparse_categorical_crossentropy", "categorical_crossentropy", "binary_crossentropy", "mse"


@dataclasses.dataclass
class Target:
    """What one output is trained towards."""

    output: str
    values: np.ndarray
    loss: Any  # one of the names above, or a loss function (y_true, y_pred) -> per-sample loss
    from_logits: bool = False
    source: str = "labels"  # or "original model"


@dataclasses.dataclass(frozen=True)
class FitOptions:
    """How long and how fast to fine-tune.

    Attributes:
        freeze_batch_norm: Run BatchNormalization layers in inference mode with their trained
            statistics (QAT: small batches of a data subset would otherwise move the statistics the
            quantizers' ranges are learned on). Pruning keeps them training: they re-centre the
            activations the removed weights changed.
        decay_fraction: The last fraction of the run over which the rate falls linearly to 0
            (0: constant). Training from scratch (a distilled student) uses 0.2.
    """

    epochs: int = 2
    batch_size: int = 32
    learning_rate: float = 5e-4
    seed: int = 0
    freeze_batch_norm: bool = False
    decay_fraction: float = 0.0


def produces_probabilities(info: TensorInfo, values: np.ndarray) -> bool:
    """Softmax outputs (or outputs whose rows are non-negative and sum to 1)."""
    if info.activation is not None:
        return info.activation == "softmax"
    if values.ndim != 2 or values.shape[1] < 2:
        return False
    return bool(np.all(values >= 0) and np.allclose(values.sum(axis=1), 1.0, atol=1e-3))


def _target_for(info: TensorInfo, labels: np.ndarray | None, teacher: np.ndarray) -> Target:
    probabilities = produces_probabilities(info, teacher)
    classes = len(info.shape) == 1 and (info.shape[0] or 0) > 1
    if labels is None:
        if classes:
            soft = teacher if probabilities else softmax(teacher)
            return Target(info.name, soft.astype("float32"), CE, from_logits=not probabilities, source="original model")
        return Target(info.name, teacher.astype("float32"), MSE, source="original model")
    if classes:
        if labels.ndim == 1 or (labels.ndim == 2 and labels.shape[1] == 1):
            return Target(info.name, labels.reshape(-1).astype("int64"), SPARSE_CE, from_logits=not probabilities)
        return Target(info.name, labels.astype("float32"), CE, from_logits=not probabilities)
    if info.is_binary:
        return Target(info.name, labels.reshape(-1, 1).astype("float32"), BCE)
    return Target(info.name, labels.astype("float32"), MSE)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Softmax over the last axis of class scores (numerically stable)."""
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def training_targets(io: ModelIO, labels: Mapping[str, np.ndarray] | None, teacher: Mapping[str, np.ndarray]) -> list[Target]:
    """One :class:`Target` per output of ``io``, in its order."""
    labels = labels or {}
    return [_target_for(info, labels.get(info.name), np.asarray(teacher[info.name])) for info in io.outputs]


def _loss(keras: Any, target: Target) -> Any:
    if callable(target.loss):
        return target.loss
    losses = keras.losses
    if target.loss == SPARSE_CE:
        return losses.SparseCategoricalCrossentropy(from_logits=target.from_logits)
    if target.loss == CE:
        return losses.CategoricalCrossentropy(from_logits=target.from_logits)
    if target.loss == BCE:
        return losses.BinaryCrossentropy()
    return losses.MeanSquaredError()


def _dataset(io: ModelIO, x: Arrays, targets: Sequence[Target], options: FitOptions) -> Any:
    tf = backend.tf()
    inputs = tuple(as_feed(x[t.name], t) for t in io.inputs)
    outputs = tuple(t.values for t in targets)
    dataset = tf.data.Dataset.from_tensor_slices((inputs, outputs))
    return dataset.shuffle(batch_size(x), seed=options.seed, reshuffle_each_iteration=True).batch(options.batch_size)


def steps_per_epoch(samples: int, batch: int) -> int:
    return max(1, math.ceil(samples / batch))


def trainable_view(model: Any) -> Any:
    """A functional model over ``model``'s layers with list inputs and outputs in :func:`model_io` order.

    Training it trains ``model`` (the layers are shared); it accepts the tuple batches of
    :func:`fit` whatever structure (dict inputs, dict outputs) ``model`` was built with.
    """
    keras = backend.keras_module_for(model)
    return keras.Model(list(model.inputs), list(model.outputs), name=f"{model.name}_fit")


def fit(model: Any, x: Arrays, targets: Sequence[Target], options: FitOptions, callbacks: Sequence[Any] = (),
        progress: Any = None, label: str = "fine-tune") -> None:
    """Fine-tunes ``model`` (either Keras) in place towards ``targets``."""
    keras = backend.keras_module_for(model)
    io = backend.model_io(model)
    announce_stage("fine-tune" if label == "fine-tune" else f"fine-tune ({label})")
    frozen = batch_norm_layers(model) if options.freeze_batch_norm else []
    previous = [layer.trainable for layer in frozen]
    for layer in frozen:
        layer.trainable = False
    try:
        view = trainable_view(model)
        rate: Any = options.learning_rate
        if options.decay_fraction:
            steps = steps_per_epoch(batch_size(x), options.batch_size) * options.epochs
            rate = backend.decaying_rate(keras, options.learning_rate, steps, options.decay_fraction)
        view.compile(optimizer=keras.optimizers.Adam(rate), loss=[_loss(keras, t) for t in targets])
        callbacks = list(callbacks)
        if progress is not None:
            callbacks.append(backend.progress_callback(keras, as_progress(progress), options.epochs, label))
        view.fit(_dataset(io, x, targets, options), epochs=options.epochs, verbose=0, callbacks=callbacks,
                 shuffle=False)  # the dataset shuffles itself
    finally:
        for layer, trainable in zip(frozen, previous):
            layer.trainable = trainable


def batch_norm_layers(model: Any) -> list[Any]:
    """BatchNormalization layers of ``model`` (nested models and TFMOT wrappers included)."""
    found = []
    for _, layer in backend.leaf_layers(model):
        inner = getattr(layer, "layer", layer)  # QuantizeWrapper / PruneLowMagnitude / ClusterWeights
        if type(inner).__name__ in ("BatchNormalization", "SyncBatchNormalization"):
            found.append(inner)
    return found


class Trainer:
    """Fine-tunes models of one session on its data, towards labels and the original's outputs.

    Args:
        io: The model's inputs and outputs.
        data: Training inputs ``x`` and labels ``y`` (``y`` may lack some outputs).
        teacher: Returns the original model's outputs on given inputs (targets of unlabelled outputs).
        options: Epochs, batch size, learning rate, seed.
        progress: Where fitting is shown.

    Example:
        >>> Trainer(io, data, original.predict, FitOptions(epochs=1), progress).fine_tune(model, "prune")  # doctest: +SKIP
    """

    def __init__(self, io: ModelIO, data: Any, teacher: Any, options: FitOptions, progress: Any) -> None:
        self.io, self.data, self._teacher, self.options, self.progress = io, data, teacher, options, progress
        self._teacher_outputs: Arrays | None = None

    def teacher_outputs(self) -> Arrays:
        """The original model's outputs on the training inputs (computed once)."""
        if self._teacher_outputs is None:
            self._teacher_outputs = self._teacher(self.data.x)
        return self._teacher_outputs

    def fine_tune(self, model: Any, label: str, callbacks: Sequence[Any] = (), freeze_batch_norm: bool = False) -> None:
        """Fine-tunes ``model`` in place (see :class:`FitOptions` for ``freeze_batch_norm``)."""
        targets = training_targets(self.io, self.data.y, self.teacher_outputs())
        fit(model, self.data.x, targets, dataclasses.replace(self.options, freeze_batch_norm=freeze_batch_norm),
            callbacks, self.progress, label)

    def steps(self) -> int:
        """Optimizer steps of one fine-tuning run."""
        samples = len(next(iter(self.data.x.values())))
        return steps_per_epoch(samples, self.options.batch_size) * self.options.epochs
