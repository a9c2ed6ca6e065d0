"""Step 2, compression: recipes that make a model smaller, measured against the original.

Modules: :mod:`~tfdeploy.compression.config` (options and choices),
:mod:`~tfdeploy.compression.recipes` (one module per recipe family, registered in
:mod:`~tfdeploy.compression.registry`), :mod:`~tfdeploy.compression.session` (one loaded model
running recipes), :mod:`~tfdeploy.compression.metrics` (what each variant bought),
:mod:`~tfdeploy.compression.finetune`, :mod:`~tfdeploy.compression.bridge` and
:mod:`~tfdeploy.compression.tflite` (the units recipes are built from) and
:mod:`~tfdeploy.compression.auto` (the accuracy-aware search).

Example:
    >>> from tfdeploy.compression import CompressConfig, compress
    >>> report = compress(CompressConfig("model.keras", "out", recipes="ptq-dynamic,ptq-float16"))  # doctest: +SKIP
"""

from tfdeploy._lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(__name__, {
    "compress": "tfdeploy.compression.session", "CompressionSession": "tfdeploy.compression.session",
    "CompressConfig": "tfdeploy.compression.config", "CompressionReport": "tfdeploy.compression.report",
    "VariantReport": "tfdeploy.compression.report", "Recipe": "tfdeploy.compression.recipes",
    "REGISTRY": "tfdeploy.compression.recipes", "RecipeSpec": "tfdeploy.compression.registry",
    "IoDtype": "tfdeploy.compression.tflite", "Int8Granularity": "tfdeploy.compression.tflite",
    "Objective": "tfdeploy.compression.auto", "AutoConfig": "tfdeploy.compression.auto",
    "auto_compress": "tfdeploy.compression.auto",
})
