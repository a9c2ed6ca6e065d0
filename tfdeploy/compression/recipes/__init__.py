"""The registered compression recipes, one module per family, and the :class:`Recipe` enum made from them.

To add a recipe, write its module (a ``run(session, recipe) -> Artifact`` function and a
:class:`~tfdeploy.compression.registry.RecipeSpec`) and add the spec to :data:`REGISTRY` below; the
position in the list is its place in ``--recipe all`` (``docs/architecture.md`` shows a real diff).

Example:
    >>> Recipe("ptq-int8") is Recipe.PTQ_INT8
    True
    >>> Recipe.PTQ_INT8.spec.needs_data
    True
"""

from __future__ import annotations

from tfdeploy.compression.recipes import (cluster, cluster_int8, distill, embedding_int8, litert_quantizer,
                                         post_training, prune, qat, strip)
from tfdeploy.compression.registry import RecipeRegistry, recipe_enum

REGISTRY = RecipeRegistry([
    strip.STRIP,
    prune.PRUNE,
    cluster.CLUSTER,
    qat.QAT,
    prune.PRUNE_INT8,
    prune.PRUNE_QAT,
    cluster.CLUSTER_QAT,
    cluster_int8.CLUSTER_INT8,
    post_training.TFLITE,
    post_training.PTQ_DYNAMIC,
    post_training.PTQ_FLOAT16,
    post_training.PTQ_INT8,
    litert_quantizer.PTQ_INT4_WEIGHTS,
    litert_quantizer.PTQ_INT16X8,
    litert_quantizer.PTQ_MIXED,
    distill.DISTILL,
    embedding_int8.EMBEDDING_INT8,
])

Recipe = recipe_enum(REGISTRY)
