"""``strip``: the model saved again without optimizer state.

Example:
    >>> from tfdeploy.compression.recipes import Recipe
    >>> Recipe.STRIP.spec.needs_data
    False
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tfdeploy.compression.registry import Artifact, OutputKind, RecipeSpec
from tfdeploy.measure.predictors import keras_predictor
from tfdeploy.model.loading import optimizer_state_bytes, save_model
from tfdeploy.report import format_bytes

if TYPE_CHECKING:
    from tfdeploy.compression.session import CompressionSession


def strip(session: CompressionSession, recipe: Any) -> Artifact:
    session.require_keras("strip (saving without optimizer state)")
    target = session.target(recipe, session.keras_suffix)
    save_model(session.loaded.model, target, include_optimizer=False, overwrite=True)
    weighed = optimizer_state_bytes(session.loaded.path)
    size = session.loaded.path.stat().st_size
    note = (f"optimizer state removed: {format_bytes(weighed)} of variables, {100 * weighed / size:.0f} % of the file"
            if weighed else "the file had no optimizer state")
    return Artifact(target, keras_predictor(session.loaded.model, recipe.value), session.loaded.model, [note])


STRIP = RecipeSpec("strip", "save without optimizer state", OutputKind.KERAS, run=strip)
