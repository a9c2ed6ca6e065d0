"""Compress a model with one or more recipes and measure what each bought.

Example:
    >>> from tfdeploy import CompressConfig, compress
    >>> report = compress(CompressConfig(model="trained.keras", out_dir="out"))   # doctest: +SKIP
    >>> print(report)
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from tfdeploy.errors import TfdeployError
from tfdeploy.model import LoadedModel, ModelFormat, artifact_size, count_params, load_model, save_model
from tfdeploy.recipes import Recipe
from tfdeploy.report import Report, format_bytes, format_table

ProgressFn = Callable[[str], None]


def _no_progress(message: str) -> None:
    del message


@dataclasses.dataclass
class CompressConfig:
    """Options of :func:`compress`.

    Attributes:
        model: The model file or SavedModel directory to compress.
        out_dir: Where artifacts and the report are written.
        recipes: Recipes to run, each producing one artifact.
        custom_objects: Custom layers/functions needed to load the model.
        overwrite: Replace existing artifacts.
        progress: Called with a line of text as long work advances (the CLI prints it).
    """

    model: str | os.PathLike
    out_dir: str | os.PathLike
    recipes: Sequence[Recipe] = (Recipe.STRIP,)
    custom_objects: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    overwrite: bool = False
    progress: ProgressFn = _no_progress


@dataclasses.dataclass
class VariantReport(Report):
    """Measurements of one artifact (the original or a recipe's output)."""

    name: str
    path: str
    format: str
    raw_bytes: int
    gzip_bytes: int
    raw_ratio: float
    gzip_ratio: float
    params: int | None
    seconds: float | None = None
    notes: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class CompressionReport(Report):
    """All variants of one :func:`compress` run, the original first."""

    model: str
    flavour: str
    out_dir: str
    variants: list[VariantReport]

    def to_table(self) -> str:
        header = ("variant", "format", "raw", "gzip", "raw ratio", "gzip ratio", "params", "time (s)")
        rows = [
            (v.name, v.format, format_bytes(v.raw_bytes), format_bytes(v.gzip_bytes),
             v.raw_ratio, v.gzip_ratio, v.params, v.seconds)
            for v in self.variants
        ]
        notes = [f"{v.name}: {note}" for v in self.variants for note in v.notes]
        text = f"model: {self.model} ({self.flavour})\n" + format_table(rows, header=header)
        return text + ("\n" + "\n".join(notes) if notes else "")


def _measure(name: str, path: Path, fmt: str, baseline: VariantReport | None, params: int | None,
             seconds: float | None = None, notes: Iterable[str] = ()) -> VariantReport:
    size = artifact_size(path)
    raw0 = baseline.raw_bytes if baseline else size.raw_bytes
    gz0 = baseline.gzip_bytes if baseline else size.gzip_bytes
    return VariantReport(
        name=name, path=str(path), format=fmt, raw_bytes=size.raw_bytes, gzip_bytes=size.gzip_bytes,
        raw_ratio=size.raw_bytes / raw0, gzip_ratio=size.gzip_bytes / gz0, params=params,
        seconds=seconds, notes=list(notes),
    )


def keras_suffix(loaded: LoadedModel) -> str:
    """The Keras file suffix to write a variant of ``loaded`` in (its own, or ``.keras``)."""
    return loaded.format.value if loaded.format in (ModelFormat.KERAS, ModelFormat.H5) else ".keras"


def _strip(loaded: LoadedModel, config: CompressConfig, out_dir: Path) -> tuple[Path, list[str]]:
    if loaded.flavour.value == "saved_model":
        raise TfdeployError(
            "The SavedModel has no Keras metadata, so there is no optimizer state to strip and no "
            f"Keras model to rewrite. Received: path={str(loaded.path)!r}"
        )
    target = out_dir / f"{Recipe.STRIP.value}{keras_suffix(loaded)}"
    had_optimizer = getattr(loaded.model, "optimizer", None) is not None
    save_model(loaded.model, target, include_optimizer=False, overwrite=config.overwrite)
    return target, ["optimizer state removed" if had_optimizer else "the model had no optimizer state"]


_RUNNERS: dict[Recipe, Callable[[LoadedModel, CompressConfig, Path], tuple[Path, list[str]]]] = {
    Recipe.STRIP: _strip,
}


def compress(config: CompressConfig) -> CompressionReport:
    """Runs each recipe of ``config`` on the model and measures every artifact.

    Args:
        config: A :class:`CompressConfig`.

    Returns:
        A :class:`CompressionReport` with the original first, then one variant per recipe.

    Raises:
        TfdeployError: For unreadable models, missing data, or outputs that exist without
            ``overwrite``.

    Example:
        >>> report = compress(CompressConfig("m.h5", "out", recipes=[Recipe.STRIP]))  # doctest: +SKIP
        >>> report.variants[1].gzip_ratio
        0.42
    """
    out_dir = Path(config.out_dir)
    config.progress(f"Loading {config.model}")
    loaded = load_model(config.model, custom_objects=config.custom_objects, compile=True)
    if out_dir.exists() and not out_dir.is_dir():
        raise TfdeployError(f"The output path exists and is not a directory. Received: out_dir={str(out_dir)!r}")
    out_dir.mkdir(parents=True, exist_ok=True)
    original = _measure("original", loaded.path, loaded.format.value, None, count_params(loaded.model))
    variants = [original]
    for recipe in config.recipes:
        config.progress(f"[{recipe.value}] {recipe.spec.summary}")
        start = time.perf_counter()
        path, notes = _RUNNERS[recipe](loaded, config, out_dir)
        seconds = time.perf_counter() - start
        variants.append(_measure(recipe.value, path, path.suffix or "savedmodel", original,
                                 count_params(loaded.model), seconds, notes))
    return CompressionReport(model=str(loaded.path), flavour=loaded.flavour.value, out_dir=str(out_dir),
                             variants=variants)
