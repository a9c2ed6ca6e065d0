"""``qat``: TFMOT quantization-aware training on the flat tf_keras copy, converted to int8 TFLite.

:func:`quantization_aware_training` is shared with ``prune-qat`` and ``cluster-qat``, which start
from their own model and a collaborative quantization scheme.

Example:
    >>> from tfdeploy.compression.recipes import Recipe
    >>> Recipe.QAT.spec.tf_keras
    True
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

from tfdeploy import backend
from tfdeploy.compression import bridge, quantization_aware
from tfdeploy.compression.registry import Artifact, AutoHint, OutputKind, RecipeSpec
from tfdeploy.compression.tflite import TfliteMode
from tfdeploy.errors import TfdeployError

if TYPE_CHECKING:
    from tfdeploy.compression.session import CompressionSession

PREFLIGHT_ROUNDS = 3


def bridge_scope(session: CompressionSession) -> Any:
    """A tf_keras custom-object scope with the user's and the bridge's custom objects."""
    result = session.bridge()
    return backend.tf_keras().utils.custom_object_scope({**session.config.custom_objects, **result.custom_objects})


def _preflight(session: CompressionSession, base: Any, scheme: Any, custom_objects: dict[str, Any],
               plan: quantization_aware.AnnotationPlan) -> tuple[Any, list[str]]:
    """The quantize-applied model, checked to convert before any fine-tuning (see quantization_aware)."""
    notes = []
    for _ in range(PREFLIGHT_ROUNDS):
        model = quantization_aware.apply(base, plan, scheme, custom_objects)
        try:
            session.converter.convert(model, TfliteMode.QAT)
            return model, notes
        except TfdeployError as exc:
            rejected = quantization_aware.rejected_layers(str(exc), model, plan.annotate)
            if not rejected:
                raise TfdeployError(f"The quantization-aware model would not convert to TFLite, so it was not "
                                    f"fine-tuned: {exc}") from exc
            plan.annotate -= rejected
            notes.append(f"left in float because the converter rejects their int8 form ({str(exc)[:160]}): "
                         + ", ".join(sorted(rejected)))
    raise TfdeployError("The quantization-aware model would not convert to TFLite after leaving "
                        f"{PREFLIGHT_ROUNDS} groups of layers in float; it was not fine-tuned.")


def quantization_aware_training(session: CompressionSession, recipe: Any, base: Any, scheme: Any,
                                base_notes: Sequence[str]) -> Artifact:
    """Annotates ``base`` (a tf_keras model), fine-tunes it quantization-aware and writes int8 TFLite."""
    result = session.bridge()
    custom_objects = {**session.config.custom_objects, **result.custom_objects}
    plan = quantization_aware.plan_annotation(base)
    if not plan.annotate:
        raise TfdeployError(f"No layer of model {base.name!r} can be quantization-aware trained by TFMOT "
                            f"({plan.note()}). Use a post-training recipe (ptq-int8, ptq-dynamic).")
    session.progress(f"  checking that the quantized model converts ({len(plan.annotate)} layers annotated)")
    model, notes = _preflight(session, base, scheme, custom_objects, plan)
    # The quantizers learn ranges of the trained activations: batch statistics of small fine-tune batches
    # would move them (measured on the example: QAT drop 2.3 points with BatchNormalization training, 0.7 frozen).
    session.trainer.fine_tune(model, recipe.value, freeze_batch_norm=True)
    conversion = session.converter.convert(model, TfliteMode.QAT)
    left = plan.note()
    return session.write_tflite(recipe, conversion, model, [*base_notes, *([left] if left else []), *notes])


def qat(session: CompressionSession, recipe: Any) -> Artifact:
    with bridge_scope(session):
        base = bridge.clone_with_weights(session.bridge().model)
    return quantization_aware_training(session, recipe, base, None, [])


QAT = RecipeSpec("qat", "TFMOT quantization-aware training, converted to int8 TFLite", OutputKind.TFLITE, run=qat,
                 needs_data=True, trains=True, tf_keras=True,
                 auto=AutoHint(priority=4, expected_size=0.30, expected_latency=0.010))
