"""A flat tf_keras copy of any functional Keras model, for TFMOT, and the weights back.

TFMOT 0.8.1 wraps layers of a flat tf_keras functional model only. Users bring Keras 3 models,
models that nest others (``MobileNetV2(include_top=False)`` called as a layer), custom layers and
Lambdas. :func:`to_tf_keras` walks the model's graph (nested models at any depth included) and calls
a tf_keras twin of every layer on tf_keras tensors, which yields one flat tf_keras model:

* a Keras 3 layer becomes the tf_keras layer of the same class, built from its translated config
  (dtype policies -> names, initializers reduced to their class, keys tf_keras does not know
  dropped and listed, activations tf_keras lacks or defines differently, such as ``hard_silu``
  and Keras 3's ``hard_sigmoid``, taken from Keras 3 itself);
* what has no tf_keras twin (custom layers, ``Lambda``, preprocessing layers with lookup tables
  such as ``TextVectorization``, Keras 3 ops in the graph) is called as it is from inside a
  frozen tf_keras layer (:func:`adapter_class`): TFMOT leaves it in float and the report names it;
* weights are copied by layer, and the copy is checked numerically on every output.

:func:`copy_weights_back` puts compressed weights into a copy of the user's model, so the user's
structure (nesting, Keras version) is what gets saved.

Example:
    >>> result = to_tf_keras(model, sample)            # doctest: +SKIP
    >>> result.max_abs_diff < 1e-5, result.notes[:1]
"""

from __future__ import annotations

import dataclasses
import functools
import re
import uuid
from typing import Any, Callable

import numpy as np

from tfdeploy import backend
from tfdeploy.backend import KerasFlavour
from tfdeploy.errors import TfdeployError
from tfdeploy.measure.processes import announce_stage

# Activations whose tf_keras definition is the same function as Keras 3's; every other name is
# taken from Keras 3 (tf_keras lacks hard_silu/silu/gelu variants; its hard_sigmoid differs).
SAME_ACTIVATIONS = {"linear", "relu", "sigmoid", "softmax", "tanh", "softplus", "softsign", "elu", "selu",
                    "exponential", "swish"}
# Keras 3 names of functions tf_keras has under another name (the same formula).
ACTIVATION_ALIASES = {"silu": "swish"}
# Layers whose state is not in weights (lookup tables, Python code): always called as they are.
KEEP_AS_IS = {"TextVectorization", "StringLookup", "IntegerLookup", "Hashing", "HashedCrossing", "Lambda",
              "TFSMLayer"}
BRIDGE_TOLERANCE = 1e-4
OP_REASON = "a Keras 3 op in the graph, not a layer"
# Keras 3 ops between two tensors (``x + y``) that tf_keras expresses as merge layers.
MERGE_OPS = {"Add": "Add", "Multiply": "Multiply", "Subtract": "Subtract", "Maximum": "Maximum", "Minimum": "Minimum"}

_ADAPTED: dict[str, tuple[Any, Callable[[list[Any]], tuple[tuple, dict]]]] = {}


@dataclasses.dataclass
class BridgeResult:
    """A flat tf_keras model equivalent to the user's model.

    Attributes:
        model: The flat tf_keras functional model (the user's own if it was flat tf_keras already).
        max_abs_diff: Largest output difference to the original on the check sample.
        notes: What the bridge did that a user should know (flattening, dropped keys, kept layers).
        kept_as_is: ``name (Class)`` of layers called as they are (frozen, never quantized).
        paths: Flat layer name -> path of the original layer (``nested/inner``) for copying back.
        custom_objects: Objects tf_keras needs to re-create the copy (TFMOT clones it).
    """

    model: Any
    max_abs_diff: float
    notes: list[str] = dataclasses.field(default_factory=list)
    kept_as_is: list[str] = dataclasses.field(default_factory=list)
    paths: dict[str, str] = dataclasses.field(default_factory=dict)
    custom_objects: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class _Build:
    """State of one graph walk."""

    force_as_is: set[str]
    twins: dict[int, Any] = dataclasses.field(default_factory=dict)
    sources: dict[str, Any] = dataclasses.field(default_factory=dict)   # flat name -> original layer
    paths: dict[str, str] = dataclasses.field(default_factory=dict)
    used_names: set[str] = dataclasses.field(default_factory=set)
    kept: list[tuple[str, str, str]] = dataclasses.field(default_factory=list)  # (name, class, reason)
    dropped: list[str] = dataclasses.field(default_factory=list)
    custom_objects: dict[str, Any] = dataclasses.field(default_factory=dict)

    def unique(self, name: str, prefix: str) -> str:
        candidate = name if name not in self.used_names else f"{prefix.replace('/', '_')}{name}"
        while candidate in self.used_names:
            candidate += "_"
        self.used_names.add(candidate)
        return candidate


@functools.lru_cache(maxsize=None)
def adapter_class() -> type:
    """The tf_keras layer that calls a Keras 3 layer (or op) as it is, frozen."""
    tk = backend.tf_keras()

    class Keras3Layer(tk.layers.Layer):
        """Calls a Keras 3 layer from a tf_keras graph; its weights stay frozen and in float."""

        def __init__(self, ref: str, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.ref = ref
            self.keras3_layer, self._pack = _ADAPTED[ref]
            self.trainable = False

        def call(self, inputs: Any) -> Any:
            args, kwargs = self._pack(list(inputs) if isinstance(inputs, (list, tuple)) else [inputs])
            return self.keras3_layer(*args, **kwargs)

        def get_config(self) -> dict[str, Any]:
            return {**super().get_config(), "ref": self.ref}

    return Keras3Layer


def _translate(value: Any, build: _Build) -> Any:
    """Keras 3 config values -> tf_keras: dtype policies become names, module keys go, activations map."""
    if isinstance(value, dict):
        if value.get("class_name") in ("DTypePolicy", "FloatDTypePolicy") and isinstance(value.get("config"), dict):
            return value["config"].get("name", "float32")
        out = {}
        for key, item in value.items():
            if key in ("module", "registered_name", "shared_object_id", "build_config"):
                continue
            if key.endswith("_initializer") and isinstance(item, dict) and "class_name" in item:
                out[key] = {"class_name": item["class_name"], "config": {}}  # weights are copied anyway
            elif key.endswith("activation") and isinstance(item, str) and item in ACTIVATION_ALIASES:
                out[key] = ACTIVATION_ALIASES[item]
            elif key.endswith("activation") and isinstance(item, str) and item not in SAME_ACTIVATIONS:
                out[key] = _keras3_activation(item, build)
            else:
                out[key] = _translate(item, build)
        return out
    if isinstance(value, list):
        return [_translate(item, build) for item in value]
    return value


def _keras3_activation(name: str, build: _Build) -> Any:
    """Keras 3's own activation function; tf_keras re-creates it by its ``__name__`` from the custom objects."""
    function = backend.keras3().activations.get(name)
    build.custom_objects[getattr(function, "__name__", name)] = function
    return function


def _drop_key(config: Any, key: str) -> bool:
    """Removes ``key`` wherever it appears in a (nested) config; True if it held a value (not ``None``)."""
    found = False
    if isinstance(config, dict):
        if key in config:
            found = config.pop(key) is not None
        for item in config.values():
            found = _drop_key(item, key) or found
    elif isinstance(config, list):
        for item in config:
            found = _drop_key(item, key) or found
    return found


def _contains_key(config: Any, key: str) -> bool:
    if isinstance(config, dict):
        return key in config or any(_contains_key(item, key) for item in config.values())
    if isinstance(config, list):
        return any(_contains_key(item, key) for item in config)
    return False


_UNKNOWN_KEY = re.compile(r"(?:Unrecognized keyword arguments[^\[]*\[([^\]]*)\]|unexpected keyword argument '(\w+)'"
                          r"|Keyword argument not understood:', '(\w+)')")


def _twin_from_config(cls: type, config: dict[str, Any], name: str, build: _Build) -> Any:
    """``cls.from_config(config)``, dropping (and recording) keys tf_keras does not know."""
    tk = backend.tf_keras()
    for _ in range(12):
        try:
            with tk.utils.custom_object_scope(build.custom_objects):
                return cls.from_config(dict(config))
        except (TypeError, ValueError) as exc:
            match = _UNKNOWN_KEY.search(str(exc))
            keys = re.findall(r"'?(\w+)'?", next(g for g in match.groups() if g)) if match else []
            present = [key for key in keys if _contains_key(config, key)]
            if not present:
                raise
            build.dropped.extend(f"{name}.{key}" for key in present if _drop_key(config, key))
    raise ValueError(f"too many unknown config keys in layer {name!r}")


def _keras3_twin(layer: Any, name: str, build: _Build) -> tuple[Any | None, str]:
    """A tf_keras layer equivalent to a Keras 3 layer, or ``None`` and why not."""
    tk = backend.tf_keras()
    kind = type(layer).__name__
    if not type(layer).__module__.startswith("keras."):
        return None, "custom layer"
    if kind in KEEP_AS_IS or name in build.force_as_is:
        return None, "state outside its weights" if kind in KEEP_AS_IS else "its weights do not fit tf_keras's layer"
    cls = getattr(tk.layers, kind, None)
    if cls is None:
        return None, f"tf_keras has no {kind}"
    config = _translate(layer.get_config(), build)
    config["name"] = name
    try:
        return _twin_from_config(cls, config, name, build), ""
    except Exception as exc:  # any config tf_keras cannot read: keep the layer as it is
        return None, f"tf_keras cannot rebuild it ({type(exc).__name__}: {str(exc).splitlines()[0][:120]})"


def _is_keras_tensor(value: Any) -> bool:
    return type(value).__name__ == "KerasTensor"


def _adapt(op: Any, args: tuple, kwargs: dict, name: str, reason: str, build: _Build) -> Any:
    """Calls ``op`` as it is, through a frozen tf_keras adapter layer."""
    tf = backend.tf()
    flat = tf.nest.flatten((args, kwargs))
    positions = [i for i, item in enumerate(flat) if _is_keras_tensor(item)]

    def pack(tensors: list[Any]) -> tuple[tuple, dict]:
        filled = list(flat)
        for position, tensor in zip(positions, tensors):
            filled[position] = tensor
        return tf.nest.pack_sequence_as((args, kwargs), filled)

    ref = uuid.uuid4().hex
    _ADAPTED[ref] = (op, pack)
    build.kept.append((name, type(op).__name__, reason))
    build.custom_objects["Keras3Layer"] = adapter_class()
    tensors = [flat[i] for i in positions]
    return adapter_class()(ref, name=name)(tensors if len(tensors) > 1 else tensors[0])


def _merge_op(op: Any, args: tuple, kwargs: dict, prefix: str, build: _Build) -> Any | None:
    """``x + y``, ``x * y`` ... between two tensors (Keras 3 records ops) as tf_keras merge layers."""
    kind = MERGE_OPS.get(type(op).__name__)
    if kind is None or kwargs or len(args) != 2 or not all(_is_keras_tensor(a) for a in args):
        return None
    try:
        return getattr(backend.tf_keras().layers, kind)(name=build.unique(getattr(op, "name", kind.lower()), prefix))(
            list(args))
    except Exception:  # shapes a merge layer does not broadcast: call the op as it is
        return None


def _keras3_leaf(op: Any, args: tuple, kwargs: dict, prefix: str, build: _Build) -> Any:
    if not isinstance(op, backend.keras3().layers.Layer):
        merged = _merge_op(op, args, kwargs, prefix, build)
        if merged is not None:
            return merged
        name = build.unique(getattr(op, "name", type(op).__name__), prefix)
        return _adapt(op, args, kwargs, name, OP_REASON, build)
    twin = build.twins.get(id(op))
    name = getattr(twin, "name", None)
    if twin is None:
        name = build.unique(getattr(op, "name", type(op).__name__), prefix)
        twin, reason = _keras3_twin(op, name, build)
        if twin is None:
            return _adapt(op, args, kwargs, name, reason, build)
        build.twins[id(op)] = twin
        build.sources[name] = op
        build.paths[name] = f"{prefix}{op.name}"
    try:
        return twin(*args, **kwargs)
    except Exception as exc:  # the twin cannot take these arguments: keep the original call
        build.twins.pop(id(op), None)
        build.sources.pop(name, None)
        return _adapt(op, args, kwargs, f"{name}_call", f"tf_keras {type(twin).__name__} rejects the call ({exc})",
                      build)


def _walk_keras3(model: Any, inputs: list[Any], prefix: str, build: _Build) -> Any:
    keras = backend.keras3()
    if isinstance(model, keras.Sequential) and getattr(model, "_functional", None) is None:
        x = inputs[0]
        for layer in model.layers:
            x = _keras3_leaf(layer, (x,), {}, f"{prefix}{model.name}/", build)
        return x

    def call(op: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(op, keras.Model):
            inner = args[0] if args else kwargs.get("inputs")
            return _walk_keras3(op, keras.tree.flatten(inner), f"{prefix}{op.name}/", build)
        return _keras3_leaf(op, args, kwargs, prefix, build)

    functional = model._functional if isinstance(model, keras.Sequential) else model
    return functional._run_through_graph(inputs, operation_fn=lambda op: op, call_fn=call)


def _walk_tf_keras(model: Any, inputs: list[Any], prefix: str, build: _Build) -> Any:
    tf, tk = backend.tf(), backend.tf_keras()
    usage = model._tensor_usage_count
    tensors = {str(id(x)): [y] * usage[str(id(x))] for x, y in zip(model.inputs, inputs)}
    for depth in sorted(model._nodes_by_depth, reverse=True):
        for node in model._nodes_by_depth[depth]:
            if node.is_input or any(t not in tensors for t in node.flat_input_ids):
                continue
            args, kwargs = node.map_arguments(tensors)
            layer = node.layer
            if isinstance(layer, tk.Model):
                outputs = _walk_tf_keras(layer, tf.nest.flatten(args[0]), f"{prefix}{layer.name}/", build)
            else:
                if id(layer) not in build.twins:
                    name = build.unique(layer.name, prefix)
                    with tk.utils.custom_object_scope(build.custom_objects):
                        twin = type(layer).from_config({**layer.get_config(), "name": name})
                    build.twins[id(layer)] = twin
                    build.sources[name] = layer
                    build.paths[name] = f"{prefix}{layer.name}"
                outputs = build.twins[id(layer)](*args, **kwargs)
            for x_id, y in zip(node.flat_output_ids, tf.nest.flatten(outputs)):
                tensors[x_id] = [y] * usage[x_id]
    outputs = [tensors[str(id(x))].pop() for x in model.outputs]
    return tf.nest.pack_sequence_as(model._nested_outputs, outputs)


def _build_flat(model: Any, io: Any, build: _Build) -> Any:
    tf, tk = backend.tf(), backend.tf_keras()
    inputs = [tk.Input(shape=t.shape, dtype=tf.string if t.is_string else t.dtype, name=t.name) for t in io.inputs]
    build.used_names.update(t.name for t in io.inputs)
    if backend.flavour_of(model) is KerasFlavour.KERAS3:
        outputs = _walk_keras3(model, inputs, "", build)
        flat_outputs = backend.keras3().tree.flatten(outputs)
    else:
        flat_outputs = tf.nest.flatten(_walk_tf_keras(model, inputs, "", build))
    return tk.Model(inputs, flat_outputs, name=model.name)


def _copy_weights(build: _Build, flat: Any) -> list[str]:
    """Copies each original layer's weights into its twin; returns the names whose weights do not fit."""
    misfits = []
    for name, source in build.sources.items():
        weights = source.get_weights()
        if not weights:
            continue
        try:
            flat.get_layer(name).set_weights(weights)
        except ValueError:
            misfits.append(name)
    return misfits


def max_output_diff(expected: list[Any], actual: list[Any]) -> float:
    """Largest absolute difference over every output (in model order)."""
    return max(float(np.max(np.abs(np.asarray(e, dtype=np.float64) - np.asarray(a, dtype=np.float64))))
               for e, a in zip(expected, actual))


def needs_rebuild(model: Any) -> bool:
    """Whether TFMOT needs a rebuilt copy (Keras 3, or a tf_keras model that nests models)."""
    return backend.flavour_of(model) is KerasFlavour.KERAS3 or bool(backend.nested_models(model))


def to_tf_keras(model: Any, sample: dict[str, np.ndarray]) -> BridgeResult:
    """Rebuilds ``model`` as one flat tf_keras functional model (see the module docstring).

    Args:
        model: A functional or Sequential Keras 3 or tf_keras model, nested models allowed.
        sample: Named inputs for the numerical check.

    Returns:
        A :class:`BridgeResult`.

    Raises:
        TfdeployError: For subclassed models (naming the fix) or a copy whose outputs differ.

    Example:
        >>> to_tf_keras(keras3_model, {"image": x[:8]}).max_abs_diff      # doctest: +SKIP
        0.0
    """
    announce_stage("build the tf_keras copy for TFMOT")
    from tfdeploy.io_spec import take

    io = backend.model_io(model)
    if not needs_rebuild(model):
        return BridgeResult(model=model, max_abs_diff=0.0, paths={n: n for n, _ in backend.leaf_layers(model)})
    _refuse_subclassed(model)
    build = _Build(force_as_is=set())
    flat = _build_flat(model, io, build)
    misfits = _copy_weights(build, flat)
    if misfits:  # rebuild once, calling those layers as they are
        build = _Build(force_as_is=set(misfits))
        flat = _build_flat(model, io, build)
        _copy_weights(build, flat)
    sample = take(sample, slice(0, 16))
    diff = max_output_diff(backend.call_flat(model, sample), backend.call_flat(flat, sample))
    if diff > BRIDGE_TOLERANCE:
        raise TfdeployError(
            f"The tf_keras copy of model {model.name!r} differs from it (max abs output difference {diff:.3g} > "
            f"{BRIDGE_TOLERANCE}); refusing to compress a different model. Layers rebuilt from their configs: "
            f"{len(build.sources)}; kept as they are: {len(build.kept)}. Report this model to tfdeploy, or give a "
            "tf_keras model. Received: model=" + repr(model.name))
    return BridgeResult(model=flat, max_abs_diff=diff, notes=_notes(model, build),
                        kept_as_is=[f"{name} ({kind})" for name, kind, _ in build.kept],
                        paths=dict(build.paths), custom_objects=dict(build.custom_objects))


def _refuse_subclassed(model: Any) -> None:
    keras = backend.keras3() if backend.flavour_of(model) is KerasFlavour.KERAS3 else backend.tf_keras()
    functional = hasattr(model, "_nodes_by_depth") or isinstance(model, keras.Sequential)
    if not functional:
        raise TfdeployError(
            f"Model {model.name!r} is a subclassed {type(model).__name__}; TFMOT needs a functional or Sequential "
            "model. Rebuild it with keras.Input(...) and layer calls (functional API); the prune recipe works on "
            f"subclassed models as they are. Received: model={model.name!r}")


def _notes(model: Any, build: _Build) -> list[str]:
    notes = []
    nested = backend.nested_models(model)
    if nested:
        notes.append(f"flattened nested model(s) {', '.join(nested)} into one tf_keras graph for TFMOT; "
                     "the Keras file written back keeps your structure")
    if build.dropped:
        notes.append("config keys tf_keras does not know, dropped: " + ", ".join(sorted(set(build.dropped))))
    if build.kept:
        notes.append("called as they are inside the tf_keras copy (frozen, left in float): " + _describe_kept(build.kept))
    return notes


def _describe_kept(kept: list[tuple[str, str, str]]) -> str:
    """Layers by name with their reason; Keras 3 ops (``x + 3``) counted by kind."""
    ops: dict[str, int] = {}
    parts = []
    for name, kind, reason in kept:
        if reason == OP_REASON:
            ops[kind] = ops.get(kind, 0) + 1
        else:
            parts.append(f"{name} ({kind}): {reason}")
    if ops:
        parts.append("Keras 3 ops in the graph " + ", ".join(f"{kind} ×{n}" for kind, n in sorted(ops.items())))
    return "; ".join(parts)


def copy_weights_back(result: BridgeResult, flat: Any, target: Any) -> list[str]:
    """Copies weights from a (compressed) flat tf_keras model into ``target``, a copy of the user's model.

    Layers are matched through :attr:`BridgeResult.paths`, so nested models receive their weights.

    Returns:
        Paths of ``target`` layers with weights that got no value (should be empty).
    """
    leaves = dict(backend.leaf_layers(target))
    filled = set()
    for layer in flat.layers:
        path = result.paths.get(layer.name)
        weights = layer.get_weights()
        if path is None or path not in leaves or not weights:
            continue
        leaves[path].set_weights(weights)
        filled.add(path)
    kept = {entry.split(" (")[0] for entry in result.kept_as_is}
    return [path for path, layer in leaves.items() if layer.weights and path not in filled
            and path.split("/")[-1] not in kept]


def clone_with_weights(model: Any) -> Any:
    """A structural copy of a Keras model (either Keras) holding the same weight values."""
    keras = backend.keras_module_for(model)
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    return clone
