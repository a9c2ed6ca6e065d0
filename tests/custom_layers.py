"""A custom layer for tests of models that need --custom-objects (importable as custom_layers)."""

from tfdeploy import backend


def make_scale_layer(keras):
    """Returns a registered-nowhere custom layer class for ``keras`` (Keras 3 or tf_keras)."""

    class Scale(keras.layers.Layer):
        def __init__(self, factor=2.0, **kwargs):
            super().__init__(**kwargs)
            self.factor = factor

        def call(self, inputs):
            return inputs * self.factor

        def get_config(self):
            return {**super().get_config(), "factor": self.factor}

    return Scale


Scale = make_scale_layer(backend.keras3())
