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
    "compress": "tfdeploy.compression",
    "CompressConfig": "tfdeploy.compression",
    "Recipe": "tfdeploy.recipes",
    "Int8Granularity": "tfdeploy.recipes",
    "IoDtype": "tfdeploy.recipes",
    "VersionPolicy": "tfdeploy.recipes",
    "export": "tfdeploy.serving_export",
    "ExportConfig": "tfdeploy.serving_export",
    "write_warmup": "tfdeploy.warmup",
    "read_warmup": "tfdeploy.warmup",
    "verify": "tfdeploy.verification",
    "ServingConfig": "tfdeploy.serving_config",
    "ServedModel": "tfdeploy.serving_config",
    "write_serving_config": "tfdeploy.serving_config",
    "bench": "tfdeploy.benchmark",
    "BenchConfig": "tfdeploy.benchmark",
    "hot_swap": "tfdeploy.benchmark",
    "plot_hot_swap": "tfdeploy.benchmark",
    "check_determinism": "tfdeploy.checks",
    "check_parity": "tfdeploy.checks",
    "deploy": "tfdeploy.pipeline",
    "DeployConfig": "tfdeploy.pipeline",
    "examples": "tfdeploy.examples",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'tfdeploy' has no attribute {name!r}")
    if module == f"tfdeploy.{name}":  # a public submodule
        return importlib.import_module(module)
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return __all__
