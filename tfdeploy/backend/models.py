"""Models of either Keras, or a plain SavedModel: which kind a model is, its named inputs and outputs, calling it.

Example:
    >>> from tfdeploy import backend
    >>> backend.model_io(model).input_names             # doctest: +SKIP
    ['image']
"""

from __future__ import annotations

import os
from types import ModuleType
from typing import Any

from tfdeploy.backend.imports import KerasFlavour, keras3, tf, tf_keras


class SavedModelFunction:
    """A plain SavedModel (no Keras metadata) called through one signature, with its named I/O.

    Attributes:
        loaded: The object returned by ``tf.saved_model.load`` (keeps the variables alive).
        function: The signature's concrete function.
        io: Its inputs and outputs (signature keys).
        name: A display name.
    """

    def __init__(self, path: str, signature_name: str = "serving_default") -> None:
        from tfdeploy.errors import TfdeployError
        from tfdeploy.io_spec import ModelIO, TensorInfo

        self.loaded = tf().saved_model.load(path)
        if signature_name not in self.loaded.signatures:
            raise TfdeployError(f"The SavedModel has no {signature_name!r} signature to call (it has "
                                f"{sorted(self.loaded.signatures)}). Received: path={path!r}")
        self.function = self.loaded.signatures[signature_name]
        self.name = os.path.basename(os.path.normpath(path))
        _, kwargs = self.function.structured_input_signature
        outputs = self.function.structured_outputs
        self.io = ModelIO(
            inputs=tuple(TensorInfo(k, dtype_name(spec.dtype), tuple(spec.shape[1:])) for k, spec in sorted(kwargs.items())),
            outputs=tuple(TensorInfo(k, dtype_name(spec.dtype), tuple(spec.shape[1:])) for k, spec in sorted(outputs.items())),
        )

    def __call__(self, inputs: dict[str, Any]) -> dict[str, Any]:
        tf_ = tf()
        specs = self.function.structured_input_signature[1]
        return dict(self.function(**{k: tf_.convert_to_tensor(v, dtype=specs[k].dtype) for k, v in inputs.items()}))


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


def progress_callback(keras: ModuleType, progress: Any, epochs: int, label: str = "fine-tune") -> Any:
    """A Keras callback (for ``keras``'s flavour) showing training as a :mod:`tfdeploy.progress` task.

    The task counts batches over all epochs (so its estimate is for the whole fit) and shows the
    epoch and the last epoch's metrics beside the count.
    """
    import contextlib

    class _FitProgress(keras.callbacks.Callback):
        def on_train_begin(self, logs: dict | None = None) -> None:
            steps = (self.params or {}).get("steps")
            self._stack = contextlib.ExitStack()
            self._task = self._stack.enter_context(progress.task(label, total=steps * epochs if steps else None,
                                                                 unit="batch"))
            self._task.info["epoch"] = f"1/{epochs}"

        def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
            self._task.advance()

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            self._task.info.update({k: float(v) for k, v in (logs or {}).items()})
            self._task.info["epoch"] = f"{min(epoch + 2, epochs)}/{epochs}"

        def on_train_end(self, logs: dict | None = None) -> None:
            self._stack.close()

    return _FitProgress()


def decaying_rate(keras: ModuleType, rate: float, steps: int, decay_fraction: float) -> Any:
    """A learning rate (for ``keras``'s flavour) constant at ``rate``, then falling linearly to 0 over the last
    ``decay_fraction`` of ``steps`` ("warmup-stable-decay" without the warmup).

    Unlike a cosine over the whole run, it keeps the full rate for most of a short run, where a
    model trained from scratch is still far from converged: on 10-epoch runs it learned as much as
    a constant rate, and the final decay settled it.

    Example:
        >>> schedule = decaying_rate(keras, 2e-3, steps=100, decay_fraction=0.2)     # doctest: +SKIP
        >>> [round(float(schedule(s)), 4) for s in (0, 80, 90, 100)]
        [0.002, 0.002, 0.001, 0.0]
    """
    decay_steps = max(1.0, decay_fraction * steps)

    class _StableThenDecay(keras.optimizers.schedules.LearningRateSchedule):
        def __call__(self, step: Any) -> Any:
            left = (float(steps) - tf().cast(step, "float32")) / decay_steps
            return rate * tf().clip_by_value(left, 0.0, 1.0)

        def get_config(self) -> dict[str, Any]:
            return {"rate": rate, "steps": steps, "decay_fraction": decay_fraction}

    return _StableThenDecay()


def epoch_callback(keras: ModuleType, on_epoch_end: Any) -> Any:
    """A Keras callback (for ``keras``'s flavour) calling ``on_epoch_end(epoch, logs)`` after each epoch."""

    class _EachEpoch(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            on_epoch_end(epoch, logs or {})

    return _EachEpoch()


def tensor_source(tensor: Any) -> tuple[Any, int, list[Any]]:
    """The layer that made a symbolic Keras tensor (either Keras), which of its outputs it is, and that call's inputs.

    Example:
        >>> layer, index, inputs = tensor_source(model.outputs[0])      # doctest: +SKIP
        >>> layer.name, index, len(inputs)
        ('predictions', 0, 1)
    """
    layer, node_index, tensor_index = tensor._keras_history
    nodes = getattr(layer, "_inbound_nodes", None) or []
    if node_index >= len(nodes):
        return layer, tensor_index, []
    node = nodes[node_index]
    inputs = getattr(node, "keras_inputs", None)  # tf_keras
    if inputs is None:
        inputs = getattr(node, "input_tensors", None) or []  # Keras 3
    return layer, tensor_index, list(inputs)


def dtype_name(dtype: Any) -> str:
    """``tf.float32``/``"float32"``/``np.float32`` -> ``"float32"``; TF strings -> ``"string"``."""
    name = getattr(dtype, "name", None) or str(dtype)
    return "string" if name in ("string", "str", "object") else name


def _shape(tensor: Any) -> tuple[int | None, ...]:
    return tuple(None if d is None else int(d) for d in list(tensor.shape)[1:])


def _output_activation(tensor: Any) -> str | None:
    layer = tensor._keras_history[0]
    if type(layer).__name__ == "Softmax":
        return "softmax"
    activation = getattr(layer, "activation", None)
    name = getattr(activation, "__name__", None)
    if name is None and hasattr(layer, "outputs"):  # a nested model's output: look inside
        inner = list(getattr(layer, "outputs", None) or [])
        return _output_activation(inner[tensor._keras_history[2]]) if inner else None
    return name


def logits_of(output: Any, activation: str) -> Any:
    """The logits a ``softmax``/``sigmoid`` output tensor was computed from, or ``None`` if they are not at hand.

    Keras (either flavour) keeps them on the tensors its softmax and sigmoid make, and its own
    cross-entropies read them from there: a loss on ``log(clip(probabilities))`` would lose its
    gradient wherever a probability saturates. Used inside losses, where ``output`` is the model's
    output as Keras hands it over.

    Example:
        >>> logits_of(y_pred, "softmax")            # doctest: +SKIP
        <tf.Tensor 'model/probs/BiasAdd:0' shape=(None, 10) dtype=float32>
    """
    logits = getattr(output, "_keras_logits", None)
    if logits is not None:
        return logits
    op = getattr(output, "op", None)
    expected = {"softmax": "Softmax", "sigmoid": "Sigmoid"}[activation]
    if op is not None and not isinstance(output, tf().__internal__.EagerTensor) and op.type == expected \
            and len(op.inputs) == 1:
        return op.inputs[0]
    return None


def _raw_output_names(model: Any) -> list[str]:
    names = getattr(model, "output_names", None)
    outputs = list(model.outputs)
    if isinstance(names, (list, tuple)) and len(names) == len(outputs) and all(isinstance(n, str) for n in names):
        return list(names)
    return [t._keras_history[0].name for t in outputs]


def model_io(model: Any) -> Any:
    """The named inputs and outputs of a Keras model (either Keras) or a plain SavedModel.

    Names are the model's own: input layer names and output names (dict keys of a dict-output
    Keras 3 model, else the producing layers' names), the same in both Kerases.

    Raises:
        TfdeployError: For a model whose inputs are not known (a subclassed model never built
            on an ``Input``), naming the model and the fix.

    Example:
        >>> model_io(model).describe()     # doctest: +SKIP
        'inputs image float32[?, 32, 32, 3] -> outputs probabilities float32[?, 10]'
    """
    from tfdeploy.errors import TfdeployError
    from tfdeploy.io_spec import ModelIO, TensorInfo

    if isinstance(model, SavedModelFunction):
        return model.io
    try:
        inputs, outputs = list(model.inputs or []), list(model.outputs or [])
    except (AttributeError, ValueError):
        inputs, outputs = [], []
    if not inputs or not outputs:
        raise TfdeployError(
            f"Model {getattr(model, 'name', '?')!r} is a subclassed {type(model).__name__} whose inputs and outputs "
            "are not known (its file records no input shape: it was saved before it was called), so tfdeploy cannot "
            "name them for data, signatures and warmup. Call it once on data before saving, rebuild it with the "
            "functional API (keras.Input(...) and layer calls) or wrap it: keras.Model(inputs, model(inputs)). "
            f"Received: model={getattr(model, 'name', '?')!r}")
    output_names: list[str] = []
    for name in _raw_output_names(model):
        output_names.append(name if name not in output_names else f"{name}_{len(output_names)}")
    return ModelIO(
        inputs=tuple(TensorInfo(t._keras_history[0].name, dtype_name(t.dtype), _shape(t)) for t in inputs),
        outputs=tuple(TensorInfo(name, dtype_name(t.dtype), _shape(t), _output_activation(t))
                      for name, t in zip(output_names, outputs)),
    )


def call_flat(model: Any, inputs: dict[str, Any], training: bool | None = False) -> list[Any]:
    """Calls a Keras model (or :class:`SavedModelFunction`) on named inputs; returns its outputs in order.

    The inputs are packed in the structure the model was built with (dict, list or a single
    tensor), so neither Keras warns about mismatched structures.
    """
    io = model_io(model)
    if isinstance(model, SavedModelFunction):
        outputs = model(inputs)
        return [outputs[name] for name in io.output_names]
    flat = [inputs[name] for name in io.input_names]
    if flavour_of(model) is KerasFlavour.KERAS3:
        structure = getattr(model, "_inputs_struct", None)
        packed = keras3().tree.pack_sequence_as(structure, flat) if structure is not None else (
            flat[0] if len(flat) == 1 else flat)
        raw = model(packed) if training is None else model(packed, training=training)
        return keras3().tree.flatten(raw)
    packed = flat[0] if len(flat) == 1 else flat
    raw = model(packed) if training is None else model(packed, training=training)
    return tf().nest.flatten(raw)


def call_model(model: Any, inputs: dict[str, Any], training: bool | None = False) -> dict[str, Any]:
    """Calls a model on named inputs; returns its outputs by name (see :func:`call_flat`).

    Example:
        >>> call_model(model, {"image": x})["probabilities"].shape     # doctest: +SKIP
        TensorShape([8, 10])
    """
    return dict(zip(model_io(model).output_names, call_flat(model, inputs, training)))


def variables_of(model: Any) -> list[Any]:
    """Every variable of a model (trainable and not); a plain SavedModel's are its function's.

    Example:
        >>> sum(int(np.prod(v.shape)) for v in variables_of(model))      # doctest: +SKIP
        897869
    """
    return list(model.function.variables if isinstance(model, SavedModelFunction) else model.weights)


def keras3_variables_inside(model: Any) -> list[Any]:
    """Variables of Keras 3 layers called inside a tf_keras model (tfdeploy's bridge adapters)."""
    found = []
    for layer in getattr(model, "layers", []) or []:
        found.extend(getattr(getattr(layer, "keras3_layer", None), "weights", None) or [])
    return found


def leaf_layers(model: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """Every non-model layer of ``model`` with its path, nested models (any depth) included.

    Example:
        >>> [path for path, _ in leaf_layers(model)][:2]          # doctest: +SKIP
        ['image', 'mobilenetv2_0.35_32/Conv1']
    """
    found: list[tuple[str, Any]] = []
    for layer in getattr(model, "layers", []) or []:
        path = f"{prefix}{layer.name}"
        if hasattr(layer, "layers") and getattr(layer, "layers", None) is not None and is_model(layer):
            found.extend(leaf_layers(layer, prefix=f"{path}/"))
        else:
            found.append((path, layer))
    return found


def is_model(layer: Any) -> bool:
    """Whether ``layer`` is a model (of either Keras): a nested model inside another."""
    return isinstance(layer, (keras3().Model, tf_keras().Model))


def rescales_inputs(model: Any) -> bool:
    """Whether a Keras model scales its inputs itself (a ``Rescaling`` or ``Normalization`` layer)."""
    return any(type(layer).__name__ in ("Rescaling", "Normalization") for _, layer in leaf_layers(model))


def nested_models(model: Any) -> list[str]:
    """Names of models nested inside ``model`` (any depth)."""
    names = []
    for layer in getattr(model, "layers", []) or []:
        if is_model(layer):
            names.append(layer.name)
            names.extend(f"{layer.name}/{inner}" for inner in nested_models(layer))
    return names


RECURRENT_LAYERS = ("LSTM", "GRU", "SimpleRNN", "RNN", "ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D")


def recurrent_layers(model: Any) -> list[tuple[str, str]]:
    """``(path, class)`` of recurrent layers in a Keras model (inside ``Bidirectional`` too); ``[]`` otherwise."""
    if isinstance(model, SavedModelFunction):
        return []
    found = []
    for path, layer in leaf_layers(model):
        inner = getattr(layer, "forward_layer", None) or getattr(layer, "layer", None) or layer
        if type(inner).__name__ in RECURRENT_LAYERS:
            found.append((path, type(inner).__name__))
    return found


def unrolled(model: Any) -> tuple[Any, list[str]] | None:
    """A copy of ``model`` whose recurrent layers are unrolled (``unroll=True``), with its weights; and their names.

    An unrolled layer becomes static ops over its fixed number of time steps instead of a loop. ``None``
    when a recurrent layer's sequence length is not fixed (unrolling needs it) or none can be unrolled.

    Example:
        >>> copy, names = unrolled(gru_text_model)          # doctest: +SKIP
        >>> names
        ['gru']
    """
    if isinstance(model, SavedModelFunction):
        return None
    keras = keras_module_for(model)
    names: list[str] = []

    def clone(layer: Any) -> Any:
        if is_model(layer):
            return keras.models.clone_model(layer, clone_function=clone)
        config = layer.get_config()
        inner = config["layer"]["config"] if isinstance(config.get("layer"), dict) else config
        if "unroll" in inner and not inner["unroll"] and type(layer).__name__ in ("GRU", "SimpleRNN", "LSTM",
                                                                                "Bidirectional"):
            if _time_steps(layer) is None:
                raise ValueError(f"{layer.name}: the sequence length is not fixed")
            inner["unroll"] = True
            names.append(layer.name)
        return type(layer).from_config(config)

    try:
        copy = keras.models.clone_model(model, clone_function=clone)
    except (ValueError, TypeError, KeyError, AttributeError, NotImplementedError):
        return None
    if not names:
        return None
    copy.set_weights(model.get_weights())
    return copy, names


def _time_steps(layer: Any) -> int | None:
    """The fixed sequence length a recurrent layer is called on (``None``: variable, or not known)."""
    try:
        return list(layer.input.shape)[1]
    except (AttributeError, ValueError, IndexError, TypeError):
        return None
