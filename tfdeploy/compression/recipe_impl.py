"""What each compression recipe does, given a :class:`~tfdeploy.compression.session.CompressionSession`.

:data:`RECIPES` maps every :class:`~tfdeploy.compression.choices.Recipe` to a function ``(session, recipe) ->
Artifact``. Intermediate models are cached in the session: ``prune-int8`` and ``prune-qat`` reuse
``prune``, ``cluster-qat`` reuses ``cluster``.

Example:
    >>> artifact = RECIPES[Recipe.PTQ_INT8](session, Recipe.PTQ_INT8)     # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from tfdeploy import backend
from tfdeploy.compression import bridge
from tfdeploy.compression import pruning
from tfdeploy.compression import quantization_aware
from tfdeploy.compression.session import Artifact, CompressionSession, keras_suffix
from tfdeploy.errors import TfdeployError
from tfdeploy.io_spec import Arrays
from tfdeploy.model.loading import save_model
from tfdeploy.measure.predictors import keras_predictor
from tfdeploy.compression.choices import Recipe
from tfdeploy.compression.tflite import TfliteMode

PREFLIGHT_ROUNDS = 3


def strip(session: CompressionSession, recipe: Recipe) -> Artifact:
    session.require_keras("strip (saving without optimizer state)")
    target = session.target(recipe, keras_suffix(session.loaded))
    save_model(session.loaded.model, target, include_optimizer=False, overwrite=True)
    note = "optimizer state removed" if session.had_optimizer_state() else "the file had no optimizer state"
    return Artifact(target, keras_predictor(session.loaded.model, recipe.value), session.loaded.model, [note])


# --- pruning (masks, no TFMOT wrappers) -----------------------------------------------------------

def _prune(session: CompressionSession) -> tuple[Any, list[str]]:
    session.require_keras("prune")
    config = session.config
    model = session.fresh_model()
    structured = config.prune_structure == "2:4"
    targets, skipped = pruning.prunable_weights(model, structured)
    if not targets:
        raise TfdeployError(f"Model {model.name!r} has no kernels to prune (no Dense, convolution, recurrent or "
                            f"embedding weights). Received: path={str(session.loaded.path)!r}")
    total = session.steps()
    end_step = max(1, int(total * 0.7))  # reach the target, then fine-tune at it
    schedule = pruning.Schedule(final=config.target_sparsity, begin_step=0, end_step=end_step,
                                frequency=max(1, min(100, end_step // 10)))
    session.progress(f"  pruning {len(targets)} kernels to {'2:4' if structured else config.target_sparsity} sparsity: "
                     f"{total} steps, target reached at step {end_step}, masks updated every {schedule.frequency} steps")
    callback = pruning.pruning_callback(backend.keras_module_for(model), targets, schedule, structured)
    session.fine_tune(model, "prune", callbacks=[callback])
    kinds: dict[str, int] = {}
    for target in targets:
        kinds[target.layer_type] = kinds.get(target.layer_type, 0) + 1
    notes = ["pruning zeroes weights but keeps them: the raw file does not shrink, the gzip size does",
             "pruned kernels by layer type: " + ", ".join(f"{k} ×{n}" for k, n in sorted(kinds.items()))]
    if structured:
        notes.append("2:4 structured sparsity along each kernel's input dimension")
    if skipped:
        notes.append("not pruned: " + "; ".join(skipped))
    return model, notes


def pruned(session: CompressionSession) -> tuple[Any, list[str]]:
    return session.stage("prune", lambda: _prune(session))


def prune(session: CompressionSession, recipe: Recipe) -> Artifact:
    model, notes = pruned(session)
    return Artifact(session.write_keras(recipe, model), keras_predictor(model, recipe.value), model, notes)


# --- clustering (TFMOT on the flat tf_keras copy) -------------------------------------------------

def _scope(session: CompressionSession, result: bridge.BridgeResult) -> Any:
    return backend.tf_keras().utils.custom_object_scope({**session.config.custom_objects, **result.custom_objects})


def _cluster(session: CompressionSession) -> tuple[Any, Any, list[str]]:
    result = session.bridge()
    tk, clustering = backend.tf_keras(), backend.tfmot().clustering.keras
    registry = backend.tfmot_internal("cluster_registry").ClusteringRegistry
    clusters = session.config.clusters
    skipped: list[str] = []

    def wrap(layer: Any) -> Any:
        if not layer.weights or isinstance(layer, (tk.layers.InputLayer, tk.layers.BatchNormalization)):
            return layer
        names = [pruning.weight_short_name(w) for w in layer.weights]
        if not registry.supports(layer) or not any(n in pruning.PRUNABLE_WEIGHTS for n in names):
            skipped.append(f"{layer.name} ({type(layer).__name__})")
            return layer
        if sum(int(w.shape.num_elements()) for w in layer.weights if "kernel" in w.name) <= clusters:
            return layer
        return clustering.cluster_weights(layer, number_of_clusters=clusters,
                                          cluster_centroids_init=clustering.CentroidInitialization.KMEANS_PLUS_PLUS)

    session.progress(f"  clustering weights into {clusters} clusters per layer")
    with _scope(session, result):
        model = tk.models.clone_model(bridge.clone_with_weights(result.model), clone_function=wrap)
    session.fine_tune(model, "cluster")
    stripped = clustering.strip_clustering(model)
    target = session.fresh_model()
    bridge.copy_weights_back(result, stripped, target)
    notes = [f"{clusters} unique values per clustered kernel; like pruning, gzip shrinks, raw does not"]
    if skipped:
        notes.append("not clustered (not supported by TFMOT clustering): " + ", ".join(skipped))
    return target, stripped, notes


def clustered(session: CompressionSession) -> tuple[Any, Any, list[str]]:
    return session.stage("cluster", lambda: _cluster(session))


def cluster(session: CompressionSession, recipe: Recipe) -> Artifact:
    model, _, notes = clustered(session)
    return Artifact(session.write_keras(recipe, model), keras_predictor(model, recipe.value), model, notes)


# --- quantization-aware training -----------------------------------------------------------------

def _preflight(session: CompressionSession, base: Any, scheme: Any, custom_objects: dict[str, Any],
               plan: quantization_aware.AnnotationPlan) -> tuple[Any, list[str]]:
    """The quantize-applied model, checked to convert before any fine-tuning (see quantization_aware)."""
    notes = []
    for _ in range(PREFLIGHT_ROUNDS):
        model = quantization_aware.apply(base, plan, scheme, custom_objects)
        try:
            session.convert(model, TfliteMode.QAT)
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


def _qat(session: CompressionSession, recipe: Recipe, base: Any, scheme: Any, base_notes: Sequence[str]) -> Artifact:
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
    session.fine_tune(model, recipe.value, freeze_batch_norm=True)
    conversion = session.convert(model, TfliteMode.QAT)
    left = plan.note()
    return session.write_tflite(recipe, conversion, model, [*base_notes, *([left] if left else []), *notes])


def qat(session: CompressionSession, recipe: Recipe) -> Artifact:
    result = session.bridge()
    with _scope(session, result):
        base = bridge.clone_with_weights(result.model)
    return _qat(session, recipe, base, None, [])


def prune_qat(session: CompressionSession, recipe: Recipe) -> Artifact:
    model, notes = pruned(session)
    session.bridge()  # the original's copy first: its custom objects serve the pruned copy too
    base = bridge.to_tf_keras(model, session.x_eval).model
    scheme = backend.tfmot_internal("prune_preserve").Default8BitPrunePreserveQuantizeScheme()
    return _qat(session, recipe, base, scheme, notes[1:])


def cluster_qat(session: CompressionSession, recipe: Recipe) -> Artifact:
    _, stripped, notes = clustered(session)
    scheme = backend.tfmot_internal("cluster_preserve").Default8BitClusterPreserveQuantizeScheme(preserve_sparsity=False)
    return _qat(session, recipe, stripped, scheme, notes[1:])


# --- post-training (TFLite converter) ------------------------------------------------------------

def _ptq(session: CompressionSession, recipe: Recipe, mode: TfliteMode, representative: Arrays | None = None,
         model: Any = None, notes: Sequence[str] = ()) -> Artifact:
    model = session.loaded.model if model is None else model
    conversion = session.convert(model, mode, representative)
    notes = list(notes)
    if representative is not None:
        count = len(next(iter(representative.values())))
        notes.append(f"calibrated on {count} samples, {session.config.int8_granularity.value} scales")
    return session.write_tflite(recipe, conversion, model if session.is_keras else None, notes)


def prune_int8(session: CompressionSession, recipe: Recipe) -> Artifact:
    model, notes = pruned(session)
    return _ptq(session, recipe, TfliteMode.INT8, session.representative(), model=model, notes=notes[1:])


RECIPES: dict[Recipe, Callable[[CompressionSession, Recipe], Artifact]] = {
    Recipe.STRIP: strip,
    Recipe.PRUNE: prune,
    Recipe.CLUSTER: cluster,
    Recipe.QAT: qat,
    Recipe.PRUNE_INT8: prune_int8,
    Recipe.PRUNE_QAT: prune_qat,
    Recipe.CLUSTER_QAT: cluster_qat,
    Recipe.TFLITE: lambda session, recipe: _ptq(session, recipe, TfliteMode.FLOAT32),
    Recipe.PTQ_DYNAMIC: lambda session, recipe: _ptq(session, recipe, TfliteMode.DYNAMIC),
    Recipe.PTQ_FLOAT16: lambda session, recipe: _ptq(session, recipe, TfliteMode.FLOAT16),
    Recipe.PTQ_INT8: lambda session, recipe: _ptq(session, recipe, TfliteMode.INT8, session.representative()),
}
