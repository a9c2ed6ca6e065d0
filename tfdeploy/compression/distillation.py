"""Knowledge distillation: a student trained towards the teacher's temperature-softened outputs.

Each output the student gives is trained towards the teacher's values for it:

* class scores: ``T² · KL(softmax(z_t / T) ‖ softmax(z_s / T))`` (Hinton et al., 2015), where ``z``
  are logits (log-probabilities for a teacher that gives probabilities); where the data has labels, the hard
  cross-entropy is mixed in with weight ``hard_label_weight``;
* a single sigmoid unit: the same with ``sigmoid(z / T)``;
* anything else: mean squared error to the teacher's values (and to the labels, mixed in).

The teacher's values are computed once, in inference mode (Dropout off, BatchNormalization on its
moving statistics), by the session's predictor of the original. Training reuses
:func:`~tfdeploy.compression.finetune.fit` (tf.data, either Keras, progress) with the rate held for
most of the run and decayed over its last fifth, and the student is scored against the teacher on
the validation inputs before training and after every epoch. Losses read the student's logits
where Keras kept them (a softmax or sigmoid head), as Keras's own cross-entropies do.

Example:
    >>> result = distill(student, teacher_outputs, data.x, data.y, DistillOptions(epochs=5), score)  # doctest: +SKIP
    >>> [round(s.agreement, 2) for s in result.history]
    [0.1, 0.62, 0.81, 0.86, 0.88, 0.89]
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from tfdeploy import backend
from tfdeploy.compression.finetune import FitOptions, Target, fit, produces_probabilities, softmax
from tfdeploy.io_spec import Arrays, ModelIO, TensorInfo, take
from tfdeploy.measure.predictors import keras_predictor
from tfdeploy.progress import as_progress

NO_LABEL = -1.0
# The last fifth of the steps decays the rate to 0: a cosine over the whole run halved what a small
# student learned in 10 epochs (docs/compress.md, "Distillation").
DECAY_FRACTION = 0.2


@dataclasses.dataclass(frozen=True)
class DistillOptions:
    """How the student learns.

    Attributes:
        temperature: Softens the teacher's and the student's class scores (``T`` above; 1: none).
        hard_label_weight: Weight of the labels' loss, where the data has labels (0: teacher only).
        epochs: Passes over the training data.
        batch_size: Samples per step.
        learning_rate: Adam's rate, held for the first 80 % of the steps, then decayed linearly to 0.
        seed: Seed of shuffling.
    """

    temperature: float = 1.0
    hard_label_weight: float = 0.1
    epochs: int = 10
    batch_size: int = 64
    learning_rate: float = 2e-3
    seed: int = 0


@dataclasses.dataclass(frozen=True)
class EpochScore:
    """The student on the validation inputs after ``epoch`` epochs (0: untrained): top-1 agreement with the
    teacher, the run's driving metric (``metric``, raw ``quality``) and the mean abs difference from the teacher."""

    epoch: int
    agreement: float | None
    quality: float | None
    mean_abs_diff: float
    metric: str = ""
    scale: float = 1.0
    unit: str = ""

    def describe(self) -> str:
        quality = "" if self.quality is None or self.metric == "agreement" else \
            f"{self.metric} {self.quality * self.scale:.4g}{self.unit}"
        parts = [f"agreement with the teacher {100 * self.agreement:.1f}%" if self.agreement is not None else "",
                 quality, f"mean |student - teacher| {self.mean_abs_diff:.4g}"]
        return ", ".join(p for p in parts if p)


@dataclasses.dataclass
class DistillResult:
    """What distillation did: per-output losses, scores by epoch and the time it took."""

    losses: list[str]
    history: list[EpochScore]
    seconds: float


def _log_scores(values: np.ndarray, probabilities: bool) -> np.ndarray:
    values = values.astype("float64")
    return np.log(np.clip(values, 1e-7, 1.0)) if probabilities else values


def _label_column(labels: np.ndarray | None, n: int, binary: bool) -> np.ndarray:
    if labels is None:
        return np.full((n, 1), NO_LABEL, "float32")
    if not binary and labels.ndim == 2 and labels.shape[1] > 1:  # one-hot
        labels = np.argmax(labels, axis=1)
    return labels.reshape(n, 1).astype("float32")


def _student_logits(y_pred: Any, activation: str, probabilities: bool) -> Any:
    """The student's logits: Keras's own where it kept them, else recovered from probabilities (clipped)."""
    if not probabilities:
        return y_pred
    logits = backend.logits_of(y_pred, activation)
    if logits is not None:
        return logits
    tf = backend.tf()
    if activation == "softmax":
        return tf.math.log(tf.clip_by_value(y_pred, 1e-7, 1.0))
    p = tf.clip_by_value(y_pred, 1e-7, 1 - 1e-7)
    return tf.math.log(p / (1 - p))


def _class_loss(classes: int, temperature: float, weight: float, probabilities: bool) -> Callable[[Any, Any], Any]:
    def loss(y_true: Any, y_pred: Any) -> Any:
        tf = backend.tf()
        soft, label = y_true[:, :classes], y_true[:, classes]
        z = _student_logits(y_pred, "softmax", probabilities)
        kd = tf.reduce_sum(soft * (tf.math.log(tf.clip_by_value(soft, 1e-12, 1.0)) - tf.nn.log_softmax(z / temperature)),
                           axis=-1) * temperature ** 2
        hard = -tf.reduce_sum(tf.one_hot(tf.cast(tf.maximum(label, 0.0), "int32"), classes) * tf.nn.log_softmax(z), -1)
        mix = weight * tf.cast(label >= 0, kd.dtype)
        return (1.0 - mix) * kd + mix * hard

    loss.__name__ = "distill_classes"
    return loss


def _binary_loss(temperature: float, weight: float, probabilities: bool) -> Callable[[Any, Any], Any]:
    def loss(y_true: Any, y_pred: Any) -> Any:
        tf = backend.tf()
        soft, label = y_true[:, 0], y_true[:, 1]
        z = _student_logits(y_pred, "sigmoid", probabilities)[:, 0]

        def cross_entropy(target: Any, logits: Any) -> Any:
            return target * tf.nn.softplus(-logits) + (1 - target) * tf.nn.softplus(logits)

        kd = cross_entropy(soft, z / temperature)
        hard = cross_entropy(tf.maximum(label, 0.0), z)
        mix = weight * tf.cast(label >= 0, kd.dtype)
        return (1.0 - mix) * kd * temperature ** 2 + mix * hard

    loss.__name__ = "distill_binary"
    return loss


def _value_loss(width: int, weight: float) -> Callable[[Any, Any], Any]:
    def loss(y_true: Any, y_pred: Any) -> Any:
        tf = backend.tf()
        teacher, label = y_true[..., :width], y_true[..., width:]
        to_teacher = tf.reduce_mean(tf.square(y_pred - teacher), axis=-1)
        if label.shape[-1] == 0:
            return to_teacher
        return (1.0 - weight) * to_teacher + weight * tf.reduce_mean(tf.square(y_pred - label), axis=-1)

    loss.__name__ = "distill_values"
    return loss


def _target(student: TensorInfo, teacher_info: TensorInfo, teacher: np.ndarray, labels: np.ndarray | None,
            student_probabilities: bool, options: DistillOptions) -> Target:
    n, t, w = len(teacher), options.temperature, options.hard_label_weight
    if teacher_info.is_binary:
        z = _log_scores(teacher, True) - _log_scores(1 - teacher, True)
        soft = (1 / (1 + np.exp(-z / t))).reshape(n, 1).astype("float32")
        return Target(student.name, np.concatenate([soft, _label_column(labels, n, True)], 1),
                      _binary_loss(t, w, student_probabilities), source=f"teacher at T={t:g}")
    classes = len(student.shape) == 1 and (student.shape[0] or 0) > 1
    if classes:
        soft = softmax(_log_scores(teacher, produces_probabilities(teacher_info, teacher)) / t).astype("float32")
        return Target(student.name, np.concatenate([soft, _label_column(labels, n, False)], 1),
                      _class_loss(soft.shape[1], t, w, student_probabilities), source=f"teacher at T={t:g}")
    values = [teacher.astype("float32")] + ([] if labels is None else [labels.reshape(teacher.shape).astype("float32")])
    return Target(student.name, np.concatenate(values, -1), _value_loss(teacher.shape[-1], w), source="teacher values")


def distillation_targets(student_io: ModelIO, teacher_io: ModelIO, teacher: Mapping[str, np.ndarray],
                         labels: Mapping[str, np.ndarray] | None, student_probabilities: Mapping[str, bool],
                         options: DistillOptions) -> list[Target]:
    """One :class:`~tfdeploy.compression.finetune.Target` per student output: the teacher's values, softened.

    Example:
        >>> [t.source for t in distillation_targets(io, io, teacher, None, {"p": True}, DistillOptions())]  # doctest: +SKIP
        ['teacher at T=4']
    """
    labels = labels or {}
    return [_target(info, teacher_io.output(info.name), np.asarray(teacher[info.name]), labels.get(info.name),
                    student_probabilities[info.name], options) for info in student_io.outputs]


def gives_probabilities(model: Any, x: Arrays) -> dict[str, bool]:
    """Whether each output of ``model`` is probabilities (softmax/sigmoid) rather than logits."""
    io = backend.model_io(model)
    sample = take(x, slice(0, 8))
    outputs = {name: np.asarray(value) for name, value in backend.call_model(model, sample, training=False).items()}
    return {info.name: info.activation == "sigmoid" if info.shape == (1,) else
            produces_probabilities(info, outputs[info.name]) for info in io.outputs}


def distill(student: Any, teacher_io: ModelIO, teacher_outputs: Arrays, x: Arrays, labels: Arrays | None,
            options: DistillOptions, score: Callable[[Any], EpochScore], progress: Any = None) -> DistillResult:
    """Trains ``student`` in place towards ``teacher_outputs`` (the teacher's values on ``x``).

    Args:
        student: The student (either Keras), with the teacher's input names and some or all of its outputs.
        teacher_io: The teacher's inputs and outputs.
        teacher_outputs: The teacher's outputs on ``x``, computed in inference mode.
        x: Training inputs by name.
        labels: Labels by output name, or ``None``.
        options: Temperature, label weight and training length.
        score: Scores a student model against the teacher on held-out inputs (called before
            training and after each epoch).
        progress: Where training is shown.

    Returns:
        A :class:`DistillResult` with the scores by epoch.
    """
    say = as_progress(progress)
    student_io = backend.model_io(student)
    targets = distillation_targets(student_io, teacher_io, teacher_outputs, labels, gives_probabilities(student, x),
                                   options)
    history = [dataclasses.replace(score(student), epoch=0)]
    say(f"  untrained student: {history[0].describe()}")

    def after_epoch(epoch: int, logs: dict) -> None:
        history.append(dataclasses.replace(score(student), epoch=epoch + 1))
        say(f"  distill epoch {epoch + 1}/{options.epochs}: loss {float(logs.get('loss', float('nan'))):.4f}, "
            f"{history[-1].describe()}")

    began = time.perf_counter()
    fit(student, x, targets, FitOptions(options.epochs, options.batch_size, options.learning_rate, options.seed,
                                        decay_fraction=DECAY_FRACTION),
        callbacks=[backend.epoch_callback(backend.keras_module_for(student), after_epoch)], progress=progress,
        label="distill")
    losses = [f"{t.output}: {getattr(t.loss, '__name__', t.loss)} towards the {t.source}" for t in targets]
    return DistillResult(losses, history, time.perf_counter() - began)


def scorer(evaluator: Any, outputs: Sequence[str]) -> Callable[[Any], EpochScore]:
    """Scores a student on the evaluator's inputs: agreement with the teacher, the driving metric, mean abs difference."""
    driving = evaluator.driving
    spec = driving.spec()

    def score(model: Any) -> EpochScore:
        measured = evaluator.evaluate(keras_predictor(model, "student"))
        diffs = [measured.values[k]["mean_abs_diff"] for k in outputs if k in measured.values]
        agreement = measured.values.get(evaluator.head, {}).get("agreement") if evaluator.head else None
        return EpochScore(0, agreement, measured.value(driving, evaluator.plan), float(np.mean(diffs)), str(driving),
                          spec.scale, spec.unit)

    return score
