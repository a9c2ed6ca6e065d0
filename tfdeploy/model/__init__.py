"""Step 1, the model: load a user's model and its data, and the built-in example.

Modules: :mod:`~tfdeploy.model.loading` (Keras 3, tf_keras, SavedModel; sizes; saving),
:mod:`~tfdeploy.model.data` (``.npz``/image directories bound to the model's named inputs and
outputs), :mod:`~tfdeploy.model.examples` (the shipped MobileNetV2 on Fashion-MNIST).

Example:
    >>> from tfdeploy.model import load_model
    >>> loaded = load_model("model.keras")      # doctest: +SKIP
"""

from tfdeploy._lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(__name__, {
    "load_model": "tfdeploy.model.loading", "save_model": "tfdeploy.model.loading",
    "LoadedModel": "tfdeploy.model.loading", "ModelFormat": "tfdeploy.model.loading",
    "artifact_size": "tfdeploy.model.loading", "has_optimizer_state": "tfdeploy.model.loading",
    "parse_custom_objects": "tfdeploy.model.loading", "load_data": "tfdeploy.model.data",
    "Dataset": "tfdeploy.model.data", "examples": "module:tfdeploy.model.examples",
})
