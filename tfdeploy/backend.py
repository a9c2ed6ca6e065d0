"""The only module that imports TensorFlow, Keras 3, tf_keras and TFMOT.

Everything else in tfdeploy asks this module for them, so that ``import tfdeploy`` and
``tfdeploy --help`` stay fast and so that the Keras 2/3 split is handled in one place.

TF 2.21's ``tf.keras`` is Keras 3. TFMOT only understands Keras 2 (``tf_keras``); importing
TFMOT sets ``TF_USE_LEGACY_KERAS=1`` in ``os.environ`` as a side effect, which every child
process would inherit. :func:`tfmot` undoes that side effect.

Example:
    >>> from tfdeploy import backend
    >>> tf = backend.tf()                          # doctest: +SKIP
    >>> backend.flavour_of(model)                  # doctest: +SKIP
    <KerasFlavour.KERAS3: 'keras3'>
"""

from __future__ import annotations

import enum
import functools
import os
from types import ModuleType
from typing import Any


class KerasFlavour(str, enum.Enum):
    """Which Keras wrote or holds a model."""

    KERAS3 = "keras3"
    TF_KERAS = "tf_keras"
    SAVED_MODEL = "saved_model"  # a plain TF SavedModel without Keras metadata

    def __str__(self) -> str:
        return self.value


@functools.lru_cache(maxsize=None)
def tf() -> ModuleType:
    """Returns the ``tensorflow`` module, importing it on first use (about 3 s)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow

    return tensorflow


@functools.lru_cache(maxsize=None)
def keras3() -> ModuleType:
    """Returns Keras 3 (``import keras``), the default ``tf.keras`` in TF 2.21."""
    tf()
    import keras

    return keras


@functools.lru_cache(maxsize=None)
def tf_keras() -> ModuleType:
    """Returns Keras 2 (``import tf_keras``), the Keras TFMOT works with."""
    tf()
    import tf_keras as module

    return module


@functools.lru_cache(maxsize=None)
def tfmot() -> ModuleType:
    """Returns ``tensorflow_model_optimization`` without leaking ``TF_USE_LEGACY_KERAS``."""
    tf_keras()
    previous = os.environ.get("TF_USE_LEGACY_KERAS")
    try:
        import tensorflow_model_optimization as module
    finally:
        if previous is None:
            os.environ.pop("TF_USE_LEGACY_KERAS", None)
        else:
            os.environ["TF_USE_LEGACY_KERAS"] = previous
    return module


def flavour_of(model: Any) -> KerasFlavour:
    """Tells which Keras a model object belongs to.

    Args:
        model: A Keras 3 or tf_keras model.

    Returns:
        The model's :class:`KerasFlavour`.

    Raises:
        TypeError: If ``model`` is neither a Keras 3 nor a tf_keras model.

    Example:
        >>> flavour_of(keras.Sequential([keras.layers.Dense(1)]))   # doctest: +SKIP
        <KerasFlavour.KERAS3: 'keras3'>
    """
    if isinstance(model, keras3().Model):
        return KerasFlavour.KERAS3
    if isinstance(model, tf_keras().Model):
        return KerasFlavour.TF_KERAS
    raise TypeError(
        "Expected a Keras 3 or tf_keras model. "
        f"Received: model of type {type(model).__module__}.{type(model).__qualname__}"
    )


def keras_module_for(model: Any) -> ModuleType:
    """Returns the Keras module (``keras`` or ``tf_keras``) that ``model`` belongs to."""
    return keras3() if flavour_of(model) is KerasFlavour.KERAS3 else tf_keras()


def version_of(module_name: str) -> str | None:
    """Returns an installed distribution's version without importing it (``None`` if absent)."""
    from importlib import metadata

    try:
        return metadata.version(module_name)
    except metadata.PackageNotFoundError:
        return None


def progress_callback(keras: ModuleType, progress: Any, epochs: int, label: str = "fine-tune") -> Any:
    """A Keras callback (for ``keras``'s flavour) reporting each epoch through ``progress(line)``."""

    class _EpochProgress(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            metrics = ", ".join(f"{k}={float(v):.4f}" for k, v in (logs or {}).items())
            progress(f"  {label} epoch {epoch + 1}/{epochs}: {metrics}")

    return _EpochProgress()
