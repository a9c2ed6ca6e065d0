"""A native crash in one recipe never takes the run down; reports survive a kill; verify names a oneDNN crash.

The crashes are real: a mini-Xception residual block whose training segfaults in TF 2.21's oneDNN kernels on
this machine's CPU (AVX-512/AMX), a served signature whose weight gradients do the same, and a layer that kills
its own process with SIGSEGV when trained. Where this CPU does not crash, the tests that need the crash say so
and skip.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tfdeploy.compression import CompressConfig, compress
from tfdeploy.serving.verification import verify

REPLICA = '''
import keras
from keras import layers as L
keras.utils.set_random_seed(0)
i = keras.Input((64, 64, 1), name="face")
x = L.Activation("relu")(L.BatchNormalization()(L.Conv2D(8, 3, use_bias=False)(i)))
for f in (16, 32):
    r = L.BatchNormalization()(L.Conv2D(f, 1, strides=2, padding="same", use_bias=False)(x))
    x = L.BatchNormalization()(L.SeparableConv2D(f, 3, padding="same", use_bias=False)(x))
    x = L.Add()([L.MaxPooling2D(3, strides=2, padding="same")(x), r])
model = keras.Model(i, L.Activation("softmax", name="emotion")(L.GlobalAveragePooling2D()(
    L.Conv2D(7, 3, padding="same")(x))))
'''


def _run(code: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})})


@pytest.fixture(scope="module")
def replica(tmp_path_factory):
    """The issue's mini-Xception replica as a .keras file and data, and whether fitting it crashes this CPU."""
    root = tmp_path_factory.mktemp("replica")
    done = _run(REPLICA + f"model.save({str(root / 'replica.keras')!r})")
    assert done.returncode == 0, done.stderr[-2000:]
    rng = np.random.default_rng(0)
    np.savez(root / "replica.npz", x=rng.random((160, 64, 64, 1)).astype("float32"), y=rng.integers(0, 7, 160))
    fit = _run(REPLICA + 'import numpy as np\nmodel.compile("adam", "sparse_categorical_crossentropy")\n'
               "model.fit(np.random.rand(128, 64, 64, 1).astype('float32'), np.random.randint(0, 7, 128), epochs=1, "
               "batch_size=32, verbose=0)")
    return {"model": root / "replica.keras", "data": root / "replica.npz", "fit_crashes": fit.returncode < 0}


def test_the_replica_goes_through_compress_with_the_onednn_retry_named(replica, tmp_path):
    report = compress(CompressConfig(replica["model"], tmp_path, recipes="ptq-int8,prune,qat", data=replica["data"],
                                     epochs=1, latency_repeats=3))
    assert [v.name for v in report.variants] == ["original", "ptq-int8", "prune", "qat"]
    assert not report.failed, [v.error for v in report.failed]
    assert all((tmp_path / Path(v.path).name).exists() for v in report.variants[1:])
    if not replica["fit_crashes"]:
        pytest.skip("fitting the replica does not crash TensorFlow's oneDNN kernels on this CPU: no retry to name")
    # The first fine-tuning that crashes (prune here; on some CPUs only QAT's) is retried; later ones run without it.
    retried = [v for v in report.variants if v.notes and v.notes[0].startswith("rerun without oneDNN after SIG")]
    assert len(retried) == 1, [v.notes for v in report.variants]
    assert retried[0].name in ("prune", "qat") and f" in fine-tune ({retried[0].name}) " in retried[0].notes[0]
    saved = {v["name"]: v for v in json.loads((tmp_path / "report.json").read_text())["variants"]}
    assert "rerun without oneDNN" in saved[retried[0].name]["notes"][0]
    run_notes = json.loads((tmp_path / "report.json").read_text())["run_notes"]
    assert any(f"recipes from {retried[0].name} on ran without oneDNN" in note for note in run_notes), run_notes


@pytest.mark.slow
def test_deploy_survives_the_replica(replica, tmp_path):
    from click.testing import CliRunner

    from tfdeploy.cli import main

    result = CliRunner().invoke(main, ["--seed", "0", "deploy", str(replica["model"]), "--data", str(replica["data"]),
                                       "--out", str(tmp_path / "run"), "--recipe", "ptq-int8,prune,qat",
                                       "--epochs", "1", "--bench-requests", "20", "--serve-variant", "original"])
    assert result.exit_code == 0, result.output[-3000:]
    saved = json.loads((tmp_path / "run" / "report.json").read_text())
    variants = saved["steps"]["compress"]["variants"]
    assert [v["status"] for v in variants] == ["ok"] * 4
    assert saved["steps"]["verify"]["passed"]
    if replica["fit_crashes"]:
        assert sum("rerun without oneDNN" in (v["notes"] or [""])[0] for v in variants) == 1, variants


@pytest.fixture(scope="module")
def crashing(keras3, tmp_path_factory):
    """A small classifier with a layer that segfaults its process when trained, and its data."""
    import crashing_layers

    root, layers = tmp_path_factory.mktemp("crashing"), keras3.layers
    inputs = keras3.Input((8,), name="x")
    hidden = crashing_layers.CrashWhenTrained(name="crash")(layers.Dense(16, activation="relu", name="d")(inputs))
    keras3.Model(inputs, layers.Dense(3, activation="softmax", name="p")(hidden)).save(root / "m.keras")
    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, (200, 8)).astype("float32")
    np.savez(root / "d.npz", x=x[:150], y=np.argmax(x[:150, :3], 1), x_val=x[150:], y_val=np.argmax(x[150:, :3], 1))
    return root / "m.keras", root / "d.npz", {"CrashWhenTrained": crashing_layers.CrashWhenTrained}


def test_a_recipe_killed_by_sigsegv_is_a_failed_row_and_the_others_are_made(crashing, tmp_path):
    model, data, custom = crashing
    report = compress(CompressConfig(model, tmp_path, recipes="ptq-dynamic,prune,strip", data=data, epochs=1,
                                     latency_repeats=3, custom_objects=custom))
    original, dynamic, prune, strip = report.variants
    assert not dynamic.failed and not strip.failed and prune.failed
    assert (tmp_path / "ptq-dynamic.tflite").exists() and (tmp_path / "strip.keras").exists()
    assert not (tmp_path / "prune.keras").exists()
    # made twice (the second time without oneDNN), killed both times, named with its signal and stage
    assert prune.error.startswith("rerun without oneDNN after SIGSEGV in fine-tune (prune) ")
    assert "and then the recipe's process was killed by SIGSEGV (a segmentation fault) in fine-tune (prune)" \
        in prune.error
    assert "a crash inside TensorFlow (not a Python error)" in prune.error
    saved = json.loads((tmp_path / "report.json").read_text())
    assert saved["failed"] == ["prune"] and [v["status"] for v in saved["variants"]] == ["ok", "ok", "failed", "ok"]
    assert saved["variants"][1]["metrics"]["p"]["accuracy"] is not None


def test_a_killed_compress_leaves_its_finished_rows_and_resume_completes_them(crashing, tmp_path):
    model, data, _ = crashing
    out, recipes = tmp_path / "out", "ptq-dynamic,ptq-float16,tflite,ptq-int8"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    command = [sys.executable, "-m", "tfdeploy.cli", "compress", str(model), "--out", str(out), "--data", str(data),
               "--recipe", recipes, "--custom-objects", "crashing_layers:CrashWhenTrained"]
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                             start_new_session=True)
    deadline, rows = time.monotonic() + 240, []
    while time.monotonic() < deadline and len(rows) < 2:
        time.sleep(0.1)
        try:
            rows = json.loads((out / "report.json").read_text())["variants"]
        except (OSError, ValueError):  # not written yet (it is replaced whole, never half-written)
            rows = []
    os.killpg(child.pid, signal.SIGKILL)  # the CLI and its worker, mid-run
    child.wait()
    assert child.returncode == -signal.SIGKILL
    killed = json.loads((out / "report.json").read_text())
    finished = [row["name"] for row in killed["variants"][1:]]
    assert finished and finished == recipes.split(",")[:len(finished)] and len(finished) < 4
    stamps = {name: (out / f"{name}.tflite").stat().st_mtime_ns for name in finished}
    resumed = subprocess.run([*command, "--resume"], capture_output=True, text=True, env=env, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    for name in finished:
        assert f"{name}: kept from the earlier run (--resume)" in resumed.stderr
        assert (out / f"{name}.tflite").stat().st_mtime_ns == stamps[name]
    final = json.loads((out / "report.json").read_text())
    assert [row["name"] for row in final["variants"]] == ["original", *recipes.split(",")]
    assert all(row["status"] == "ok" for row in final["variants"])


GRADIENT_NORM = REPLICA + '''
import tensorflow as tf

class Uncertainty(tf.Module):
    """Class scores and the norm of the top score's gradient w.r.t. the weights (an active-learning signal)."""

    def __init__(self, model):
        self.model = model

    @tf.function(input_signature=[tf.TensorSpec([None, 64, 64, 1], tf.float32, name="face")])
    def serve(self, face):
        with tf.GradientTape() as tape:
            probs = self.model(face, training=False)
            top = tf.reduce_sum(tf.reduce_max(probs, axis=-1))
        grads = tape.gradient(top, self.model.trainable_variables)
        norm = tf.sqrt(tf.add_n([tf.reduce_sum(g * g) for g in grads]))
        return {"emotion": probs, "gradient_norm": tf.fill([tf.shape(face)[0], 1], norm)}
'''


def test_verify_names_a_model_that_crashes_only_with_onednn(tmp_path):
    from tfdeploy.serving.warmup import write_warmup

    version = tmp_path / "uncertainty" / "1"
    made = _run(GRADIENT_NORM + f"u = Uncertainty(model)\ntf.saved_model.save(u, {str(version)!r}, "
                                "signatures={'serving_default': u.serve})")
    assert made.returncode == 0, made.stderr[-2000:]
    write_warmup(version, batch_sizes=(1, 8, 32))
    report = verify(version, cold_start=False)
    probe = _run(f"import numpy as np, tensorflow as tf\nf = tf.saved_model.load({str(version)!r})"
                 ".signatures['serving_default']\nfor b in (1, 8, 32) * 3:\n"
                 "    f(face=tf.constant(np.random.rand(b, 64, 64, 1).astype('float32')))")
    checks = {c.name: c for c in report.checks}
    served = checks["serves in a fresh process (load, warmup replay, 31 requests)"]
    if probe.returncode >= 0:
        assert served.passed, served.detail
        pytest.skip("this CPU runs the gradient-norm signature with oneDNN on: no crash to name")
    assert not served.passed and served.detail.startswith("crashes with oneDNN on (SIG")
    assert "and serves without it" in served.detail and "serving-config --no-onednn" in served.detail
    assert checks["SavedModel loads with tag 'serve'"].detail.startswith(
        "not run: the model crashes TensorFlow with oneDNN on, as this process has it")
    # verify itself without oneDNN (it must be off before TensorFlow is imported: a fresh process) passes
    again = subprocess.run([sys.executable, "-m", "tfdeploy.cli", "--no-onednn", "verify", str(version),
                            "--no-cold-start", "--json"], capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    assert json.loads(again.stdout)["passed"]
