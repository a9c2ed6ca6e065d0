"""Shared fixtures: tiny Keras 3 and tf_keras models, saved in every format tfdeploy reads."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TFDEPLOY_TEST", "1")


def build_tiny_classifier(keras, input_shape=(8, 8, 3), classes=4, seed=0, name="tiny"):
    """A small convolutional classifier with named input/output layers."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input(shape=input_shape, name="image")
    x = keras.layers.Conv2D(8, 3, padding="same", use_bias=False, name="conv1")(inputs)
    x = keras.layers.BatchNormalization(name="bn1")(x)
    x = keras.layers.ReLU(name="relu1")(x)
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv2")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    x = keras.layers.Dense(16, activation="relu", name="dense1")(x)
    outputs = keras.layers.Dense(classes, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name=name)


def tiny_data(n=64, input_shape=(8, 8, 3), classes=4, seed=0):
    """Learnable synthetic data: the class decides which quadrant is bright."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, size=n)
    x = rng.normal(0, 0.3, size=(n, *input_shape)).astype("float32")
    h, w = input_shape[0] // 2, input_shape[1] // 2
    for i, label in enumerate(y):
        r, c = divmod(int(label) % 4, 2)
        x[i, r * h:(r + 1) * h, c * w:(c + 1) * w, :] += 1.0
    return x, y.astype("int64")


def trained(model, keras, epochs=2, n=64):
    x, y = tiny_data(n=n, input_shape=tuple(model.input_shape[1:]), classes=model.output_shape[-1])
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(x, y, epochs=epochs, batch_size=16, verbose=0)
    return model


@pytest.fixture(scope="session")
def keras3():
    from tfdeploy import backend

    return backend.keras3()


@pytest.fixture(scope="session")
def tf_keras():
    from tfdeploy import backend

    return backend.tf_keras()


@pytest.fixture(scope="session")
def tiny_xy():
    return tiny_data()


@pytest.fixture(scope="session")
def model_files(tmp_path_factory, keras3, tf_keras):
    """Trained, compiled tiny models saved as .keras/.h5 by both Kerases and as SavedModels."""
    root = tmp_path_factory.mktemp("models")
    k3 = trained(build_tiny_classifier(keras3), keras3)
    k2 = trained(build_tiny_classifier(tf_keras), tf_keras)
    paths = {
        "keras3.keras": root / "k3.keras",
        "keras3.h5": root / "k3.h5",
        "tf_keras.h5": root / "k2.h5",
        "tf_keras.keras": root / "k2.keras",
        "tf_keras.savedmodel": root / "k2_savedmodel",
        "keras3.export": root / "k3_export",
    }
    k3.save(paths["keras3.keras"])
    k3.save(paths["keras3.h5"])
    k2.save(paths["tf_keras.h5"])
    k2.save(paths["tf_keras.keras"])
    k2.save(str(paths["tf_keras.savedmodel"]), save_format="tf")
    k3.export(str(paths["keras3.export"]), verbose=False)
    return {"models": {"keras3": k3, "tf_keras": k2}, **paths}


COMPRESS_SHAPE = (16, 16, 3)


@pytest.fixture(scope="session")
def compress_inputs(tmp_path_factory, keras3, tf_keras):
    """A trained Keras 3 and tf_keras classifier (16x16x3, 4 classes) and labelled data for compress."""
    root = tmp_path_factory.mktemp("compress")
    x, y = tiny_data(n=400, input_shape=COMPRESS_SHAPE, seed=1)
    np.savez(root / "data.npz", x=x[:300], y=y[:300], x_val=x[300:], y_val=y[300:])
    np.savez(root / "unlabelled.npz", x=x[:300])
    paths = {"data": root / "data.npz", "unlabelled": root / "unlabelled.npz"}
    for name, keras in (("keras3", keras3), ("tf_keras", tf_keras)):
        model = trained(build_tiny_classifier(keras, input_shape=COMPRESS_SHAPE, seed=1), keras, epochs=8, n=400)
        paths[name] = root / f"{name}.keras"
        model.save(paths[name])
    return paths


@pytest.fixture(scope="session")
def keras3_all(compress_inputs, tmp_path_factory):
    """Every recipe on the Keras 3 model, once for the session (tests/integration/test_compress.py, test_litert.py)."""
    from tfdeploy.compression import CompressConfig, compress
    from tfdeploy.compression.recipes import Recipe

    out = tmp_path_factory.mktemp("all")
    lines = []
    # prune-preserving QAT starts from uninitialised quantization ranges: it needs a few epochs
    report = compress(CompressConfig(compress_inputs["keras3"], out, recipes=list(Recipe), data=compress_inputs["data"],
                                     epochs=4, latency_repeats=5, progress=lines.append))
    return report, out, lines


@pytest.fixture
def example_npz(tmp_path, tiny_xy):
    x, y = tiny_xy
    path = tmp_path / "data.npz"
    np.savez(path, x=x[:48], y=y[:48], x_val=x[48:], y_val=y[48:])
    return path


def pytest_collection_modifyitems(config, items):
    """Marks everything under tests/integration as ``integration``."""
    for item in items:
        if Path(str(item.fspath)).parent.name == "integration" or "integration" in Path(str(item.fspath)).parts:
            item.add_marker(pytest.mark.integration)
