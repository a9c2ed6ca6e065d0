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

import dataclasses
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


# --------------------------------------------------------------------------------------------
# Keras 3 -> tf_keras bridge (TFMOT only accepts tf_keras models)
# --------------------------------------------------------------------------------------------

_POLICY_KEYS = ("dtype",)
_KERAS3_ONLY_KEYS = {"InputLayer": ("optional",)}


def _translate_value(value: Any) -> Any:
    """Keras 3 serialized objects -> tf_keras: dtype policies become names, module keys go."""
    if isinstance(value, dict):
        if value.get("class_name") in ("DTypePolicy", "FloatDTypePolicy") and isinstance(value.get("config"), dict):
            return value["config"].get("name", "float32")
        if value.get("class_name") == "__keras_tensor__":
            return value
        out = {k: _translate_value(v) for k, v in value.items()
               if not (k in ("module", "registered_name") and str(value.get("module") or "keras").startswith("keras"))}
        return out
    if isinstance(value, list):
        return [_translate_value(v) for v in value]
    return value


def _history(tensor: Any) -> list[Any]:
    name, node_index, tensor_index = tensor["config"]["keras_history"]
    return [name, node_index, tensor_index]


def _flatten_tensors(arg: Any) -> list[Any]:
    if isinstance(arg, dict) and arg.get("class_name") == "__keras_tensor__":
        return [arg]
    if isinstance(arg, (list, tuple)):
        return [t for a in arg for t in _flatten_tensors(a)]
    return []


def _translate_inbound_nodes(nodes: list[Any], layer_name: str) -> list[Any]:
    translated = []
    for node in nodes:
        if not isinstance(node, dict):  # already tf_keras style
            translated.append(node)
            continue
        tensors = _flatten_tensors(node.get("args", []))
        kwargs = {k: v for k, v in (node.get("kwargs") or {}).items() if not _flatten_tensors(v)}
        if not tensors:
            raise ValueError(f"layer {layer_name!r} is called without tensor inputs")
        translated.append([[*_history(t), dict(kwargs)] for t in tensors])
    return translated


def _translate_layer_config(layer: dict[str, Any]) -> dict[str, Any]:
    class_name = layer["class_name"]
    config = _translate_value(dict(layer.get("config") or {}))
    if class_name == "InputLayer":
        if "batch_shape" in config:
            config["batch_input_shape"] = config.pop("batch_shape")
    for key in _KERAS3_ONLY_KEYS.get(class_name, ()):
        config.pop(key, None)
    for key, value in list(config.items()):
        # Initializers only matter for fresh weights, and weights are copied: keep the class only
        # (Keras 3 initializer configs carry arguments tf_keras does not know, e.g. input_axes).
        if key.endswith("_initializer") and isinstance(value, dict) and "class_name" in value:
            config[key] = {"class_name": value["class_name"], "config": {}}
    out = {"class_name": class_name, "config": config, "name": layer.get("name", config.get("name"))}
    if "inbound_nodes" in layer:
        out["inbound_nodes"] = _translate_inbound_nodes(layer["inbound_nodes"], out["name"])
    return out


def _io_list(value: Any) -> Any:
    # Keras 3 writes a single input/output as ["name", 0, 0]; tf_keras wants [["name", 0, 0]].
    if isinstance(value, list) and len(value) == 3 and isinstance(value[0], str):
        return [value]
    return value


def _unsupported_structure(model: Any) -> str | None:
    keras = keras3()
    from keras.src.models.functional import Functional  # Keras 3 does not export it publicly

    if not isinstance(model, (keras.Sequential, Functional)):
        return (f"model {model.name!r} is a subclassed {type(model).__name__}; TFMOT needs a functional or "
                "Sequential model. Rebuild it with keras.Input(...) and layer calls (functional API)")
    nested = [layer.name for layer in model.layers if isinstance(layer, keras.Model)]
    if nested:
        return (f"model {model.name!r} nests the model(s) {', '.join(nested)}; TFMOT cannot wrap layers inside "
                "nested models. Flatten it: build the outer model from the inner model's tensors "
                "(e.g. keras.applications.X(input_tensor=inputs) and base.output)")
    return None


def _instantiate_with_known_keys(tk: ModuleType, layer: dict[str, Any], dropped: list[str]) -> None:
    """Removes config keys the tf_keras layer class does not accept, recording them in ``dropped``."""
    import re

    cls = getattr(tk.layers, layer["class_name"], None)
    if cls is None:
        return
    for _ in range(10):
        try:
            cls.from_config(dict(layer["config"]))
            return
        except (TypeError, ValueError) as exc:
            text = str(exc)
            match = re.search(r"(Unrecognized keyword arguments[^\[]*\[[^\]]*\]|unexpected keyword argument '\w+'"
                              r"|Keyword argument not understood:', '\w+')", text)
            bad = [k for k in re.findall(r"'(\w+)'", match.group(0)) if k in layer["config"]] if match else []
            if not bad:
                raise
            for key in bad:
                if layer["config"].pop(key) is not None:  # a None option changes nothing
                    dropped.append(f"{layer['name']}.{key}")


@dataclasses.dataclass
class BridgeResult:
    """A tf_keras copy of a Keras 3 model and how closely it matches."""

    model: Any
    max_abs_diff: float
    dropped_config_keys: list[str]


def to_tf_keras(model: Any, sample: Any) -> BridgeResult:
    """Rebuilds a Keras 3 functional/Sequential model in tf_keras and copies weights by layer name.

    The Keras 3 config is translated (``batch_shape`` -> ``batch_input_shape``, dtype policies ->
    names, the Keras 3 node format -> tf_keras ``inbound_nodes``); keys tf_keras does not know are
    dropped and listed. The copy is checked numerically on ``sample``.

    Args:
        model: A Keras 3 model (tf_keras models are returned as they are).
        sample: A batch of inputs for the numerical check.

    Returns:
        A :class:`BridgeResult`.

    Raises:
        TfdeployError: For subclassed or nested models, naming the workaround.

    Example:
        >>> bridge = to_tf_keras(keras3_model, x[:8])     # doctest: +SKIP
        >>> bridge.max_abs_diff < 1e-5
        True
    """
    from tfdeploy.errors import TfdeployError

    import numpy as np

    if flavour_of(model) is KerasFlavour.TF_KERAS:
        return BridgeResult(model=model, max_abs_diff=0.0, dropped_config_keys=[])
    problem = _unsupported_structure(model)
    if problem:
        raise TfdeployError(f"Cannot bring the Keras 3 model to tf_keras for TFMOT: {problem}.")
    tk = tf_keras()
    config = model.get_config()
    dropped: list[str] = []
    layers = [_translate_layer_config(layer) for layer in config["layers"]]
    for layer in layers:
        _instantiate_with_known_keys(tk, layer, dropped)
    try:
        if isinstance(model, keras3().Sequential):
            clone = tk.Sequential.from_config({"name": config.get("name", model.name), "layers": layers})
        else:
            clone = tk.Model.from_config({
                "name": config.get("name", model.name), "layers": layers,
                "input_layers": _io_list(config["input_layers"]), "output_layers": _io_list(config["output_layers"]),
            })
    except Exception as exc:
        raise TfdeployError(
            f"Cannot rebuild Keras 3 model {model.name!r} in tf_keras ({type(exc).__name__}: {exc}). "
            "Give tfdeploy a tf_keras model instead (import tf_keras as keras)."
        ) from exc
    for layer in model.layers:
        weights = layer.get_weights()
        if weights:
            clone.get_layer(layer.name).set_weights(weights)
    expected = np.asarray(model(sample, training=False))
    actual = np.asarray(clone(sample, training=False))
    return BridgeResult(model=clone, max_abs_diff=float(np.max(np.abs(expected - actual))),
                        dropped_config_keys=dropped)


def copy_weights_by_name(source: Any, target: Any) -> list[str]:
    """Copies weights layer by layer (matched by name) from ``source`` into ``target``.

    Returns:
        Names of ``target`` layers with weights that ``source`` had no match for.
    """
    missing = []
    names = {layer.name for layer in source.layers}
    for layer in target.layers:
        if not layer.weights:
            continue
        if layer.name not in names:
            missing.append(layer.name)
            continue
        layer.set_weights(source.get_layer(layer.name).get_weights())
    return missing


def write_inference_savedmodel(model: Any, directory: str, input_name: str, sample_shape: list[int | None],
                               input_dtype: str, output_names: list[str],
                               signatures: dict[str, int | None] | None = None) -> None:
    """Writes a SavedModel whose signatures map ``{input_name: x}`` to ``{output_name: y, ...}``.

    Keras 3 models go through ``keras.export.ExportArchive`` (a plain ``tf.Module`` wrapper
    leaves Keras 3 variables unfrozen for the TFLite calibrator); tf_keras models through a
    ``tf.Module``. The inference call uses ``training=False``.

    Args:
        model: Keras 3 or tf_keras model with one input.
        directory: Target directory (must not exist or be empty).
        input_name: The signature's input key.
        sample_shape: Input shape without the batch dimension.
        input_dtype: Input dtype name.
        output_names: Output keys, one per model output.
        signatures: Signature name -> fixed batch size (``None``: dynamic). Default
            ``{"serving_default": None}``.

    Example:
        >>> write_inference_savedmodel(model, "/tmp/sm", "image", [32, 32, 3], "float32",
        ...                            ["probabilities"])      # doctest: +SKIP
    """
    tf_ = tf()
    signatures = signatures or {"serving_default": None}

    @tf_.autograph.experimental.do_not_convert  # plain Python around the model call; nothing to convert
    def serve(x: Any) -> dict[str, Any]:
        outputs = model(x, training=False)
        if isinstance(outputs, dict):
            outputs = [outputs[k] for k in sorted(outputs)]
        if not isinstance(outputs, (list, tuple)):
            outputs = [outputs]
        return dict(zip(output_names, outputs))

    specs = {name: tf_.TensorSpec([batch, *sample_shape], tf_.as_dtype(input_dtype), name=input_name)
             for name, batch in signatures.items()}
    if flavour_of(model) is KerasFlavour.KERAS3:
        archive = keras3().export.ExportArchive()
        archive.track(model)
        for name, spec in specs.items():
            archive.add_endpoint(name, serve, input_signature=[spec])
        archive.write_out(directory, verbose=False)
        return
    module = tf_.Module()
    module.model = model
    functions = {name: tf_.function(serve, input_signature=[spec]) for name, spec in specs.items()}
    for name, function in functions.items():
        setattr(module, name, function)
    tf_.saved_model.save(module, directory,
                         signatures={name: f.get_concrete_function() for name, f in functions.items()})


def io_names(model: Any) -> tuple[str, list[str]]:
    """Serving names for a single-input Keras model: its input layer's and output layers' names.

    Both Kerases name a functional model's tensors after the layers that made them (``image``,
    ``probabilities``), unlike Keras 3 ``model.export()`` whose input key is an unstable tensor
    name (``keras_tensor_801``).
    """
    from tfdeploy.errors import TfdeployError

    inputs = list(getattr(model, "inputs", None) or [])
    if len(inputs) != 1:
        raise TfdeployError(
            f"Serving export supports single-input models. Received: model {getattr(model, 'name', '?')!r} "
            f"with {len(inputs)} inputs"
        )
    input_name = inputs[0]._keras_history[0].name
    outputs = list(getattr(model, "outputs", None) or [])
    output_names = []
    for tensor in outputs:
        name = tensor._keras_history[0].name
        output_names.append(name if name not in output_names else f"{name}_{len(output_names)}")
    return input_name, output_names or ["output"]
