"""The models users bring, through every step: compress recipes, export, verify, parity.

Each corpus model (``tests/corpus.py``) runs once through :func:`corpus.run_steps`; every cell of the
model × step matrix is asserted: the artifact it made (flatbuffer tensor types, signature names,
warmup record keys and dtypes, sparsity, nesting kept) or the exact refusal where refusing is right.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import corpus
from tfdeploy import backend
from tfdeploy.cli import main
from tfdeploy.compression import CompressConfig, compress
from tfdeploy.model.loading import load_model
from tfdeploy.compression.recipes import Recipe
from tfdeploy.serving.signature import read_signatures
from tfdeploy.compression.tflite import tensor_dtypes
from tfdeploy.serving.warmup import WARMUP_FILE, read_warmup, request_inputs

TEXT_OPS = "RaggedTensorToTensor, StaticRegexReplace, StringLower, StringSplitV2"
REFUSALS = {
    ("text_vectorization", "ptq-dynamic"): f"TFLite has no builtin kernels for the TensorFlow ops {TEXT_OPS}",
    ("text_vectorization", "ptq-float16"): f"TFLite has no builtin kernels for the TensorFlow ops {TEXT_OPS}",
    ("text_vectorization", "ptq-int8"): f"TFLite has no builtin kernels for the TensorFlow ops {TEXT_OPS}",
    ("text_vectorization", "qat"): "The quantization-aware model would not convert to TFLite, so it was not "
                                   f"fine-tuned: TFLite has no builtin kernels for the TensorFlow ops {TEXT_OPS}",
}
SLOW = {"nested_mobilenetv2", "mobilenetv3small"}
MODELS = [pytest.param(name, marks=pytest.mark.slow) if name in SLOW else name for name in corpus.BUILDERS]
_RUNS: dict[str, corpus.Run] = {}


@pytest.fixture(scope="session")
def corpus_files(tmp_path_factory, keras3):
    """Every corpus model trained and saved once: name -> (entry, model path, data path)."""
    root = tmp_path_factory.mktemp("corpus")
    return {"root": root, "built": {}}


def built(corpus_files, keras3, name):
    if name not in corpus_files["built"]:
        entry = corpus.build(name, keras3)
        corpus_files["built"][name] = (entry, *corpus.save(entry, corpus_files["root"] / "models"))
    return corpus_files["built"][name]


def run_of(corpus_files, keras3, name) -> corpus.Run:
    if name not in _RUNS:
        entry, model_path, data_path = built(corpus_files, keras3, name)
        _RUNS[name] = corpus.run_steps(entry, model_path, data_path, corpus_files["root"] / "runs" / name)
    return _RUNS[name]


@pytest.mark.parametrize("name", MODELS)
def test_every_cell_is_made_or_refused_as_expected(corpus_files, keras3, name):
    run = run_of(corpus_files, keras3, name)
    for step in corpus.STEPS:
        cell = run.cells[step]
        expected = REFUSALS.get((name, step))
        if expected:
            assert not cell.ok and expected in cell.detail, (step, cell)
        else:
            assert cell.ok, (step, cell.detail)


@pytest.mark.parametrize("name", MODELS)
def test_tflite_artifacts_hold_the_promised_tensor_types_and_named_inputs(corpus_files, keras3, name):
    run = run_of(corpus_files, keras3, name)
    io = backend.model_io(run.entry.model)
    big_weights = any(np.prod(w.shape) >= 1024 for w in run.entry.model.weights)
    promised = {"ptq-int8": "int8", "qat": "int8", "ptq-float16": "float16", "ptq-dynamic": "int8" if big_weights else None}
    for recipe, dtype in promised.items():
        cell = run.cells[recipe]
        if not cell.ok:
            continue
        blob = Path(cell.path).read_bytes()
        if dtype:
            assert tensor_dtypes(blob).get(dtype, 0) > 0, (recipe, tensor_dtypes(blob))
        interpreter, _ = backend.tflite_interpreter(blob)
        signature = interpreter.get_signature_list()["serving_default"]
        assert sorted(signature["inputs"]) == sorted(io.input_names), recipe
        assert sorted(signature["outputs"]) == sorted(io.output_names), recipe


@pytest.mark.parametrize("name", MODELS)
def test_prune_reaches_the_target_and_keeps_the_users_structure(corpus_files, keras3, name):
    run = run_of(corpus_files, keras3, name)
    pruned = next(v for v in run.compress_report.variants if v.name == "prune")
    assert pruned.sparsity == pytest.approx(0.5, abs=0.02)
    reloaded = load_model(pruned.path, **corpus.loading(run.entry)).model
    assert reloaded.name == run.entry.model.name
    assert backend.nested_models(reloaded) == backend.nested_models(run.entry.model)
    assert backend.model_io(reloaded) == backend.model_io(run.entry.model)


@pytest.mark.slow
def test_depthwise_convolutions_of_a_nested_mobilenetv2_are_pruned(corpus_files, keras3):
    run = run_of(corpus_files, keras3, "nested_mobilenetv2")
    pruned = next(v for v in run.compress_report.variants if v.name == "prune")
    assert pruned.sparsity_by_layer_type["DepthwiseConv2D"] == pytest.approx(0.5, abs=0.02)
    assert any("flattened nested model(s) mobilenetv2_0.35_32" in note for note in run.compress_report.bridge_notes)


@pytest.mark.parametrize("name", MODELS)
def test_export_names_every_input_and_output_and_warms_all_inputs(corpus_files, keras3, name):
    run = run_of(corpus_files, keras3, name)
    io = backend.model_io(run.entry.model)
    signature = read_signatures(run.export_report.version_dir)["serving_default"]
    assert sorted(signature.inputs) == sorted(io.input_names)
    assert sorted(signature.outputs) == sorted(io.output_names)
    for info in io.inputs:
        assert signature.inputs[info.name].dtype == info.dtype
    logs = read_warmup(Path(run.export_report.version_dir) / WARMUP_FILE)
    assert [len(next(iter(request_inputs(log.predict_log.request).values()))) for log in logs] == [1, 4]
    for log in logs:
        arrays = request_inputs(log.predict_log.request)
        assert sorted(arrays) == sorted(io.input_names)
        for info in io.inputs:
            kind = arrays[info.name].dtype.kind
            assert (kind == "O") if info.is_string else (arrays[info.name].dtype.name == info.dtype), info


@pytest.mark.parametrize("name", MODELS)
def test_verify_and_parity_cover_every_output(corpus_files, keras3, name):
    run = run_of(corpus_files, keras3, name)
    assert run.verify_report.passed
    outputs = backend.model_io(run.entry.model).output_names
    assert sorted(run.verify_report.parity["max_abs_diff_by_output"]) == sorted(outputs)
    assert run.verify_report.parity["samples"] >= 32
    per_artifact = {}
    for result in run.parity_report.results:
        per_artifact.setdefault(result.artifact, []).append(result.output)
    assert all(sorted(names) == sorted(outputs) for names in per_artifact.values())


def test_a_gru_is_unrolled_to_int8_without_a_while_loop(corpus_files, keras3):
    run = run_of(corpus_files, keras3, "gru_text")
    int8 = next(v for v in run.compress_report.variants if v.name == "ptq-int8")
    assert not int8.failed, int8.error
    assert any(note.startswith("gru unrolled over the fixed sequence length for int8") for note in int8.notes)
    ops = backend.builtin_ops(Path(int8.path).read_bytes())
    assert "WHILE" not in ops and tensor_dtypes(Path(int8.path).read_bytes()).get("int8", 0) > 0
    assert int8.agreement >= 0.9


def test_two_outputs_report_accuracy_on_the_class_head(corpus_files, keras3):
    run = run_of(corpus_files, keras3, "two_outputs_tabular")
    assert run.compress_report.label_output == "class"
    original = run.compress_report.variants[0]
    assert original.accuracy > 0.5
    assert sorted(run.compress_report.variants[1].max_abs_diff_by_output) == ["class", "value"]


def test_lambda_needs_the_explicit_opt_in(corpus_files, keras3, tmp_path):
    _, model_path, data_path = built(corpus_files, keras3, "lambda_layer")
    refused = CliRunner().invoke(main, ["compress", str(model_path), "--out", str(tmp_path / "a")])
    assert refused.exit_code == 2
    assert "Lambda layer(s) affine" in refused.stderr and "--unsafe-deserialization" in refused.stderr
    assert "truncated" not in refused.stderr and "Traceback" not in refused.output
    allowed = CliRunner().invoke(main, ["compress", str(model_path), "--out", str(tmp_path / "b"),
                                        "--unsafe-deserialization", "--recipe", "ptq-dynamic"])
    assert allowed.exit_code == 0, allowed.output
    assert "Warning: --unsafe-deserialization" in allowed.stderr


def test_custom_objects_reach_verify_and_bench(corpus_files, keras3, tmp_path):
    run = run_of(corpus_files, keras3, "custom_layer")
    version = run.export_report.version_dir
    verified = CliRunner().invoke(main, ["verify", version, "--model", str(run.model_path), "--no-cold-start",
                                         "--custom-objects", "custom_layers:LearnedScale"])
    assert verified.exit_code == 0, verified.output
    benched = CliRunner().invoke(main, ["bench", str(run.model_path), "--requests", "5", "--no-cold-start",
                                        "--custom-objects", "custom_layers:LearnedScale", "--data",
                                        str(run.data_path)])
    assert benched.exit_code == 0, benched.output
    code = ("import sys; from tfdeploy.cli import main; sys.argv = ['tfdeploy', 'verify', sys.argv[1], '--model', "
            "sys.argv[2], '--no-cold-start']; main()")
    fresh = subprocess.run([sys.executable, "-c", code, version, str(run.model_path)], capture_output=True, text=True)
    assert fresh.returncode == 1  # a fresh process has no LearnedScale: the parity check fails and says how to fix it
    assert "custom class(es) LearnedScale" in fresh.stdout and "--custom-objects" in fresh.stdout


def test_a_failing_recipe_is_reported_and_the_others_still_run(corpus_files, keras3, tmp_path):
    _, model_path, data_path = built(corpus_files, keras3, "text_vectorization")
    result = CliRunner().invoke(main, ["compress", str(model_path), "--out", str(tmp_path), "--data", str(data_path),
                                       "--recipe", "ptq-dynamic,strip", "--json"])
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["failed"] == ["ptq-dynamic"]
    assert [v["status"] for v in report["variants"]] == ["ok", "failed", "ok"]
    assert (tmp_path / "strip.keras").is_file() and (tmp_path / "report.json").is_file()
    assert not (tmp_path / "ptq-dynamic.tflite").exists()


def test_select_tf_ops_is_an_explicit_reported_fallback(corpus_files, keras3, tmp_path):
    _, model_path, data_path = built(corpus_files, keras3, "text_vectorization")
    report = compress(CompressConfig(model_path, tmp_path, recipes=[Recipe.PTQ_DYNAMIC], data=data_path,
                                     select_tf_ops=True, latency_repeats=2))
    variant = report.variants[1]
    assert not variant.failed and Path(variant.path).is_file()
    assert variant.accuracy is None and variant.latency_ms is None
    assert any("StringSplitV2" in note and "needs the Flex delegate" in note for note in variant.notes)


def test_a_plain_tf_module_savedmodel_with_two_inputs(tmp_path):
    tf = backend.tf()

    class Scorer(tf.Module):
        def __init__(self):
            super().__init__()
            self.w = tf.Variable(tf.ones([3, 2]))

        @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32, name="features"),
                                      tf.TensorSpec([None], tf.int32, name="bucket")])
        def __call__(self, features, bucket):
            return {"scores": tf.nn.softmax(features @ self.w + tf.cast(bucket, tf.float32)[:, None])}

    scorer = Scorer()
    tf.saved_model.save(scorer, str(tmp_path / "sm"), signatures={"serving_default": scorer.__call__})
    report = compress(CompressConfig(tmp_path / "sm", tmp_path / "out", recipes=[Recipe.STRIP, Recipe.PTQ_DYNAMIC],
                                     latency_repeats=2))
    strip, dynamic = report.variants[1:]
    assert strip.failed and "needs a Keras model with layers; this SavedModel has no Keras metadata" in strip.error
    assert not dynamic.failed and dynamic.max_abs_diff < 1e-5
    result = CliRunner().invoke(main, ["export", str(tmp_path / "sm"), "--base-dir", str(tmp_path / "m")])
    assert result.exit_code == 0, result.output
    verified = CliRunner().invoke(main, ["verify", str(tmp_path / "m" / "1"), "--no-cold-start", "--model",
                                         str(tmp_path / "sm")])
    assert verified.exit_code == 0, verified.output
    assert sorted(read_signatures(tmp_path / "m" / "1")["serving_default"].inputs) == ["bucket", "features"]


@pytest.mark.parametrize("name", ["two_inputs", "text_vectorization", "two_outputs_tabular"])
def test_determinism_and_bench_feed_every_input(corpus_files, keras3, name):
    from tfdeploy.measure.benchmark import BenchConfig, bench
    from tfdeploy.measure.checks import check_determinism

    run = run_of(corpus_files, keras3, name)
    report = check_determinism(run.model_path, runs=2, reloads=1, data=run.data_path, samples=8)
    assert report.identical and len(report.hashes) == 1 and report.samples == 8
    benched = bench(BenchConfig([run.model_path, run.export_report.version_dir], batch_sizes=(1, 3), requests=5,
                                cold_start=False, data=run.data_path))
    assert [(r.batch_size, r.errors, r.stats.requests) for r in benched.results] == [(1, 0, 5), (3, 0, 5)] * 2
