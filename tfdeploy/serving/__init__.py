"""Steps 3–5, serving: the TF Serving version directory, its warmup file, the server's configuration,
and verification of the result the way TF Serving will load it.

Modules: :mod:`~tfdeploy.serving.export` (numbered versions published atomically),
:mod:`~tfdeploy.serving.versions` (the numbered version
directories), :mod:`~tfdeploy.serving.signature` (clean signatures), :mod:`~tfdeploy.serving.warmup`
(``assets.extra/tf_serving_warmup_requests``: write, read, replay), :mod:`~tfdeploy.serving.config`
(one builder per generated server file), :mod:`~tfdeploy.serving.schemas` (TF Serving's protobuf
schemas) and :mod:`~tfdeploy.serving.verification` (``verify``).

Example:
    >>> from tfdeploy import ExportConfig, export
    >>> report = export(ExportConfig("model.keras", "models/clf"))   # doctest: +SKIP
"""

from tfdeploy._lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(__name__, {
    "ExportConfig": "tfdeploy.serving.export",
    "write_warmup": "tfdeploy.serving.warmup", "read_warmup": "tfdeploy.serving.warmup",
    "verify": "tfdeploy.serving.verification", "ServingConfig": "tfdeploy.serving.config",
    "ServedModel": "tfdeploy.serving.config", "VersionPolicy": "tfdeploy.serving.config",
    "write_serving_config": "tfdeploy.serving.config",
})
# ``export`` is not re-exported here: ``tfdeploy.serving.export`` is the module; the function is ``tfdeploy.export``.
