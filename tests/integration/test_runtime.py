import json
import subprocess
import sys

import numpy as np
from cli_process import tfdeploy

from tfdeploy import runtime


def visible_gpus() -> list[str]:
    from tfdeploy import backend

    return [gpu.name for gpu in backend.tf().config.list_physical_devices("GPU")]


def test_configure_gpus_sets_memory_growth_on_every_visible_gpu():
    """In a fresh process (GPU settings are fixed once TF initialises them), on CPU and GPU machines alike."""
    code = "import json; from tfdeploy import runtime; print(json.dumps(runtime.configure_gpus().to_dict()))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    visible = visible_gpus()
    assert report["gpus"] == visible
    if visible:
        assert report["memory_growth"] is True and report["message"] == f"Set memory_growth=True on {len(visible)} GPU(s)."
    else:
        assert report["memory_growth"] is None and "No GPU visible" in report["message"]


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
    result = tfdeploy("env", "--json")  # a fresh process: the CLI configures the GPUs before anything else
    assert result.returncode == 0, result.stderr[-2000:]
    facts = json.loads(result.stdout)
    assert facts["tensorflow"].startswith("2.21")
    assert facts["tf_keras"].startswith("2.21")
    assert facts["keras"].startswith("3.")
    assert facts["tensorflow_model_optimization"] == "0.8.1"
    assert facts["tensorflow_serving_api"].startswith("2.21")
    assert facts["gpus"] == [{"name": name, "memory_growth": True} for name in visible_gpus()]
    assert facts["tf_use_legacy_keras"] is None


def test_tfmot_import_does_not_leak_legacy_keras_flag():
    import os

    from tfdeploy import backend

    backend.tfmot()
    assert "TF_USE_LEGACY_KERAS" not in os.environ
