"""``cluster-int8``: weight clustering, then post-training full-integer quantization.

Clustering leaves at most ``clusters`` distinct values per kernel; int8 quantization maps each to
one int8 code per output channel, so the ``.tflite`` keeps the few distinct values and its gzip
size drops well below plain int8, without quantization-aware training.

Example:
    >>> from tfdeploy.compression.recipes import Recipe
    >>> Recipe.CLUSTER_INT8.spec.output.value
    '.tflite'
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tfdeploy.compression.recipes.cluster import clustered
from tfdeploy.compression.recipes.post_training import quantize_post_training
from tfdeploy.compression.registry import Artifact, OutputKind, RecipeSpec
from tfdeploy.compression.tflite import TfliteMode

if TYPE_CHECKING:
    from tfdeploy.compression.session import CompressionSession


def cluster_int8(session: CompressionSession, recipe: Any) -> Artifact:
    model, _, notes = clustered(session)
    clusters = session.config.clusters
    return quantize_post_training(session, recipe, TfliteMode.INT8, session.representative(), model=model,
                                  notes=[f"at most {clusters} distinct int8 values per clustered kernel's channel",
                                         *notes[1:]])


CLUSTER_INT8 = RecipeSpec("cluster-int8", "cluster, then post-training full-integer quantization", OutputKind.TFLITE,
                          run=cluster_int8, needs_data=True, trains=True, tf_keras=True)
