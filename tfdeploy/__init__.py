"""tfdeploy: take a trained Keras/TensorFlow model to a serving-ready, verified artifact.

Importing ``tfdeploy`` is cheap: TensorFlow, Keras and TFMOT are imported only when a
function that needs them is called (see :mod:`tfdeploy.backend`).

Example:
    >>> import tfdeploy
    >>> tfdeploy.configure_gpus()                       # doctest: +SKIP
    >>> loaded = tfdeploy.load_model("model.keras")     # doctest: +SKIP
"""

from __future__ import annotations

from tfdeploy._lazy import install_moved_module_finder, lazy_exports

__version__ = "0.1.0"

# Public name -> module that defines it, imported on first use.
_EXPORTS = {
    "TfdeployError": "tfdeploy.errors",
    "configure_gpus": "tfdeploy.runtime",
    "seed_everything": "tfdeploy.runtime",
    "environment_report": "tfdeploy.runtime",
    "load_model": "tfdeploy.model.loading",
    "save_model": "tfdeploy.model.loading",
    "LoadedModel": "tfdeploy.model.loading",
    "load_data": "tfdeploy.model.data",
    "Dataset": "tfdeploy.model.data",
    "compress": "tfdeploy.compression",
    "CompressConfig": "tfdeploy.compression",
    "Recipe": "tfdeploy.compression",
    "Int8Granularity": "tfdeploy.compression",
    "IoDtype": "tfdeploy.compression",
    "VersionPolicy": "tfdeploy.serving",
    "export": "tfdeploy.serving.export",
    "ExportConfig": "tfdeploy.serving.export",
    "write_warmup": "tfdeploy.serving.warmup",
    "read_warmup": "tfdeploy.serving.warmup",
    "verify": "tfdeploy.serving.verification",
    "ServingConfig": "tfdeploy.serving.config",
    "ServedModel": "tfdeploy.serving.config",
    "write_serving_config": "tfdeploy.serving.config",
    "bench": "tfdeploy.measure.benchmark",
    "BenchConfig": "tfdeploy.measure.benchmark",
    "rehearse_hot_swap": "tfdeploy.measure.hot_swap",
    "HotSwapConfig": "tfdeploy.measure.hot_swap",
    "check_determinism": "tfdeploy.measure.checks",
    "check_parity": "tfdeploy.measure.checks",
    "deploy": "tfdeploy.pipeline",
    "DeployConfig": "tfdeploy.pipeline",
    "examples": "module:tfdeploy.model.examples",
}

__all__ = sorted(_EXPORTS) + ["__version__"]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
install_moved_module_finder()
