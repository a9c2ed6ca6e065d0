"""TFLite conversion: float32, dynamic-range, float16, full-int8 and QAT models.

Conversion goes through a concrete function of the model's inference call, which works the
same for Keras 3, tf_keras and TFMOT-wrapped models.

Example:
    >>> from tfdeploy.tflite import TfliteMode, convert
    >>> blob = convert(model, TfliteMode.INT8, representative=x[:200])   # doctest: +SKIP
    >>> open("model.tflite", "wb").write(blob)                          # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import enum
import tempfile
from typing import Any, Iterator

import numpy as np

from tfdeploy import backend
from tfdeploy.errors import TfdeployError
from tfdeploy.recipes import Int8Granularity, IoDtype


class TfliteMode(str, enum.Enum):
    """How the converter quantizes."""

    FLOAT32 = "float32"   # no quantization: the TFLite baseline
    DYNAMIC = "dynamic"   # int8 weights, float activations
    FLOAT16 = "float16"   # float16 weights
    INT8 = "int8"         # int8 weights and activations, calibrated on a representative dataset
    QAT = "qat"           # a quantization-aware-trained model: int8 from its learned ranges


def _input_spec(model: Any) -> tuple[list[int | None], Any]:
    tf = backend.tf()
    shape = model.inputs[0].shape if getattr(model, "inputs", None) else model.input_shape
    dtype = getattr(model.inputs[0], "dtype", "float32") if getattr(model, "inputs", None) else "float32"
    if len(getattr(model, "inputs", []) or []) > 1:
        raise TfdeployError(
            f"TFLite conversion here supports single-input models. Received: model {model.name!r} with "
            f"{len(model.inputs)} inputs"
        )
    return [None, *[int(d) if d is not None else None for d in list(shape)[1:]]], tf.as_dtype(
        getattr(dtype, "name", dtype))


def convert(model: Any, mode: TfliteMode, representative: np.ndarray | None = None,
            io_dtype: IoDtype = IoDtype.FLOAT32,
            granularity: Int8Granularity = Int8Granularity.PER_CHANNEL) -> bytes:
    """Converts a Keras 3 / tf_keras model to a TFLite flatbuffer.

    Args:
        model: The model (its inference call, ``training=False``, is converted).
        mode: A :class:`TfliteMode`.
        representative: Calibration inputs, required for :attr:`TfliteMode.INT8`.
        io_dtype: For INT8/QAT, the input/output tensor type.
        granularity: For INT8, per-channel or per-tensor weight scales.

    Returns:
        The ``.tflite`` bytes.

    Raises:
        TfdeployError: If INT8 has no representative data or conversion fails.

    Example:
        >>> len(convert(model, TfliteMode.DYNAMIC)) > 0    # doctest: +SKIP
        True
    """
    shape, dtype = _input_spec(model)
    with saved_model_converter(model) as converter:
        if mode is TfliteMode.INT8 and granularity is Int8Granularity.PER_TENSOR:
            converter._experimental_disable_per_channel = True  # the converter's only switch for it
        return _run_converter(converter, model, mode, representative, io_dtype, dtype)


@contextlib.contextmanager
def saved_model_converter(model: Any) -> Iterator[Any]:
    """A ``TFLiteConverter`` for ``model``'s inference call, via a temporary SavedModel.

    A SavedModel is the converter's best-supported input and works the same for Keras 3, tf_keras
    and TFMOT-wrapped models; its signature carries the model's own input/output names.
    """
    tf = backend.tf()
    shape, dtype = _input_spec(model)
    input_name, output_names = backend.io_names(model)
    with tempfile.TemporaryDirectory(prefix="tfdeploy-tflite-") as tmp:
        backend.write_inference_savedmodel(model, tmp, input_name, shape[1:], dtype.name, output_names)
        yield tf.lite.TFLiteConverter.from_saved_model(tmp)


def _run_converter(converter: Any, model: Any, mode: TfliteMode, representative: np.ndarray | None,
                   io_dtype: IoDtype, dtype: Any) -> bytes:
    tf = backend.tf()
    if mode is not TfliteMode.FLOAT32:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if mode is TfliteMode.FLOAT16:
        converter.target_spec.supported_types = [tf.float16]
    if mode is TfliteMode.INT8:
        if representative is None or len(representative) == 0:
            raise TfdeployError("Full-int8 conversion needs calibration data: pass --data. Received: representative=None")
        samples = representative.astype(dtype.as_numpy_dtype, copy=False)

        def dataset():
            for sample in samples:
                yield [sample[None]]

        converter.representative_dataset = dataset
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    if mode in (TfliteMode.INT8, TfliteMode.QAT) and io_dtype is not IoDtype.FLOAT32:
        converter.inference_input_type = tf.as_dtype(io_dtype.value)
        converter.inference_output_type = tf.as_dtype(io_dtype.value)
    try:
        return bytes(converter.convert())
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TfdeployError(
            f"TFLite conversion ({mode.value}) failed: {first}. Received: model={getattr(model, 'name', '?')!r}"
        ) from exc


def tensor_dtypes(tflite_bytes: bytes) -> dict[str, int]:
    """Counts the tensors of a TFLite model by dtype name (e.g. ``{'int8': 120, 'int32': 40}``)."""
    from tfdeploy.predictors import tflite_interpreter

    interpreter = tflite_interpreter(tflite_bytes)
    counts: dict[str, int] = {}
    for detail in interpreter.get_tensor_details():
        name = np.dtype(detail["dtype"]).name
        counts[name] = counts.get(name, 0) + 1
    return counts
