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


@backend.keras3().saving.register_keras_serializable(package="tfdeploy_corpus")
class LearnedScale(backend.keras3().layers.Layer):
    """A registered custom Keras 3 layer with a trainable weight (the corpus's ``custom_layer`` model)."""

    def build(self, input_shape):
        self.scale = self.add_weight(name="scale", shape=(input_shape[-1],), initializer="ones")

    def call(self, inputs):
        return inputs * self.scale


@backend.keras3().saving.register_keras_serializable(package="tfdeploy_corpus")
class Subclassed(backend.keras3().Model):
    """A registered subclassed model: it saves and loads, but has no functional inputs to name."""

    def __init__(self, units=4, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.dense = backend.keras3().layers.Dense(units, activation="softmax")

    def call(self, inputs):
        return self.dense(backend.keras3().ops.mean(inputs, axis=(1, 2)))

    def get_config(self):
        return {**super().get_config(), "units": self.units}
