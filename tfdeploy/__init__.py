"""tfdeploy: take a trained Keras/TensorFlow model to a serving-ready, verified artifact.

Importing ``tfdeploy`` is cheap: TensorFlow, Keras and TFMOT are imported only when a
function that needs them is called (see :mod:`tfdeploy.backend`).

Example:
    >>> import tfdeploy
    >>> tfdeploy.configure_gpus()                       # doctest: +SKIP
    >>> loaded = tfdeploy.load_model("model.keras")     # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# Public name -> module that defines it. Resolved lazily by ``__getattr__``.
_EXPORTS = {
    "TfdeployError": "tfdeploy.errors",
    "configure_gpus": "tfdeploy.runtime",
    "seed_everything": "tfdeploy.runtime",
    "environment_report": "tfdeploy.runtime",
    "load_model": "tfdeploy.model",
    "save_model": "tfdeploy.model",
    "LoadedModel": "tfdeploy.model",
    "load_data": "tfdeploy.data",
    "Dataset": "tfdeploy.data",
    "compress": "tfdeploy.compress",
    "CompressConfig": "tfdeploy.compress",
    "Recipe": "tfdeploy.recipes",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'tfdeploy' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return __all__
