"""User data for fine-tuning, calibration, evaluation and warmup.

Two sources are accepted everywhere (``--data``, ``--warmup-data``):

* an ``.npz`` file with ``x`` and optionally ``y``, ``x_val``, ``y_val``;
* an image directory with one sub-directory per class (``data/cat/*.png``, ``data/dog/*.jpg``);
  classes are numbered in sorted order of their folder names.

Example:
    >>> from tfdeploy import load_data
    >>> data = load_data("fashion.npz")          # doctest: +SKIP
    >>> data.x.shape, data.has_labels
    ((4000, 32, 32, 3), True)
"""

from __future__ import annotations

import dataclasses
import os
import zipfile
from pathlib import Path
from typing import Sequence

import numpy as np

from tfdeploy.errors import TfdeployError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")


@dataclasses.dataclass
class Dataset:
    """Arrays for training and validation. ``y``/``y_val`` are ``None`` without labels."""

    x: np.ndarray
    y: np.ndarray | None = None
    x_val: np.ndarray | None = None
    y_val: np.ndarray | None = None
    source: str = "arrays"

    @property
    def has_labels(self) -> bool:
        return self.y is not None

    def with_validation(self, fraction: float = 0.2) -> "Dataset":
        """Returns a dataset that has validation arrays, holding out the last ``fraction`` if needed."""
        if self.x_val is not None:
            return self
        n_val = max(1, int(round(len(self.x) * fraction)))
        if n_val >= len(self.x):
            return dataclasses.replace(self, x_val=self.x, y_val=self.y)
        cut = len(self.x) - n_val
        return dataclasses.replace(
            self, x=self.x[:cut], y=None if self.y is None else self.y[:cut],
            x_val=self.x[cut:], y_val=None if self.y is None else self.y[cut:],
        )

    def sample(self, n: int, seed: int = 0) -> np.ndarray:
        """Returns ``n`` inputs drawn without replacement (all of them if fewer), reproducibly."""
        rng = np.random.default_rng(seed)
        index = rng.permutation(len(self.x))[: min(n, len(self.x))]
        return self.x[np.sort(index)]


def _check_pair(x: np.ndarray, y: np.ndarray | None, names: tuple[str, str], path: Path) -> None:
    if y is not None and len(y) != len(x):
        raise TfdeployError(
            f"'{names[0]}' has {len(x)} samples but '{names[1]}' has {len(y)}; they must match. "
            f"Received: path={str(path)!r}"
        )


def load_npz(path: Path) -> Dataset:
    """Reads an ``.npz`` with ``x`` (required), ``y``, ``x_val``, ``y_val``."""
    try:
        with np.load(path, allow_pickle=False) as arrays:
            contents = {key: arrays[key] for key in arrays.files}
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise TfdeployError(f"Cannot read the .npz data file ({exc}). Received: path={str(path)!r}") from exc
    if "x" not in contents:
        raise TfdeployError(
            f"The .npz data file needs an array named 'x' (and optionally y, x_val, y_val). "
            f"Received: path={str(path)!r}, arrays={sorted(contents)}"
        )
    data = Dataset(
        x=contents["x"], y=contents.get("y"), x_val=contents.get("x_val"), y_val=contents.get("y_val"),
        source=str(path),
    )
    _check_pair(data.x, data.y, ("x", "y"), path)
    if data.x_val is not None:
        _check_pair(data.x_val, data.y_val, ("x_val", "y_val"), path)
    return data


def load_image_directory(path: Path, image_size: Sequence[int] | None = None, channels: int | None = None) -> Dataset:
    """Reads ``path/<class>/<image>`` files into float32 arrays scaled to [0, 1].

    Args:
        path: Directory with one sub-directory per class.
        image_size: ``(height, width)`` to resize to; default the first image's size.
        channels: 1 or 3; default the first image's channel count.
    """
    from tfdeploy import backend

    classes = sorted(d.name for d in path.iterdir() if d.is_dir())
    files = [
        (label, f) for label, name in enumerate(classes)
        for f in sorted((path / name).iterdir()) if f.suffix.lower() in IMAGE_SUFFIXES
    ]
    if not files:
        raise TfdeployError(
            "The image directory has no class sub-directories with images "
            f"({', '.join(IMAGE_SUFFIXES)}); expected data/<class>/<image>. Received: path={str(path)!r}"
        )
    tf = backend.tf()
    images, labels = [], []
    for label, file in files:
        try:
            image = tf.io.decode_image(tf.io.read_file(str(file)), channels=channels or 0, expand_animations=False)
        except Exception as exc:
            raise TfdeployError(f"Cannot decode image ({exc}). Received: path={str(file)!r}") from exc
        if channels is None:
            channels = int(image.shape[-1])
        if image_size is None:
            image_size = (int(image.shape[0]), int(image.shape[1]))
        image = tf.image.resize(tf.cast(image, tf.float32) / 255.0, image_size)
        images.append(image.numpy())
        labels.append(label)
    return Dataset(x=np.stack(images).astype("float32"), y=np.asarray(labels, dtype="int64"), source=str(path))


def load_data(path: str | os.PathLike, image_size: Sequence[int] | None = None, channels: int | None = None) -> Dataset:
    """Loads user data from an ``.npz`` file or an image directory of class folders.

    Args:
        path: The ``.npz`` file or image directory.
        image_size: For image directories, ``(height, width)`` to resize to.
        channels: For image directories, 1 or 3 channels.

    Returns:
        A :class:`Dataset`.

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
    raise TfdeployError(
        "Data must be an .npz file (x, y, x_val, y_val) or an image directory of class folders. "
        f"Received: path={str(path)!r}"
    )


def fit_to_input(x: np.ndarray, input_shape: Sequence[int | None]) -> np.ndarray:
    """Checks that samples match a model input shape (without the batch dimension).

    Raises:
        TfdeployError: Naming both shapes if they differ.
    """
    expected = tuple(input_shape)
    actual = tuple(x.shape[1:])
    if len(expected) != len(actual) or any(e is not None and e != a for e, a in zip(expected, actual)):
        raise TfdeployError(
            f"The data's sample shape {actual} does not match the model input shape {expected}. "
            "Resize the data (or pass image_size for image directories). "
            f"Received: x.shape={tuple(x.shape)}"
        )
    return x.astype("float32", copy=False)
