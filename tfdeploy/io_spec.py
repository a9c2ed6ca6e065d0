"""What a model takes and returns: named inputs and outputs with their dtypes and shapes.

Every step works on *named arrays*: ``{"image": array, "meta": array}`` for inputs and
``{"probabilities": array}`` for outputs, keyed by the model's own input and output names (the
names of its input layers and output layers, identical in Keras 3, tf_keras, the exported
SavedModel signature and the TFLite signature). This module has no TensorFlow import.

Example:
    >>> io = ModelIO(inputs=(TensorInfo("image", "float32", (32, 32, 3)),),
    ...              outputs=(TensorInfo("probabilities", "float32", (10,)),))
    >>> io.input_names, io.classification_outputs()
    (['image'], ['probabilities'])
    >>> batch_size(synthesize(io, 4, np.random.default_rng(0)))
    4
"""

from __future__ import annotations

import dataclasses
from typing import Iterable, Mapping, Sequence

import numpy as np

Arrays = dict[str, np.ndarray]
STRING = "string"
_WORDS = ("the", "model", "serves", "warm", "requests", "fast", "and", "well")


@dataclasses.dataclass(frozen=True)
class TensorInfo:
    """One named input or output: dtype name (numpy style, or ``"string"``) and per-sample shape.

    Attributes:
        name: The key clients and data files use.
        dtype: ``"float32"``, ``"int32"``, ``"string"``, ...
        shape: Shape without the batch dimension; ``None`` for unknown dimensions.
        activation: For outputs of Keras models, the activation of the layer that makes it
            (``"softmax"``, ``"sigmoid"``, ``"linear"``); ``None`` when unknown.
    """

    name: str
    dtype: str
    shape: tuple[int | None, ...]
    activation: str | None = None

    @property
    def is_binary(self) -> bool:
        """A single sigmoid unit: a two-class classifier."""
        return self.shape == (1,) and self.activation == "sigmoid"

    @property
    def is_multilabel(self) -> bool:
        """Several independent sigmoid units (per sample or per frame): multi-hot labels, not one class."""
        return bool(self.shape) and (self.shape[-1] or 0) > 1 and self.activation == "sigmoid"

    @property
    def is_string(self) -> bool:
        return self.dtype == STRING

    @property
    def is_float(self) -> bool:
        return self.dtype.startswith(("float", "bfloat"))

    @property
    def is_integer(self) -> bool:
        return self.dtype.startswith(("int", "uint"))

    def describe(self) -> str:
        """``image float32[?, 32, 32, 3]`` (``?`` is the batch)."""
        dims = ", ".join("?" if d is None else str(d) for d in self.shape)
        return f"{self.name} {self.dtype}[?{', ' if dims else ''}{dims}]"


@dataclasses.dataclass(frozen=True)
class ModelIO:
    """A model's inputs and outputs, in the model's order."""

    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]

    @property
    def input_names(self) -> list[str]:
        return [t.name for t in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [t.name for t in self.outputs]

    def input(self, name: str) -> TensorInfo:
        return next(t for t in self.inputs if t.name == name)

    def output(self, name: str) -> TensorInfo:
        return next(t for t in self.outputs if t.name == name)

    @property
    def has_string_input(self) -> bool:
        return any(t.is_string for t in self.inputs)

    def classification_outputs(self) -> list[str]:
        """Outputs that are class scores of one class each: ``(classes,)`` with several classes (not independent
        sigmoid units), or one sigmoid unit."""
        return [t.name for t in self.outputs if t.is_float and len(t.shape) == 1 and not t.is_multilabel
                and ((t.shape[0] or 0) > 1 or t.is_binary)]

    def describe(self) -> str:
        """``inputs image float32[?, 32, 32, 3] -> outputs probabilities float32[?, 10]``."""
        return (f"inputs {', '.join(t.describe() for t in self.inputs)} -> "
                f"outputs {', '.join(t.describe() for t in self.outputs)}")


def batch_size(arrays: Mapping[str, np.ndarray]) -> int:
    """Number of samples in named arrays (they all share the first dimension)."""
    return len(next(iter(arrays.values()))) if arrays else 0


def take(arrays: Mapping[str, np.ndarray], index: slice | np.ndarray | Sequence[int]) -> Arrays:
    """The same samples of every array: ``take(x, slice(0, 8))``, ``take(x, [3, 1])``."""
    return {name: value[index] for name, value in arrays.items()}


def concat(parts: Iterable[Mapping[str, np.ndarray]]) -> Arrays:
    """Concatenates named arrays along the batch dimension."""
    parts = list(parts)
    if not parts:
        return {}
    return {name: np.concatenate([p[name] for p in parts], axis=0) for name in parts[0]}


def sample(arrays: Mapping[str, np.ndarray], n: int, seed: int = 0) -> Arrays:
    """``n`` samples drawn without replacement (all if fewer), in their original order."""
    total = batch_size(arrays)
    index = np.sort(np.random.default_rng(seed).permutation(total)[: min(n, total)])
    return take(arrays, index)


def as_feed(value: np.ndarray, info: TensorInfo) -> np.ndarray:
    """Casts an array to the dtype a model input wants (strings become UTF-8 ``bytes`` objects)."""
    if info.is_string:
        if value.dtype.kind == "U":
            return np.char.encode(value, "utf-8").astype(object)
        return value.astype(object)
    return value.astype(info.dtype, copy=False)


def synthesize(io: ModelIO, batch: int, rng: np.random.Generator, fill: int = 1) -> Arrays:
    """Plausible inputs for every input of ``io``: normal floats, small non-negative ints, short texts.

    Integer inputs are 0 or 1, valid ids for any table of two rows or more (a ranker's ``gender``
    table may have three: ids up to 9 failed its lookup); real ids come from ``--data`` or from a
    version's warmup file. Unknown dimensions are ``fill``.

    Example:
        >>> io = ModelIO((TensorInfo("ids", "int32", (5,)), TensorInfo("text", "string", (1,))), ())
        >>> {k: (v.dtype.kind, v.shape) for k, v in synthesize(io, 2, np.random.default_rng(0)).items()}
        {'ids': ('i', (2, 5)), 'text': ('O', (2, 1))}
    """
    arrays: Arrays = {}
    for info in io.inputs:
        shape = (batch, *[fill if d is None else d for d in info.shape])
        if info.is_string:
            words = rng.choice(_WORDS, size=(*shape, 3))
            arrays[info.name] = np.array([" ".join(w).encode() for w in words.reshape(-1, 3)],
                                         dtype=object).reshape(shape)
        elif info.is_integer:
            arrays[info.name] = rng.integers(0, 2, size=shape).astype(info.dtype)
        elif info.dtype == "bool":
            arrays[info.name] = rng.integers(0, 2, size=shape).astype(bool)
        else:
            arrays[info.name] = rng.normal(0, 1, size=shape).astype(info.dtype)
    return arrays


def top1(outputs: np.ndarray, binary: bool = False) -> np.ndarray | None:
    """Predicted classes of a ``(n, classes)`` score array (or of one sigmoid unit with ``binary``).

    Returns ``None`` for outputs that are not class scores.

    Example:
        >>> top1(np.array([[0.1, 0.9], [0.8, 0.2]]))
        array([1, 0])
        >>> top1(np.array([[0.7], [0.2]]), binary=True)
        array([1, 0])
    """
    if outputs.ndim == 2 and outputs.shape[1] > 1:
        return np.argmax(outputs, axis=1)
    if binary and outputs.ndim == 2 and outputs.shape[1] == 1:
        return (outputs[:, 0] > 0.5).astype(int)
    return None
