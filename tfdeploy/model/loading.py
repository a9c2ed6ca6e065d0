"""Model I/O: load Keras 3 / tf_keras / SavedModel models, save without optimizer state.

Example:
    >>> from tfdeploy import load_model, save_model
    >>> loaded = load_model("trained.keras")                  # doctest: +SKIP
    >>> loaded.flavour                                    # doctest: +SKIP
    <KerasFlavour.KERAS3: 'keras3'>
    >>> save_model(loaded.model, "serving.keras")             # no optimizer state  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import gzip
import importlib
import json
import os
import zipfile
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from tfdeploy import backend
from tfdeploy.backend import KerasFlavour
from tfdeploy.errors import TfdeployError
from tfdeploy.files import atomic_path, ensure_writable


SAVED_MODEL_PB = "saved_model.pb"  # what TF Serving and tf.saved_model.load read (or its text twin below)
SAVED_MODEL_PBTXT = "saved_model.pbtxt"
KERAS_METADATA_PB = "keras_metadata.pb"  # tf_keras's Keras metadata inside a SavedModel


def is_saved_model_dir(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a SavedModel directory (``saved_model.pb`` or ``.pbtxt`` inside).

    The one test of "is this a SavedModel" in tfdeploy: an exported TF Serving version, a tf_keras
    SavedModel or any other SavedModel.

    Example:
        >>> is_saved_model_dir("models/fashion/1")     # doctest: +SKIP
        True
    """
    path = Path(path)
    return path.is_dir() and ((path / SAVED_MODEL_PB).is_file() or (path / SAVED_MODEL_PBTXT).is_file())


def is_plain_saved_model(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a SavedModel without Keras metadata: called through its signatures, not as Keras.

    Example:
        >>> is_plain_saved_model("models/fashion/1")   # an exported version  # doctest: +SKIP
        True
    """
    return is_saved_model_dir(path) and not (Path(path) / KERAS_METADATA_PB).is_file()


class ModelFormat(str, enum.Enum):
    """On-disk formats tfdeploy reads and writes."""

    KERAS = ".keras"
    H5 = ".h5"
    SAVED_MODEL = "savedmodel"
    TFLITE = ".tflite"

    @classmethod
    def of_path(cls, path: Path) -> "ModelFormat":
        """Infers the format from a path (a directory is a SavedModel).

        Example:
            >>> ModelFormat.of_path(Path("model.h5"))
            <ModelFormat.H5: '.h5'>
        """
        suffix = path.suffix.lower()
        if suffix == ".hdf5":
            return cls.H5
        for fmt in (cls.KERAS, cls.H5, cls.TFLITE):
            if suffix == fmt.value:
                return fmt
        if path.is_dir() or suffix == "":
            return cls.SAVED_MODEL
        raise TfdeployError(
            "Unknown model format: expected a .keras or .h5 file, a .tflite file or a SavedModel "
            f"directory. Received: path={str(path)!r}"
        )


@dataclasses.dataclass
class LoadedModel:
    """A model plus the facts of where it came from.

    Attributes:
        model: The Keras 3 or tf_keras model (a plain SavedModel is wrapped in a Keras 3
            model around ``keras.layers.TFSMLayer``).
        flavour: Which Keras wrote the file.
        path: The file or directory it was read from.
        format: The on-disk format.
        notes: What loading had to do (a subclassed model wrapped under a named input).
    """

    model: Any
    flavour: KerasFlavour
    path: Path
    format: ModelFormat
    notes: list[str] = dataclasses.field(default_factory=list)


def import_spec(spec: str, what: str, example: str) -> Any:
    """The object a ``module:name`` spec names, imported (the working directory and PYTHONPATH are searched).

    Raises:
        TfdeployError: For a malformed spec, a module that does not import or a missing name.

    Example:
        >>> import_spec("collections:OrderedDict", "custom object", "mypkg.layers:MyLayer")
        <class 'collections.OrderedDict'>
    """
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise TfdeployError(f"A {what} is given as module:name, e.g. {example}. Received: {spec!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise TfdeployError(f"Cannot import the module of {what} {spec!r}: {exc}. Put it on PYTHONPATH or in the "
                            f"working directory. Received: {spec!r}") from exc
    if not hasattr(module, attr):
        raise TfdeployError(f"Module {module_name!r} has no attribute {attr!r}. Received: {spec!r}")
    return getattr(module, attr)


def parse_custom_objects(specs: Sequence[str]) -> dict[str, Any]:
    """Imports ``module:name`` specs into a ``custom_objects`` mapping.

    Example:
        >>> parse_custom_objects(["collections:OrderedDict"])
        {'OrderedDict': <class 'collections.OrderedDict'>}
    """
    return {spec.partition(":")[2]: import_spec(spec, "custom object", "mypkg.layers:MyLayer") for spec in specs}


def _keras_version_of_keras_zip(path: Path) -> str:
    if not zipfile.is_zipfile(path):
        raise TfdeployError(
            "The file is not a valid .keras archive (truncated or corrupt zip); re-save the model. "
            f"Received: path={str(path)!r}"
        )
    try:
        with zipfile.ZipFile(path) as archive:
            metadata = json.loads(archive.read("metadata.json"))
            archive.getinfo("model.weights.h5")
            config = archive.read("config.json")
    except (KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise TfdeployError(
            f"The .keras archive is incomplete or corrupt ({exc}); re-save the model. Received: path={str(path)!r}"
        ) from exc
    try:
        json.loads(config)
    except ValueError as exc:
        raise TfdeployError(
            f"The .keras archive's config.json is not JSON ({exc.__class__.__name__} at byte "
            f"{getattr(exc, 'pos', '?')}): the file is corrupt or was not written by Keras. Re-save the model with "
            f"model.save(...). Received: path={str(path)!r}") from exc
    return str(metadata.get("keras_version", ""))


def _keras_version_of_h5(path: Path) -> str:
    import h5py

    try:
        with h5py.File(path, "r") as handle:
            if "model_config" not in handle.attrs:
                raise TfdeployError(
                    "The .h5 file holds no model config (weights only?); save the whole model with "
                    f"model.save(...). Received: path={str(path)!r}"
                )
            version = handle.attrs.get("keras_version", b"")
    except OSError as exc:
        raise TfdeployError(
            f"The .h5 file cannot be read (truncated or corrupt: {exc}). Received: path={str(path)!r}"
        ) from exc
    return version.decode() if isinstance(version, bytes) else str(version)


def detect_flavour(path: str | os.PathLike) -> KerasFlavour:
    """Tells which Keras wrote a model file without loading it.

    Raises:
        TfdeployError: If the path is missing, unreadable or not a model.

    Example:
        >>> detect_flavour("model.h5")    # doctest: +SKIP
        <KerasFlavour.TF_KERAS: 'tf_keras'>
    """
    path = Path(path)
    if not path.exists():
        raise TfdeployError(f"No model at this path. Received: path={str(path)!r}")
    fmt = ModelFormat.of_path(path)
    if fmt is ModelFormat.SAVED_MODEL:
        if not path.is_dir():
            raise TfdeployError(f"A SavedModel must be a directory. Received: path={str(path)!r}")
        if not is_saved_model_dir(path):
            raise TfdeployError(
                f"The directory holds no {SAVED_MODEL_PB}, so it is not a SavedModel (for TF Serving "
                f"exports, point at the numbered version directory). Received: path={str(path)!r}"
            )
        return KerasFlavour.SAVED_MODEL if is_plain_saved_model(path) else KerasFlavour.TF_KERAS
    if fmt is ModelFormat.TFLITE:
        raise TfdeployError(f"A .tflite file is not a Keras model and cannot be loaded as one. Received: path={str(path)!r}")
    version = _keras_version_of_keras_zip(path) if fmt is ModelFormat.KERAS else _keras_version_of_h5(path)
    return KerasFlavour.KERAS3 if version.startswith("3") else KerasFlavour.TF_KERAS


_CUSTOM_OBJECT_HINTS = ("Could not locate", "Unknown layer", "Unknown object", "Unknown loss", "Unknown metric",
                        "Unknown activation", "custom_object", "register_keras_serializable",
                        "must be an instance of class Layer")
_BUILTIN_MODEL_CLASSES = {"Functional", "Sequential", "Model"}


def _model_config(path: Path) -> dict[str, Any] | None:
    """The architecture config stored in a .keras or .h5 file, if readable."""
    try:
        if path.suffix == ModelFormat.KERAS.value:
            with zipfile.ZipFile(path) as archive:
                return json.loads(archive.read("config.json"))
        import h5py

        with h5py.File(path, "r") as handle:
            raw = handle.attrs["model_config"]
            return json.loads(raw.decode() if isinstance(raw, bytes) else raw)
    except Exception:  # only used to improve an error message
        return None


def unknown_classes(path: Path, keras: Any) -> list[str]:
    """Class names in a saved model's config that ``keras`` does not provide (custom layers).

    Example:
        >>> unknown_classes(Path("custom.keras"), backend.keras3())    # doctest: +SKIP
        ['MyLayer']
    """
    found: list[str] = []
    for _, name in layer_classes(path):
        if name not in _BUILTIN_MODEL_CLASSES and not hasattr(keras.layers, name) and name not in found:
            found.append(name)
    return found


_LAMBDA_HINTS = ("safe_mode", "arbitrary code execution")


def load_model(
    path: str | os.PathLike,
    custom_objects: Mapping[str, Any] | None = None,
    compile: bool = False,
    safe_mode: bool = True,
) -> LoadedModel:
    """Loads a ``.keras``, ``.h5`` or SavedModel model written by Keras 3 or tf_keras.

    The writer is detected from the file (``metadata.json`` of a ``.keras`` archive, the
    ``keras_version`` attribute of an ``.h5`` file, ``keras_metadata.pb`` in a SavedModel) and
    the matching Keras loads it. A SavedModel without Keras metadata (e.g. Keras 3
    ``model.export()``, a ``tf.Module``) is called through its ``serving_default`` signature
    (:class:`tfdeploy.backend.SavedModelFunction`).

    Args:
        path: Model file or SavedModel directory.
        custom_objects: Classes/functions the model needs, by the name it was saved with.
        compile: Restore the training configuration too (off: deployment needs none).
        safe_mode: Refuse to deserialize ``Lambda`` layers, whose code comes from the file
            (Keras's ``safe_mode``); ``False`` runs that code (``--unsafe-deserialization``).

    Returns:
        A :class:`LoadedModel`.

    Raises:
        TfdeployError: For a missing path, a directory without ``saved_model.pb``, a
            truncated/corrupt file, a model that needs custom objects not given, or a Lambda
            layer without ``safe_mode=False``.

    Example:
        >>> loaded = load_model("model.h5")     # doctest: +SKIP
        >>> loaded.flavour, loaded.model.count_params()    # doctest: +SKIP
        (<KerasFlavour.TF_KERAS: 'tf_keras'>, 1234)
    """
    path = Path(path)
    flavour = detect_flavour(path)
    fmt = ModelFormat.of_path(path)
    custom_objects = dict(custom_objects or {})
    try:
        if flavour is KerasFlavour.SAVED_MODEL:
            model = backend.SavedModelFunction(str(path))
        elif flavour is KerasFlavour.KERAS3:
            with backend.streamed_weights(path):
                model = backend.keras3().models.load_model(path, custom_objects=custom_objects, compile=compile,
                                                           safe_mode=safe_mode)
        else:
            kwargs = {"safe_mode": safe_mode} if fmt is ModelFormat.KERAS else {}
            model = backend.tf_keras().models.load_model(path, custom_objects=custom_objects, compile=compile,
                                                         **kwargs)
    except TfdeployError:
        raise
    except Exception as exc:  # Keras raises TypeError/ValueError/OSError/... for bad files
        raise _load_error(exc, path, flavour, custom_objects) from exc
    model, notes = _with_named_inputs(model, path) if flavour is KerasFlavour.KERAS3 else (model, [])
    return LoadedModel(model=model, flavour=flavour, path=path, format=fmt, notes=notes)


def _with_named_inputs(model: Any, path: Path) -> tuple[Any, list[str]]:
    """A built subclassed Keras 3 model wrapped functionally under the input shape its file records.

    Its ``.keras`` file keeps the ``build_config`` (the shape it was first called on), which is enough
    to call it on ``keras.Input``s and so give it named inputs and outputs.
    """
    try:
        if list(model.inputs or []):
            return model, []
    except (AttributeError, ValueError):
        pass
    shapes = ((_model_config(path) or {}).get("build_config") or {}).get("input_shape")
    if not shapes:
        return model, []  # model_io refuses it, naming the fix
    keras = backend.keras3()
    if isinstance(shapes, dict):
        inputs: Any = {name: keras.Input(tuple(shape[1:]), name=name) for name, shape in shapes.items()}
    elif shapes and isinstance(shapes[0], (list, tuple)):
        inputs = [keras.Input(tuple(shape[1:]), name=f"input_{i}") for i, shape in enumerate(shapes)]
    else:
        inputs = keras.Input(tuple(shapes[1:]), name="input")
    wrapped = keras.Model(inputs, model(inputs), name=f"{model.name}_functional")
    described = backend.model_io(wrapped).describe()
    return wrapped, [f"subclassed {type(model).__name__} {model.name!r} wrapped functionally from the input shape its "
                     f"file records (build_config): {described}"]


def _load_error(exc: Exception, path: Path, flavour: KerasFlavour, custom_objects: Mapping[str, Any]) -> TfdeployError:
    text = str(exc)
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    if "Lambda" in text and any(hint in text for hint in _LAMBDA_HINTS):
        lambdas = [name for name, kind in layer_classes(path) if kind == "Lambda"]
        return TfdeployError(
            f"The model has Lambda layer(s) {', '.join(lambdas) or '(unnamed)'}, whose Python code is stored in the "
            "file and would run when it is loaded; Keras refuses that by default. If you trust the file, pass "
            f"--unsafe-deserialization (Python: safe_mode=False). Received: path={str(path)!r}")
    if any(hint in text for hint in _CUSTOM_OBJECT_HINTS):
        keras = backend.keras3() if flavour is KerasFlavour.KERAS3 else backend.tf_keras()
        missing = [name for name in unknown_classes(path, keras) if name not in custom_objects]
        what = f"custom class(es) {', '.join(missing)}" if missing else "a custom layer or function"
        return TfdeployError(
            f"The model uses {what} that is not available ({first}). Pass it with --custom-objects module:Name "
            f"(Python: custom_objects={{'Name': obj}}); for a registered class, importing its module is enough. "
            f"Received: path={str(path)!r}")
    damaged = isinstance(exc, (OSError, EOFError)) or any(
        word in text.lower() for word in ("truncated", "corrupt", "unable to open", "bad zip", "crc", "signature"))
    cause = "the file may be truncated or corrupt" if damaged else "Keras could not rebuild it from its config"
    return TfdeployError(f"Cannot load the model ({type(exc).__name__}: {first}); {cause}. "
                         f"Received: path={str(path)!r}")


def layer_classes(path: Path) -> list[tuple[str, str]]:
    """``(layer name, class name)`` of every layer in a saved model's config (nested models included).

    Example:
        >>> layer_classes(Path("model.keras"))[:1]      # doctest: +SKIP
        [('image', 'InputLayer')]
    """
    found: list[tuple[str, str]] = []

    def walk(layers: Any) -> None:
        for layer in layers if isinstance(layers, list) else []:
            if isinstance(layer, dict):
                config = layer.get("config") or {}
                found.append((str(config.get("name", layer.get("name", "?"))), str(layer.get("class_name"))))
                walk(config.get("layers"))

    config = _model_config(path) or {}
    walk((config.get("config") or {}).get("layers"))
    return found


def optimizer_state_bytes(path: str | os.PathLike) -> int:
    """Bytes of optimizer variables a ``.keras``/``.h5`` file stores (what ``strip`` removes; 0 if none or unreadable).

    Example:
        >>> optimizer_state_bytes("trained.keras")       # doctest: +SKIP
        3386424
    """
    import h5py

    def total(group: Any) -> int:
        sizes: list[int] = []
        group.visititems(lambda _, item: sizes.append(item.size * item.dtype.itemsize)
                         if isinstance(item, h5py.Dataset) else None)
        return sum(sizes)

    path = Path(path)
    try:
        if path.suffix == ModelFormat.KERAS.value:
            with zipfile.ZipFile(path) as archive, archive.open("model.weights.h5") as raw:
                with h5py.File(raw, "r") as handle:  # read in place: a GB of weights is not copied
                    return total(handle["optimizer"]) if "optimizer" in handle else 0
        if path.suffix in (ModelFormat.H5.value, ".hdf5"):
            with h5py.File(path, "r") as handle:
                return total(handle["optimizer_weights"]) if "optimizer_weights" in handle else 0
    except (OSError, KeyError, zipfile.BadZipFile):
        return 0
    return 0


def has_optimizer_state(path: str | os.PathLike) -> bool:
    """Whether a ``.keras``/``.h5`` file stores optimizer variables (what ``strip`` removes).

    Example:
        >>> has_optimizer_state("trained.keras")       # doctest: +SKIP
        True
    """
    return optimizer_state_bytes(path) > 0


def training_config(path: str | os.PathLike) -> dict[str, Any] | None:
    """The loss and metrics a model file was compiled with, if it carries them (``None`` otherwise).

    Read from Keras 3's ``compile_config`` (``.keras``), the ``training_config`` of ``.h5`` files (tf_keras,
    Keras 3's legacy writer and Keras 2.0-era files) and of tf_keras SavedModels (``keras_metadata.pb``);
    the keys are Keras's: ``loss``, ``metrics``, ``weighted_metrics`` (per output as a dict or a list in
    output order, or one for every output).

    Example:
        >>> training_config("ranker.keras")["metrics"]        # doctest: +SKIP
        {'click': [{'class_name': 'AUC', 'config': {'curve': 'ROC', ...}}, 'accuracy']}
    """
    path = Path(path)
    try:
        if path.suffix == ModelFormat.KERAS.value:
            with zipfile.ZipFile(path) as archive:
                return json.loads(archive.read("config.json")).get("compile_config") or None
        if path.suffix in (ModelFormat.H5.value, ".hdf5"):
            import h5py

            with h5py.File(path, "r") as handle:
                raw = handle.attrs.get("training_config")
            return None if raw is None else json.loads(raw.decode() if isinstance(raw, bytes) else raw)
        if (path / "keras_metadata.pb").is_file():
            metadata = backend.tf_proto("saved_metadata_pb2").SavedMetadata()
            metadata.ParseFromString((path / "keras_metadata.pb").read_bytes())
            root = next((node for node in metadata.nodes if node.node_path == "root"), None)
            return None if root is None else json.loads(root.metadata).get("training_config") or None
    except (OSError, KeyError, ValueError, zipfile.BadZipFile, backend.protobuf_decode_error()):
        return None  # the model itself loads or fails elsewhere; its compiled metrics are only a default
    return None


@contextlib.contextmanager
def _detached_optimizer(model: Any) -> Iterator[None]:
    """Temporarily makes ``model`` look uncompiled so savers skip optimizer state and config."""
    attrs = ("optimizer", "compiled", "_is_compiled", "_compile_config")
    saved = {name: model.__dict__[name] for name in attrs if name in model.__dict__}
    try:
        if "optimizer" in saved:
            model.optimizer = None
        for flag in ("compiled", "_is_compiled"):
            if flag in saved:
                object.__setattr__(model, flag, False)
        if "_compile_config" in saved:
            object.__setattr__(model, "_compile_config", None)
        yield
    finally:
        for name, value in saved.items():
            if name == "optimizer":
                model.optimizer = value
            else:
                object.__setattr__(model, name, value)


def save_model(model: Any, path: str | os.PathLike, include_optimizer: bool = False, overwrite: bool = False) -> Path:
    """Saves a Keras 3 or tf_keras model as ``.keras`` or ``.h5``, by default without optimizer state.

    Keras 3 ignores ``include_optimizer`` for ``.keras`` and tf_keras rejects it; this
    function makes the model look uncompiled while saving, so the file has no optimizer
    variables and no compile config in either case. The file is written to a temporary
    name beside ``path`` and renamed into place: an interrupted save leaves nothing behind.

    Args:
        model: The model to save.
        path: Target ``.keras`` or ``.h5`` file.
        include_optimizer: Keep the optimizer state (to resume training).
        overwrite: Replace an existing file.

    Returns:
        The written path.

    Raises:
        TfdeployError: If the file exists and ``overwrite`` is false, or the suffix is not
            ``.keras``/``.h5``.

    Example:
        >>> save_model(model, "out/model.keras")   # doctest: +SKIP
        PosixPath('out/model.keras')
    """
    path = Path(path)
    if path.suffix.lower() not in (ModelFormat.KERAS.value, ModelFormat.H5.value, ".hdf5"):
        raise TfdeployError(f"save_model writes .keras or .h5 files. Received: path={str(path)!r}")
    fmt = ModelFormat.of_path(path)
    ensure_writable(path, overwrite)
    with atomic_path(path) as tmp:  # same suffix: Keras picks the format by it
        kwargs = {"include_optimizer": False} if fmt is ModelFormat.H5 and not include_optimizer else {}
        if include_optimizer:
            model.save(tmp)
        else:
            with _detached_optimizer(model):
                model.save(tmp, **kwargs)
    return path


@dataclasses.dataclass(frozen=True)
class ArtifactSize:
    """Raw and gzip-compressed size of a file or directory (sum over its files)."""

    raw_bytes: int
    gzip_bytes: int


def artifact_size(path: str | os.PathLike) -> ArtifactSize:
    """Measures the raw and gzip (level 9) size of a model file or directory.

    Example:
        >>> artifact_size("model.tflite")      # doctest: +SKIP
        ArtifactSize(raw_bytes=412344, gzip_bytes=301200)
    """
    path = Path(path)
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    raw = gz = 0
    for file in files:
        data = file.read_bytes()
        raw += len(data)
        gz += len(gzip.compress(data, compresslevel=9, mtime=0))
    return ArtifactSize(raw_bytes=raw, gzip_bytes=gz)


def count_params(model: Any) -> int:
    """Number of weights in a model (trainable and not); a plain SavedModel counts its variables.

    Example:
        >>> count_params(load_model("model.keras").model)     # doctest: +SKIP
        1234
    """
    return int(sum(int(np.prod(w.shape)) for w in backend.variables_of(model)))
