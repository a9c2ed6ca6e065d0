"""A user's subclassed Keras 3 model (``class Scorer(keras.Model)``), imported by module path in tests."""

import keras


@keras.saving.register_keras_serializable(package="tfdeploy_tests")
class Scorer(keras.Model):
    """Two Dense layers in ``call``: no functional graph, only the shape it was first called on."""

    def __init__(self, units=16, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.hidden = keras.layers.Dense(units, activation="relu")
        self.scores = keras.layers.Dense(3, activation="softmax")

    def call(self, x):
        return self.scores(self.hidden(x))

    def get_config(self):
        return {**super().get_config(), "units": self.units}
