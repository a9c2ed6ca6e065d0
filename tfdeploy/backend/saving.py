"""Writing a model's inference call as a SavedModel whose signatures carry the model's own names.

Example:
    >>> from tfdeploy import backend
    >>> outputs = backend.write_inference_savedmodel(model, "tmp/sm", backend.model_io(model))   # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

from tfdeploy.backend.imports import KerasFlavour, keras3, tf
from tfdeploy.backend.models import SavedModelFunction, call_flat, flavour_of, keras3_variables_inside, leaf_layers

LOOKUP_LAYERS = ("StringLookup", "IntegerLookup")


def tensor_spec(info: Any, batch: int | None) -> Any:
    """A named ``tf.TensorSpec`` for one model input (``batch`` ``None`` keeps it dynamic)."""
    tf_ = tf()
    dtype = tf_.string if info.is_string else tf_.as_dtype(info.dtype)
    return tf_.TensorSpec([batch, *info.shape], dtype, name=info.name)


def write_inference_savedmodel(model: Any, directory: str, io: Any, signatures: dict[str, int | None] | None = None,
                               input_keys: dict[str, str] | None = None) -> None:
    """Writes a SavedModel whose signatures map the model's named inputs to its named outputs.

    Keras 3 models go through ``keras.export.ExportArchive`` (a plain ``tf.Module`` wrapper leaves
    Keras 3 variables unfrozen for the TFLite converter); tf_keras models and plain SavedModels
    through a ``tf.Module`` that also tracks the variables of any Keras 3 layer inside (see
    :mod:`tfdeploy.compression.bridge`). The inference call uses ``training=False``.

    Args:
        model: A Keras 3 or tf_keras model, or a :class:`SavedModelFunction`.
        directory: Target directory (must not exist or be empty).
        io: The :class:`~tfdeploy.io_spec.ModelIO` giving input and output names.
        signatures: Signature name -> fixed batch size (``None``: dynamic). Default
            ``{"serving_default": None}``.
        input_keys: Signature input key -> the model's input name, where ``io`` renames an input.

    Example:
        >>> write_inference_savedmodel(model, "/tmp/sm", model_io(model))      # doctest: +SKIP
    """
    tf_ = tf()
    signatures = signatures or {"serving_default": None}
    input_keys = input_keys or {}

    @tf_.autograph.experimental.do_not_convert  # plain Python around the model call; nothing to convert
    def serve(inputs: dict[str, Any]) -> dict[str, Any]:
        named = {input_keys.get(key, key): value for key, value in inputs.items()}
        return dict(zip(io.output_names, call_flat(model, named, training=False)))

    specs = {name: {t.name: tensor_spec(t, batch) for t in io.inputs} for name, batch in signatures.items()}
    if not isinstance(model, SavedModelFunction) and flavour_of(model) is KerasFlavour.KERAS3:
        archive = keras3().export.ExportArchive()
        archive.track(model)
        _track_each_variable_once(archive)
        for name, spec in specs.items():
            archive.add_endpoint(name, serve, input_signature=[spec])
        archive.write_out(directory, verbose=False)
        return
    functions = {name: tf_.function(serve, input_signature=[spec]) for name, spec in specs.items()}
    try:  # tracking only the variables skips tf_keras's per-layer serialization: 4-5x faster to save and convert
        _save_module(_serving_module(model, functions, whole_model=False), directory, functions)
    except (AssertionError, ValueError) as exc:  # an untracked resource (a lookup table): track the whole model
        if "track" not in str(exc).lower():
            raise
        _save_module(_serving_module(model, functions, whole_model=True), directory, functions)


def _track_each_variable_once(archive: Any) -> None:
    """Makes the archive's variable lists hold the ``tf.Variable`` behind each Keras 3 variable.

    ``ExportArchive`` tracks the Keras variables under ``variables`` and, at ``write_out``, the
    ``tf.Variable`` objects its endpoints capture under ``_all_variables``. They are two trackables
    for one value, so the checkpoint stored every variable twice: a version twice the size of its
    weights, read (and held) twice by TF Serving at each load. With the same objects in both
    lists, the checkpoint holds each value once.
    """
    holder = archive._tf_trackable
    for field in ("variables", "trainable_variables", "non_trainable_variables"):
        setattr(holder, field, [v if getattr(v, "_value", None) is None else v._value for v in getattr(holder, field)])


@contextlib.contextmanager
def static_lookup_shapes(model: Any) -> Iterator[list[str]]:
    """While traced inside this block, ``StringLookup``/``IntegerLookup`` layers give outputs of a static shape.

    Their hash-table lookup loses its shape in the TFLite converter (the tensor is stored with no
    shape), so the flatbuffer's shapes are wrong until the interpreter is resized: such a model
    fails when invoked with one sample (``reshape ... 4 != 16``), and so does int8 calibration, which
    feeds one sample at a time. A reshape to the lookup's input shape (known but for the batch)
    restores it. Yields the names of the layers so treated.

    Example:
        >>> with static_lookup_shapes(model) as fixed:                          # doctest: +SKIP
        ...     write_inference_savedmodel(model, "/tmp/sm", model_io(model))
    """
    patched = []
    if not isinstance(model, SavedModelFunction):
        for _, layer in leaf_layers(model):
            config = layer.get_config() if type(layer).__name__ in LOOKUP_LAYERS else {}
            if config and config.get("output_mode", "int") == "int" and "call" not in vars(layer):
                layer.call = _reshaped_like_input(layer.call)
                patched.append(layer)
    try:
        yield [layer.name for layer in patched]
    finally:
        for layer in patched:
            del layer.call


def _reshaped_like_input(call: Any) -> Any:
    def reshaped(inputs: Any, *args: Any, **kwargs: Any) -> Any:
        outputs = call(inputs, *args, **kwargs)
        shape = list(getattr(inputs, "shape", []))[1:]
        if not shape or any(d is None for d in shape) or getattr(outputs, "shape", None) is None:
            return outputs
        return tf().reshape(outputs, [-1, *shape])

    return reshaped


def _serving_module(model: Any, functions: dict[str, Any], whole_model: bool) -> Any:
    module = tf().Module()
    if isinstance(model, SavedModelFunction):
        module.model = model.loaded
    elif whole_model:
        module.model = model
    else:
        module.model_variables = list(model.variables)
    module.keras3_layers = [layer.keras3_layer for layer in getattr(model, "layers", []) or []
                            if isinstance(getattr(layer, "keras3_layer", None), keras3().layers.Layer)]
    module.keras3_variables = [getattr(v, "value", v) for v in keras3_variables_inside(model)]
    for name, function in functions.items():
        setattr(module, name, function)
    return module


def _save_module(module: Any, directory: str, functions: dict[str, Any]) -> None:
    tf().saved_model.save(module, directory,
                          signatures={name: f.get_concrete_function() for name, f in functions.items()})
