"""LiteRT: the runtime of ``.tflite`` files (``ai_edge_litert``), its flatbuffer schema and its quantizer.

Everything tfdeploy does with a ``.tflite`` goes through here: :func:`tflite_interpreter` runs one
(LiteRT; TensorFlow's own deprecated interpreter only when LiteRT cannot be imported, and then the
runtime name says so), :func:`weighted_ops` and :func:`tensor_type_counts`
read what a flatbuffer holds without running it (int4 included, which interpreters cannot
describe), and :func:`quantize_flatbuffer` applies ``litert-quantizer`` rules to a float model.

Example:
    >>> interpreter, runtime = tflite_interpreter(blob, threads=1)       # doctest: +SKIP
    >>> [(op.layer, op.weight_dtype) for op in weighted_ops(blob)][:1]   # doctest: +SKIP
    [('Conv1', 'int4')]
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import io
import os
import re
import warnings
from types import ModuleType
from typing import Any, Iterable, Mapping, Sequence

from tfdeploy.backend.imports import version_of

# Ops whose second input is a constant weight tensor (possibly behind a DEQUANTIZE after quantization).
WEIGHTED_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV", "EMBEDDING_LOOKUP",
                "BATCH_MATMUL", "CONV_3D")
_KERNEL_SUFFIX = re.compile(r"/(convolution|depthwise|MatMul|Conv2D|BiasAdd|embedding_lookup|conv2d_transpose|"
                            r"BatchMatMulV\d|Tensordot)\b")


def tflite_interpreter(source: Any, threads: int | None = None) -> tuple[Any, str]:
    """A TFLite interpreter for a file or flatbuffer bytes, and the name of the runtime.

    The runtime is LiteRT (``ai_edge_litert``, an install requirement); TensorFlow's own
    interpreter is deprecated and never used.

    Raises:
        TfdeployError: If the source is not a TFLite flatbuffer, or LiteRT cannot be imported.

    Example:
        >>> interpreter, runtime = tflite_interpreter("model.tflite")   # doctest: +SKIP
        >>> runtime
        'LiteRT 2.3.0'
    """
    from tfdeploy.errors import TfdeployError

    blob = bytes(source) if isinstance(source, (bytes, bytearray)) else open(source, "rb").read()
    if blob[4:8] != b"TFL3":
        raise TfdeployError(f"Not a TFLite flatbuffer (file identifier {blob[4:8]!r}, expected b'TFL3'); give a "
                            ".tflite file written by the TFLite converter. Received: path="
                            f"{'<bytes>' if isinstance(source, (bytes, bytearray)) else repr(str(source))}")
    interpreter_class, runtime = _interpreter_class()
    return interpreter_class(model_content=blob, num_threads=threads), runtime


@functools.lru_cache(maxsize=None)
def _interpreter_class() -> tuple[type, str]:
    from tfdeploy.errors import TfdeployError

    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError as exc:
        raise TfdeployError(f"The LiteRT runtime cannot be imported ({exc}); install it with "
                            f"`pip install ai-edge-litert==2.3.*`. Received: module='ai_edge_litert.interpreter'") from exc
    return Interpreter, f"LiteRT {version_of('ai-edge-litert')}"


def litert_quantizer() -> ModuleType:
    """Returns ``litert_quantizer`` (Google's quantizer for LiteRT models)."""
    import litert_quantizer as module

    return module


@dataclasses.dataclass(frozen=True)
class WeightedOp:
    """One op of a ``.tflite`` with a constant weight: what a per-layer plan addresses.

    Attributes:
        index: Position in the main subgraph.
        op: Builtin op name (``CONV_2D``).
        scope: The op's scope as ``litert-quantizer`` matches regexes against it (its output tensor names).
        layer: A readable layer name taken from the weight tensor (``block_1_expand``).
        weight_dtype: Stored type of the weight (``int4``, ``int8``, ``float16``, ``float32``).
        weight_bytes: Bytes the weight takes in the file.
        weight_elements: Number of weight values.
    """

    index: int
    op: str
    scope: str
    layer: str
    weight_dtype: str
    weight_bytes: int
    weight_elements: int


def _schema() -> Any:
    from ai_edge_litert import schema_py_generated

    return schema_py_generated


def _read_model(blob: bytes) -> Any:
    from ai_edge_litert.tools import flatbuffer_utils

    return flatbuffer_utils.read_model_from_bytearray(bytearray(blob))


@functools.lru_cache(maxsize=None)
def _names(enum_class: str) -> dict[int, str]:
    return {value: key for key, value in vars(getattr(_schema(), enum_class)).items() if not key.startswith("_")}


def _text(name: Any) -> str:
    return name.decode() if isinstance(name, bytes) else str(name or "")


def _layer_name(weight_name: str) -> str:
    parts = weight_name.split(";")
    kernel = next((part for part in parts if _KERNEL_SUFFIX.search(part)), parts[0])
    path = [segment for segment in _KERNEL_SUFFIX.split(kernel)[0].split("/") if segment]
    return re.sub(r"_\d+$", "", path[-1]) if path else kernel


def _buffer_size(model: Any, tensor: Any) -> int:
    buffer = model.buffers[tensor.buffer]
    return len(buffer.data) if buffer.data is not None else int(getattr(buffer, "size", 0) or 0)


def weighted_ops(blob: bytes) -> list[WeightedOp]:
    """The ops of a ``.tflite``'s main subgraph that hold a constant weight, in graph order.

    A weight stored quantized behind a ``DEQUANTIZE`` op (weight-only quantization) is followed
    to its stored tensor, so ``weight_dtype`` is what the file holds.
    """
    model, ops = _read_model(blob), _names("BuiltinOperator")
    graph = model.subgraphs[0]
    producer = {out: op for op in graph.operators for out in op.outputs}
    found, seen = [], {}
    for index, op in enumerate(graph.operators):
        name = ops.get(model.operatorCodes[op.opcodeIndex].builtinCode, "?")
        if name not in WEIGHTED_OPS or len(op.inputs) < 2 or op.inputs[1] < 0:
            continue
        tensor = graph.tensors[op.inputs[1]]
        source = producer.get(op.inputs[1])
        if source is not None and ops.get(model.operatorCodes[source.opcodeIndex].builtinCode) == "DEQUANTIZE":
            tensor = graph.tensors[source.inputs[0]]
        if not _buffer_size(model, tensor):
            continue  # an activation (BATCH_MATMUL of two inputs), not a weight
        layer = _layer_name(_text(tensor.name))
        seen[layer] = seen.get(layer, 0) + 1
        found.append(WeightedOp(
            index=index, op=name, scope=_scope(op, graph), layer=layer if seen[layer] == 1 else f"{layer}#{seen[layer]}",
            weight_dtype=_names("TensorType").get(tensor.type, str(tensor.type)).lower(),
            weight_bytes=_buffer_size(model, tensor), weight_elements=int(_elements(tensor.shape))))
    return found


def _elements(shape: Any) -> int:
    count = 1
    for dim in list(shape if shape is not None else []):
        count *= int(dim)
    return count


def _scope(op: Any, graph: Any) -> str:
    from litert_quantizer.utils import tfl_flatbuffer_utils

    return tfl_flatbuffer_utils.get_op_scope(op, graph.tensors)


def builtin_ops(blob: bytes) -> set[str]:
    """The builtin op names a ``.tflite`` uses (``{'CONV_2D', 'WHILE', ...}``), read without running it."""
    model, names = _read_model(blob), _names("BuiltinOperator")
    return {names.get(code.builtinCode, str(code.builtinCode)) for code in model.operatorCodes}


def tensor_type_counts(blob: bytes) -> dict[str, int]:
    """Counts the tensors of every subgraph by stored type (``{'int4': 52, 'float32': 180, ...}``)."""
    model, names = _read_model(blob), _names("TensorType")
    counts: dict[str, int] = {}
    for graph in model.subgraphs:
        for tensor in graph.tensors:
            key = names.get(tensor.type, str(tensor.type)).lower()
            counts[key] = counts.get(key, 0) + 1
    return counts


@dataclasses.dataclass(frozen=True)
class QuantRule:
    """One ``litert-quantizer`` configuration: ops matching ``regex`` (and ``op``) get this treatment.

    Attributes:
        regex: Matched (``re.search``) against each op's scope; later rules win.
        op: A builtin op name, or ``"*"`` for every supported op.
        weight_bits: 4 or 8; ``None`` keeps the matched ops in float.
        activation_bits: ``None`` for float activations (weight-only), 8 or 16 for static quantization.
        algorithm: A ``litert_quantizer.algorithm_manager.AlgorithmName`` member name (``MIN_MAX_UNIFORM_QUANT``,
            ``OCTAV``, ``MSE``).
    """

    regex: str
    op: str = "*"
    weight_bits: int | None = 8
    activation_bits: int | None = None
    algorithm: str = "MIN_MAX_UNIFORM_QUANT"


def quantize_flatbuffer(float_blob: bytes, rules: Sequence[QuantRule],
                        calibration: Mapping[str, Iterable[Mapping[str, Any]]] | None = None) -> bytes:
    """Applies ``rules`` to a float ``.tflite`` with ``litert-quantizer``; returns the quantized flatbuffer.

    Args:
        float_blob: The float32 model.
        rules: In order; a later rule overrides an earlier one where both match.
        calibration: ``{signature: [feed dict, ...]}`` when a rule quantizes activations.

    Raises:
        ValueError: From the quantizer for a rule an op does not support.
    """
    lq = litert_quantizer()
    quantizer = lq.Quantizer(bytes(float_blob))
    algorithms = lq.algorithm_manager.AlgorithmName
    for rule in rules:
        op = lq.recipe.TFLOperationName(rule.op if rule.op != "*" else "*")
        if rule.weight_bits is None:
            quantizer.update_quantization_recipe(rule.regex, op, algorithm_key=algorithms.NO_QUANTIZE)
        elif rule.activation_bits is None:
            quantizer.add_weight_only_config(rule.regex, op, rule.weight_bits, algorithm_key=algorithms[rule.algorithm])
        else:
            quantizer.add_static_config(rule.regex, op, rule.activation_bits, rule.weight_bits,
                                        algorithm_key=algorithms[rule.algorithm])
    with _quiet():
        result = None
        if quantizer.need_calibration:
            if calibration is None:
                raise ValueError("these rules quantize activations: calibration data is needed")
            result = quantizer.calibrate(calibration, num_threads=os.cpu_count() or 1)
        return bytes(quantizer.quantize(result, enable_progress_bar=False, enable_progress_report=False)
                     .quantized_model)


@contextlib.contextmanager
def _quiet() -> Any:
    """The quantizer prints reports and progress bars and its calibrator warns about preserved tensors: a library
    stays quiet."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        warnings.filterwarnings("ignore", message=".*experimental_preserve_all_tensors")
        yield


@functools.lru_cache(maxsize=None)
def weight_only_supported(op: str, bits: int, algorithm: str) -> bool:
    """Whether ``litert-quantizer`` has a weight-only ``bits`` config for builtin ``op`` with ``algorithm``."""
    lq = litert_quantizer()
    try:
        lq.recipe_manager.RecipeManager().add_weight_only_config(
            ".*", lq.recipe.TFLOperationName(op), bits, algorithm_key=lq.algorithm_manager.AlgorithmName[algorithm])
    except ValueError:
        return False
    return True


def tflite_signature(blob: bytes) -> tuple[str, list[str]]:
    """The signature a ``.tflite`` is called through (``serving_default`` if present) and its input names."""
    interpreter, _ = tflite_interpreter(blob)
    signatures = interpreter.get_signature_list()
    key = "serving_default" if "serving_default" in signatures else sorted(signatures)[0]
    return key, list(signatures[key]["inputs"])
