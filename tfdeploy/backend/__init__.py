"""The only package that imports TensorFlow, Keras 3, tf_keras, TFMOT and LiteRT.

Everything else in tfdeploy asks it for them, so that ``import tfdeploy`` and ``tfdeploy --help``
stay fast and the Keras 2/3 split is handled in one place (``tests/unit/test_layout.py`` fails if
another module imports them).

Modules: :mod:`~tfdeploy.backend.imports` (the modules themselves, imported on first use),
:mod:`~tfdeploy.backend.models` (which Keras holds a model, its named inputs and outputs, calling
it), :mod:`~tfdeploy.backend.saving` (named-signature SavedModels), :mod:`~tfdeploy.backend.streaming`
(large ``.keras`` weights loaded without copies) and
:mod:`~tfdeploy.backend.litert` (the ``.tflite`` runtime, flatbuffer contents and ``litert-quantizer``).

Example:
    >>> from tfdeploy import backend
    >>> tf = backend.tf()                          # doctest: +SKIP
    >>> backend.flavour_of(model)                  # doctest: +SKIP
    <KerasFlavour.KERAS3: 'keras3'>
"""

from tfdeploy.backend.imports import (KerasFlavour, keras3, protobuf_decode_error, sklearn_metrics, tf, tf_internal,
                                      tf_keras, tf_proto, tfmot, tfmot_internal, version_of)
from tfdeploy.backend.litert import (QuantRule, WeightedOp, builtin_ops, litert_quantizer, quantize_flatbuffer, tensor_type_counts,
                                     tflite_interpreter, tflite_signature, weight_only_supported, weighted_ops)
from tfdeploy.backend.models import (RECURRENT_LAYERS, SavedModelFunction, call_flat, call_model, decaying_rate, dtype_name,
                                     epoch_callback, flavour_of, is_model, keras3_variables_inside, keras_module_for, leaf_layers, logits_of, model_io,
                                     nested_models, progress_callback, recurrent_layers, rescales_inputs,
                                     tensor_source, unrolled, variables_of)
from tfdeploy.backend.saving import static_lookup_shapes, tensor_spec, write_inference_savedmodel
from tfdeploy.backend.sessions import ServingSession, signature_io
from tfdeploy.backend.streaming import streamed_weights

__all__ = ["KerasFlavour", "QuantRule", "WeightedOp", "builtin_ops", "litert_quantizer", "quantize_flatbuffer", "tensor_type_counts",
           "tflite_signature", "weight_only_supported", "weighted_ops", "RECURRENT_LAYERS", "SavedModelFunction", "call_flat", "call_model", "decaying_rate", "dtype_name",
           "flavour_of", "keras3", "keras3_variables_inside", "keras_module_for", "leaf_layers", "logits_of", "model_io",
           "nested_models", "progress_callback", "protobuf_decode_error", "recurrent_layers", "rescales_inputs", "sklearn_metrics",
           "epoch_callback", "is_model", "tensor_source", "unrolled", "variables_of", "static_lookup_shapes", "tensor_spec", "tf", "tf_internal", "tf_keras", "tf_proto", "tflite_interpreter", "tfmot",
           "tfmot_internal", "version_of", "write_inference_savedmodel", "ServingSession", "signature_io", "streamed_weights"]
