"""Export for TensorFlow Serving: an atomically published, numbered version directory.

TF Serving loads any numeric directory under the model's base path as soon as it appears, and
will happily serve a half-copied one. So the whole version — SavedModel, warmup file, optional
``model.tflite`` — is written into a hidden temporary directory beside the target and renamed
into place in one step; a failed or interrupted export leaves no numeric directory behind.

Example:
    >>> from tfdeploy.serving.export import ExportConfig, export
    >>> report = export(ExportConfig("example/model.keras", "models/fashion"))   # doctest: +SKIP
    >>> report.version_dir
    'models/fashion/1'
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path
from typing import Any, Mapping

from tfdeploy import backend, faults
from tfdeploy.model.data import Dataset
from tfdeploy.errors import TfdeployError
from tfdeploy.io_spec import ModelIO
from tfdeploy.files import staged_directory
from tfdeploy.model.loading import load_model
from tfdeploy.progress import ProgressLike, as_progress
from tfdeploy.report import Report
from tfdeploy.serving.memory import VersionMemory, largest_variables, size_text, version_memory
from tfdeploy.serving.signature import read_signatures
from tfdeploy.serving.versions import resolve_version
from tfdeploy.serving.warmup import WarmupReport, write_warmup

TFLITE_FILE = "model.tflite"  # what TF Serving's --prefer_tflite_model loads from a version directory
DEFAULT_SIGNATURE = "serving_default"


@dataclasses.dataclass
class ExportConfig:
    """Options of :func:`export`.

    Attributes:
        model: Keras model file / SavedModel to export, or a ``.tflite`` variant (then
            ``source_model`` gives the Keras model for the SavedModel beside it).
        base_dir: The model's base path (``models/NAME``); versions are its numbered subdirectories.
        version: Version number; ``None`` for the highest existing + 1.
        overwrite: Replace an existing version (otherwise it is never touched).
        source_model: For a ``.tflite`` model: the Keras model it was made from.
        batch_size: Fixed batch dimension of ``serving_default``; ``None`` keeps it dynamic.
        extra_signatures: More Predict signatures, name -> fixed batch size (``None`` dynamic).
        input_name: Signature input key (default: the model's input layer name).
        warmup: Write the warmup file.
        warmup_data: Real samples for warmup (path or Dataset); ``None`` synthesizes them.
        warmup_batch_sizes: One warmup request per batch size.
        custom_objects: Custom layers needed to load the model.
        safe_mode: Refuse Lambda layers (``False``: ``--unsafe-deserialization``).
    """

    model: str | os.PathLike
    base_dir: str | os.PathLike
    version: int | None = None
    overwrite: bool = False
    source_model: str | os.PathLike | None = None
    batch_size: int | None = None
    extra_signatures: Mapping[str, int | None] = dataclasses.field(default_factory=dict)
    input_name: str | None = None
    warmup: bool = True
    warmup_data: str | os.PathLike | Dataset | None = None
    warmup_batch_sizes: tuple[int, ...] = (1,)
    custom_objects: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    safe_mode: bool = True
    progress: ProgressLike = "auto"


@dataclasses.dataclass
class ExportReport(Report):
    """The published version."""

    version_dir: str
    version: int
    model: str
    flavour: str
    signatures: dict[str, dict[str, Any]]
    tflite: str | None
    warmup: WarmupReport | None
    files: int
    bytes: int
    modes: str = ""
    memory: VersionMemory | None = None
    notes: list[str] = dataclasses.field(default_factory=list)

    def rows(self) -> list[tuple[str, Any]]:
        rows: list[tuple[str, Any]] = [("version directory", self.version_dir), ("model", f"{self.model} ({self.flavour})")]
        for name, sig in self.signatures.items():
            rows.append((f"signature {name}", f"inputs {sig['inputs']} -> outputs {sig['outputs']}"))
        rows.append(("model.tflite", self.tflite))
        if self.warmup:
            rows.append(("warmup", f"{self.warmup.records} record(s), batch sizes {self.warmup.batch_sizes}, "
                                   f"{self.warmup.source}"))
        rows.append(("files / bytes", f"{self.files} / {self.bytes}"))
        if self.memory:
            m = self.memory
            rows.append(("variables (read at each load)", f"{size_text(m.variables_bytes)}; graph {size_text(m.graph_bytes)}"))
            rows.append(("largest variables", ", ".join(f"{name} {size_text(n)}" for name, n in m.tables.items())))
            rows.append(("memory for a hot update", f"{size_text(2 * m.resident_bytes)}: the old and the new version are "
                                                    "resident together until the old one is unloaded"))
        rows.append(("modes", self.modes))
        rows += [("note", note) for note in self.notes]
        return rows


def _signatures(config: ExportConfig) -> dict[str, int | None]:
    clash = [name for name in config.extra_signatures if name == DEFAULT_SIGNATURE]
    if clash:
        raise TfdeployError(
            f"An extra signature cannot be named {DEFAULT_SIGNATURE!r}: it would replace the default signature that "
            "clients and the warmup file call. Use --signature-batch-size to fix the default's batch, or give the "
            f"extra signature another name (e.g. serving_b8:8). Received: extra_signatures={dict(config.extra_signatures)}")
    return {DEFAULT_SIGNATURE: config.batch_size, **dict(config.extra_signatures)}


def _serving_io(config: ExportConfig, model: Any) -> ModelIO:
    io = backend.model_io(model)
    if config.input_name is None:
        return io
    if len(io.inputs) != 1:
        raise TfdeployError(f"--input-name renames the input of a single-input model; this one has inputs "
                            f"{', '.join(io.input_names)}, which are used as they are. Received: "
                            f"input_name={config.input_name!r}")
    return dataclasses.replace(io, inputs=(dataclasses.replace(io.inputs[0], name=config.input_name),))


def _write_version(config: ExportConfig, staging: Path, model: Any, model_name: str) -> WarmupReport | None:
    signatures = _signatures(config)
    io = _serving_io(config, model)
    as_progress(config.progress)(f"Writing SavedModel with signatures {sorted(signatures)}: {io.describe()}")
    own = backend.model_io(model).input_names
    backend.write_inference_savedmodel(model, str(staging), io, signatures=signatures,
                                       input_keys=dict(zip(io.input_names, own)))
    if Path(config.model).suffix == ".tflite":
        shutil.copyfile(config.model, staging / TFLITE_FILE)
    if not config.warmup:
        return None
    as_progress(config.progress)(f"Writing warmup records for batch sizes {list(config.warmup_batch_sizes)}")
    return write_warmup(staging, data=config.warmup_data, batch_sizes=config.warmup_batch_sizes,
                        model_name=model_name)


@faults.boundary("export", where="base_dir")
def export(config: ExportConfig) -> ExportReport:
    """Exports a model as a new TF Serving version, warmup included, published atomically.

    Args:
        config: An :class:`ExportConfig`.

    Returns:
        An :class:`ExportReport`.

    Raises:
        TfdeployError: If the version exists (without ``overwrite``), the model cannot be
            loaded or exported, or the warmup breaks a TF Serving rule. Nothing is left in
            ``base_dir`` then.

    Example:
        >>> export(ExportConfig("m.keras", "models/m", warmup_batch_sizes=(1, 8))).version   # doctest: +SKIP
        1
    """
    base = Path(config.base_dir)
    if base.exists() and not base.is_dir():
        raise TfdeployError(f"The base directory is a file. Received: base_dir={str(base)!r}")
    source = Path(config.model)
    if source.suffix == ".tflite":
        if not source.is_file():
            raise TfdeployError(f"No TFLite model at this path. Received: path={str(source)!r}")
        if config.source_model is None:
            raise TfdeployError(
                "A .tflite variant is served beside a SavedModel: pass --source-model with the Keras model it was "
                f"made from (TF Serving loads model.tflite with --prefer_tflite_model). Received: path={str(source)!r}"
            )
        source = Path(config.source_model)
    version = resolve_version(base, config.version, config.overwrite)
    as_progress(config.progress)(f"Loading {source}")
    _signatures(config)  # refuse a bad signature set before loading anything
    loaded = load_model(source, custom_objects=config.custom_objects, safe_mode=config.safe_mode)
    base.mkdir(parents=True, exist_ok=True)
    target = base / str(version)
    with staged_directory(target, config.overwrite) as publication:
        warmup = _write_version(config, publication.staging, loaded.model, base.resolve().name)
    if isinstance(warmup, WarmupReport):
        warmup.path = str(target / Path(warmup.path).relative_to(publication.staging))
    files = [p for p in target.rglob("*") if p.is_file()]
    dirs = [target, *(p for p in target.rglob("*") if p.is_dir())]
    memory = version_memory(target)
    memory.tables = largest_variables(backend.variables_of(loaded.model))
    return ExportReport(
        version_dir=str(target), version=version, model=str(config.model), flavour=loaded.flavour.value,
        signatures={name: {"inputs": {k: [d if d is not None else -1 for d in (v.shape or ())] for k, v in sig.inputs.items()},
                           "outputs": sorted(sig.outputs)}
                    for name, sig in read_signatures(target).items()},
        tflite=str(target / TFLITE_FILE) if (target / TFLITE_FILE).exists() else None,
        warmup=warmup, files=len(files), bytes=sum(p.stat().st_size for p in files),
        modes=f"directories {_modes(dirs)}, files {_modes(files)} (readable by a server running as another user)",
        memory=memory,
        notes=[*loaded.notes, *publication.notes()],
    )


def _modes(paths: list[Path]) -> str:
    return "/".join(sorted({oct(p.stat().st_mode & 0o777)[2:] for p in paths}))
