"""User data for fine-tuning, calibration, evaluation and warmup, matched to a model's named inputs.

Two sources are accepted everywhere (``--data``, ``--warmup-data``):

* an ``.npz`` file. A model with one input and one output reads ``x`` (and ``y``, ``x_val``,
  ``y_val``). A model with several inputs reads one array per input, ``x:NAME`` and
  ``x_val:NAME``; several outputs read ``y:NAME`` and ``y_val:NAME`` (a plain ``y`` labels the
  output chosen for accuracy). Strings are stored as NumPy unicode arrays (``np.str_``).
* an image directory with one sub-directory per class (``data/cat/*.png``) for a model with one
  image input; classes are numbered in sorted order of their folder names.

:func:`read_data` loads a source and binds it to a model's :class:`~tfdeploy.io_spec.ModelIO`:
every input present with the right sample shape and a compatible dtype, labels only for outputs
that exist; a validation split is held out when the data has none.

Example:
    >>> data = read_data("fashion.npz", model_io)          # doctest: +SKIP
    >>> data.x["image"].shape, data.label_output
    ((3200, 32, 32, 3), 'probabilities')
"""

from __future__ import annotations

import dataclasses
import os
import zipfile
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from tfdeploy.errors import TfdeployError
from tfdeploy.io_spec import Arrays, ModelIO, TensorInfo, batch_size, sample, take

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
SPLITS = ("x", "y", "x_val", "y_val")


@dataclasses.dataclass
class Dataset:
    """Arrays as the user has them: each field one array, or a mapping of name -> array.

    ``y``/``y_val`` are ``None`` without labels. Bind it to a model with :func:`read_data`.

    Example:
        >>> Dataset(x={"image": np.zeros((4, 8, 8, 3)), "meta": np.zeros((4, 2))}).num_samples
        4
    """

    x: Any
    y: Any = None
    x_val: Any = None
    y_val: Any = None
    source: str = "arrays"

    @property
    def has_labels(self) -> bool:
        return self.y is not None

    @property
    def num_samples(self) -> int:
        first = next(iter(self.x.values())) if isinstance(self.x, Mapping) else self.x
        return len(first)


@dataclasses.dataclass
class ModelData:
    """Data bound to a model: arrays keyed by the model's input and output names.

    Attributes:
        x: Training inputs, one array per model input.
        y: Training labels by output name (``None`` without labels).
        x_val: Validation inputs (held out from ``x`` when the data had none).
        y_val: Validation labels by output name.
        label_output: The output accuracy is measured on (``None`` without a classification label).
        source: Where the data came from.
        warnings: Suspicious but accepted properties of the data, for the report.
    """

    x: Arrays
    y: Arrays | None
    x_val: Arrays
    y_val: Arrays | None
    label_output: str | None
    source: str
    warnings: list[str] = dataclasses.field(default_factory=list)

    @property
    def has_labels(self) -> bool:
        return self.y is not None

    def calibration(self, n: int, seed: int = 0) -> Arrays:
        """``n`` training inputs drawn reproducibly (representative data for int8 calibration)."""
        return sample(self.x, n, seed=seed)


def _bad_npz(path: Path, what: str) -> TfdeployError:
    return TfdeployError(f"{what}. Received: path={str(path)!r}")


def load_npz(path: Path) -> Dataset:
    """Reads an ``.npz`` with ``x``/``y``/``x_val``/``y_val`` or their ``x:NAME`` forms."""
    if not zipfile.is_zipfile(path):
        raise _bad_npz(path, "The data file is not a NumPy .npz archive (np.savez writes one)")
    try:
        with np.load(path, allow_pickle=False) as arrays:
            contents = {key: arrays[key] for key in arrays.files}
    except ValueError as exc:
        raise _bad_npz(path, f"The .npz holds an object array, which tfdeploy does not unpickle ({exc}); store "
                             "strings as np.str_ arrays (np.asarray(texts, dtype=str))") from exc
    except (OSError, zipfile.BadZipFile, EOFError) as exc:
        raise _bad_npz(path, f"Cannot read the .npz data file ({exc})") from exc
    fields: dict[str, Any] = {}
    for key, value in contents.items():
        split, sep, name = key.partition(":")
        if split not in SPLITS:
            continue  # other arrays (indices, metadata) are not data
        if not sep:
            if isinstance(fields.get(split), dict):
                raise _bad_npz(path, f"The .npz has both {split!r} and named {split}:NAME arrays; use one form")
            fields[split] = value
        else:
            if isinstance(fields.get(split), np.ndarray):
                raise _bad_npz(path, f"The .npz has both {split!r} and named {split}:NAME arrays; use one form")
            fields.setdefault(split, {})[name] = value
    if "x" not in fields:
        raise _bad_npz(path, "The .npz data file needs inputs: an array named 'x' for a single-input model, or "
                             f"x:NAME per input (and y, x_val, y_val alike). Found arrays {sorted(contents)}")
    return Dataset(**fields, source=str(path))


def load_image_directory(path: Path, image_size: Sequence[int] | None = None, channels: int | None = None) -> Dataset:
    """Reads ``path/<class>/<image>`` files into float32 arrays scaled to [0, 1].

    Args:
        path: Directory with one sub-directory per class.
        image_size: ``(height, width)`` to resize to; default the first image's size.
        channels: 1 or 3; default the first image's channel count.
    """
    from tfdeploy import backend

    classes = sorted(d.name for d in path.iterdir() if d.is_dir())
    files = [(label, f) for label, name in enumerate(classes)
             for f in sorted((path / name).iterdir()) if f.suffix.lower() in IMAGE_SUFFIXES]
    if not files:
        raise TfdeployError(
            "The image directory has no class sub-directories with images "
            f"({', '.join(IMAGE_SUFFIXES)}); expected data/<class>/<image>. Received: path={str(path)!r}")
    tf = backend.tf()
    images, labels = [], []
    for label, file in files:
        try:
            image = tf.io.decode_image(tf.io.read_file(str(file)), channels=channels or 0, expand_animations=False)
        except Exception as exc:
            raise TfdeployError(f"Cannot decode image ({exc}). Received: path={str(file)!r}") from exc
        channels = channels or int(image.shape[-1])
        image_size = image_size or (int(image.shape[0]), int(image.shape[1]))
        images.append(tf.image.resize(tf.cast(image, tf.float32) / 255.0, image_size).numpy())
        labels.append(label)
    return Dataset(x=np.stack(images).astype("float32"), y=np.asarray(labels, dtype="int64"), source=str(path))


def load_data(path: str | os.PathLike, image_size: Sequence[int] | None = None, channels: int | None = None) -> Dataset:
    """Loads user data from an ``.npz`` file or an image directory of class folders.

    Args:
        path: The ``.npz`` file or image directory.
        image_size: For image directories, ``(height, width)`` to resize to.
        channels: For image directories, 1 or 3 channels.

    Returns:
        A :class:`Dataset` (not yet matched to a model; see :func:`read_data`).

    Raises:
        TfdeployError: If the path is missing or not in a supported layout.

    Example:
        >>> load_data("images/", image_size=(32, 32), channels=3).x.shape   # doctest: +SKIP
        (120, 32, 32, 3)
    """
    path = Path(path)
    if not path.exists():
        raise TfdeployError(f"No data at this path. Received: path={str(path)!r}")
    if path.is_dir():
        return load_image_directory(path, image_size=image_size, channels=channels)
    if path.suffix.lower() == ".npz":
        return load_npz(path)
    raise TfdeployError("Data must be an .npz file (x, y, x_val, y_val) or an image directory of class folders. "
                        f"Received: path={str(path)!r}")


def _image_input(io: ModelIO) -> TensorInfo | None:
    if len(io.inputs) == 1 and len(io.inputs[0].shape) == 3 and None not in io.inputs[0].shape[:2]:
        return io.inputs[0]
    return None


def _named_inputs(value: Any, io: ModelIO, field: str, source: str) -> Arrays:
    """Maps an ``x``/``x_val`` field to the model's input names."""
    names = io.input_names
    if not isinstance(value, Mapping):
        if len(names) != 1:
            keys = ", ".join(f"{field}:{n}" for n in names)
            raise TfdeployError(f"The model has {len(names)} inputs ({', '.join(names)}), so the data needs one array "
                                f"per input: {keys}. Received: data={source!r} with a single {field!r} array")
        return {names[0]: np.asarray(value)}
    missing = [n for n in names if n not in value]
    extra = [k for k in value if k not in names]
    if missing or extra:
        raise TfdeployError(
            f"The data's {field} arrays must be named after the model's inputs ({', '.join(names)}): "
            + (f"missing {', '.join(f'{field}:{m}' for m in missing)}" if missing else "")
            + ("; " if missing and extra else "")
            + (f"no model input named {', '.join(repr(e) for e in extra)}" if extra else "")
            + f". Received: data={source!r}, arrays={sorted(f'{field}:{k}' for k in value)}")
    return {n: np.asarray(value[n]) for n in names}


def default_label_output(io: ModelIO) -> str | None:
    """The output accuracy is measured on by default: the first classification head."""
    heads = io.classification_outputs()
    if heads:
        return heads[0]
    return io.outputs[0].name if len(io.outputs) == 1 else None


def _named_labels(value: Any, io: ModelIO, field: str, output: str | None, source: str) -> Arrays | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        target = output or default_label_output(io)
        if target is None:
            raise TfdeployError(
                f"A plain {field!r} array labels one output, but the model has {len(io.outputs)} outputs and none is a "
                f"classification head; name them {', '.join(f'{field}:{n}' for n in io.output_names)} or pass "
                f"--output NAME. Received: data={source!r}")
        return {target: np.asarray(value)}
    extra = [k for k in value if k not in io.output_names]
    if extra:
        raise TfdeployError(f"The data labels outputs the model does not have: {', '.join(extra)} (outputs: "
                            f"{', '.join(io.output_names)}). Received: data={source!r}")
    return {k: np.asarray(v) for k, v in value.items()}


def _check_inputs(arrays: Arrays, io: ModelIO, field: str, source: str) -> Arrays:
    """Sample shapes against the model's inputs; casts to the input dtype (strings stay strings)."""
    checked = {}
    n = None
    for info in io.inputs:
        value = arrays[info.name]
        key = field if len(io.inputs) == 1 else f"{field}:{info.name}"
        if value.ndim == 0 or len(value) == 0:
            raise TfdeployError(f"Data array {key!r} is empty; give at least one sample. Received: data={source!r}")
        actual, expected = tuple(value.shape[1:]), info.shape
        if len(actual) != len(expected) or any(e is not None and e != a for e, a in zip(expected, actual)):
            raise TfdeployError(
                f"Data array {key!r} has samples of shape {actual}, but model input {info.name!r} takes "
                f"{tuple('?' if d is None else d for d in expected)}; reshape or resize the data. "
                f"Received: {key}.shape={tuple(value.shape)}")
        if n is not None and len(value) != n:
            raise TfdeployError(f"The {field} arrays have different sample counts ({n} and {len(value)} in {key!r}); "
                                f"they must match. Received: data={source!r}")
        n = len(value)
        checked[info.name] = _cast(value, info, key)
    return checked


def _first(mask: np.ndarray) -> tuple[int, ...]:
    return tuple(int(i) for i in np.argwhere(mask)[0])


def _cast(value: np.ndarray, info: TensorInfo, key: str) -> np.ndarray:
    """Checks an input array's kind and values against the model input, then casts it to the input's dtype."""
    kind = value.dtype.kind
    if info.is_string:
        if kind not in "US":
            raise TfdeployError(f"Model input {info.name!r} takes strings, but {key!r} holds {value.dtype}. "
                                f"Received: {key}.dtype={value.dtype}")
        return value
    if kind in "USO":
        raise TfdeployError(f"Model input {info.name!r} takes {info.dtype}, but {key!r} holds strings; convert "
                            f"them first (e.g. token ids). Received: {key}.dtype={value.dtype}")
    if kind == "f" and not np.all(np.isfinite(value)):
        index = _first(~np.isfinite(value))
        raise TfdeployError(f"Data array {key!r} holds {value[index]} at index {index}; remove or impute non-finite "
                            f"values before fine-tuning, calibration or evaluation. Received: {key}[{index}]={value[index]}")
    if info.is_integer:
        if kind == "f" and not np.all(value == np.round(value)):
            index = _first(value != np.round(value))
            raise TfdeployError(f"Model input {info.name!r} takes integer ids ({info.dtype}), but {key!r} holds "
                                f"fractional floats such as {value[index]} at index {index}. "
                                f"Received: {key}.dtype={value.dtype}")
        limits = np.iinfo(np.dtype(info.dtype))
        outside = (value < limits.min) | (value > limits.max)
        if np.any(outside):
            index = _first(outside)
            raise TfdeployError(f"Data array {key!r} holds {value[index]} at index {index}, outside the range of "
                                f"model input {info.name!r} ({info.dtype}). Received: {key}[{index}]={value[index]}")
    elif kind in "iu" and value.size and np.max(np.abs(value.astype(np.float64))) > 2 ** 24:
        index = _first(np.abs(value.astype(np.float64)) > 2 ** 24)
        raise TfdeployError(f"Data array {key!r} holds integers up to {value[index]} (index {index}), beyond the "
                            f"{info.dtype} input's exact range (±2^24): they would be rounded. Scale them to the range "
                            f"the model was trained on. Received: {key}.dtype={value.dtype}")
    return value.astype(info.dtype, copy=False)


def _class_ids(y: np.ndarray, classes: int, key: str) -> np.ndarray:
    """Integer class ids from int, integral-float or one-hot labels; refuses anything else."""
    if y.dtype.kind in "USO":
        raise TfdeployError(f"Labels {key!r} are strings; give integer class ids 0..{classes - 1} or one-hot rows. "
                            f"Received: {key}.dtype={y.dtype}")
    if y.dtype.kind == "f" and not np.all(np.isfinite(y)):
        index = _first(~np.isfinite(y))
        raise TfdeployError(f"Labels {key!r} hold {y[index]} at index {index}. Received: {key}[{index}]={y[index]}")
    if y.ndim == 2 and y.shape[1] == classes and classes > 1:
        bad = (y < 0) | (y > 1)
        if np.any(bad) or not np.allclose(y.sum(axis=1), 1.0, atol=1e-3):
            row = _first(bad)[0] if np.any(bad) else int(np.argmax(np.abs(y.sum(axis=1) - 1.0)))
            raise TfdeployError(f"Labels {key!r} look one-hot ({classes} columns) but row {row} is not a distribution "
                                f"({y[row].tolist()}). Received: {key}.shape={y.shape}")
        return np.argmax(y, axis=1)
    flat = y.reshape(len(y), -1)
    if flat.shape[1] != 1:
        raise TfdeployError(f"Labels {key!r} have shape {y.shape[1:]} per sample; a {classes}-class output takes one "
                            f"class id per sample or {classes} one-hot columns. Received: {key}.shape={y.shape}")
    flat = flat[:, 0]
    if flat.dtype.kind == "f" and not np.all(flat == np.round(flat)):
        index = int(np.argmax(flat != np.round(flat)))
        raise TfdeployError(f"Labels {key!r} are fractional floats ({flat[index]} at index {index}); a classifier "
                            f"takes integer class ids 0..{classes - 1} or one-hot rows. Received: {key}.dtype={y.dtype}")
    outside = (flat < 0) | (flat >= classes)
    if np.any(outside):
        index = int(np.argmax(outside))
        raise TfdeployError(f"Labels {key!r} hold class {flat[index]:g} at index {index}, but output has {classes} "
                            f"classes (0..{classes - 1}). Received: {key}[{index}]={flat[index]:g}")
    return flat.astype("int64")


def _multi_hot(y: np.ndarray, info: TensorInfo, key: str) -> None:
    """Labels of independent sigmoid units: 0/1 per unit, in the output's shape."""
    fits = y.ndim == len(info.shape) + 1 and all(e is None or e == a for e, a in zip(info.shape, y.shape[1:]))
    if not fits:
        raise TfdeployError(f"Labels {key!r} have shape {y.shape[1:]} per sample; output {info.name!r} has "
                            f"{len(info.shape) and info.shape[-1]} independent sigmoid units and takes 0/1 per unit in "
                            f"its shape {info.shape}. Received: {key}.shape={y.shape}")
    if y.dtype.kind not in "iufb" or not np.isin(y, (0, 1)).all():
        raise TfdeployError(f"Labels {key!r} of the multi-label output {info.name!r} must be 0 or 1 per unit. "
                            f"Received: {key}.dtype={y.dtype}")


def _check_label_values(labels: Arrays | None, io: ModelIO, field: str) -> None:
    """Label kind and range per output: class ids within the output's classes, finite targets."""
    for name, y in (labels or {}).items():
        info = io.output(name)
        key = field if len(io.outputs) == 1 else f"{field}:{name}"
        classes = info.shape[0] if len(info.shape) == 1 and info.shape[0] else 0
        if name in io.classification_outputs():
            _class_ids(y, 2 if info.is_binary else classes, key)
        elif info.is_multilabel:
            _multi_hot(y, info, key)
        elif y.dtype.kind not in "iuf" or (y.dtype.kind == "f" and not np.all(np.isfinite(y))):
            raise TfdeployError(f"Targets {key!r} must be finite numbers for output {name!r}. "
                                f"Received: {key}.dtype={y.dtype}")


def class_counts(y: np.ndarray, info: TensorInfo) -> np.ndarray:
    """How many samples of each class labels ``y`` of a classification output hold (one unit: two classes)."""
    classes = 2 if info.is_binary or info.shape == (1,) else int(info.shape[0] or 0)
    return np.bincount(_class_ids(y, classes, "y"), minlength=classes)


def labels_classes(y: np.ndarray, io: ModelIO, name: str) -> bool:
    """Whether ``y`` labels classes of output ``name``: a classification head, or one unit of 0/1 labels (a
    sigmoid whose activation a SavedModel or ``.tflite`` does not record); not a regression target."""
    info = io.output(name)
    if name in io.classification_outputs():
        return True
    return info.shape == (1,) and y.size > 0 and y.dtype.kind in "iub" and bool(np.isin(y, (0, 1)).all())


def require_two_classes(data: ModelData, io: ModelIO) -> None:
    """Fine-tuning on labels of a single class teaches nothing: refuse it (naming the class)."""
    name = data.label_output
    if data.y is None or name is None or name not in data.y or not labels_classes(data.y[name], io, name):
        return
    counts = class_counts(data.y[name], io.output(name))
    present = np.flatnonzero(counts)
    if len(present) < 2:
        raise TfdeployError(f"The training labels of output {name!r} hold only class {present.tolist()} "
                            f"({int(counts.sum())} samples); fine-tuning needs at least two classes. An image "
                            f"directory needs one sub-directory per class. Received: data={data.source!r}")


def _label_warnings(data: ModelData, io: ModelIO) -> list[str]:
    name = data.label_output
    if name is None or data.y_val is None or name not in data.y_val or not labels_classes(data.y_val[name], io, name):
        return []
    missing = np.flatnonzero(class_counts(data.y_val[name], io.output(name)) == 0)
    if missing.size:
        return [f"the validation labels of {name!r} have no sample of class(es) {missing.tolist()}: accuracy says "
                "nothing about them"]
    return []


def _check_labels(labels: Arrays | None, n: int, field: str, source: str) -> None:
    for name, value in (labels or {}).items():
        if len(value) != n:
            raise TfdeployError(f"Labels {field}:{name} have {len(value)} samples but the inputs have {n}; they must "
                                f"match. Received: data={source!r}")


def _split_validation(x: Arrays, y: Arrays | None, fraction: float = 0.2) -> tuple[Arrays, Arrays | None, Arrays, Arrays | None]:
    n = batch_size(x)
    n_val = max(1, int(round(n * fraction)))
    if n_val >= n:
        return x, y, x, y
    cut = n - n_val
    head, tail = slice(0, cut), slice(cut, n)
    return take(x, head), None if y is None else take(y, head), take(x, tail), None if y is None else take(y, tail)


def read_data(source: str | os.PathLike | Dataset, io: ModelIO, output: str | None = None,
              hold_out: bool = True) -> ModelData:
    """Loads ``source`` and binds it to a model's named inputs and outputs.

    Args:
        source: An ``.npz`` path, an image directory or a :class:`Dataset`.
        io: The model's inputs and outputs (:func:`tfdeploy.backend.model_io`).
        output: The output accuracy is measured on (default: the first classification head).
        hold_out: Hold out 20 % as validation data when the data has none (for fine-tuning);
            ``False`` uses every sample for both (warmup, checks, benchmarks).

    Returns:
        A :class:`ModelData`.

    Raises:
        TfdeployError: Naming the array and the fix, for missing or extra arrays, sample shapes
            that do not fit an input, strings for a numeric input, or mismatched sample counts.

    Example:
        >>> read_data("data.npz", io).x_val["image"].shape          # doctest: +SKIP
        (1000, 32, 32, 3)
    """
    if output is not None and output not in io.output_names:
        raise TfdeployError(f"The model has no output {output!r}; its outputs are {', '.join(io.output_names)}. "
                            f"Received: output={output!r}")
    if isinstance(source, Dataset):
        dataset = source
    else:
        image = _image_input(io)
        dataset = load_data(source, image_size=image.shape[:2] if image else None,
                            channels=image.shape[2] if image else None)
    name = dataset.source
    x = _check_inputs(_named_inputs(dataset.x, io, "x", name), io, "x", name)
    y = _named_labels(dataset.y, io, "y", output, name)
    _check_labels(y, batch_size(x), "y", name)
    if dataset.x_val is None:
        x, y, x_val, y_val = _split_validation(x, y) if hold_out else (x, y, x, y)
    else:
        x_val = _check_inputs(_named_inputs(dataset.x_val, io, "x_val", name), io, "x_val", name)
        y_val = _named_labels(dataset.y_val, io, "y_val", output, name)
        _check_labels(y_val, batch_size(x_val), "y_val", name)
    _check_label_values(y, io, "y")
    _check_label_values(y_val, io, "y_val")
    label_output = output or default_label_output(io)
    if y_val is None or label_output not in y_val:
        label_output = None
    data = ModelData(x=x, y=y, x_val=x_val, y_val=y_val, label_output=label_output, source=name)
    data.warnings = _label_warnings(data, io)
    return data
