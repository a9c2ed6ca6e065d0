"""bench (percentiles, cold start) and the determinism / parity checks on tiny models."""

import json

import pytest
from click.testing import CliRunner

from tfdeploy.measure.benchmark import BenchConfig, bench
from tfdeploy.measure.checks import check_determinism, check_parity
from tfdeploy.cli import main
from tfdeploy.compression import CompressConfig, compress
from tfdeploy.serving.export import ExportConfig, export
from tfdeploy.compression.recipes import Recipe


@pytest.fixture(scope="module")
def versions(compress_inputs, tmp_path_factory):
    """Versions 1 and 2 of the tiny Keras 3 classifier (with warmup) and its int8 TFLite variant."""
    base = tmp_path_factory.mktemp("bench") / "tiny"
    v1 = export(ExportConfig(compress_inputs["keras3"], base, warmup_batch_sizes=(1, 8)))
    v2 = export(ExportConfig(compress_inputs["tf_keras"], base, warmup_batch_sizes=(1, 8)))
    out = base.parent / "compressed"
    compress(CompressConfig(compress_inputs["keras3"], out, recipes=[Recipe.PTQ_INT8], data=compress_inputs["data"],
                            latency_repeats=2))
    return v1.version_dir, v2.version_dir, str(out / "ptq-int8.tflite")


def test_bench_three_runtimes_side_by_side(versions, compress_inputs, tmp_path):
    v1, _, tflite = versions
    lines = []
    report = bench(BenchConfig([v1, tflite, compress_inputs["keras3"]], batch_sizes=(1, 4), requests=40,
                               concurrency=2, cold_start=False, json_path=tmp_path / "b.json",
                               plot_path=tmp_path / "b.png", progress=lines.append))
    assert [(r.runtime.split(" ")[0], r.batch_size) for r in report.results] == [
        ("SavedModel", 1), ("SavedModel", 4), ("LiteRT", 1), ("LiteRT", 4), ("tf.function", 1), ("tf.function", 4)]
    for result in report.results:
        s = result.stats
        assert s.requests == 40 and result.errors == 0
        assert 0 < s.p50_ms <= s.p90_ms <= s.p99_ms <= s.p999_ms <= s.max_ms
        assert result.throughput_samples_s == pytest.approx(result.throughput_rps * result.batch_size)
    assert json.loads((tmp_path / "b.json").read_text())["results"][0]["stats"]["requests"] == 40
    assert (tmp_path / "b.png").read_bytes()[:4] == b"\x89PNG"
    assert "ptq-int8.tflite vs 1 (batch 1): p50 ×" in report.to_table()
    assert any("batch 4, 2 client(s): 100%|40/40 [" in line and "request/s" in line for line in lines), lines


def test_cold_start_with_and_without_warmup(versions):
    v1, _, tflite = versions
    report = bench(BenchConfig([v1, tflite], requests=5))
    cold = report.cold_starts[v1]
    assert set(cold) == {"without_warmup", "with_warmup"}
    assert cold["with_warmup"]["warmup_calls"] == 2 and cold["without_warmup"]["warmup_calls"] == 0
    for result in cold.values():
        assert result["first_ms"] > 0 and result["first_over_steady"] == pytest.approx(
            result["first_ms"] / result["steady_p50_ms"])
    assert set(report.cold_starts[tflite]) == {"without_warmup"}, "a .tflite file has no warmup file"


def _model_with(keras, inner_training=False, bn_training=False, dropout_training=False, nested=False):
    inputs = keras.Input((6,), name="x")
    x = keras.layers.Dense(8, name="dense")(inputs)
    if dropout_training:
        x = keras.layers.Dropout(0.5, name="mc_dropout")(x, training=True)
    if bn_training:
        x = keras.layers.BatchNormalization(name="bn")(x, training=True)
    if nested:
        inner_in = keras.Input((8,))
        inner_out = keras.layers.GaussianNoise(1.0, name="noise")(inner_in, training=inner_training)
        x = keras.Model(inner_in, inner_out, name="block")(x)
    return keras.Model(inputs, keras.layers.Dense(3, activation="softmax", name="out")(x), name="m")


def test_determinism_identical_for_a_clean_model(keras3, tmp_path):
    _model_with(keras3).save(tmp_path / "clean.keras")
    result = CliRunner().invoke(main, ["check", "determinism", str(tmp_path / "clean.keras"), "--runs", "3",
                                       "--reloads", "1", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["identical"] is True and len(report["hashes"]) == 1 and report["causes"] == []


@pytest.mark.parametrize("flavour", ["keras3", "tf_keras"])
def test_determinism_names_dropout_called_in_training_mode(request, tmp_path, flavour):
    keras = request.getfixturevalue(flavour)
    _model_with(keras, dropout_training=True).save(tmp_path / "mc.keras")
    report = check_determinism(tmp_path / "mc.keras", runs=3, reloads=1)
    assert not report.identical
    assert report.first_divergence.startswith("load 1, run 2 differs from load 1, run 1")
    kinds = {(c.kind, c.where) for c in report.causes}
    assert ("random layer called with training=True", "mc_dropout (Dropout)") in kinds
    assert "training=False" in report.causes[0].fix
    result = CliRunner().invoke(main, ["check", "determinism", str(tmp_path / "mc.keras"), "--runs", "2",
                                       "--reloads", "0"])
    assert result.exit_code == 1 and "DIFFERENT" in result.stdout


def test_determinism_finds_causes_inside_nested_models_and_batchnorm(keras3, tmp_path):
    _model_with(keras3, nested=True, inner_training=True, bn_training=True).save(tmp_path / "nested.keras")
    report = check_determinism(tmp_path / "nested.keras", runs=2, reloads=0)
    wheres = {c.where: c.kind for c in report.causes}
    assert wheres["block/noise (GaussianNoise)"] == "random layer called with training=True"
    assert wheres["bn (BatchNormalization)"] == "BatchNormalization called with training=True"
    assert not report.identical


def test_determinism_bad_input_is_exit_2(tmp_path):
    result = CliRunner().invoke(main, ["check", "determinism", str(tmp_path / "missing.keras")])
    assert result.exit_code == 2 and "No artifact at this path" in result.stderr


def test_parity_passes_exports_and_fails_a_different_model(versions, compress_inputs, keras3, tmp_path):
    v1, _, tflite = versions
    report = check_parity(compress_inputs["keras3"], [v1, tflite], data=compress_inputs["data"], samples=64)
    assert report.passed, report.to_table()
    saved, int8 = report.results
    assert saved.max_abs_diff <= 1e-5 and saved.reason == "within tolerance"
    assert int8.max_abs_diff > 1e-3 and int8.agreement >= 0.99 and int8.reason.startswith("agreement")
    from conftest import build_tiny_classifier

    other = build_tiny_classifier(keras3, input_shape=(16, 16, 3), seed=99)
    other.save(tmp_path / "other.keras")
    result = CliRunner().invoke(main, ["check", "parity", str(compress_inputs["keras3"]), str(tmp_path / "other.keras"),
                                       "--data", str(compress_inputs["data"]), "--samples", "32", "--json"])
    assert result.exit_code == 1
    failed = json.loads(result.stdout)["results"][0]
    assert failed["passed"] is False and "differs by" in failed["reason"]
    assert 0 <= failed["worst_sample"] < 32


def test_determinism_names_unseeded_random_ops_in_a_savedmodel(tmp_path):
    from tfdeploy import backend

    tf = backend.tf()

    class Noisy(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="x")])
        def serve(self, x):
            return {"y": x + tf.random.uniform(tf.shape(x))}

    module = Noisy()
    tf.saved_model.save(module, str(tmp_path / "noisy"), signatures={"serving_default": module.serve})
    report = check_determinism(tmp_path / "noisy", runs=2, reloads=0, samples=4)
    assert not report.identical
    assert [c.kind for c in report.causes] == ["random op in the inference graph"]
    assert "(RandomUniform, " in report.causes[0].where
