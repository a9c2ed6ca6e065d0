"""``embedding-int8``: embedding tables stored as int8 with one scale per row, dequantized in the graph.

For the SavedModel that TF Serving serves, not for TFLite: Keras 3's own int8 ``Embedding``
(``model.quantize("int8")`` restricted to ``Embedding`` layers) keeps each table as int8 codes
and a float32 scale per row, and its lookup gathers the rows and multiplies them back to float.
A version exported from the result reads and holds about a quarter of the table bytes, so it
loads faster and a hot update needs less headroom; ``compress`` measures what the model's own
metric (AUC and logloss for a ranker) lost. Dense layers stay float.

Example:
    >>> from tfdeploy.compression.recipes import Recipe
    >>> Recipe.EMBEDDING_INT8.spec.output.value
    '.keras'
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tfdeploy import backend
from tfdeploy.compression.registry import Artifact, OutputKind, RecipeSpec
from tfdeploy.errors import TfdeployError
from tfdeploy.measure.predictors import keras_predictor
from tfdeploy.model.loading import save_model

if TYPE_CHECKING:
    from tfdeploy.compression.session import CompressionSession


def embedding_int8(session: CompressionSession, recipe: Any) -> Artifact:
    session.require_keras("embedding-int8")
    if session.loaded.flavour is not backend.KerasFlavour.KERAS3:
        raise TfdeployError("embedding-int8 uses Keras 3's int8 Embedding; this is a tf_keras model. Re-save it with "
                            f"Keras 3, or use ptq-dynamic for TFLite. Received: path={str(session.loaded.path)!r}")
    model = session.fresh_model()
    keras = backend.keras3()
    tables = [layer for _, layer in backend.leaf_layers(model) if isinstance(layer, keras.layers.Embedding)]
    if not tables:
        raise TfdeployError(f"Model {model.name!r} has no Embedding layer to store in int8. "
                            f"Received: path={str(session.loaded.path)!r}")
    model.quantize("int8", filters=lambda layer: isinstance(layer, keras.layers.Embedding))
    target = session.target(recipe, ".keras")
    save_model(model, target, include_optimizer=False, overwrite=True)
    rows = sum(int(layer.input_dim) for layer in tables)
    note = (f"{len(tables)} Embedding table(s), {rows:,} rows: int8 codes with a float32 scale per row, "
            "dequantized in the graph; serve the SavedModel `tfdeploy export` makes from this file")
    return Artifact(target, keras_predictor(model, recipe.value), model, [note])


EMBEDDING_INT8 = RecipeSpec("embedding-int8", "embedding tables in int8 with per-row scales, for the SavedModel "
                            "TF Serving serves", OutputKind.KERAS, run=embedding_int8)
