"""TensorFlow, Keras 3, tf_keras, TFMOT and their protobuf modules, each imported on first use.

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
import threading
from types import ModuleType


class KerasFlavour(str, enum.Enum):
    """Which Keras wrote or holds a model."""

    KERAS3 = "keras3"
    TF_KERAS = "tf_keras"
    SAVED_MODEL = "saved_model"  # a plain TF SavedModel without Keras metadata

    def __str__(self) -> str:
        return self.value


@functools.lru_cache(maxsize=None)
def tf() -> ModuleType:
    """Returns the ``tensorflow`` module, importing it on first use (about 3 s).

    TensorFlow's logging is left as the user set it; the CLI keeps TF's C++ lines in a log file
    (:mod:`tfdeploy.console`).
    """
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

    _zip_saving_in_every_thread()
    return module


@functools.lru_cache(maxsize=None)
def _zip_saving_in_every_thread() -> None:
    """tf_keras keeps "save ``.keras`` as a zip archive" in a thread-local set only in the thread that imported it.

    In any other thread its first ``.keras`` save or load turns it off on the way out, and that thread's later
    ``model.save("m.keras")`` writes HDF5 under a ``.keras`` name (seen when ``--auto``'s trial threads imported
    tf_keras first: the user's main thread then wrote HDF5). Make it on by default in every thread.
    """
    from tf_keras.src.saving import saving_lib

    if not isinstance(getattr(saving_lib, "_SAVING_V3_ENABLED", None), threading.local):
        return  # a tf_keras that no longer keeps it per thread

    class Enabled(threading.local):
        value = True

    saving_lib._SAVING_V3_ENABLED = Enabled()


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


@functools.lru_cache(maxsize=None)
def sklearn_metrics() -> ModuleType:
    """Returns ``sklearn.metrics`` (about 1 s to import): the maintained implementations of AUC, logloss, F1, R²."""
    import sklearn.metrics as module

    return module


TFMOT_INTERNALS = {
    "prune_registry": "tensorflow_model_optimization.python.core.sparsity.keras.prune_registry",
    "cluster_registry": "tensorflow_model_optimization.python.core.clustering.keras.clustering_registry",
    "default_8bit_registry": ("tensorflow_model_optimization.python.core.quantization.keras.default_8bit."
                              "default_8bit_quantize_registry"),
    "prune_preserve": ("tensorflow_model_optimization.python.core.quantization.keras.collab_opts.prune_preserve."
                       "default_8bit_prune_preserve_quantize_scheme"),
    "cluster_preserve": ("tensorflow_model_optimization.python.core.quantization.keras.collab_opts."
                         "cluster_preserve.default_8bit_cluster_preserve_quantize_scheme"),
    "quantize_aware_activation": "tensorflow_model_optimization.python.core.quantization.keras.quantize_aware_activation",
}


TF_PROTOS = {
    "saved_model_pb2": "tensorflow.core.protobuf.saved_model_pb2",
    "types_pb2": "tensorflow.core.framework.types_pb2",
    "config_pb2": "tensorflow.core.protobuf.config_pb2",
    "predict_pb2": "tensorflow_serving.apis.predict_pb2",
    "prediction_log_pb2": "tensorflow_serving.apis.prediction_log_pb2",
    "get_model_metadata_pb2": "tensorflow_serving.apis.get_model_metadata_pb2",
    "prediction_service_pb2_grpc": "tensorflow_serving.apis.prediction_service_pb2_grpc",
    "model_server_config_pb2": "tensorflow_serving.config.model_server_config_pb2",
    "platform_config_pb2": "tensorflow_serving.config.platform_config_pb2",
    "saved_metadata_pb2": "tf_keras.protobuf.saved_metadata_pb2",  # keras_metadata.pb of tf_keras SavedModels
}


def tf_proto(name: str) -> ModuleType:
    """A generated protobuf module of TensorFlow or TF Serving (importing TensorFlow first).

    Example:
        >>> tf_proto("predict_pb2").PredictRequest()        # doctest: +SKIP
    """
    import importlib

    tf()
    return importlib.import_module(TF_PROTOS[name])


TF_INTERNALS = {
    "framework_config": "tensorflow.python.framework.config",  # the visible-device list without a TF context
    "util_port": "tensorflow.python.util._pywrap_util_port",  # IsMklEnabled: oneDNN in use in this process
}


def tf_internal(name: str) -> ModuleType:
    """A TensorFlow module that ``tf`` does not export (:data:`TF_INTERNALS`).

    Example:
        >>> tf_internal("framework_config").list_physical_devices("GPU")     # doctest: +SKIP
    """
    import importlib

    tf()
    return importlib.import_module(TF_INTERNALS[name])


@functools.lru_cache(maxsize=None)
def grpc() -> ModuleType:
    """Returns ``grpc`` (grpcio, installed with ``tensorflow-serving-api``): the client of TF Serving's gRPC API.

    Example:
        >>> grpc().insecure_channel("localhost:8500")        # doctest: +SKIP
    """
    import grpc as module

    return module


def protobuf_json_format() -> ModuleType:
    """``google.protobuf.json_format``: messages as the dicts TF Serving's REST API returns.

    Example:
        >>> protobuf_json_format().MessageToDict(message, preserving_proto_field_name=True)   # doctest: +SKIP
    """
    from google.protobuf import json_format

    return json_format


def protobuf_decode_error() -> type:
    """``google.protobuf.message.DecodeError``."""
    from google.protobuf.message import DecodeError

    return DecodeError


def tfmot_internal(name: str) -> ModuleType:
    """A TFMOT module that TFMOT does not export publicly (registries, collaborative schemes).

    Example:
        >>> tfmot_internal("prune_registry").PruneRegistry      # doctest: +SKIP
    """
    import importlib

    tfmot()
    return importlib.import_module(TFMOT_INTERNALS[name])


def version_of(module_name: str) -> str | None:
    """Returns an installed distribution's version without importing it (``None`` if absent)."""
    from importlib import metadata

    try:
        return metadata.version(module_name)
    except metadata.PackageNotFoundError:
        return None


