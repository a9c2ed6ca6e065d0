"""The student of ``distill``: a narrower copy of the teacher, or a model the user gives.

A narrower copy keeps the teacher's architecture (nested models, recurrent layers, custom
layers and preprocessing included) and scales the width of every hidden Dense, convolution,
recurrent and embedding layer, rounded to a multiple of 8 as ``keras.applications``' ``alpha``
does: MobileNetV2 at width 0.5 is MobileNetV2 with half the channels. The layers that make the
model's outputs keep their size, stateful preprocessing layers (vocabularies, normalization
statistics) are shared with the teacher, and every other layer starts from fresh weights.

A given student must take the teacher's inputs and give its outputs: matched by name, or by
position when the names differ (it is then wrapped so that it serves under the teacher's names).

Example:
    >>> student = narrower(teacher, width=0.5, seed=0)                  # doctest: +SKIP
    >>> student.notes[0]
    'width 0.5 of the teacher: 52 layers narrowed (Conv1 16→8, ...); kept: predictions'
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Sequence

from tfdeploy import backend
from tfdeploy.backend import KerasFlavour
from tfdeploy.errors import TfdeployError
from tfdeploy.io_spec import ModelIO, TensorInfo
from tfdeploy.model.loading import load_model

# The config field that sets each built-in layer's width.
WIDTH_FIELDS = {
    "Dense": "units", "Conv1D": "filters", "Conv2D": "filters", "Conv3D": "filters", "SeparableConv1D": "filters",
    "SeparableConv2D": "filters", "Conv1DTranspose": "filters", "Conv2DTranspose": "filters",
    "Conv3DTranspose": "filters", "LSTM": "units", "GRU": "units", "SimpleRNN": "units", "Embedding": "output_dim",
    "ConvLSTM1D": "filters", "ConvLSTM2D": "filters", "ConvLSTM3D": "filters"}
WRAPPERS = ("Bidirectional", "TimeDistributed")
# Shared with the teacher: their state (vocabularies, statistics) is data, not something to learn.
SHARED_LAYERS = ("TextVectorization", "StringLookup", "IntegerLookup", "Normalization", "Discretization", "Hashing",
                 "HashedCrossing", "CategoryEncoding")


@dataclasses.dataclass
class Student:
    """A student model and what it is.

    Attributes:
        model: The (untrained) Keras model.
        origin: ``"width 0.5"`` or the file it was read from.
        notes: What was narrowed, kept, shared or wrapped.
    """

    model: Any
    origin: str
    notes: list[str] = dataclasses.field(default_factory=list)


def scaled(units: int, width: float) -> int:
    """``units`` at ``width``: a multiple of 8 (not below 90 % of the exact value) from 8 up, at least 1 below.

    Example:
        >>> scaled(1280, 0.5), scaled(16, 0.5), scaled(6, 0.5)
        (640, 8, 3)
    """
    value = units * width
    if value < 8:
        return max(1, int(round(value)))
    rounded = max(8, int(value + 4) // 8 * 8)
    return rounded + 8 if rounded < 0.9 * value else rounded


def _is_builtin(layer: Any) -> bool:
    return type(layer).__module__.startswith(("keras.", "tf_keras."))


def _width_config(config: dict[str, Any], class_name: str) -> tuple[dict[str, Any], str] | None:
    """The (sub-)config holding the width field of a built-in layer (inside Bidirectional/TimeDistributed too)."""
    if class_name in WRAPPERS:
        inner = config.get("layer") or {}
        return _width_config(inner.get("config") or {}, inner.get("class_name", ""))
    field = WIDTH_FIELDS.get(class_name)
    return (config, field) if field and isinstance(config.get(field), int) else None


def has_width(layer: Any) -> bool:
    return _is_builtin(layer) and _width_config(layer.get_config(), type(layer).__name__) is not None


def output_layers(model: Any) -> set[int]:
    """Ids of the layers whose width sets an output's shape: the last width-bearing layer on each path to an output."""
    found: set[int] = set()
    seen: set[int] = set()

    def visit(tensor: Any) -> None:
        if id(tensor) in seen:
            return
        seen.add(id(tensor))
        layer, index, inputs = backend.tensor_source(tensor)
        if backend.is_model(layer):
            visit(list(layer.outputs)[index])
        elif has_width(layer) or not _is_builtin(layer) and layer.weights:
            found.add(id(layer))
        else:
            for inner in inputs:
                visit(inner)

    for tensor in model.outputs:
        visit(tensor)
    return found


def narrower(teacher: Any, width: float, seed: int = 0) -> Student:
    """A copy of ``teacher`` with every hidden layer's width scaled by ``width``, freshly initialised.

    Args:
        teacher: A functional or Sequential model of either Keras (nested models included).
        width: Width multiplier in (0, 1].
        seed: Seed of the new weights.

    Raises:
        TfdeployError: For a subclassed model, or a layer that cannot follow the narrower width
            (a fixed ``Reshape``, a residual ``Add`` with an input), naming it and the fix.
    """
    if not 0 < width <= 1:
        raise TfdeployError(f"A student's width is a fraction of the teacher's, in (0, 1]. Received: student_width={width}")
    keras = backend.keras_module_for(teacher)
    keep = output_layers(teacher)
    narrowed: list[str] = []

    def clone(layer: Any) -> Any:
        if backend.is_model(layer):
            return keras.models.clone_model(layer, clone_function=clone)
        if type(layer).__name__ in SHARED_LAYERS:
            return layer
        config = layer.get_config()
        config["trainable"] = True
        found = _width_config(config, type(layer).__name__) if _is_builtin(layer) else None
        if found and id(layer) not in keep:
            inner, field = found
            narrowed.append(f"{layer.name} {inner[field]}→{scaled(inner[field], width)}")
            inner[field] = scaled(inner[field], width)
        return type(layer).from_config(config)

    keras.utils.set_random_seed(seed)
    try:
        model = keras.models.clone_model(teacher, clone_function=clone)
    except (ValueError, TypeError, NotImplementedError, KeyError, AttributeError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        raise TfdeployError(
            f"Cannot build a student at width {width:g} from model {teacher.name!r}: {first}. A layer with a fixed "
            "size (a Reshape target, a residual Add with an input, a custom layer) cannot follow the narrower width, "
            "and subclassed models cannot be copied: pass a student model with --student FILE. "
            f"Received: student_width={width}") from exc
    require_compatible(backend.model_io(model), backend.model_io(teacher), f"width {width:g}")
    kept = sorted(layer.name for _, layer in backend.leaf_layers(teacher) if id(layer) in keep)
    shared = sorted({layer.name for _, layer in backend.leaf_layers(teacher) if type(layer).__name__ in SHARED_LAYERS})
    notes = [f"width {width:g} of the teacher: {len(narrowed)} layers narrowed ({_few(narrowed)}); "
             f"kept at the teacher's width: {_few(kept) or 'none'}"]
    if shared:
        notes.append(f"shared with the teacher (vocabularies, statistics): {_few(shared)}")
    return Student(model, f"width {width:g}", notes)


def _few(items: Sequence[str], limit: int = 4) -> str:
    return ", ".join(items[:limit]) + (f" and {len(items) - limit} more" if len(items) > limit else "")


def from_file(path: str | os.PathLike, teacher_io: ModelIO, custom_objects: Any = None,
              safe_mode: bool = True) -> Student:
    """The student model in ``path`` (either Keras), checked against ``teacher_io`` and named as the teacher.

    Raises:
        TfdeployError: For a plain SavedModel (nothing to train) or inputs/outputs that do not
            match the teacher's, naming the first mismatch.
    """
    loaded = load_model(path, custom_objects=custom_objects, safe_mode=safe_mode)
    if loaded.flavour is KerasFlavour.SAVED_MODEL:
        raise TfdeployError(f"The student must be a Keras model to train (.keras, .h5 or a Keras SavedModel); this "
                            f"SavedModel has no Keras metadata. Received: student={str(path)!r}")
    model, notes = conform(loaded.model, teacher_io, str(path))
    frozen = [layer.name for _, layer in backend.leaf_layers(loaded.model) if layer.weights and not layer.trainable]
    if frozen:
        notes.append(f"{len(frozen)} layers of the student are frozen (trainable=False) and keep their weights: "
                     f"{_few(frozen)}")
    return Student(model, str(path), [f"student {loaded.path.name} ({loaded.flavour.value})", *notes])


def _match(student: Sequence[TensorInfo], teacher: Sequence[TensorInfo], kind: str,
           where: str) -> list[tuple[TensorInfo, TensorInfo]]:
    """``(student, teacher)`` pairs: by name when the names are the same, else by position."""
    names, wanted = [t.name for t in student], [t.name for t in teacher]
    if sorted(names) == sorted(wanted):
        by_name = {t.name: t for t in student}
        return [(by_name[t.name], t) for t in teacher]
    if len(names) == len(wanted):
        return list(zip(student, teacher))
    raise TfdeployError(
        f"Student {where} has {kind}s {names} but the teacher has {wanted}: a student takes the teacher's inputs and "
        f"gives its outputs (matched by name, or by position when the names differ). Received: student={where!r}")


def _kind(dtype: str) -> str:
    return "string" if dtype == "string" else "integer" if "int" in dtype else "float"


def _check_pair(student: TensorInfo, teacher: TensorInfo, kind: str, where: str) -> None:
    shapes_agree = len(student.shape) == len(teacher.shape) and all(
        a is None or b is None or a == b for a, b in zip(student.shape, teacher.shape))
    if not shapes_agree or _kind(student.dtype) != _kind(teacher.dtype):
        raise TfdeployError(
            f"Student {where} does not fit the teacher: its {kind} {student.name!r} is {student.describe()} where the "
            f"teacher's {kind} {teacher.name!r} is {teacher.describe()}. Give a student with the teacher's input and "
            f"output shapes and types. Received: student={where!r}")


def require_compatible(student: ModelIO, teacher: ModelIO, where: str) -> list[tuple[TensorInfo, TensorInfo]]:
    """Checks that ``student`` takes ``teacher``'s inputs and gives its outputs; returns the matched pairs."""
    pairs = []
    for kind, mine, theirs in (("input", student.inputs, teacher.inputs), ("output", student.outputs, teacher.outputs)):
        matched = _match(mine, theirs, kind, where)
        for pair in matched:
            _check_pair(*pair, kind, where)
        pairs += matched
    return pairs


def conform(model: Any, teacher_io: ModelIO, where: str) -> tuple[Any, list[str]]:
    """``model`` itself when it has the teacher's names, else wrapped to take and give them (with a note)."""
    pairs = require_compatible(backend.model_io(model), teacher_io, where)
    renamed = [f"{s.name}→{t.name}" for s, t in pairs if s.name != t.name]
    if not renamed:
        return model, []
    keras = backend.keras_module_for(model)
    inputs = {s.name: keras.Input(shape=t.shape, dtype="string" if t.is_string else t.dtype, name=t.name)
              for s, t in pairs[:len(teacher_io.inputs)]}
    outputs = backend.call_flat(model, inputs, training=None)
    produced = dict(zip(backend.model_io(model).output_names, outputs))
    named = [keras.layers.Identity(name=t.name)(produced[s.name]) for s, t in pairs[len(teacher_io.inputs):]]
    wrapped = keras.Model([inputs[s.name] for s, _ in pairs[:len(teacher_io.inputs)]], named, name=f"{model.name}_as_teacher")
    return wrapped, [f"matched to the teacher by position and renamed: {', '.join(renamed)}"]


def only_output(model: Any, name: str) -> Any:
    """``model`` cut to the one output ``name`` (``--output`` on a teacher with several)."""
    io = backend.model_io(model)
    if io.output_names == [name]:
        return model
    keras = backend.keras_module_for(model)
    tensor = list(model.outputs)[io.output_names.index(name)]
    output = tensor if backend.tensor_source(tensor)[0].name == name else {name: tensor}  # a Keras 3 dict key
    return keras.Model(list(model.inputs), output, name=model.name)
