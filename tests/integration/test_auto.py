"""Accuracy-aware compression: the budget decides, and a quantization-sensitive layer stays float."""

import dataclasses
import json

import numpy as np
import pytest
from click.testing import CliRunner

from tfdeploy.compression.auto import AutoConfig, Candidate, auto_compress
from tfdeploy.cli import main
from tfdeploy.compression import CompressConfig
from tfdeploy.errors import TfdeployError
from tfdeploy.compression.recipes import Recipe


@pytest.fixture(scope="module")
def sensitive(keras3, tmp_path_factory):
    """A classifier whose 'sensitive' layer emits its features next to a constant 5000.

    Full-int8 gives that activation one scale for the whole range, rounding the features (|x| ~ 1) to
    zero: int8 accuracy collapses unless the layer and its consumer stay float.
    """
    root = tmp_path_factory.mktemp("sensitive")
    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, size=(600, 8)).astype("float32")
    y = np.argmax(x[:, :4], axis=1)
    inputs = keras3.Input((8,), name="features")
    hidden = keras3.layers.Dense(9, name="sensitive")(inputs)
    model = keras3.Model(inputs, keras3.layers.Dense(4, activation="softmax", name="head")(hidden))
    kernel = np.zeros((8, 9), "float32")
    kernel[:, :8] = np.eye(8)
    bias = np.zeros(9, "float32")
    bias[8] = 5000.0
    model.get_layer("sensitive").set_weights([kernel, bias])
    head = np.zeros((9, 4), "float32")
    head[:4, :4] = 20 * np.eye(4)
    model.get_layer("head").set_weights([head, np.zeros(4, "float32")])
    model.save(root / "sensitive.keras")
    np.savez(root / "data.npz", x=x[:400], y=y[:400], x_val=x[400:], y_val=y[400:])
    return root / "sensitive.keras", root / "data.npz"


def _config(model, data, out, **kwargs):
    return CompressConfig(model, out, data=data, latency_repeats=3, epochs=1, **kwargs)


def _auto(compress, **kwargs):
    """In this process (fast): tests/integration/test_litert.py covers trials in fresh processes."""
    return auto_compress(AutoConfig(dataclasses.replace(compress, isolate=False), **kwargs))


def test_int8_sensitive_layer_is_kept_in_float_and_meets_the_budget(sensitive, tmp_path):
    model, data = sensitive
    report = _auto(_config(model, data, tmp_path), max_accuracy_drop=1.0,
                                      candidates=(Candidate(Recipe.PTQ_INT8, 0.25, 0.01),))
    first, *selective = report.trials
    assert first.name == "ptq-int8" and not first.passed and first.drop > 50
    chosen = next(t for t in report.trials if t.name == report.chosen)
    assert chosen.passed and chosen.drop <= 1.0
    assert any("sensitive" in name for name in chosen.kept_float)
    assert len(chosen.kept_float) == min(len(t.kept_float) for t in selective if t.passed)
    assert report.chosen_path.endswith(f"auto-{report.chosen}.tflite")
    assert not (tmp_path / "trials").exists(), "trial artifacts are removed without keep_all"
    saved = json.loads((tmp_path / "auto_report.json").read_text())
    assert saved["chosen"] == report.chosen and len(saved["trials"]) == len(report.trials)


def test_same_seed_same_choice(sensitive, tmp_path):
    model, data = sensitive
    runs = [_auto(_config(model, data, tmp_path / str(i)), max_accuracy_drop=1.0,
                                     candidates=(Candidate(Recipe.PTQ_INT8, 0.25, 0.01),))
            for i in range(2)]
    assert [(t.name, t.kept_float, t.quality) for t in runs[0].trials] == \
           [(t.name, t.kept_float, t.quality) for t in runs[1].trials]


def test_budget_zero_keeps_the_float_model(sensitive, tmp_path):
    model, data = sensitive
    report = _auto(_config(model, data, tmp_path), max_accuracy_drop=0.0, keep_all=True,
                                      candidates=(Candidate(Recipe.PTQ_INT8, 0.25, 0.01),))
    assert not any(t.passed for t in report.trials)
    assert report.chosen == "original" and report.stopped_because.startswith("no candidate met the budget")
    assert (tmp_path / "auto-original.keras").read_bytes() == model.read_bytes()
    assert (tmp_path / "trials" / "ptq-int8.tflite").is_file(), "kept with keep_all"


def test_generous_budget_picks_the_smallest_and_stops_early(compress_inputs, tmp_path):
    candidates = (Candidate(Recipe.PTQ_INT4_WEIGHTS, 0.17, 0.9), Candidate(Recipe.PTQ_FLOAT16, 0.9, 0.9),
                  Candidate(Recipe.PTQ_DYNAMIC, 0.9, 0.9))
    report = _auto(_config(compress_inputs["keras3"], compress_inputs["data"], tmp_path), max_accuracy_drop=100.0,
                   candidates=candidates)
    assert [t.name for t in report.trials] == ["ptq-int4-weights"] and report.chosen == "ptq-int4-weights"
    assert report.stopped_because == "ptq-int4-weights meets the budget and no remaining candidate is expected to beat it"


def test_expected_sizes_are_fractions_of_the_weights_not_of_adams_state():
    from tfdeploy.compression.auto import without_optimizer

    # a file whose optimizer state (Adam: two slots per weight) is two thirds of its bytes
    assert without_optimizer(gzip_bytes=90_000, raw_bytes=300_000, optimizer_bytes=200_000) == pytest.approx(30_000)
    assert without_optimizer(gzip_bytes=90_000, raw_bytes=300_000, optimizer_bytes=0) == 90_000


def test_relative_budget_and_limits(sensitive, tmp_path):
    model, data = sensitive
    report = _auto(_config(model, data, tmp_path), max_accuracy_drop=1.0, relative=True,
                                      max_trials=1, candidates=(Candidate(Recipe.PTQ_FLOAT16, 0.5, 0.01),
                                                                Candidate(Recipe.PTQ_DYNAMIC, 0.3, 0.01)))
    assert report.budget.max_drop == pytest.approx(1.0)  # 1 % of the original's 100 %
    assert report.budget.describe() == "accuracy at most 1 point below the original (100%)"
    assert [t.name for t in report.trials] == ["ptq-float16"] and report.stopped_because == "max trials (1) reached"


def test_auto_needs_data_and_a_budget_in_the_driving_metrics_units(compress_inputs, tmp_path):
    with pytest.raises(TfdeployError, match="--auto needs data to calibrate and judge candidates on"):
        _auto(CompressConfig(compress_inputs["keras3"], tmp_path))
    unlabelled = CompressConfig(compress_inputs["keras3"], tmp_path, data=compress_inputs["unlabelled"])
    with pytest.raises(TfdeployError, match=r"--auto is driven by agreement \(the first metric\), so its budget is in "
                                            r"agreement's units: pass --max-metric-drop X"):
        _auto(unlabelled)
    with pytest.raises(TfdeployError, match="--max-accuracy-drop budgets accuracy, but --metric auc drives"):
        _auto(dataclasses.replace(unlabelled, metrics=("auc",)), max_accuracy_drop=1.0)
    with pytest.raises(TfdeployError, match="give one"):
        _auto(unlabelled, max_accuracy_drop=1.0, max_metric_drop=1.0)


def test_auto_cli_prints_the_trial_table(sensitive, tmp_path):
    model, data = sensitive
    result = CliRunner().invoke(main, ["compress", str(model), "--out", str(tmp_path), "--data", str(data), "--auto",
                                       "--max-accuracy-drop", "1", "--max-trials", "1"])
    assert result.exit_code == 0, result.output
    assert "candidate" in result.stdout and "ptq-int4-weights" in result.stdout and "chosen: ptq-int4" in result.stdout
    assert "trials: each in a fresh process; jobs 1" in result.stdout and "Pareto front" in result.stdout
    assert (tmp_path / "auto_pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
