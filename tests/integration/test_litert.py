"""LiteRT: int4 / int16x8 / per-layer recipes (flatbuffer contents, accuracy through LiteRT), the runtime
(never the deprecated tf.lite.Interpreter), and an --auto search that survives failing trials in fresh processes and goes per layer."""

import json
import sys
import warnings

import numpy as np
import pytest

import corpus
from tfdeploy import backend
from tfdeploy.backend import litert
from tfdeploy.compression import CompressConfig, compress
from tfdeploy.compression.auto import AutoConfig, Candidate, auto_compress
from tfdeploy.compression.litert_quantization import WeightAlgorithm
from tfdeploy.compression.recipes import Recipe
from tfdeploy.errors import TfdeployError


def _variant(report, name):
    return next(v for v in report.variants if v.name == name)


def _weights(path):
    return {op.layer: (op.op, op.weight_dtype) for op in backend.weighted_ops(path.read_bytes())}


def test_int4_weights_are_int4_in_the_flatbuffer_and_measured_in_litert(keras3_all, compress_inputs):
    report, out, _ = keras3_all
    weights = _weights(out / "ptq-int4-weights.tflite")
    assert weights == {"conv1": ("CONV_2D", "int4"), "conv2": ("CONV_2D", "int4"),
                       "dense1": ("FULLY_CONNECTED", "int4"), "probabilities": ("FULLY_CONNECTED", "int4")}
    counts = backend.tensor_type_counts((out / "ptq-int4-weights.tflite").read_bytes())
    assert counts["int4"] == 4 and "int8" not in counts
    v = _variant(report, "ptq-int4-weights")
    assert v.layers == {name: dtype for name, (_, dtype) in weights.items()}
    assert v.runtime.startswith("LiteRT ") and v.runtime.endswith("(1 thread)")
    assert v.raw_bytes < _variant(report, "ptq-int8").raw_bytes
    # the accuracy in the report is LiteRT's: recompute it with LiteRT's interpreter directly
    from ai_edge_litert.interpreter import Interpreter

    data = np.load(compress_inputs["data"])
    runner = Interpreter(model_path=str(out / "ptq-int4-weights.tflite")).get_signature_runner("serving_default")
    predicted = [np.argmax(runner(image=x[None])["probabilities"]) for x in data["x_val"]]
    assert v.accuracy == pytest.approx(np.mean(np.array(predicted) == data["y_val"]))


def test_int16x8_has_int16_activations_and_int8_weights(keras3_all):
    report, out, _ = keras3_all
    blob = (out / "ptq-int16x8.tflite").read_bytes()
    assert {dtype for _, dtype in _weights(out / "ptq-int16x8.tflite").values()} == {"int8"}
    assert backend.tensor_type_counts(blob).get("int16", 0) >= 5, backend.tensor_type_counts(blob)
    v = _variant(report, "ptq-int16x8")
    assert v.agreement >= 0.9 and v.accuracy_drop <= 0.1
    assert any("int16 activations, calibrated on" in note for note in v.notes)


def test_mixed_without_a_plan_records_what_each_layer_got(keras3_all):
    report, out, _ = keras3_all
    v = _variant(report, "ptq-mixed")
    assert v.layers == {name: dtype for name, (_, dtype) in _weights(out / "ptq-mixed.tflite").items()}
    assert set(v.layers.values()) <= {"int4", "int8"} and any("plan: {'default': 'int4'" in n for n in v.notes)
    saved = json.loads((out / "report.json").read_text())
    assert next(x for x in saved["variants"] if x["name"] == "ptq-mixed")["layers"] == v.layers
    assert "## ptq-mixed: weights per layer" in (out / "report.md").read_text()


def test_a_layer_plan_is_followed_layer_by_layer(compress_inputs, tmp_path):
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"default": "int4", "layers": {"conv1": "float", "dense.*": "int8"}}))
    report = compress(CompressConfig(compress_inputs["keras3"], tmp_path / "out", recipes="ptq-mixed",
                                     layer_plan=plan, latency_repeats=3))
    assert _weights(tmp_path / "out" / "ptq-mixed.tflite") == {
        "conv1": ("CONV_2D", "float32"), "conv2": ("CONV_2D", "int4"), "dense1": ("FULLY_CONNECTED", "int8"),
        "probabilities": ("FULLY_CONNECTED", "int4")}
    assert _variant(report, "ptq-mixed").layers["conv1"] == "float32"


def test_a_plan_naming_no_layer_fails_the_recipe_with_the_layer_names(compress_inputs, tmp_path):
    report = compress(CompressConfig(compress_inputs["keras3"], tmp_path, recipes="ptq-mixed",
                                     layer_plan="block_99=int8", latency_repeats=3))
    error = _variant(report, "ptq-mixed").error
    assert "'block_99' matches no weighted layer" in error and "conv1, conv2, dense1, probabilities" in error
    assert not (tmp_path / "ptq-mixed.tflite").exists()


def test_bad_plans_fail_when_the_config_is_made(tmp_path):
    with pytest.raises(TfdeployError, match="Unknown precision in the layer plan.*int4, int8, float"):
        CompressConfig("m.keras", tmp_path, layer_plan="conv1=int3")
    with pytest.raises(TfdeployError, match="NAME=PRECISION pairs"):
        CompressConfig("m.keras", tmp_path, layer_plan="conv1")


def test_litert_runs_the_files_and_its_absence_is_an_error_with_the_fix(keras3_all, monkeypatch):
    _, out, _ = keras3_all
    blob = (out / "tflite.tflite").read_bytes()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        interpreter, runtime = backend.tflite_interpreter(blob)
    assert runtime.startswith("LiteRT 2.") and not [w for w in caught if "deprecated" in str(w.message)]
    assert type(interpreter).__module__.startswith("ai_edge_litert")
    litert._interpreter_class.cache_clear()
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)  # LiteRT cannot be imported
    try:
        with pytest.raises(TfdeployError, match=r"pip install ai-edge-litert==2\.3\.\*"):
            backend.tflite_interpreter(blob)
    finally:
        litert._interpreter_class.cache_clear()


@pytest.fixture(scope="module")
def int4_sensitive(keras3, tmp_path_factory):
    """A classifier whose 'sensitive' Dense mixes weights of 1 with one of 30 per channel.

    With min-max scales, int4 (7 steps each side) rounds the 1s to 0 and the classes vanish; int8
    keeps them. The head (20 × identity) is fine at int4. Only 'sensitive' must stay at int8.
    """
    root = tmp_path_factory.mktemp("int4")
    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, size=(500, 8)).astype("float32")
    x[:, 7] = 0.0
    y = np.argmax(x[:, :4], axis=1)
    inputs = keras3.Input((8,), name="features")
    hidden = keras3.layers.Dense(4, use_bias=False, name="sensitive")(inputs)
    model = keras3.Model(inputs, keras3.layers.Dense(4, activation="softmax", name="head")(hidden))
    kernel = np.zeros((8, 4), "float32")
    kernel[:4, :4], kernel[7, :] = np.eye(4), 30.0
    model.get_layer("sensitive").set_weights([kernel])
    model.get_layer("head").set_weights([20 * np.eye(4, dtype="float32"), np.zeros(4, "float32")])
    model.save(root / "model.keras")
    np.savez(root / "data.npz", x=x[:300], y=y[:300], x_val=x[300:], y_val=y[300:])
    return root / "model.keras", root / "data.npz"


def test_int4_miss_leads_to_the_smallest_per_layer_plan_within_budget(int4_sensitive, tmp_path):
    model, data = int4_sensitive
    report = auto_compress(AutoConfig(
        CompressConfig(model, tmp_path, data=data, latency_repeats=3, weight_algorithm=WeightAlgorithm.MIN_MAX,
                       isolate=False), max_accuracy_drop=1.0, candidates=(Candidate(Recipe.PTQ_INT4_WEIGHTS, 0.17, 0.01),)))
    first, *searched = report.trials
    assert first.name == "ptq-int4-weights" and not first.passed and first.drop > 20
    one = next(t for t in searched if t.name == "ptq-int4-int8x1")  # the most sensitive layer alone at int8
    assert one.passed and one.plan == {"default": "int4", "layers": {"sensitive": "int8"}}
    assert one.layers == {"sensitive": "int8", "head": "int4"}
    assert all(t.name.startswith("ptq-int4-int8x") for t in searched) and len(searched) <= 2  # binary search
    chosen = next(t for t in report.trials if t.name == report.chosen)
    assert chosen.gzip_bytes == min(t.gzip_bytes for t in report.trials if t.passed)
    path = tmp_path / f"auto-{report.chosen}.tflite"
    assert {layer: dtype for layer, (_, dtype) in _weights(path).items()} == chosen.layers
    assert report.pareto[0] == "ptq-int4-weights" and report.chosen in report.pareto  # cheapest, then better
    plan_file = tmp_path / f"auto-{report.chosen}.layer_plan.json"
    assert json.loads(plan_file.read_text()) == chosen.plan
    # the plan the search found is reusable as --layer-plan
    again = compress(CompressConfig(model, tmp_path / "again", data=data, recipes="ptq-mixed", latency_repeats=3,
                                    layer_plan=plan_file, weight_algorithm=WeightAlgorithm.MIN_MAX))
    assert _variant(again, "ptq-mixed").layers == chosen.layers


def test_the_search_goes_on_past_a_trial_that_crashes_its_process(keras3, tmp_path):
    import crashing_layers

    inputs = keras3.Input((8,), name="x")
    hidden = crashing_layers.CrashWhenTrained(name="crash")(keras3.layers.Dense(16, activation="relu")(inputs))
    keras3.Model(inputs, keras3.layers.Dense(3, activation="softmax", name="p")(hidden)).save(tmp_path / "m.keras")
    x = np.random.default_rng(0).normal(0, 1, (200, 8)).astype("float32")
    np.savez(tmp_path / "d.npz", x=x[:150], y=np.argmax(x[:150, :3], 1), x_val=x[150:], y_val=np.argmax(x[150:, :3], 1))
    report = auto_compress(AutoConfig(
        CompressConfig(tmp_path / "m.keras", tmp_path / "out", data=tmp_path / "d.npz", latency_repeats=3, epochs=1,
                       custom_objects={"CrashWhenTrained": crashing_layers.CrashWhenTrained}),
        max_accuracy_drop=100.0,
        candidates=(Candidate(Recipe.PRUNE, 0.25, 0.01), Candidate(Recipe.PTQ_DYNAMIC, 0.3, 0.01))))
    failed, made = report.trials
    assert failed.name == "prune" and "SIGSEGV (a segmentation fault)" in failed.error and not failed.passed
    assert made.name == "ptq-dynamic" and made.passed and report.chosen == "ptq-dynamic"
    assert report.isolation == "each in a fresh process"
    assert made.peak_rss_bytes > 200 * 2**20  # measured in the child
    assert report.peak_rss_bytes >= made.peak_rss_bytes
    assert sorted(p.name for p in (tmp_path / "out").glob("auto-*")) == ["auto-ptq-dynamic.tflite"]


def test_int16x8_cannot_calibrate_a_gru_and_says_so_while_int4_weights_work(keras3, tmp_path):
    model, data = corpus.save(corpus.build("gru_text", keras3), tmp_path / "gru")
    compressed = compress(CompressConfig(model, tmp_path / "int16", data=data, latency_repeats=3,
                                         recipes="ptq-int16x8,ptq-int4-weights"))
    assert "cannot calibrate the TFLite WHILE loop" in _variant(compressed, "ptq-int16x8").error
    assert "(GRU)" in _variant(compressed, "ptq-int16x8").error
    assert _variant(compressed, "ptq-int4-weights").agreement >= 0.9


def test_a_trial_that_runs_too_long_is_killed_and_recorded(compress_inputs, tmp_path):
    report = auto_compress(AutoConfig(
        CompressConfig(compress_inputs["keras3"], tmp_path, data=compress_inputs["data"], latency_repeats=3),
        max_accuracy_drop=100.0, trial_timeout_s=0.5, jobs=2,
        candidates=(Candidate(Recipe.PTQ_FLOAT16, 0.5, 0.01), Candidate(Recipe.PTQ_DYNAMIC, 0.3, 0.01))))
    assert sorted(t.error for t in report.trials) == [
        "Trial ptq-dynamic failed: no result within 0.5 s. Received: trial='ptq-dynamic'",
        "Trial ptq-float16 failed: no result within 0.5 s. Received: trial='ptq-float16'"]
    assert report.chosen == "original" and report.jobs == "2"
