"""TFLite conversion: float32, dynamic-range, float16, full-int8 and QAT models, any inputs.

Conversion goes through a temporary SavedModel of the model's inference call whose signature
carries the model's own input and output names (so the ``.tflite`` signature runner takes the
same named inputs), which works the same for Keras 3, tf_keras, TFMOT-wrapped models and plain
SavedModels. What the converter cannot do directly is handled in steps, each written into the
result's notes:

* recurrent layers (LSTM/GRU) whose tensor lists need a static shape: converted again with a
  fixed batch of 1 (the interpreter then runs one sample per call);
* ops without a TFLite builtin kernel (string ops of ``TextVectorization``, ...): refused with the
  op names, or, with ``select_tf_ops``, converted with TensorFlow select ops — the runtime then
  needs the Flex delegate;
* full-int8 with ops that have no int8 kernel: converted again with float fallback for those ops.

Example:
    >>> result = convert(model, TfliteMode.INT8, representative={"image": x[:200]})   # doctest: +SKIP
    >>> open("model.tflite", "wb").write(result.blob)                                 # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import os
import re
import tempfile
import weakref
from typing import Any, Iterator, Mapping

import numpy as np

from tfdeploy import backend
from tfdeploy.errors import TfdeployError
from tfdeploy.io_spec import ModelIO, as_feed, batch_size, take
from tfdeploy.measure.processes import CHILD_ENV, announce_stage
from tfdeploy.progress import Progress
from tfdeploy.serving.memory import largest_variables, size_text

FLEX_NOTE = ("uses TensorFlow select ops {ops}: the runtime needs the Flex delegate (LiteRT's Python package has "
             "none, so tfdeploy cannot run or measure this file here)")
FIXED_BATCH_NOTE = ("converted with a fixed batch of 1: recurrent layers need static shapes in TFLite (the "
                    "interpreter runs one sample per call)")
FUSED_LSTM_NOTE = ("LSTM layers converted through tf_keras's LSTM, which TFLite fuses into UNIDIRECTIONAL_SEQUENCE_LSTM "
                   "kernels; they keep their state between invocations, so call interpreter.reset_all_variables() "
                   "before each new sequence")


FLATBUFFER_LIMIT = 2**31  # bytes: a flatbuffer is addressed with signed 32-bit offsets


def large_model_note(model: Any, mode: "TfliteMode") -> str | None:
    """What to know when ``model``'s weights, stored as ``mode`` stores them, exceed the 2 GiB flatbuffer limit.

    The TF 2.21 converter then writes the weights after the flatbuffer (the schema's
    ``Buffer.offset``/``size``), and LiteRT runs such files: measured on a 2.03 GiB embedding table,
    float32 converted in 60 s to a 2.18 GB file (13.7 GB peak RSS) whose outputs equal Keras's,
    and dynamic-range int8 to 0.54 GB in 98 s. Runtimes that predate those fields cannot read it.

    Example:
        >>> large_model_note(small_model, TfliteMode.FLOAT32) is None     # doctest: +SKIP
        True
    """
    sizes = largest_variables(backend.variables_of(model), listed=10**9)
    stored = sum(n * min(1.0, _WEIGHT_BYTES[mode] / 4) for n in sizes.values())
    if stored <= FLATBUFFER_LIMIT:
        return None
    name, biggest = next(iter(sizes.items()))
    return (f"the weights take {size_text(stored)} as {mode.value} (the largest, {name!r}, {size_text(biggest)}), "
            "over the 2 GiB flatbuffer limit: the converter stored them after the flatbuffer (Buffer.offset), which "
            "LiteRT and TensorFlow Lite 2.21 read but older runtimes and TFLite Micro do not"
            + ("; int8 weights (ptq-dynamic, ptq-int8) take a quarter of the float32 bytes"
               if _WEIGHT_BYTES[mode] > 1 else ""))


class IoDtype(str, enum.Enum):
    """Input/output tensor type of an int8 TFLite model (``--io-dtype``)."""

    FLOAT32 = "float32"
    INT8 = "int8"
    UINT8 = "uint8"


class Int8Granularity(str, enum.Enum):
    """Scale granularity of post-training int8 weights (``--int8-granularity``).

    Per-channel is TFLite's default and the most accurate; per-tensor stores one scale per
    tensor instead of a scale and a 64-bit zero point per output channel, which is a large part
    of a narrow model's file (e.g. MobileNetV2 alpha 0.35).
    """

    PER_CHANNEL = "per-channel"
    PER_TENSOR = "per-tensor"


class TfliteMode(str, enum.Enum):
    """How the converter quantizes."""

    FLOAT32 = "float32"   # no quantization: the TFLite baseline
    DYNAMIC = "dynamic"   # int8 weights, float activations
    FLOAT16 = "float16"   # float16 weights
    INT8 = "int8"         # int8 weights and activations, calibrated on a representative dataset
    QAT = "qat"           # a quantization-aware-trained model: int8 from its learned ranges


_WEIGHT_BYTES = {TfliteMode.FLOAT32: 4, TfliteMode.FLOAT16: 2, TfliteMode.DYNAMIC: 1, TfliteMode.INT8: 1,
                 TfliteMode.QAT: 1}


@dataclasses.dataclass
class Conversion:
    """A converted model and what the conversion had to do.

    Attributes:
        blob: The ``.tflite`` flatbuffer.
        notes: Steps taken beyond a plain conversion (fixed batch, float fallback, select ops).
        flex_ops: TensorFlow ops the model runs through the Flex delegate (empty: builtins only).
    """

    blob: bytes
    notes: list[str] = dataclasses.field(default_factory=list)
    flex_ops: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass(frozen=True)
class _Attempt:
    batch: int | None = None
    select_ops: bool = False
    int8_fallback: bool = False


class ConversionError(Exception):
    """One attempt failed; ``text`` is the converter's message."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


@contextlib.contextmanager
def converter_for(model: Any, io: ModelIO | None = None, batch: int | None = None) -> Iterator[Any]:
    """A ``TFLiteConverter`` for ``model``'s inference call, via a temporary SavedModel.

    A SavedModel is the converter's best-supported input and works the same for Keras 3, tf_keras,
    TFMOT-wrapped models and plain SavedModels; its signature carries the model's named inputs.
    String and integer lookups keep their static shapes (:func:`tfdeploy.backend.static_lookup_shapes`).
    """
    tf = backend.tf()
    io = io or backend.model_io(model)
    with tempfile.TemporaryDirectory(prefix="tfdeploy-tflite-") as tmp:
        with backend.static_lookup_shapes(model):  # else the flatbuffer fails at batch 1 (and int8 calibration)
            backend.write_inference_savedmodel(model, tmp, io, {"serving_default": batch})
        yield tf.lite.TFLiteConverter.from_saved_model(tmp)


def representative_dataset(io: ModelIO, samples: Mapping[str, np.ndarray], batch: int | None = None) -> Any:
    """A converter ``representative_dataset``: one named sample (or fixed batch) at a time."""
    step = batch or 1

    def generate() -> Iterator[dict[str, np.ndarray]]:
        for start in range(0, batch_size(samples) - step + 1, step):
            chunk = take(samples, slice(start, start + step))
            yield {t.name: as_feed(chunk[t.name], t) for t in io.inputs}

    return generate


def _configure(converter: Any, mode: TfliteMode, attempt: _Attempt, representative: Mapping[str, np.ndarray] | None,
               io: ModelIO, io_dtype: IoDtype, granularity: Int8Granularity) -> None:
    tf = backend.tf()
    if mode is not TfliteMode.FLOAT32:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if mode is TfliteMode.FLOAT16:
        converter.target_spec.supported_types = [tf.float16]
    ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if mode is TfliteMode.INT8:
        if not representative or batch_size(representative) == 0:
            raise TfdeployError("Full-int8 conversion needs calibration data: pass --data. Received: representative=None")
        converter.representative_dataset = representative_dataset(io, representative, attempt.batch)
        if granularity is Int8Granularity.PER_TENSOR:
            converter._experimental_disable_per_channel = True  # the converter's only switch for it
        if not attempt.int8_fallback:
            ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    if attempt.select_ops:
        ops = [*ops, tf.lite.OpsSet.SELECT_TF_OPS]
        converter._experimental_lower_tensor_list_ops = False
    converter.target_spec.supported_ops = ops
    if mode in (TfliteMode.INT8, TfliteMode.QAT) and io_dtype is not IoDtype.FLOAT32:
        converter.inference_input_type = tf.as_dtype(io_dtype.value)
        converter.inference_output_type = tf.as_dtype(io_dtype.value)


def _attempt(model: Any, io: ModelIO, mode: TfliteMode, attempt: _Attempt, representative: Mapping[str, np.ndarray] | None,
             io_dtype: IoDtype, granularity: Int8Granularity) -> bytes:
    announce_stage("calibrate and convert to int8" if mode is TfliteMode.INT8 else f"convert to TFLite ({mode.value})")
    with converter_for(model, io, attempt.batch) as converter:
        _configure(converter, mode, attempt, representative, io, io_dtype, granularity)
        try:
            return bytes(converter.convert())
        except Exception as exc:  # ConverterError, RuntimeError, ValueError: the text says which op
            raise ConversionError(str(exc)) from exc


def select_ops_in(text: str) -> list[str]:
    """TF op names the converter says need select ops (``TF Select ops: A, B``)."""
    match = re.search(r"TF Select ops: ([^\n]+)", text)
    return sorted({op.strip() for op in match.group(1).split(",")}) if match else []


def first_error(text: str) -> str:
    """The converter's first ``error:`` line, shortened (else the first line)."""
    for line in text.splitlines():
        index = line.find("error: ")
        if index >= 0:
            return re.sub(r"loc\(.*?\)\)*:\s*", "", line[index + 7:]).strip()[:300]
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[0][:300] if lines else "unknown error"


def _needs_static_lists(text: str) -> bool:
    return "TensorList" in text or "tensor list" in text


def _needs_int8_fallback(text: str) -> bool:
    return any(key in text for key in ("int8", "quantiz", "is not supported by", "INT8"))


def convert(model: Any, mode: TfliteMode, representative: Mapping[str, np.ndarray] | None = None,
            io_dtype: IoDtype = IoDtype.FLOAT32, granularity: Int8Granularity = Int8Granularity.PER_CHANNEL,
            select_tf_ops: bool = False, io: ModelIO | None = None) -> Conversion:
    """Converts a Keras 3 / tf_keras model (or a plain SavedModel) to a TFLite flatbuffer.

    Args:
        model: The model (its inference call, ``training=False``, is converted).
        mode: A :class:`TfliteMode`.
        representative: Named calibration inputs, required for :attr:`TfliteMode.INT8`.
        io_dtype: For INT8/QAT, the input/output tensor type.
        granularity: For INT8, per-channel or per-tensor weight scales.
        select_tf_ops: Allow TensorFlow select ops for ops without a builtin kernel (Flex).
        io: The model's named inputs/outputs (default: read from the model).

    Returns:
        A :class:`Conversion` (bytes and the steps taken).

    Raises:
        TfdeployError: Naming the failing op and what to do, if no attempt converts.

    Example:
        >>> len(convert(model, TfliteMode.DYNAMIC).blob) > 0    # doctest: +SKIP
        True
    """
    io = io or backend.model_io(model)
    large = large_model_note(model, mode)
    model, attempt, notes = _recurrent_plan(model, io)
    notes = [*notes, *([large] if large else [])]
    if mode is TfliteMode.INT8 and attempt.batch is not None:
        model, notes = _loops_for_calibration(model, io, select_tf_ops, notes)
    for _ in range(4):
        try:
            blob = _attempt(model, io, mode, attempt, representative, io_dtype, granularity)
            return Conversion(blob, notes, flex_ops=_flex_ops(blob) if attempt.select_ops else [])
        except ConversionError as failure:
            text = failure.text
        if _needs_static_lists(text) and attempt.batch is None:
            attempt, notes = dataclasses.replace(attempt, batch=1), [*notes, FIXED_BATCH_NOTE]
            continue
        ops = select_ops_in(text)
        if ops and not attempt.select_ops:
            if not select_tf_ops:
                raise TfdeployError(
                    f"TFLite has no builtin kernels for the TensorFlow ops {', '.join(ops)} in model "
                    f"{getattr(model, 'name', '?')!r} (string preprocessing such as TextVectorization, or other TF-only "
                    "ops). Move that preprocessing out of the model, or pass --select-tf-ops to convert with TensorFlow "
                    f"select ops (the runtime then needs the Flex delegate). Received: mode={mode.value}")
            attempt = dataclasses.replace(attempt, select_ops=True)
            continue
        if mode is TfliteMode.INT8 and not attempt.int8_fallback and _needs_int8_fallback(text):
            attempt = dataclasses.replace(attempt, int8_fallback=True)
            notes.append(f"some ops have no int8 kernel ({first_error(text)}); they run in float (int8 with float "
                         "fallback)")
            continue
        break
    raise TfdeployError(f"TFLite conversion ({mode.value}) of model {getattr(model, 'name', '?')!r} failed: "
                        f"{first_error(text)}. Received: mode={mode.value}")


_FUSED_COPIES: "weakref.WeakKeyDictionary[Any, Any]" = weakref.WeakKeyDictionary()


def _recurrent_plan(model: Any, io: ModelIO) -> tuple[Any, _Attempt, list[str]]:
    """Models with recurrent layers convert with a fixed batch; Keras 3 LSTMs through tf_keras (fused kernels)."""
    recurrent = backend.recurrent_layers(model)
    if not recurrent:
        return model, _Attempt(), []
    notes = [FIXED_BATCH_NOTE]
    if backend.flavour_of(model) is backend.KerasFlavour.KERAS3 and any(kind == "LSTM" for _, kind in recurrent):
        from tfdeploy.compression import bridge
        from tfdeploy.io_spec import synthesize

        if model not in _FUSED_COPIES:
            _FUSED_COPIES[model] = bridge.to_tf_keras(model, synthesize(io, 4, np.random.default_rng(0))).model
        model = _FUSED_COPIES[model]
        notes.append(FUSED_LSTM_NOTE)
    return model, _Attempt(batch=1), notes


def _has_loop(model: Any, io: ModelIO, select_tf_ops: bool) -> bool:
    float_blob = _attempt(model, io, TfliteMode.FLOAT32, _Attempt(batch=1, select_ops=select_tf_ops), None,
                          IoDtype.FLOAT32, Int8Granularity.PER_CHANNEL)
    return "WHILE" in backend.builtin_ops(float_blob)


def _loops_for_calibration(model: Any, io: ModelIO, select_tf_ops: bool, notes: list[str]) -> tuple[Any, list[str]]:
    """Full-int8 calibration of a TFLite WHILE loop crashes TF 2.21's calibrator (SIGSEGV): unroll the recurrence.

    Over a fixed sequence length (text models pad to one) an unrolled GRU is static ops, which calibrate.
    Where it cannot be unrolled, the loop is calibrated anyway in a worker process (a crash there is one
    failed recipe) and refused in this process.
    """
    if not _has_loop(model, io, select_tf_ops):
        return model, notes
    loops = ", ".join(f"{path} ({kind})" for path, kind in backend.recurrent_layers(model) if kind != "LSTM")
    unrolled = backend.unrolled(model)
    if unrolled is not None and not _has_loop(unrolled[0], io, select_tf_ops):
        steps = [f"{name}" for name in unrolled[1]]
        return unrolled[0], [*notes, f"{', '.join(steps)} unrolled over the fixed sequence length for int8: TF 2.21's "
                                     "calibrator crashes on the WHILE loop a recurrent layer otherwise becomes"]
    if os.environ.get(CHILD_ENV) == "1":
        return model, [*notes, f"calibrating the WHILE loop of {loops} (its sequence length is not fixed, so it "
                               "cannot be unrolled) in this worker process: TF 2.21's calibrator may crash on it"]
    raise TfdeployError(
        f"Full-integer int8 needs calibration, and TensorFlow 2.21's TFLite calibrator crashes (segmentation "
        f"fault) on the WHILE loop that {loops or 'the recurrent layers'} become in TFLite; they cannot be unrolled "
        "(the sequence length is not fixed) and this run is in one process (--in-process). Use ptq-dynamic (int8 "
        "weights, float activations) or ptq-float16, pad the sequences to a fixed length, or drop --in-process. "
        f"Received: model={getattr(model, 'name', '?')!r}")


def _flex_ops(blob: bytes) -> list[str]:
    """Custom (Flex) op names in a flatbuffer, read without running it."""
    return sorted({match.decode() for match in re.findall(rb"Flex([A-Z]\w+)", blob)})


def tensor_dtypes(tflite_bytes: bytes) -> dict[str, int]:
    """Counts the tensors of a TFLite model by dtype name (e.g. ``{'int8': 120, 'int32': 40}``)."""
    interpreter, _ = backend.tflite_interpreter(tflite_bytes)
    counts: dict[str, int] = {}
    for detail in interpreter.get_tensor_details():
        name = np.dtype(detail["dtype"]).name
        counts[name] = counts.get(name, 0) + 1
    return counts


def uses_flex(blob: bytes) -> bool:
    """Whether a flatbuffer needs the Flex delegate (TensorFlow select ops)."""
    return bool(_flex_ops(blob))


@dataclasses.dataclass(frozen=True)
class Converter:
    """:func:`convert` with one run's options, shown as a progress task.

    Example:
        >>> Converter(io, progress=progress).convert(model, TfliteMode.DYNAMIC).blob[:8]   # doctest: +SKIP
    """

    io: ModelIO
    io_dtype: IoDtype = IoDtype.FLOAT32
    granularity: Int8Granularity = Int8Granularity.PER_CHANNEL
    select_tf_ops: bool = False
    progress: Progress = dataclasses.field(default_factory=Progress)

    def convert(self, model: Any, mode: TfliteMode, representative: Mapping[str, np.ndarray] | None = None,
                io: ModelIO | None = None) -> Conversion:
        """Converts ``model`` (whose inputs and outputs are ``io``, default the session model's)."""
        with self.progress.task(f"  converting to TFLite ({mode.value})"):
            return convert(model, mode, representative=representative, io_dtype=self.io_dtype,
                           granularity=self.granularity, select_tf_ops=self.select_tf_ops, io=io or self.io)
