"""Pruning recipes: ``prune`` (masks on TFMOT's schedule, then fine-tune), and pruning followed by
int8 (``prune-int8``, post-training; ``prune-qat``, pruning-preserving QAT).

Pruning uses tfdeploy's own masks (:mod:`tfdeploy.compression.pruning`) on the user's model, so it
works on either Keras, nested models, recurrent and depthwise layers (``docs/compress.md``).

Example:
    >>> from tfdeploy.compression.recipes import Recipe
    >>> Recipe.PRUNE_INT8.spec.needs_data
    True
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tfdeploy import backend
from tfdeploy.compression import bridge, pruning
from tfdeploy.compression.recipes.post_training import quantize_post_training
from tfdeploy.compression.recipes.qat import quantization_aware_training
from tfdeploy.compression.registry import Artifact, AutoHint, OutputKind, RecipeSpec
from tfdeploy.compression.tflite import TfliteMode
from tfdeploy.errors import TfdeployError
from tfdeploy.measure.predictors import keras_predictor

if TYPE_CHECKING:
    from tfdeploy.compression.session import CompressionSession


def _prune(session: CompressionSession) -> tuple[Any, list[str]]:
    session.require_keras("prune")
    config = session.config
    model = session.fresh_model()
    structured = config.prune_structure == "2:4"
    targets, skipped = pruning.prunable_weights(model, structured)
    if not targets:
        raise TfdeployError(f"Model {model.name!r} has no kernels to prune (no Dense, convolution, recurrent or "
                            f"embedding weights). Received: path={str(session.loaded.path)!r}")
    total = session.trainer.steps()
    end_step = max(1, int(total * 0.7))  # reach the target, then fine-tune at it
    schedule = pruning.Schedule(final=config.target_sparsity, begin_step=0, end_step=end_step,
                                frequency=max(1, min(100, end_step // 10)))
    session.progress(f"  pruning {len(targets)} kernels to {'2:4' if structured else config.target_sparsity} sparsity: "
                     f"{total} steps, target reached at step {end_step}, masks updated every {schedule.frequency} steps")
    callback = pruning.pruning_callback(backend.keras_module_for(model), targets, schedule, structured)
    session.trainer.fine_tune(model, "prune", callbacks=[callback])
    return model, _notes(targets, skipped, structured)


def _notes(targets: list[Any], skipped: list[str], structured: bool) -> list[str]:
    kinds: dict[str, int] = {}
    for target in targets:
        kinds[target.layer_type] = kinds.get(target.layer_type, 0) + 1
    notes = ["pruning zeroes weights but keeps them: the raw file does not shrink, the gzip size does",
             "pruned kernels by layer type: " + ", ".join(f"{k} ×{n}" for k, n in sorted(kinds.items()))]
    if structured:
        notes.append("2:4 structured sparsity along each kernel's input dimension")
    if skipped:
        notes.append("not pruned: " + "; ".join(skipped))
    return notes


def pruned(session: CompressionSession) -> tuple[Any, list[str]]:
    """The pruned, fine-tuned model and its notes (made once per session)."""
    return session.stage("prune", lambda: _prune(session))


def prune(session: CompressionSession, recipe: Any) -> Artifact:
    model, notes = pruned(session)
    return Artifact(session.write_keras(recipe, model), keras_predictor(model, recipe.value), model, notes)


def prune_int8(session: CompressionSession, recipe: Any) -> Artifact:
    model, notes = pruned(session)
    return quantize_post_training(session, recipe, TfliteMode.INT8, session.representative(), model=model,
                                  notes=notes[1:])


def prune_qat(session: CompressionSession, recipe: Any) -> Artifact:
    model, notes = pruned(session)
    session.bridge()  # the original's copy first: its custom objects serve the pruned copy too
    base = bridge.to_tf_keras(model, session.x_eval).model
    scheme = backend.tfmot_internal("prune_preserve").Default8BitPrunePreserveQuantizeScheme()
    return quantization_aware_training(session, recipe, base, scheme, notes[1:])


PRUNE = RecipeSpec("prune", "magnitude pruning with masks on TFMOT's schedule + fine-tune", OutputKind.KERAS,
                   run=prune, needs_data=True, trains=True)
PRUNE_INT8 = RecipeSpec("prune-int8", "prune, then post-training full-integer quantization", OutputKind.TFLITE,
                        run=prune_int8, needs_data=True, trains=True,
                        auto=AutoHint(priority=2, expected_size=0.18, expected_latency=0.010))
PRUNE_QAT = RecipeSpec("prune-qat", "prune, then pruning-preserving QAT, int8 TFLite", OutputKind.TFLITE,
                       run=prune_qat, needs_data=True, trains=True, tf_keras=True)
