import json

import numpy as np
from click.testing import CliRunner

from tfdeploy import runtime
from tfdeploy.cli import main


def test_configure_gpus_on_this_cpu_machine():
    report = runtime.configure_gpus()
    assert report.gpus == []
    assert "No GPU visible" in report.message
    assert report.to_dict()["memory_growth"] is None


def _dropout_run(keras, seed):
    if seed is not None:
        runtime.seed_everything(seed)
    model = keras.Sequential([keras.Input((16,)), keras.layers.Dense(32), keras.layers.Dropout(0.5),
                              keras.layers.Dense(4)])
    x = np.ones((8, 16), "float32")
    return model(x, training=True).numpy()


def test_seeded_runs_are_bit_identical_and_unseeded_differ(keras3, tf_keras):
    for keras in (keras3, tf_keras):
        a, b = _dropout_run(keras, 123), _dropout_run(keras, 123)
        assert a.tobytes() == b.tobytes(), keras.__name__
        c, d = _dropout_run(keras, None), _dropout_run(keras, None)
        assert not np.array_equal(c, d), keras.__name__


def test_seed_report_and_op_determinism():
    report = runtime.seed_everything(5, deterministic_ops=True)
    try:
        assert report.op_determinism is True
        assert report.seeded == ["random", "PYTHONHASHSEED", "numpy", "tensorflow", "keras", "tf_keras"]
        assert "subprocesses" in report.note or "processes started after" in report.note
        assert runtime.environment_report().op_determinism is True
    finally:
        from tensorflow.python.framework import config

        config.disable_op_determinism()


def test_seed_rejects_negative():
    import pytest

    from tfdeploy.errors import TfdeployError

    with pytest.raises(TfdeployError, match="Received: seed=-1"):
        runtime.seed_everything(-1)


def test_env_json_lists_the_stack():
    result = CliRunner().invoke(main, ["env", "--json"])
    assert result.exit_code == 0, result.output
    facts = json.loads(result.stdout)
    assert facts["tensorflow"].startswith("2.21")
    assert facts["tf_keras"].startswith("2.21")
    assert facts["keras"].startswith("3.")
    assert facts["tensorflow_model_optimization"] == "0.8.1"
    assert facts["tensorflow_serving_api"].startswith("2.21")
    assert facts["gpus"] == []
    assert facts["tf_use_legacy_keras"] is None


def test_tfmot_import_does_not_leak_legacy_keras_flag():
    import os

    from tfdeploy import backend

    backend.tfmot()
    assert "TF_USE_LEGACY_KERAS" not in os.environ
