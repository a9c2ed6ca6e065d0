"""Every variant judged by the metric its model is judged by, re-measured from the artifacts with scikit-learn.

A click-through ranker (int and string features, ~5 % positives) by AUC and logloss, a label-free two-output
model by SNR, a multi-label model by F1, a regressor by its error, a user's own metric, the metrics a file was
compiled with; and a ``.tflite`` that crashes at batch 1 never shipped.
"""

from __future__ import annotations

import contextlib
import json
import math

import corpus
import numpy as np
import pytest
from click.testing import CliRunner
from sklearn import metrics as sk

from tfdeploy import backend
from tfdeploy.cli import main
from tfdeploy.compression import CompressConfig, compress
from tfdeploy.compression.auto import AutoConfig, Candidate, auto_compress
from tfdeploy.compression.recipes import Recipe
from tfdeploy.errors import TfdeployError
from tfdeploy.io_spec import take
from tfdeploy.measure.predictors import keras_predictor, tflite_predictor
from tfdeploy.model.data import read_data
from tfdeploy.model.loading import load_model

RANKER_RECIPES = "ptq-dynamic,ptq-int8,ptq-float16"


@pytest.fixture(scope="module")
def ranker(keras3, tmp_path_factory):
    """The corpus ranker (compiled with accuracy and binary cross-entropy), its data and one compress run."""
    root = tmp_path_factory.mktemp("ranker")
    entry = corpus.build("ranker", keras3)
    model, data = corpus.save(entry, root)
    report = compress(CompressConfig(model, root / "out", recipes=RANKER_RECIPES, data=data, latency_repeats=3))
    return {"model": model, "data": data, "out": root / "out", "report": report}


def _outputs(path, model_path, x):
    """An artifact's outputs on ``x``, re-run from its file (the original through Keras)."""
    if str(path).endswith(".tflite"):
        return tflite_predictor(path).predict(x)
    return keras_predictor(load_model(model_path).model).predict(x)


def _validation(model_path, data_path):
    data = read_data(data_path, backend.model_io(load_model(model_path).model))
    return data.x_val, data.y_val


def test_a_rankers_variants_carry_auc_and_logloss_equal_to_scikit_learns(ranker):
    report, model = ranker["report"], ranker["model"]
    assert report.metrics == ["accuracy", "logloss", "auc"] and report.metric_source == "compiled metrics of ranker.keras"
    x_val, y_val = _validation(model, ranker["data"])
    y = y_val["click"]
    assert 0.02 < y.mean() < 0.1, "about 5 % positives"
    saved = {v["name"]: v for v in json.loads((ranker["out"] / "report.json").read_text())["variants"]}
    assert [v.name for v in report.variants if v.failed] == []
    for variant in report.variants:
        p = _outputs(variant.path, model, x_val)["click"][:, 0].astype("float64")
        metrics = saved[variant.name]["metrics"]["click"]
        assert metrics["auc"] == pytest.approx(sk.roc_auc_score(y, p), abs=1e-4), variant.name
        assert metrics["logloss"] == pytest.approx(sk.log_loss(y, p), abs=1e-4), variant.name
        assert metrics["accuracy"] == pytest.approx(sk.accuracy_score(y, p > 0.5), abs=1e-9)
        base = saved["original"]["metrics"]["click"]
        drops = saved[variant.name]["metric_drops"]["click"]
        assert drops["auc"] == pytest.approx(base["auc"] - metrics["auc"], abs=1e-12)          # higher is better
        assert drops["logloss"] == pytest.approx(metrics["logloss"] - base["logloss"], abs=1e-12)  # lower is better
    # 95 % accuracy says little here: the majority class scores about as much, so logloss drives --auto and the plot
    original, majority = saved["original"]["metrics"]["click"], max(y.mean(), 1 - y.mean())
    assert original["accuracy"] - majority < 0.25 * (1 - majority)
    assert report.driving_metric == "logloss"
    assert any("accuracy on 'click' says little: always answering the majority class" in note
               for note in report.metric_notes)
    text, markdown = str(report), (ranker["out"] / "report.md").read_text()
    assert "logloss" in text.splitlines()[1] and "drop logloss" in text and "metrics: accuracy on 'click' says little" in text
    assert "Every metric by output" in markdown and "| click | snr |" in markdown


def test_every_tflite_of_the_ranker_runs_at_batch_1_as_at_batch_n(ranker):
    x_val, _ = _validation(ranker["model"], ranker["data"])
    for name in RANKER_RECIPES.split(","):
        predictor = tflite_predictor(ranker["out"] / f"{name}.tflite")  # fresh: batch 1 is its first call
        one = predictor.predict_batch(take(x_val, slice(0, 1)))["click"]
        many = predictor.predict_batch(take(x_val, slice(0, 16)))["click"]
        np.testing.assert_allclose(one[0], many[0], atol=1e-6, err_msg=name)


def test_a_tflite_that_crashes_at_batch_1_is_a_failed_row_and_no_file(ranker, tmp_path, monkeypatch):
    # without the static lookup shapes, the converter writes the flatbuffer that crashes at batch 1
    monkeypatch.setattr(backend, "static_lookup_shapes", lambda model: contextlib.nullcontext([]))
    (tmp_path / "ptq-dynamic.tflite").write_bytes(b"a stale file of an earlier run")
    report = compress(CompressConfig(ranker["model"], tmp_path, recipes="ptq-dynamic,ptq-float16", data=ranker["data"],
                                     latency_repeats=3, overwrite=True, isolate=False))  # patched here
    original, dynamic, float16 = report.variants
    for variant in (dynamic, float16):
        assert variant.failed
        assert f"{variant.name}.tflite fails when called with one sample (batch 1) in op RESHAPE" in variant.error
        assert "would crash, so it is not kept" in variant.error
        assert not (tmp_path / f"{variant.name}.tflite").exists()
    saved = json.loads((tmp_path / "report.json").read_text())
    assert saved["failed"] == ["ptq-dynamic", "ptq-float16"] and saved["variants"][0]["metrics"]["click"]["auc"]


def test_auto_keeps_auc_within_its_budget_and_speaks_auc(ranker, tmp_path):
    budget = 0.002
    report = auto_compress(AutoConfig(
        CompressConfig(ranker["model"], tmp_path, data=ranker["data"], metrics=("auc",), latency_repeats=3,
                       isolate=False),
        max_metric_drop=budget,
        candidates=(Candidate(Recipe.PTQ_INT8, 0.25, 0.9), Candidate(Recipe.PTQ_DYNAMIC, 0.3, 0.9),
                    Candidate(Recipe.PTQ_FLOAT16, 0.5, 0.9))))
    x_val, y_val = _validation(ranker["model"], ranker["data"])
    original = sk.roc_auc_score(y_val["click"], _outputs(ranker["model"], ranker["model"], x_val)["click"][:, 0])
    assert report.metric == "auc" and report.original_quality == pytest.approx(original, abs=1e-6)
    assert report.chosen != "original", report.verdicts
    chosen = sk.roc_auc_score(y_val["click"], tflite_predictor(report.chosen_path).predict(x_val)["click"][:, 0])
    assert original - chosen <= budget + 1e-9
    for trial in report.trials:
        assert trial.passed == (trial.drop <= budget + 1e-9), trial
    assert report.verdicts[report.chosen].startswith("chosen: the lowest size within the budget")
    assert f"auc at most {budget:g} below the original" in str(report)
    rejected = [v for v in report.verdicts.values() if v.startswith("rejected: auc worsens by")]
    assert all("over the 0.002 budget" in v for v in rejected)


@pytest.fixture(scope="module")
def label_free(keras3, tmp_path_factory):
    """A model nobody gave labels for: per-frame sigmoid activations and a level, from a waveform (like audio)."""
    root, layers = tmp_path_factory.mktemp("label-free"), keras3.layers
    keras3.utils.set_random_seed(4)
    wave = keras3.Input((64, 1), name="waveform")
    hidden = layers.Conv1D(8, 5, activation="relu", name="conv")(wave)
    frames = layers.Conv1D(12, 3, activation="sigmoid", name="frames")(hidden)
    level = layers.Dense(1, name="level")(layers.GlobalAveragePooling1D()(hidden))
    keras3.Model(wave, {"frames": frames, "level": level}).save(root / "audio.keras")
    rng = np.random.default_rng(4)
    x = (np.sin(np.linspace(0, 40, 64))[None, :, None] * rng.random((300, 1, 1)) + rng.normal(0, 0.1, (300, 64, 1)))
    np.savez(root / "audio.npz", x=x.astype("float32"))
    return root / "audio.keras", root / "audio.npz"


def _snr(reference, variant):
    return 10 * math.log10(np.sum(reference.astype("float64") ** 2) / np.sum((variant - reference.astype("float64")) ** 2))


def test_auto_without_labels_holds_every_outputs_snr_above_the_threshold(label_free, tmp_path):
    model, data = label_free
    report = auto_compress(AutoConfig(
        CompressConfig(model, tmp_path, data=data, metrics=("snr",), latency_repeats=3, isolate=False),
        metric_threshold=25.0,
        candidates=(Candidate(Recipe.PTQ_INT8, 0.25, 0.9), Candidate(Recipe.PTQ_DYNAMIC, 0.3, 0.9),
                                   Candidate(Recipe.PTQ_FLOAT16, 0.5, 0.9))))
    assert report.metric == "snr" and report.budget.describe() == "snr ≥ 25 dB"
    assert report.chosen != "original", report.verdicts
    x_val, _ = _validation(model, data)
    reference = _outputs(model, model, x_val)
    chosen = tflite_predictor(report.chosen_path).predict(x_val)
    worst = min(_snr(reference[k], chosen[k].astype("float64")) for k in ("frames", "level"))
    assert worst >= 25.0
    trial = next(t for t in report.trials if t.name == report.chosen)
    assert trial.quality == pytest.approx(worst, abs=0.01)
    for verdict in report.verdicts.values():
        assert verdict.startswith(("chosen", "rejected: within the budget", "rejected: snr is")), verdict


def test_label_free_compress_reports_fidelity_per_output(label_free, tmp_path):
    model, data = label_free
    report = compress(CompressConfig(model, tmp_path, recipes="ptq-float16", data=data, latency_repeats=3))
    assert report.metrics == ["snr"] and report.metric_source == "defaults by output head"
    float16 = report.variants[1]
    assert set(float16.metrics) == {"frames", "level"}
    assert {"snr", "cosine", "max_abs_diff", "mean_abs_diff", "kl"} <= set(float16.metrics["frames"])
    assert float16.summary["snr"] == min(float16.metrics["frames"]["snr"], float16.metrics["level"]["snr"])


@pytest.fixture(scope="module")
def multilabel_and_regressor(keras3, tmp_path_factory):
    root, layers, rng = tmp_path_factory.mktemp("heads"), keras3.layers, np.random.default_rng(5)
    keras3.utils.set_random_seed(5)
    x = rng.normal(0, 1, (600, 6)).astype("float32")
    tags = (x[:, :4] + rng.normal(0, 0.5, (600, 4)) > 0.3).astype("int64")
    inputs = keras3.Input((6,), name="features")
    tagger = keras3.Model(inputs, layers.Dense(4, activation="sigmoid", name="tags")(layers.Dense(16, activation="relu")(inputs)))
    tagger.compile("adam", "binary_crossentropy")
    tagger.fit(x, tags, epochs=10, verbose=0)
    keras3.Model(tagger.inputs, tagger.outputs).save(root / "tagger.keras")  # a copy without the compile config
    np.savez(root / "tags.npz", x=x[:400], y=tags[:400], x_val=x[400:], y_val=tags[400:])
    price = (x @ rng.normal(0, 1, 6) + rng.normal(0, 0.1, 600)).astype("float32")[:, None]
    regressor = keras3.Model(inputs, layers.Dense(1, name="price")(layers.Dense(16, activation="relu")(inputs)))
    regressor.compile("adam", "mse")
    regressor.fit(x, price, epochs=10, verbose=0)
    keras3.Model(regressor.inputs, regressor.outputs).save(root / "regressor.keras")
    np.savez(root / "price.npz", x=x[:400], y=price[:400], x_val=x[400:], y_val=price[400:])
    return root


@pytest.mark.parametrize("name,data,expected", [("tagger", "tags", ["micro_f1", "macro_f1"]),
                                                ("regressor", "price", ["mae", "rmse"])])
def test_multilabel_and_regression_models_get_their_default_metrics(multilabel_and_regressor, tmp_path, name, data,
                                                                    expected):
    root = multilabel_and_regressor
    model, data_path = root / f"{name}.keras", root / f"{data}.npz"
    report = compress(CompressConfig(model, tmp_path, recipes="ptq-dynamic", data=data_path, latency_repeats=3))
    assert report.metrics == expected and report.metric_source == "defaults by output head"
    x_val, y_val = _validation(model, data_path)
    (output,) = y_val
    outputs = _outputs(tmp_path / "ptq-dynamic.tflite", model, x_val)[output].astype("float64")
    y, values = y_val[output], report.variants[1].metrics[output]
    if name == "tagger":
        assert values["micro_f1"] == pytest.approx(sk.f1_score(y, outputs > 0.5, average="micro"), abs=1e-9)
        assert values["macro_f1"] == pytest.approx(sk.f1_score(y, outputs > 0.5, average="macro"), abs=1e-9)
    else:
        assert values["mae"] == pytest.approx(sk.mean_absolute_error(y, outputs), abs=1e-6)
        assert values["rmse"] == pytest.approx(math.sqrt(sk.mean_squared_error(y, outputs)), abs=1e-6)


def test_compiled_metrics_of_keras_3_and_tf_keras_files_drive_the_defaults(keras3, tf_keras, tmp_path):
    x = np.random.default_rng(3).normal(0, 1, (200, 6)).astype("float32")
    y = (x[:, 0] > 0).astype("int64")
    files = {}
    for name, keras, metrics in (("k3.keras", keras3, [keras3.metrics.AUC(curve="PR", name="pr")]),
                                 ("k2.h5", tf_keras, ["mae", "AUC"])):
        inputs = keras.Input((6,), name="x")
        model = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid", name="p")(inputs))
        model.compile("adam", "binary_crossentropy", metrics=metrics)
        model.fit(x, y, epochs=2, verbose=0)
        model.save(tmp_path / name)
        files[name] = tmp_path / name
    np.savez(tmp_path / "d.npz", x=x[:150], y=y[:150], x_val=x[150:], y_val=y[150:])
    first = compress(CompressConfig(files["k3.keras"], tmp_path / "a", recipes="strip", data=tmp_path / "d.npz",
                                    latency_repeats=3))
    assert first.metrics == ["pr_auc", "logloss", "auc"] and first.driving_metric == "pr_auc"
    assert first.metric_source == "compiled metrics of k3.keras"
    # mae is for values: it does not fit a sigmoid head and is passed over
    second = compress(CompressConfig(files["k2.h5"], tmp_path / "b", recipes="strip", data=tmp_path / "d.npz",
                                     latency_repeats=3))
    assert second.metrics == ["auc", "logloss"] and second.metric_source == "compiled metrics of k2.h5"


def test_a_users_own_metric_from_a_module(ranker, tmp_path):
    import custom_metrics

    report = compress(CompressConfig(ranker["model"], tmp_path, recipes="ptq-dynamic", data=ranker["data"],
                                     metrics=("custom_metrics:recall_at_10", "auc"), latency_repeats=3))
    assert report.metrics == ["custom_metrics:recall_at_10", "auc"]
    assert report.metric_info["custom_metrics:recall_at_10"].summary == \
        "Share of the positives found among the 10 % highest scores."
    x_val, y_val = _validation(ranker["model"], ranker["data"])
    outputs = tflite_predictor(tmp_path / "ptq-dynamic.tflite").predict(x_val)["click"]
    expected = custom_metrics.recall_at_10(y_val["click"], outputs)
    assert report.variants[1].metrics["click"]["custom_metrics:recall_at_10"] == pytest.approx(expected)
    result = CliRunner().invoke(main, ["compress", str(ranker["model"]), "--out", str(tmp_path / "cli"), "--data",
                                       str(ranker["data"]), "--recipe", "strip", "--metric",
                                       "custom_metrics:undeclared"])
    assert result.exit_code == 2
    assert "Custom metric 'custom_metrics:undeclared' does not say which way it improves" in result.output
    assert not (tmp_path / "cli").exists()
    with pytest.raises(TfdeployError, match="Cannot import the module of custom metric 'no_such_module:f'"):
        CompressConfig(ranker["model"], tmp_path, metrics=("no_such_module:f",)).validate()


def test_check_parity_judges_each_artifact_by_the_chosen_metric(ranker):
    result = CliRunner().invoke(main, ["check", "parity", str(ranker["model"]), str(ranker["out"] / "ptq-int8.tflite"),
                                       "--data", str(ranker["data"]), "--samples", "800", "--metric", "auc",
                                       "--min-agreement", "0.9", "--json"])
    assert result.exit_code in (0, 1), result.output
    saved = json.loads(result.stdout)
    (row,) = saved["quality"]
    x_val, y_val = _validation(ranker["model"], ranker["data"])
    p = tflite_predictor(ranker["out"] / "ptq-int8.tflite").predict(x_val)["click"][:, 0]
    assert saved["metrics"] == ["auc"] and row["value"] == pytest.approx(sk.roc_auc_score(y_val["click"], p), abs=1e-4)
    assert row["drop"] == pytest.approx(row["source_value"] - row["value"], abs=1e-9)


def test_auto_trials_in_fresh_processes_import_the_users_metric(ranker, tmp_path):
    report = auto_compress(AutoConfig(
        CompressConfig(ranker["model"], tmp_path, data=ranker["data"], metrics=("custom_metrics:recall_at_10",),
                       latency_repeats=3), max_metric_drop=0.05,
        candidates=(Candidate(Recipe.PTQ_DYNAMIC, 0.3, 0.9),)))
    (trial,) = report.trials
    assert report.isolation == "each in a fresh process" and trial.peak_rss_bytes
    assert trial.error is None and report.metric == "custom_metrics:recall_at_10"
    x_val, y_val = _validation(ranker["model"], ranker["data"])
    import custom_metrics

    chosen = tflite_predictor(report.chosen_path).predict(x_val)["click"]
    assert trial.quality == pytest.approx(custom_metrics.recall_at_10(y_val["click"], chosen))
