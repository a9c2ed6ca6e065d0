"""``distill``: a smaller student trained to reproduce the model (knowledge distillation).

The student is a narrower copy of the model (``student_width``; :mod:`tfdeploy.compression.students`)
or a model the user gives (``student``). It learns from the model's temperature-softened outputs on
the data, with the labels mixed in where there are any (:mod:`tfdeploy.compression.distillation`);
every output is distilled, or only the one chosen with ``output`` (the student then serves that
output alone). The result is an ordinary model in the user's Keras format: chains such as
``distill+ptq-int8`` quantize it, and the report measures it against the original (the teacher).

Example:
    >>> from tfdeploy.compression.recipes import Recipe
    >>> Recipe.DISTILL.spec.needs_labels
    False
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tfdeploy.compression import students
from tfdeploy.compression.distillation import DECAY_FRACTION, DistillOptions, EpochScore, distill, scorer
from tfdeploy.compression.finetune import batch_norm_layers, steps_per_epoch
from tfdeploy.compression.registry import Artifact, OutputKind, RecipeSpec
from tfdeploy.io_spec import ModelIO
from tfdeploy.measure.predictors import keras_predictor

if TYPE_CHECKING:
    from tfdeploy.compression.session import CompressionSession


def distilled_io(session: CompressionSession) -> ModelIO:
    """The teacher's inputs and the outputs to distil: all, or the one chosen with ``output``."""
    io, chosen = session.io, session.config.output
    if chosen and len(io.outputs) > 1:
        return ModelIO(inputs=io.inputs, outputs=(io.output(chosen),))
    return io


def make_student(session: CompressionSession, io: ModelIO, width: float | None = None) -> students.Student:
    """The untrained student: the ``student`` file, or a narrower copy at ``width`` (default ``student_width``)."""
    config = session.config
    if config.student is not None and width is None:
        return students.from_file(config.student, io, config.custom_objects, config.safe_mode)
    session.require_keras("distill to a narrower copy of the model (or pass a student with --student FILE)")
    student = students.narrower(session.fresh_model(), width or config.student_width, config.seed)
    if len(io.outputs) < len(session.io.outputs):
        student.model = students.only_output(student.model, io.outputs[0].name)
        student.notes.append(f"only output {io.outputs[0].name!r} distilled (--output): the student serves it alone")
    return student


def options_of(session: CompressionSession) -> DistillOptions:
    config = session.config
    return DistillOptions(config.temperature, config.hard_label_weight, config.distill_epochs, config.batch_size,
                          config.distill_learning_rate, config.seed)


def run_distill(session: CompressionSession, recipe: Any, width: float | None = None) -> Artifact:
    """Makes the student, distils it on the session's data and writes it in the user's Keras format."""
    assert session.trainer is not None and session.data is not None
    io = distilled_io(session)
    student = make_student(session, io, width)
    session.progress(f"  student ({student.origin}): {student.model.count_params():,} parameters; teacher "
                     f"{session.original.params:,}")
    options = options_of(session)
    samples = len(next(iter(session.data.x.values())))
    student.notes += _faster_batch_norm(student.model, steps_per_epoch(samples, options.batch_size) * options.epochs)
    result = distill(student.model, io, session.trainer.teacher_outputs(), session.data.x, session.data.y, options,
                     scorer(session.evaluator, io.output_names), session.progress)
    first, last = result.history[0], result.history[-1]
    notes = [*student.notes, *result.losses,
             f"distilled in {result.seconds:.0f} s: {options.epochs} epochs on {samples} samples (batch "
             f"{options.batch_size}, T={options.temperature:g}, Adam {options.learning_rate:g} decayed over the last "
             f"{DECAY_FRACTION:.0%} of the steps)",
             f"untrained student: {first.describe()}; after training: {last.describe()}",
             *_barely_learned(first, last, options)]
    path = session.write_keras(recipe, student.model)
    return Artifact(path, keras_predictor(student.model, session.name_of(recipe)), student.model, notes,
                    training=[vars(score) for score in result.history])


def _barely_learned(first: EpochScore, last: EpochScore, options: DistillOptions) -> list[str]:
    """A warning when the student's agreement with the teacher rose by less than 5 points."""
    if first.agreement is None or last.agreement is None or last.agreement - first.agreement >= 0.05:
        return []
    return [f"the student barely learned ({100 * first.agreement:.1f}% → {100 * last.agreement:.1f}% agreement with "
            f"the teacher): give it more epochs (--distill-epochs, now {options.epochs}), more data, a higher rate "
            f"(--distill-learning-rate, now {options.learning_rate:g}) or more capacity"]


def _faster_batch_norm(model: Any, steps: int) -> list[str]:
    """BatchNormalization moving averages that forget their initial values within ``steps`` (by e⁻⁵).

    Keras applications average over ~1,000 steps (momentum 0.999): a student trained from scratch
    for fewer steps would serve on statistics still near their initial 0 and 1.
    """
    momentum = 1.0 - 5.0 / max(steps, 6)
    slowed = [layer for layer in batch_norm_layers(model) if layer.momentum > momentum]
    for layer in slowed:
        layer.momentum = momentum
    return [f"BatchNormalization momentum {momentum:.4g} in {len(slowed)} layers: the moving statistics settle within "
            f"the {steps} training steps"] if slowed else []


DISTILL = RecipeSpec("distill", "knowledge distillation into a narrower copy (--student-width) or --student FILE",
                     OutputKind.KERAS, run=run_distill, needs_data=True, trains=True)
