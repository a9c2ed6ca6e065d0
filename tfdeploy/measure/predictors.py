"""Run a model the way it would be served, on named inputs, for accuracy, parity and latency.

* Keras models run through a ``tf.function`` of the model's call with ``training=False`` (not
  ``model.predict``, whose per-call overhead dwarfs a single example);
* SavedModel versions run through their signature, as TF Serving runs them;
* ``.tflite`` files run in the LiteRT interpreter (``ai_edge_litert``, an install requirement)
  through their signature runner, with int8/uint8 inputs
  quantized and outputs dequantized using each tensor's own scale and zero point. Models
  converted with a fixed batch (recurrent layers) are run in chunks of that batch.

Every predictor takes ``{input name: array}`` and returns ``{output name: array}``.

Example:
    >>> predictor = tflite_predictor("out/ptq-int8.tflite")     # doctest: +SKIP
    >>> predictor.predict({"image": x_val})["probabilities"].shape
    (1000, 10)
"""

from __future__ import annotations

import dataclasses
import os
import re
import statistics
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from tfdeploy import backend
from tfdeploy.errors import TfdeployError
from tfdeploy.io_spec import Arrays, ModelIO, TensorInfo, as_feed, batch_size, concat, synthesize, take
from tfdeploy.measure.timing import time_calls
from tfdeploy.model.data import read_data
from tfdeploy.model.loading import is_plain_saved_model, load_model


@dataclasses.dataclass
class Predictor:
    """A callable on named inputs returning named float outputs.

    Attributes:
        name: Display name.
        runtime: What runs it (``tf.function``, ``SavedModel signature serving_default``, ``LiteRT ...``).
        io: Its named inputs and outputs.
        predict_batch: One call on one batch.
        max_batch: Largest batch per call (:meth:`predict` chunks larger inputs).
        fixed_batch: The only batch size the model takes (TFLite models converted with a fixed
            batch); :meth:`predict` pads the last chunk.
        loaded: An object that must stay alive while predicting (e.g. a loaded SavedModel).
    """

    name: str
    runtime: str
    io: ModelIO
    predict_batch: Callable[[Arrays], Arrays]
    max_batch: int = 256
    fixed_batch: int | None = None
    loaded: Any = None

    def predict(self, inputs: Mapping[str, np.ndarray]) -> Arrays:
        """Runs ``inputs`` in chunks and concatenates every output.

        Example:
            >>> predictor.predict({"image": x_val})["probabilities"].shape    # doctest: +SKIP
            (1000, 10)
        """
        n = batch_size(inputs)
        step = self.fixed_batch or self.max_batch
        parts = []
        for start in range(0, n, step):
            chunk = take(inputs, slice(start, start + step))
            real = batch_size(chunk)
            if self.fixed_batch and real < self.fixed_batch:
                pad = np.arange(self.fixed_batch) % real
                chunk = take(chunk, pad)
            outputs = self.predict_batch(chunk)
            parts.append({k: v[:real] for k, v in outputs.items()})
        return concat(parts)


def _float_outputs(outputs: Mapping[str, Any]) -> Arrays:
    return {name: np.asarray(value) for name, value in outputs.items()}


def keras_predictor(model: Any, name: str = "keras", training: bool | None = False) -> Predictor:
    """A :class:`Predictor` around a Keras 3 or tf_keras model's call.

    ``training=False`` is how models are served; ``None`` calls ``model(x)`` the way notebook code
    does, where a Keras 3 layer called with ``training=True`` inside the model stays random.

    Example:
        >>> keras_predictor(model).predict({"image": x})["probabilities"].shape    # doctest: +SKIP
        (32, 10)
    """
    tf = backend.tf()
    io = backend.model_io(model)
    function = tf.function(lambda inputs: backend.call_model(model, inputs, training=training),
                           reduce_retracing=True)

    def predict_batch(inputs: Arrays) -> Arrays:
        feed = {t.name: tf.constant(as_feed(inputs[t.name], t)) for t in io.inputs}
        return _float_outputs(function(feed))

    return Predictor(name=name, runtime="tf.function", io=io, predict_batch=predict_batch)


def saved_model_predictor(version_dir: str | os.PathLike, signature_name: str = "serving_default",
                          name: str | None = None) -> Predictor:
    """A :class:`Predictor` calling a SavedModel signature, as TF Serving runs it.

    Example:
        >>> saved_model_predictor("models/fashion/1").runtime     # doctest: +SKIP
        'SavedModel signature serving_default'
    """
    signature = backend.SavedModelFunction(str(version_dir), signature_name)

    def predict_batch(inputs: Arrays) -> Arrays:
        return _float_outputs(signature({t.name: as_feed(inputs[t.name], t) for t in signature.io.inputs}))

    return Predictor(name=name or Path(version_dir).name, runtime=f"SavedModel signature {signature_name}",
                     io=signature.io, predict_batch=predict_batch, loaded=signature.loaded)


def _tensor_info(name: str, detail: Mapping[str, Any]) -> TensorInfo:
    """The logical tensor: an int8/uint8 tensor with a scale holds quantized floats."""
    dtype = np.dtype(detail["dtype"])
    signature = detail.get("shape_signature", detail["shape"])
    quantized = dtype.kind in "iu" and bool(detail["quantization"][0])
    name_of_dtype = "string" if dtype.kind in "SO" else "float32" if quantized else dtype.name
    return TensorInfo(name, name_of_dtype, tuple(None if d < 0 else int(d) for d in list(signature)[1:]))


def _quantize(value: np.ndarray, detail: Mapping[str, Any]) -> np.ndarray:
    """Converts a logical input to the tensor's storage: floats quantized with its scale and zero point."""
    dtype = np.dtype(detail["dtype"])
    if dtype.kind in "iu" and detail["quantization"][0]:
        scale, zero_point = detail["quantization"]
        info = np.iinfo(dtype)
        return np.clip(np.round(value / scale + zero_point), info.min, info.max).astype(dtype)
    if dtype.kind in "SO":
        return as_feed(value, TensorInfo("", "string", ()))
    return value.astype(dtype, copy=False)


def _dequantize(value: np.ndarray, detail: Mapping[str, Any]) -> np.ndarray:
    scale, zero_point = detail["quantization"]
    if np.dtype(detail["dtype"]).kind in "iu" and scale:
        return (value.astype("float32") - zero_point) * scale
    return np.asarray(value)


# TFLite kernels that keep state in variable tensors between invocations.
DEFAULT_TFLITE_THREADS = 1  # single-stream latency, comparable across machines; bench --threads changes it
STATEFUL_OPS = ("UNIDIRECTIONAL_SEQUENCE_LSTM", "BIDIRECTIONAL_SEQUENCE_LSTM", "UNIDIRECTIONAL_SEQUENCE_RNN",
                "BIDIRECTIONAL_SEQUENCE_RNN")


def tflite_predictor(source: str | os.PathLike | bytes, name: str = "tflite", threads: int | None = None) -> Predictor:
    """A :class:`Predictor` around a TFLite model's signature runner (handles int8/uint8 I/O).

    LiteRT runs it with its default XNNPACK CPU delegate on ``threads`` threads (default
    :data:`DEFAULT_TFLITE_THREADS`); the predictor's ``runtime`` names both.

    Example:
        >>> tflite_predictor("out/ptq-int8.tflite", threads=2).fixed_batch    # doctest: +SKIP
    """
    threads = threads or DEFAULT_TFLITE_THREADS
    interpreter, runtime = backend.tflite_interpreter(source, threads)
    signatures = interpreter.get_signature_list()
    if not signatures:
        raise TfdeployError("The .tflite file has no signature, so its inputs have no names; convert it from a "
                            "SavedModel or a Keras model (tfdeploy compress does). Received: "
                            f"path={str(source)[:200] if not isinstance(source, (bytes, bytearray)) else '<bytes>'!r}")
    key = "serving_default" if "serving_default" in signatures else sorted(signatures)[0]
    stateful = any(op["op_name"] in STATEFUL_OPS for op in interpreter._get_ops_details())
    if stateful:
        interpreter.allocate_tensors()  # before the runner exists: it holds the interpreter from then on
    runner = interpreter.get_signature_runner(key)
    in_details, out_details = runner.get_input_details(), runner.get_output_details()
    io = ModelIO(inputs=tuple(_tensor_info(k, d) for k, d in sorted(in_details.items())),
                 outputs=tuple(_tensor_info(k, d) for k, d in sorted(out_details.items())))
    fixed = {int(d["shape_signature"][0]) for d in in_details.values() if len(d["shape_signature"])}
    fixed_batch = next(iter(fixed)) if fixed and min(fixed) > 0 else None

    def predict_batch(inputs: Arrays) -> Arrays:
        feed = {k: _quantize(np.asarray(inputs[k]), d) for k, d in in_details.items()}
        if stateful:  # fused sequence kernels carry their state across invocations: every call starts fresh
            interpreter.reset_all_variables()
        outputs = runner(**feed)
        return {k: np.array(_dequantize(v, out_details[k]), dtype="float32") for k, v in outputs.items()}

    return Predictor(name=name, runtime=f"{runtime} ({threads} thread{'s' if threads > 1 else ''})", io=io,
                     predict_batch=predict_batch, fixed_batch=fixed_batch, loaded=interpreter)


def check_batch_one(predictor: Predictor, samples: Arrays, what: str) -> None:
    """Invokes a freshly made predictor with one sample per call, then with all of them at once: both must work and
    agree (a model can convert, run at batch N and still crash at batch 1 when the flatbuffer's shapes are wrong).

    Raises:
        TfdeployError: Naming the failing op, or the output that differs between the batch sizes.

    Example:
        >>> check_batch_one(tflite_predictor(blob), x_val, "ptq-int8.tflite")     # doctest: +SKIP
    """
    count = min(batch_size(samples), 4)
    if count == 0 or predictor.fixed_batch:  # a fixed-batch model is only ever called at its own batch
        return
    first = take(samples, slice(0, count))
    try:
        alone = concat(predictor.predict_batch(take(first, slice(i, i + 1))) for i in range(count))
        together = predictor.predict_batch(first)
    except Exception as exc:  # the runtime's error names the node and its op
        text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        op = re.search(r"Node number (\d+) \((\w+)\)", str(exc))
        where = f"op {op.group(2)} (node {op.group(1)})" if op else "the runtime"
        raise TfdeployError(f"{what} fails when called with one sample (batch 1) in {where}: {text[:240]}. A LiteRT or "
                            "TF Serving client sending single requests would crash, so it is not kept. "
                            "Received: batch=1") from exc
    for name, values in together.items():
        diff = float(np.max(np.abs(alone[name].astype("float64") - values.astype("float64")), initial=0.0))
        if diff > 1e-3 * max(1.0, float(np.max(np.abs(values), initial=0.0))):
            raise TfdeployError(f"{what} gives different outputs at batch 1 and batch {count}: output {name!r} differs by "
                                f"{diff:.3g}, so single requests would be answered differently; it is not kept. "
                                f"Received: batch=1")


def predictor_for_file(path: str | os.PathLike, name: str | None = None, custom_objects: Any = None,
                       threads: int | None = None, training: bool | None = False, safe_mode: bool = True) -> Predictor:
    """A predictor in the runtime that would serve ``path``.

    ``.tflite`` -> TFLite interpreter; a SavedModel directory without Keras metadata -> its
    ``serving_default`` signature; ``.keras``/``.h5``/tf_keras SavedModel -> the Keras model.

    Example:
        >>> predictor_for_file("models/fashion/1").runtime     # doctest: +SKIP
        'SavedModel signature serving_default'
    """
    path = Path(path)
    if path.suffix == ".tflite":
        if not path.is_file():
            raise TfdeployError(f"No TFLite model at this path. Received: path={str(path)!r}")
        return tflite_predictor(path, name=name or path.stem, threads=threads)
    if is_plain_saved_model(path):
        return saved_model_predictor(path, name=name or path.name)
    loaded = load_model(path, custom_objects=custom_objects, safe_mode=safe_mode)
    return keras_predictor(loaded.model, name=name or path.stem, training=training)


def request_batch(io: ModelIO, batch: int, data: Any, seed: int) -> Arrays:
    """One request's named inputs: the first ``batch`` samples of ``data`` (cycled), else synthesized from ``seed``.

    Args:
        io: The model's inputs.
        batch: Samples in the request.
        data: Real inputs (``.npz``/image directory/Dataset), or ``None`` to synthesize.
        seed: Seed of the synthesized values.

    Example:
        >>> x = request_batch(predictor.io, 8, None, seed=0)     # doctest: +SKIP
    """
    if data is None:
        return synthesize(io, batch, np.random.default_rng(seed))
    x = read_data(data, io, hold_out=False).x
    index = np.arange(batch) % batch_size(x)
    return {t.name: as_feed(x[t.name][index], t) for t in io.inputs}


def median_latency_ms(predictor: Predictor, inputs: Mapping[str, np.ndarray], repeats: int = 50,
                      warmup: int = 5) -> float:
    """Median wall time of single-example calls (the model's fixed batch if it has one), in ms.

    Example:
        >>> median_latency_ms(tflite_predictor("m.tflite"), x_val, repeats=20)   # doctest: +SKIP
        0.42
    """
    one = take(inputs, slice(0, 1))
    return statistics.median(time_calls(lambda: predictor.predict(one), repeats, warmup))
