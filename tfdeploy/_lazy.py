"""Lazy re-exports and the old (flat) module paths, kept for one release.

Packages re-export their public names without importing the modules that define them until a
name is used, so ``import tfdeploy`` and ``tfdeploy --help`` stay cheap and packages never import
each other at import time.

Example:
    >>> __getattr__, __dir__ = lazy_exports(__name__, {"compress": "tfdeploy.compression.session"})
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import types
import warnings
from typing import Any, Callable, Mapping, Sequence

# Modules of tfdeploy 0.1's flat layout -> where their contents live now (docs/architecture.md).
MOVED: dict[str, tuple[str, ...]] = {
    "tfdeploy.auto": ("tfdeploy.compression.auto",),
    "tfdeploy.benchmark": ("tfdeploy.measure.benchmark", "tfdeploy.measure.hot_swap", "tfdeploy.measure.timing"),
    "tfdeploy.bridge": ("tfdeploy.compression.bridge",),
    "tfdeploy.checks": ("tfdeploy.measure.checks",),
    "tfdeploy.coldstart": ("tfdeploy.measure.coldstart", "tfdeploy.serving.warmup"),
    "tfdeploy.data": ("tfdeploy.model.data",),
    "tfdeploy.examples": ("tfdeploy.model.examples",),
    "tfdeploy.finetune": ("tfdeploy.compression.finetune",),
    "tfdeploy.predictors": ("tfdeploy.measure.predictors",),
    "tfdeploy.pruning": ("tfdeploy.compression.pruning",),
    "tfdeploy.quantization_aware": ("tfdeploy.compression.quantization_aware",),
    "tfdeploy.recipe_impl": ("tfdeploy.compression.recipes",),
    "tfdeploy.recipes": ("tfdeploy.compression.recipes", "tfdeploy.compression.registry", "tfdeploy.compression.tflite",
                         "tfdeploy.compression.auto", "tfdeploy.serving.config", "tfdeploy.pipeline"),
    "tfdeploy.serving_config": ("tfdeploy.serving.config",),
    "tfdeploy.serving_export": ("tfdeploy.serving.export",),
    "tfdeploy.serving_schemas": ("tfdeploy.serving.schemas",),
    "tfdeploy.signature": ("tfdeploy.serving.signature",),
    "tfdeploy.tflite": ("tfdeploy.compression.tflite",),
    "tfdeploy.verification": ("tfdeploy.serving.verification",),
    "tfdeploy.warmup": ("tfdeploy.serving.warmup",),
}


def lazy_exports(package: str, exports: Mapping[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package`` that import each name's module on first use.

    Args:
        package: The package's ``__name__``.
        exports: Public name -> module defining it, or ``"module:NAME"`` for a public module itself.
    """

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        if module.startswith("module:"):
            return importlib.import_module(module[len("module:"):])
        return getattr(importlib.import_module(module), name)

    def __dir__() -> list[str]:
        return sorted(exports)

    return __getattr__, __dir__


class _MovedModuleFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports an old module path as a module holding the names of its new homes, with a warning."""

    def find_spec(self, fullname: str, path: Sequence[str] | None, target: Any = None) -> Any:
        if fullname not in MOVED:
            return None
        return importlib.machinery.ModuleSpec(fullname, self)

    def create_module(self, spec: Any) -> types.ModuleType:
        return types.ModuleType(spec.name)

    def exec_module(self, module: types.ModuleType) -> None:
        targets = MOVED[module.__name__]
        warnings.warn(f"{module.__name__} moved to {' and '.join(targets)}; the old path will be removed in "
                      "tfdeploy 0.3 (docs/architecture.md).", DeprecationWarning, stacklevel=3)
        for target in reversed(targets):
            new = importlib.import_module(target)
            module.__dict__.update({k: v for k, v in vars(new).items() if not k.startswith("__")})
        module.__doc__ = f"Deprecated alias of {', '.join(targets)}."


def install_moved_module_finder() -> None:
    """Lets ``import tfdeploy.serving_export`` and the other old paths keep working for one release."""
    if not any(isinstance(finder, _MovedModuleFinder) for finder in sys.meta_path):
        sys.meta_path.append(_MovedModuleFinder())
