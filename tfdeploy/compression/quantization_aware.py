"""TFMOT quantization-aware training on the flat tf_keras copy of a model (:mod:`tfdeploy.compression.bridge`).

Which layers get fake-quantization is decided per layer before anything trains: a layer is
annotated only if TFMOT's 8-bit registry supports it *and* its quantize config accepts this
layer (an ``Activation('hard_silu')`` is an ``Activation`` the registry lists, but its config
rejects the function), its inputs are floats (an ``Embedding`` fed int32 ids cannot take a
quantize op before it), and it is not a layer the bridge calls as it is. BatchNormalization
after a convolution is folded into it. Every other layer is left in float and listed.

Before fine-tuning, the quantize-applied model is converted once (:func:`preflight`): the
converter rejects some int8 forms (``tfl.average_pool_2d`` whose input and output scales differ,
as in DenseNet's transition blocks), and it is better to learn that in seconds than after the
fine-tune. The layers behind the rejected op are left in float and the check runs again.

Example:
    >>> plan = plan_annotation(flat_model)                        # doctest: +SKIP
    >>> qat = apply(flat_model, plan.annotate, scheme=None, custom_objects={})   # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import functools
import re
from typing import Any, Mapping

from tfdeploy import backend

# TFLite op (as the converter names it) -> Keras layer classes that produce it.
TFLITE_OP_LAYERS = {
    "average_pool_2d": ("AveragePooling2D", "AvgPool2D", "GlobalAveragePooling2D"),
    "max_pool_2d": ("MaxPooling2D", "MaxPool2D", "GlobalMaxPooling2D"),
    "mean": ("GlobalAveragePooling2D", "GlobalAveragePooling1D", "AveragePooling1D"),
    "concatenation": ("Concatenate",),
    "add": ("Add",),
    "mul": ("Multiply",),
    "reshape": ("Reshape", "Flatten"),
    "pad": ("ZeroPadding2D", "ZeroPadding1D"),
    "resize_bilinear": ("UpSampling2D", "Resizing"),
    "resize_nearest_neighbor": ("UpSampling2D",),
    "softmax": ("Softmax", "Dense", "Activation"),
    "hard_swish": ("Activation",),
    "logistic": ("Activation",),
}


@dataclasses.dataclass
class AnnotationPlan:
    """Layers that get fake-quantization and those left in float, with the reason.

    ``float_activations`` are ``Activation`` layers whose function TFMOT cannot quantize: TFMOT's
    layout transforms would still annotate them after a convolution, so they are swapped for a
    layer TFMOT does not know (:func:`float_activation_class`) that computes the same function.
    """

    annotate: set[str]
    left_float: dict[str, str]
    float_activations: set[str] = dataclasses.field(default_factory=set)

    def note(self) -> str | None:
        """``left in float: conv_x, dense_y (reason); 12 layers (reason)`` grouped by reason."""
        if not self.left_float:
            return None
        by_reason: dict[str, list[str]] = {}
        for name, why in self.left_float.items():
            by_reason.setdefault(re.sub(r" at 0x[0-9a-f]+", "", why), []).append(name)
        parts = [f"{', '.join(names)} ({why})" if len(names) <= 3 else f"{len(names)} layers ({why})"
                 for why, names in by_reason.items()]
        return "left in float: " + "; ".join(parts)


def _folded_batch_norm(layer: Any, tk: Any) -> bool:
    # TFMOT folds BatchNormalization into the convolution before it (a layout transform, not a
    # registry entry); a BatchNormalization after anything else stays float.
    if not isinstance(layer, tk.layers.BatchNormalization) or not layer.inbound_nodes:
        return False
    inbound = layer.inbound_nodes[0].inbound_layers
    return (isinstance(inbound, (tk.layers.Conv2D, tk.layers.DepthwiseConv2D))
            and getattr(inbound.activation, "__name__", "") == "linear" and len(inbound.outbound_nodes) == 1)


def _float_inputs(layer: Any) -> bool:
    tf = backend.tf()
    inputs = tf.nest.flatten(layer.input) if layer.inbound_nodes else []
    return all(getattr(t, "dtype", None) is not None and t.dtype.is_floating for t in inputs)


def _rejection(layer: Any, registry: Any) -> str | None:
    """Why TFMOT's config for ``layer`` cannot quantize it (``None``: it can)."""
    try:
        config = registry.get_quantize_config(layer)
        config.get_weights_and_quantizers(layer)
        activations = config.get_activations_and_quantizers(layer)
        config.get_output_quantizers(layer)
    except Exception as exc:  # TFMOT raises ValueError/KeyError/RuntimeError for what it cannot quantize
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return f"TFMOT: {text[:100]}"
    aware = backend.tfmot_internal("quantize_aware_activation").QuantizeAwareActivation
    known = aware._PRE_QUANT_ACTIVATIONS | aware._POST_QUANT_ACTIVATIONS | aware._NO_QUANTIZE_ACTIVATIONS
    for activation, _ in activations:
        name = getattr(activation, "__name__", type(activation).__name__)
        if name not in known:
            return f"TFMOT cannot fake-quantize its {name} activation"
    return None


def plan_annotation(model: Any) -> AnnotationPlan:
    """Decides, layer by layer of a flat tf_keras model, what QAT quantizes (see the module docstring)."""
    tk = backend.tf_keras()
    registry = backend.tfmot_internal("default_8bit_registry").Default8BitQuantizeRegistry()
    annotate: set[str] = set()
    left: dict[str, str] = {}
    for layer in model.layers:
        kind = type(layer).__name__
        if isinstance(layer, tk.layers.InputLayer):
            continue
        if kind == "Keras3Layer":
            left[layer.name] = "called as it is"
        elif not _float_inputs(layer):
            left[layer.name] = f"{kind} with non-float inputs"
        elif _folded_batch_norm(layer, tk):
            annotate.add(layer.name)
        elif not registry.supports(layer):
            left[layer.name] = f"{kind} not supported by TFMOT QAT"
        else:
            why = _rejection(layer, registry)
            if why:
                left[layer.name] = f"{kind}: {why}"
            else:
                annotate.add(layer.name)
    swapped = {name for name in left if isinstance(model.get_layer(name), tk.layers.Activation)}
    return AnnotationPlan(annotate=annotate, left_float=left, float_activations=swapped)


@functools.lru_cache(maxsize=None)
def float_activation_class() -> type:
    """A tf_keras layer applying an activation function, unknown to TFMOT (so it stays float)."""
    tk = backend.tf_keras()

    class FloatActivation(tk.layers.Layer):
        def __init__(self, activation: Any, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.activation = tk.activations.get(activation)

        def call(self, inputs: Any) -> Any:
            return self.activation(inputs)

        def get_config(self) -> dict[str, Any]:
            return {**super().get_config(), "activation": tk.activations.serialize(self.activation)}

    return FloatActivation


@functools.lru_cache(maxsize=None)
def same_scale_config_class() -> type:
    """A TFMOT ``QuantizeConfig`` that quantizes nothing and adds no output quantizer.

    TFLite's int8 ``AVERAGE_POOL_2D`` requires its output scale to equal its input scale. TFMOT's
    default 8-bit config gives average pooling an output quantizer of its own, whose range drifts
    from the input's while fine-tuning (DenseNet121: 0.047041 vs 0.047019, and the converter
    refuses the model after training). Like max pooling, average pooling then simply keeps the
    input's scale.
    """
    base = backend.tfmot().quantization.keras.QuantizeConfig

    class SameScaleQuantizeConfig(base):  # type: ignore[misc, valid-type]
        def get_weights_and_quantizers(self, layer: Any) -> list:
            return []

        def get_activations_and_quantizers(self, layer: Any) -> list:
            return []

        def set_quantize_weights(self, layer: Any, quantize_weights: Any) -> None:
            del layer, quantize_weights

        def set_quantize_activations(self, layer: Any, quantize_activations: Any) -> None:
            del layer, quantize_activations

        def get_output_quantizers(self, layer: Any) -> list:
            return []

        def get_config(self) -> dict[str, Any]:
            return {}

    return SameScaleQuantizeConfig


SAME_SCALE_LAYERS = ("AveragePooling1D", "AveragePooling2D", "AveragePooling3D")


def apply(model: Any, plan: AnnotationPlan, scheme: Any | None, custom_objects: Mapping[str, Any]) -> Any:
    """Clones ``model`` with the plan's layers annotated and applies TFMOT's quantization."""
    tk = backend.tf_keras()
    quantize = backend.tfmot().quantization.keras
    same_scale = same_scale_config_class()
    custom_objects = {**custom_objects, "FloatActivation": float_activation_class(),
                      "SameScaleQuantizeConfig": same_scale}

    def annotate_layer(layer: Any) -> Any:
        if layer.name in plan.float_activations:
            return float_activation_class()(layer.activation, name=layer.name)
        clone = layer.__class__.from_config(layer.get_config())
        if layer.name not in plan.annotate:
            return clone
        if type(layer).__name__ in SAME_SCALE_LAYERS:
            return quantize.quantize_annotate_layer(clone, quantize_config=same_scale())
        return quantize.quantize_annotate_layer(clone)

    with quantize.quantize_scope(custom_objects), tk.utils.custom_object_scope(custom_objects):
        annotated = tk.models.clone_model(model, clone_function=annotate_layer)
        annotated.set_weights(model.get_weights())
        return quantize.quantize_apply(annotated, scheme) if scheme is not None else quantize.quantize_apply(annotated)


def rejected_layers(error: str, model: Any, annotate: set[str]) -> set[str]:
    """Annotated layers whose class produces the TFLite op named in a converter error."""
    ops = set(re.findall(r"'tfl\.(\w+)'", error))
    classes = {cls for op in ops for cls in TFLITE_OP_LAYERS.get(op, ())}
    found = set()
    for layer in model.layers:
        inner = getattr(layer, "layer", layer)
        if type(inner).__name__ in classes and inner.name in annotate:
            found.add(inner.name)
    return found
