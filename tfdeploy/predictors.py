"""Run a model the way it would be served, for accuracy, parity and latency measurements.

* Keras models run through a ``tf.function`` of ``model(x, training=False)`` (not
  ``model.predict``, whose per-call overhead dwarfs a single example);
* ``.tflite`` files run in the TFLite interpreter, with int8/uint8 inputs quantized and outputs
  dequantized using the tensors' own scale and zero point.

Example:
    >>> predictor = tflite_predictor("out/ptq-int8.tflite")     # doctest: +SKIP
    >>> predictor.predict(x_val).shape
    (1000, 10)
"""

from __future__ import annotations

import dataclasses
import os
import statistics
import time
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np

from tfdeploy import backend


@dataclasses.dataclass
class Predictor:
    """A callable on a batch of float inputs returning float outputs (the first output)."""

    name: str
    runtime: str
    predict_batch: Callable[[np.ndarray], np.ndarray]
    sample_shape: tuple[int, ...] = ()
    max_batch: int = 256
    loaded: Any = None  # the object that must stay alive while predicting (e.g. a loaded SavedModel)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Runs ``x`` in chunks of ``max_batch`` and concatenates the outputs."""
        parts = [self.predict_batch(x[i:i + self.max_batch]) for i in range(0, len(x), self.max_batch)]
        return np.concatenate(parts, axis=0)


def keras_predictor(model: Any, name: str = "keras", training: bool | None = False) -> Predictor:
    """A :class:`Predictor` around a Keras 3 or tf_keras model's call.

    ``training=False`` is how models are served; ``None`` calls ``model(x)`` the way notebook code
    does, where a Keras 3 layer called with ``training=True`` inside the model stays random.
    """
    tf = backend.tf()
    if training is None:
        function = tf.function(lambda x: model(x), reduce_retracing=True)
    else:
        function = tf.function(lambda x: model(x, training=training), reduce_retracing=True)

    def predict_batch(x: np.ndarray) -> np.ndarray:
        out = function(tf.constant(x))
        if isinstance(out, dict):
            out = next(iter(out.values()))
        if isinstance(out, (list, tuple)):
            out = out[0]
        return np.asarray(out)

    shape = tuple(int(d) if d is not None else 1 for d in model.input_shape[1:])
    return Predictor(name=name, runtime="tf.function", predict_batch=predict_batch, sample_shape=shape)


def tflite_interpreter(source: str | os.PathLike | bytes, threads: int | None = None) -> Any:
    """``tf.lite.Interpreter`` for a file or flatbuffer bytes (without its deprecation warning:
    ``ai_edge_litert`` is not part of the pinned stack)."""
    tf = backend.tf()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        if isinstance(source, (bytes, bytearray)):
            return tf.lite.Interpreter(model_content=bytes(source), num_threads=threads)
        return tf.lite.Interpreter(model_path=str(source), num_threads=threads)


def tflite_predictor(source: str | os.PathLike | bytes, name: str = "tflite", threads: int | None = None) -> Predictor:
    """A :class:`Predictor` around the TFLite interpreter (handles int8/uint8 I/O)."""
    interpreter = tflite_interpreter(source, threads)
    interpreter.allocate_tensors()
    state = {"batch": None}
    input_detail = interpreter.get_input_details()[0]
    output_index = interpreter.get_output_details()[0]["index"]

    def predict_batch(x: np.ndarray) -> np.ndarray:
        if state["batch"] != len(x):
            interpreter.resize_tensor_input(input_detail["index"], [len(x), *input_detail["shape"][1:]])
            interpreter.allocate_tensors()
            state["batch"] = len(x)
        detail = interpreter.get_input_details()[0]
        dtype = np.dtype(detail["dtype"])
        if dtype.kind in "iu":
            scale, zero_point = detail["quantization"]
            info = np.iinfo(dtype)
            x = np.clip(np.round(x / scale + zero_point), info.min, info.max)
        interpreter.set_tensor(detail["index"], x.astype(dtype))
        interpreter.invoke()
        out_detail = next(d for d in interpreter.get_output_details() if d["index"] == output_index)
        out = interpreter.get_tensor(output_index)
        if np.dtype(out_detail["dtype"]).kind in "iu":
            scale, zero_point = out_detail["quantization"]
            out = (out.astype("float32") - zero_point) * scale
        return np.asarray(out, dtype="float32")

    return Predictor(name=name, runtime=f"tflite interpreter ({threads or 'default'} threads)",
                     predict_batch=predict_batch, sample_shape=tuple(int(d) for d in input_detail["shape"][1:]))


def saved_model_predictor(version_dir: str | os.PathLike, signature_name: str = "serving_default",
                          name: str | None = None) -> Predictor:
    """A :class:`Predictor` calling a SavedModel signature, as TF Serving runs it (first output key)."""
    from tfdeploy.errors import TfdeployError

    tf = backend.tf()
    loaded = tf.saved_model.load(str(version_dir), tags=["serve"])
    if signature_name not in loaded.signatures:
        raise TfdeployError(f"Signature {signature_name!r} is not in the SavedModel (has {sorted(loaded.signatures)}). "
                            f"Received: path={str(version_dir)!r}")
    function = loaded.signatures[signature_name]
    _, kwargs = function.structured_input_signature
    if len(kwargs) != 1:
        raise TfdeployError(f"Only single-input signatures can be driven here. Received: inputs={sorted(kwargs)}")
    (key, spec), = kwargs.items()

    def predict_batch(x: np.ndarray) -> np.ndarray:
        outputs = function(**{key: tf.constant(x, dtype=spec.dtype)})
        return np.asarray(outputs[sorted(outputs)[0]])

    return Predictor(name=name or Path(version_dir).name, runtime=f"SavedModel signature {signature_name}",
                     predict_batch=predict_batch, loaded=loaded,
                     sample_shape=tuple(int(d) if d is not None else 1 for d in spec.shape[1:]))


def is_saved_model_dir(path: Path) -> bool:
    """A directory with ``saved_model.pb`` (an exported TF Serving version or any SavedModel)."""
    return path.is_dir() and (path / "saved_model.pb").is_file()


def predictor_for_file(path: str | os.PathLike, name: str | None = None, custom_objects: Any = None,
                       threads: int | None = None, training: bool | None = False) -> Predictor:
    """A predictor in the runtime that would serve ``path``.

    ``.tflite`` -> TFLite interpreter; a SavedModel directory without Keras metadata -> its
    ``serving_default`` signature; ``.keras``/``.h5``/tf_keras SavedModel -> the Keras model.
    """
    path = Path(path)
    if path.suffix == ".tflite":
        return tflite_predictor(path, name=name or path.stem, threads=threads)
    if is_saved_model_dir(path) and not (path / "keras_metadata.pb").is_file():
        return saved_model_predictor(path, name=name or path.name)
    from tfdeploy.model import load_model

    return keras_predictor(load_model(path, custom_objects=custom_objects).model, name=name or path.stem,
                           training=training)


def median_latency_ms(predictor: Predictor, example: np.ndarray, repeats: int = 50, warmup: int = 5) -> float:
    """Median wall time of single-example calls (after ``warmup`` untimed calls), in ms."""
    batch = example[:1]
    for _ in range(warmup):
        predictor.predict_batch(batch)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        predictor.predict_batch(batch)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)
