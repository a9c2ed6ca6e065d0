"""The built-in example: MobileNetV2 on Fashion-MNIST, offline.

The model is Keras 3 MobileNetV2 built with ``weights=None`` — ImageNet weights cannot be
downloaded offline — and sized for CPU (alpha 0.35 at 32×32). A converged copy, trained on all
60,000 Fashion-MNIST training images by ``scripts/train_example.py``, ships in ``example_data/``
with its training record; :func:`prepare_example` uses it unless asked to train from scratch.
The data is real Fashion-MNIST: a 4,000/1,000-image subset ships with tfdeploy; the full 70,000
images are read from Debian's ``dataset-fashion-mnist`` files, the Keras cache, or a directory
you give, when present.

Example:
    >>> from tfdeploy import examples
    >>> report = examples.prepare_example("example")            # doctest: +SKIP
    >>> report.origin, round(report.val_accuracy, 3)            # doctest: +SKIP
    ('shipped', 0.92)
"""

from __future__ import annotations

import dataclasses
import enum
import gzip
import io
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from tfdeploy.model import ranker_example
from tfdeploy.model.data import Dataset
from tfdeploy import faults
from tfdeploy.errors import TfdeployError
from tfdeploy.progress import ProgressLike, as_progress
from tfdeploy.report import Report

EXAMPLE_DATA_PATH = Path(__file__).parents[1] / "example_data" / "fashion_mnist_subset.npz"
SHIPPED_MODEL_PATH = EXAMPLE_DATA_PATH.parent / "mobilenetv2_fashion.keras"
TRAINING_RECORD_PATH = EXAMPLE_DATA_PATH.parent / "training_record.json"
EXAMPLE_ALPHA = 0.35
EXAMPLE_IMAGE_SIZE = 32
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
KERAS_CACHE_FASHION_MNIST = Path(os.path.expanduser("~/.keras/datasets/fashion-mnist"))


class ExampleKind(str, enum.Enum):
    """Which built-in example ``prepare_example`` writes."""

    MOBILENET = "mobilenet"  # MobileNetV2 on Fashion-MNIST (the shipped, converged model)
    RANKER = "ranker"  # a synthetic click-through ranker of any size (tfdeploy.model.ranker_example)


CLASS_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
               "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
_IDX_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
              "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


def read_idx(path: Path) -> np.ndarray:
    """Reads a (gzipped) IDX file: big-endian magic, dimension sizes, then uint8 data."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        raw = handle.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise TfdeployError(f"Not an unsigned-byte IDX file (bad magic). Received: path={str(path)!r}")
    ndim = raw[3]
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims, dtype=np.int64)):
        raise TfdeployError(
            f"IDX file is truncated: header says {dims}, found {data.size} values. Received: path={str(path)!r}"
        )
    return data.reshape(dims)


def read_fashion_mnist(source: str | os.PathLike | None = None) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray], Path]:
    """Reads the full Fashion-MNIST from ``source``, Debian's path, or the Keras cache.

    Returns:
        ``((x_train, y_train), (x_test, y_test), directory_used)`` with uint8 arrays.

    Raises:
        TfdeployError: If none of the locations has the four IDX files.
    """
    candidates = [Path(source)] if source else [DEBIAN_FASHION_MNIST, KERAS_CACHE_FASHION_MNIST]
    for directory in candidates:
        if all((directory / name).is_file() for name in _IDX_FILES):
            arrays = [read_idx(directory / name) for name in _IDX_FILES]
            return (arrays[0], arrays[1]), (arrays[2], arrays[3]), directory
    raise TfdeployError(
        "Fashion-MNIST IDX files not found (need " + ", ".join(_IDX_FILES) + "). Install Debian's "
        "dataset-fashion-mnist package or give the directory. "
        f"Received: searched={[str(c) for c in candidates]}"
    )


def preprocess_images(images: np.ndarray, image_size: int = 32) -> np.ndarray:
    """Turns 28×28 uint8 grayscale into ``image_size``² RGB float32 in [-1, 1] (MobileNetV2's range).

    28→32 is zero-padding (no interpolation); other sizes are resized bilinearly.
    """
    x = images.astype("float32") / 127.5 - 1.0
    if image_size == 32 and x.shape[1:3] == (28, 28):
        x = np.pad(x, ((0, 0), (2, 2), (2, 2)), constant_values=-1.0)
    elif x.shape[1:3] != (image_size, image_size):
        from tfdeploy import backend

        x = backend.tf().image.resize(x[..., None], (image_size, image_size)).numpy()[..., 0]
    return np.repeat(x[..., None], 3, axis=-1)


def example_dataset(image_size: int = 32, full: bool = False, source: str | os.PathLike | None = None) -> Dataset:
    """The example's labelled data, preprocessed for :func:`build_example_model`.

    Args:
        image_size: Square input size (≥ 32, MobileNetV2's minimum).
        full: Read the full 70,000 images (see :func:`read_fashion_mnist`) instead of the packaged subset.
        source: Directory with the IDX files (implies ``full``).

    Example:
        >>> example_dataset().x.shape       # doctest: +SKIP
        (4000, 32, 32, 3)
    """
    if image_size < 32:
        raise TfdeployError(f"MobileNetV2 needs inputs of at least 32×32. Received: image_size={image_size}")
    if full or source:
        (x, y), (x_val, y_val), where = read_fashion_mnist(source)
        origin = f"fashion-mnist (full, {where})"
    else:
        with np.load(EXAMPLE_DATA_PATH) as arrays:
            x, y, x_val, y_val = (arrays[k] for k in ("x", "y", "x_val", "y_val"))
        origin = f"fashion-mnist subset ({EXAMPLE_DATA_PATH.name})"
    return Dataset(
        x=preprocess_images(x, image_size), y=y.astype("int64"),
        x_val=preprocess_images(x_val, image_size), y_val=y_val.astype("int64"), source=origin,
    )


def build_example_model(alpha: float = EXAMPLE_ALPHA, image_size: int = EXAMPLE_IMAGE_SIZE, weights: str | None = None,
                        num_classes: int = 10) -> Any:
    """Builds a flat (non-nested) Keras 3 MobileNetV2 classifier named ``mobilenetv2_fashion``.

    Args:
        alpha: Width multiplier.
        image_size: Square input size; ``weights="imagenet"`` needs 96–224.
        weights: ``None`` (random init, works offline) or ``"imagenet"`` (downloads).
        num_classes: Size of the softmax head ``predictions``.

    Example:
        >>> build_example_model().output_shape     # doctest: +SKIP
        (None, 10)
    """
    from tfdeploy import backend

    keras = backend.keras3()
    inputs = keras.Input(shape=(image_size, image_size, 3), name="image")
    try:
        base = keras.applications.MobileNetV2(
            input_tensor=inputs, alpha=alpha, include_top=False, weights=weights, pooling="avg",
        )
    except Exception as exc:
        if weights is not None:
            raise TfdeployError(
                f"Cannot get MobileNetV2 weights ({exc}); offline, use weights=None. Received: weights={weights!r}"
            ) from exc
        raise
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="predictions")(base.output)
    model = keras.Model(inputs, outputs, name="mobilenetv2_fashion")
    if weights is None:
        # MobileNetV2's BatchNormalization momentum (0.999) needs thousands of steps before the
        # moving statistics are usable; a short training from scratch needs a faster average.
        for layer in model.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.momentum = 0.9
    return model


@dataclasses.dataclass
class FineTuneReport(Report):
    """Result of :func:`fine_tune_example`."""

    epochs: int
    train_samples: int
    val_samples: int
    train_accuracy: float
    val_accuracy: float
    seconds: float


def fine_tune_example(model: Any, data: Dataset, epochs: int = 5, batch_size: int = 64,
                      learning_rate: float = 2e-3, progress: ProgressLike = "auto") -> FineTuneReport:
    """Trains the example model briefly so that it has a meaningful accuracy.

    The model is compiled with Adam and sparse categorical cross-entropy and trained in place.

    Example:
        >>> fine_tune_example(model, example_dataset(), epochs=3).val_accuracy   # doctest: +SKIP
        0.8
    """
    from tfdeploy import backend

    keras = backend.keras_module_for(model)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    start = time.perf_counter()
    callbacks = [backend.progress_callback(keras, as_progress(progress), epochs)]
    history = model.fit(data.x, data.y, epochs=epochs, batch_size=batch_size, verbose=0, shuffle=True,
                        callbacks=callbacks)
    seconds = time.perf_counter() - start
    val_accuracy = _accuracy(model, data)
    return FineTuneReport(
        epochs=epochs, train_samples=len(data.x), val_samples=len(data.x_val),
        train_accuracy=float(history.history["accuracy"][-1]), val_accuracy=val_accuracy, seconds=seconds,
    )


def shipped_training_record() -> dict[str, Any]:
    """The shipped model's ``training_record.json``: data, epochs, seed, test accuracy, time."""
    import json

    try:
        return json.loads(TRAINING_RECORD_PATH.read_text())
    except (OSError, ValueError) as exc:
        raise TfdeployError(f"The shipped example's training record is missing or unreadable ({exc}); reinstall "
                            f"tfdeploy or use --train. Received: path={str(TRAINING_RECORD_PATH)!r}") from exc


@dataclasses.dataclass
class ExampleReport(Report):
    """What :func:`prepare_example` wrote.

    Attributes:
        origin: ``"shipped"`` (the packaged, converged model) or ``"trained"`` (trained by this call).
        val_accuracy: Top-1 accuracy on the packaged 1,000 test images, measured by this call.
        training: The shipped model's training record, or this call's fine-tune report.
    """

    model_path: str
    data_path: str
    data_source: str
    params: int
    origin: str
    val_accuracy: float
    training: dict[str, Any]

    def rows(self) -> list[tuple[str, Any]]:
        t = self.training
        trained = (f"shipped: {t['epochs']} epochs on {t['data']}; {100 * t['test_accuracy_full']:.2f}% on the full "
                   f"{t['test_images_full']}-image test set" if self.origin == "shipped" else
                   f"trained now: {t['epochs']} epochs on {t['train_samples']} images in {t['seconds']:.0f} s")
        return [("model", self.model_path), ("data", f"{self.data_path} ({self.data_source})"),
                ("parameters", self.params), ("training", trained),
                ("accuracy on the 1,000 packaged test images", self.val_accuracy)]


def _accuracy(model: Any, data: Dataset) -> float:
    return float(np.mean(np.argmax(model.predict(data.x_val, batch_size=256, verbose=0), -1) == data.y_val))


@faults.boundary("example")
def prepare_example(out_dir: str | os.PathLike, kind: ExampleKind = ExampleKind.MOBILENET, train: bool = False,
                    epochs: int = 5, alpha: float = EXAMPLE_ALPHA, image_size: int = EXAMPLE_IMAGE_SIZE,
                    full_data: bool = False, embedding_rows: int = ranker_example.DEFAULT_ROWS,
                    features: int = ranker_example.DEFAULT_FEATURES, overwrite: bool = False,
                    progress: ProgressLike = "auto") -> ExampleReport | ranker_example.RankerExampleReport:
    """Writes the example's ``model.keras`` and ``data.npz`` to ``out_dir``.

    By default ``model.keras`` is the shipped model, trained to convergence on the full
    Fashion-MNIST by ``scripts/train_example.py`` (its record is in the report); ``train=True``
    builds MobileNetV2 from scratch and trains it here instead. ``data.npz`` holds the
    preprocessed packaged subset (``x``, ``y``, ``x_val``, ``y_val``; the full data set with
    ``full_data``) in the layout every ``--data`` option accepts.

    ``kind="ranker"`` writes a synthetic click-through ranker instead (see
    :mod:`tfdeploy.model.ranker_example`): ``features`` named categorical features (int64 and
    string), four dense floats, and a ``user_id`` table of ``embedding_rows`` rows; ``epochs``
    applies to it too.

    Args:
        embedding_rows: Ranker: rows of the ``user_id`` table (32 float32 wide; ``item_id`` has a
            quarter of them). 8,000,000 gives a model of 1.3 GB.
        features: Ranker: categorical features (at least 4; a third of them strings).

    Example:
        >>> print(prepare_example("example"))      # doctest: +SKIP
        >>> prepare_example("ranker", kind="ranker", embedding_rows=100_000).auc   # doctest: +SKIP
        0.71
    """
    if ExampleKind(kind) is ExampleKind.RANKER:
        if embedding_rows < 1000 or features < ranker_example.MIN_FEATURES:
            raise TfdeployError(f"The ranker needs at least 1000 embedding rows and {ranker_example.MIN_FEATURES} "
                                f"features. Received: embedding_rows={embedding_rows}, features={features}")
        return ranker_example.prepare_ranker(out_dir, embedding_rows=embedding_rows, features=features,
                                             epochs=epochs, overwrite=overwrite, progress=progress)
    from tfdeploy.files import ensure_writable, write_atomic
    from tfdeploy.model.loading import load_model, save_model

    say = as_progress(progress)
    out = Path(out_dir)
    model_path, data_path = out / "model.keras", out / "data.npz"
    for target in (model_path, data_path):
        ensure_writable(target, overwrite)
    if not train and (alpha, image_size) != (EXAMPLE_ALPHA, EXAMPLE_IMAGE_SIZE):
        raise TfdeployError(f"The shipped model is alpha={EXAMPLE_ALPHA} at {EXAMPLE_IMAGE_SIZE}x{EXAMPLE_IMAGE_SIZE}; "
                            f"other sizes need train=True (--train). Received: alpha={alpha}, image_size={image_size}")
    data = example_dataset(image_size=image_size, full=full_data)
    if train:
        model = build_example_model(alpha=alpha, image_size=image_size)
        say(f"Training MobileNetV2 (alpha={alpha}, {image_size}x{image_size}) on {len(data.x)} images "
            f"for {epochs} epoch(s)")
        training = fine_tune_example(model, data, epochs=epochs, progress=say).to_dict()
        save_model(model, model_path, overwrite=overwrite)
    else:
        training = shipped_training_record()
        say(f"Using the shipped MobileNetV2 ({100 * training['test_accuracy_full']:.2f}% on Fashion-MNIST's test set)")
        model = load_model(SHIPPED_MODEL_PATH).model
        write_atomic(model_path, SHIPPED_MODEL_PATH.read_bytes())
    buffer = io.BytesIO()
    np.savez_compressed(buffer, x=data.x, y=data.y, x_val=data.x_val, y_val=data.y_val)
    write_atomic(data_path, buffer.getvalue())
    return ExampleReport(model_path=str(model_path), data_path=str(data_path), data_source=data.source,
                         params=int(model.count_params()), origin="trained" if train else "shipped",
                         val_accuracy=_accuracy(model, data), training=training)
