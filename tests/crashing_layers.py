"""A layer that crashes its process natively (SIGSEGV) when trained: tests/integration/test_isolation.py.

It stands in for TensorFlow's own native crashes (oneDNN kernels, the TFLite calibrator), which a Python
``try`` cannot catch; it is imported by module path in the worker process, as a user's custom layer is.
"""

import os
import signal

import keras


@keras.saving.register_keras_serializable(package="tfdeploy_tests")
class CrashWhenTrained(keras.layers.Layer):
    """Identity at inference; kills its process with SIGSEGV when called in training mode."""

    def call(self, inputs, training=None):
        if training:
            os.kill(os.getpid(), signal.SIGSEGV)
        return inputs
