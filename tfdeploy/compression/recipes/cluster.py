"""Clustering recipes: ``cluster`` (TFMOT weight clustering + fine-tune) and ``cluster-qat``
(cluster-preserving QAT). Clustering runs on the flat tf_keras copy; the clustered weights are
copied back into the user's own model, so the ``.keras`` file keeps its structure.

Example:
    >>> from tfdeploy.compression.recipes import Recipe
    >>> Recipe.CLUSTER.spec.output.value
    '.keras'
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tfdeploy import backend
from tfdeploy.compression import bridge, pruning
from tfdeploy.compression.recipes.qat import bridge_scope, quantization_aware_training
from tfdeploy.compression.registry import Artifact, AutoHint, OutputKind, RecipeSpec
from tfdeploy.measure.predictors import keras_predictor

if TYPE_CHECKING:
    from tfdeploy.compression.session import CompressionSession


def _cluster_wrapper(clusters: int, skipped: list[str]) -> Any:
    """The ``clone_model`` function that wraps each clusterable layer (names the skipped ones)."""
    tk, clustering = backend.tf_keras(), backend.tfmot().clustering.keras
    registry = backend.tfmot_internal("cluster_registry").ClusteringRegistry

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

    return wrap


def _cluster(session: CompressionSession) -> tuple[Any, Any, list[str]]:
    result = session.bridge()
    clusters, skipped = session.config.clusters, []
    session.progress(f"  clustering weights into {clusters} clusters per layer")
    with bridge_scope(session):
        model = backend.tf_keras().models.clone_model(bridge.clone_with_weights(result.model),
                                                      clone_function=_cluster_wrapper(clusters, skipped))
    session.trainer.fine_tune(model, "cluster")
    stripped = backend.tfmot().clustering.keras.strip_clustering(model)
    target = session.fresh_model()
    bridge.copy_weights_back(result, stripped, target)
    notes = [f"{clusters} unique values per clustered kernel; like pruning, gzip shrinks, raw does not"]
    if skipped:
        notes.append("not clustered (not supported by TFMOT clustering): " + ", ".join(skipped))
    return target, stripped, notes


def clustered(session: CompressionSession) -> tuple[Any, Any, list[str]]:
    """The clustered model (user's structure), its stripped tf_keras twin and notes (made once per session)."""
    return session.stage("cluster", lambda: _cluster(session))


def cluster(session: CompressionSession, recipe: Any) -> Artifact:
    model, _, notes = clustered(session)
    return Artifact(session.write_keras(recipe, model), keras_predictor(model, recipe.value), model, notes)


def cluster_qat(session: CompressionSession, recipe: Any) -> Artifact:
    _, stripped, notes = clustered(session)
    scheme = backend.tfmot_internal("cluster_preserve").Default8BitClusterPreserveQuantizeScheme(preserve_sparsity=False)
    return quantization_aware_training(session, recipe, stripped, scheme, notes[1:])


CLUSTER = RecipeSpec("cluster", "TFMOT weight clustering + fine-tune + strip_clustering", OutputKind.KERAS,
                     run=cluster, needs_data=True, trains=True, tf_keras=True)
CLUSTER_QAT = RecipeSpec("cluster-qat", "cluster, then cluster-preserving QAT, int8 TFLite", OutputKind.TFLITE,
                         run=cluster_qat, needs_data=True, trains=True, tf_keras=True,
                         auto=AutoHint(priority=3, expected_size=0.22, expected_latency=0.010))
