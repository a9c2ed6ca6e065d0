"""The metric registry, its maintained implementations against references, the defaults and the budgets (no TensorFlow)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn import metrics as sk

from tfdeploy.compression.budget import Budget, make_budget
from tfdeploy.errors import TfdeployError
from tfdeploy.io_spec import ModelIO, TensorInfo
from tfdeploy.quality.evaluation import Measured, measure_outputs
from tfdeploy.quality.heads import head_of
from tfdeploy.quality.metrics import REGISTRY
from tfdeploy.quality.plan import MetricRef, build_plan, compiled_refs
from tfdeploy.quality.registry import Against, Collected, Direction, Head, MetricRegistry, MetricSpec, Output

RNG = np.random.default_rng(0)
N = 3000


def _value(name, output, truth, predicted, param=None, batches=3):
    """A metric accumulated over ``batches`` batches, as evaluation feeds it."""
    accumulator = REGISTRY.get(name).make(output, param if param is not None else REGISTRY.get(name).default_param)
    for rows in np.array_split(np.arange(len(truth)), batches):
        accumulator.update(truth[rows], predicted[rows])
    return accumulator.result()


@pytest.fixture(scope="module")
def ranking():
    y = (RNG.random(N) < 0.05).astype("int64")
    p = np.clip(0.04 + 0.08 * y + RNG.normal(0, 0.04, N), 1e-4, 1 - 1e-4).astype("float32")[:, None]
    return y, p


def test_binary_metrics_equal_scikit_learn(ranking):
    y, p = ranking
    click = Output("click", Head.BINARY, 1, True)
    assert _value("auc", click, y, p) == pytest.approx(sk.roc_auc_score(y, p[:, 0]), abs=1e-12)
    assert _value("pr_auc", click, y, p) == pytest.approx(sk.average_precision_score(y, p[:, 0]), abs=1e-12)
    assert _value("logloss", click, y, p) == pytest.approx(sk.log_loss(y, p[:, 0].astype("float64")), abs=1e-9)
    assert _value("accuracy", click, y, p) == pytest.approx(sk.accuracy_score(y, p[:, 0] > 0.5))
    assert _value("calibration", click, y, p) == pytest.approx(p.astype("float64").mean() / y.mean())
    # ECE: |observed rate - mean prediction| per equal-width bin, weighted by the bin's share
    bins = np.minimum((p[:, 0] * 15).astype(int), 14)
    expected = sum(abs(y[bins == b].mean() - p[bins == b, 0].mean()) * (bins == b).mean() for b in np.unique(bins))
    assert _value("ece", click, y, p) == pytest.approx(expected, abs=1e-9)
    # logits of the same unit give the same AUC and, through the sigmoid, the same logloss
    logits = Output("click", Head.BINARY, 1, False)
    z = np.log(p / (1 - p))
    assert _value("auc", logits, y, z) == pytest.approx(sk.roc_auc_score(y, p[:, 0]), abs=1e-12)
    assert _value("logloss", logits, y, z) == pytest.approx(sk.log_loss(y, p[:, 0].astype("float64")), abs=1e-6)


def test_class_multilabel_and_regression_metrics_equal_references():
    classes = Output("p", Head.CLASSES, 5, True)
    ids = RNG.integers(0, 5, N)
    scores = RNG.random((N, 5)) + np.eye(5)[ids] * 0.6
    probs = scores / scores.sum(1, keepdims=True)
    assert _value("accuracy", classes, ids, probs) == pytest.approx(sk.accuracy_score(ids, probs.argmax(1)))
    assert _value("accuracy", classes, np.eye(5)[ids], probs) == pytest.approx(sk.accuracy_score(ids, probs.argmax(1)))
    assert _value("top_k", classes, ids, probs, 2) == pytest.approx(sk.top_k_accuracy_score(ids, probs, k=2))
    assert _value("logloss", classes, ids, probs) == pytest.approx(sk.log_loss(ids, probs))
    assert _value("auc", classes, ids, probs) == pytest.approx(sk.roc_auc_score(ids, probs, multi_class="ovr"))
    tags = Output("tags", Head.MULTILABEL, 4, True)
    y = (RNG.random((N, 4)) < [0.1, 0.3, 0.5, 0.02]).astype("int64")
    s = np.clip(y * 0.4 + RNG.random((N, 4)) * 0.6, 0, 1)
    assert _value("micro_f1", tags, y, s) == pytest.approx(sk.f1_score(y, s > 0.5, average="micro"))
    assert _value("macro_f1", tags, y, s, 0.3) == pytest.approx(sk.f1_score(y, s > 0.3, average="macro"))
    assert _value("map", tags, y, s) == pytest.approx(sk.average_precision_score(y, s, average="macro"))
    value = Output("price", Head.VALUES, 2, False)
    t, q = RNG.normal(0, 1, (N, 2)), RNG.normal(0, 1, (N, 2))
    assert _value("mae", value, t, q) == pytest.approx(sk.mean_absolute_error(t, q))
    assert _value("rmse", value, t, q) == pytest.approx(math.sqrt(sk.mean_squared_error(t, q)))
    assert _value("r2", value, t, q) == pytest.approx(sk.r2_score(t, q))


def test_fidelity_metrics_stream_and_match_their_formulas():
    out = Output("frames", Head.MULTILABEL, 6, True)
    reference = RNG.random((400, 10, 6))
    variant = np.clip(reference + RNG.normal(0, 0.02, reference.shape), 0, 1)
    noise = ((variant - reference) ** 2).sum()
    assert _value("snr", out, reference, variant, batches=7) == pytest.approx(
        10 * math.log10((reference ** 2).sum() / noise))
    assert _value("max_abs_diff", out, reference, variant) == pytest.approx(np.abs(variant - reference).max())
    assert _value("mean_abs_diff", out, reference, variant) == pytest.approx(np.abs(variant - reference).mean())
    flat_a, flat_b = reference.reshape(400, -1), variant.reshape(400, -1)
    cosine = (flat_a * flat_b).sum(1) / np.linalg.norm(flat_a, axis=1) / np.linalg.norm(flat_b, axis=1)
    assert _value("cosine", out, reference, variant) == pytest.approx(cosine.mean())
    assert _value("snr", out, reference, reference) == 200.0  # identical: the cap
    classes = Output("p", Head.CLASSES, 3, True)
    a = RNG.dirichlet([1, 1, 1], 500)
    b = RNG.dirichlet([1, 1, 1], 500)
    assert _value("agreement", classes, a, b) == pytest.approx(np.mean(a.argmax(1) == b.argmax(1)))
    assert _value("kl", classes, a, b) == pytest.approx(np.mean((a * np.log(a / b)).sum(1)), rel=1e-6)


def test_directions_drops_and_budgets():
    assert Direction.LOWER.worsening(0.30, 0.33) == pytest.approx(0.03)   # logloss up is a drop
    assert Direction.HIGHER.worsening(0.70, 0.69) == pytest.approx(0.01)
    assert Direction.TARGET.worsening(1.02, 0.9) == pytest.approx(0.08)
    budget = make_budget("logloss", REGISTRY.get("logloss"), 0.30, max_drop=0.01, threshold=None, relative=False)
    assert budget.allows(0.305) and not budget.allows(0.32)
    assert budget.describe() == "logloss at most 0.01 above the original (0.3)"
    snr = make_budget("snr", REGISTRY.get("snr"), None, max_drop=None, threshold=25.0, relative=False)
    assert snr.allows(31.0) and not snr.allows(24.9) and snr.describe() == "snr ≥ 25 dB"
    accuracy = make_budget("accuracy", REGISTRY.get("accuracy"), 0.9, None, None, relative=False)
    assert accuracy.max_drop == 1.0 and accuracy.original == pytest.approx(90.0)  # the 1-point default, in %
    relative = make_budget("auc", REGISTRY.get("auc"), 0.8, 2.0, None, relative=True)
    assert relative.max_drop == pytest.approx(0.016)
    assert Budget("auc", "higher", 1.0, "", max_drop=0.01, original=0.8).verdict(0.75) == \
        "auc worsens by 0.05, over the 0.01 budget"
    with pytest.raises(TfdeployError, match="--auto is driven by auc .* --max-metric-drop X .* original's 0.8"):
        make_budget("auc", REGISTRY.get("auc"), 0.8, None, None, relative=False)


def test_metric_specs_parse_and_the_registry_checks_its_contract():
    assert MetricRef.parse("auc@click") == MetricRef("auc", "click")
    assert MetricRef.parse("top_k=3") == MetricRef("top_k", None, 3.0) and MetricRef("top_k", None, 3.0).key == "top_k=3"
    assert MetricRef.parse("mymod.sub:score@y") == MetricRef("mymod.sub:score", "y")
    for bad in ("", "auc@", "top_k=", "top_k=three", "a@b@c"):
        with pytest.raises(TfdeployError, match="A metric"):
            MetricRef.parse(bad)
    with pytest.raises(TfdeployError, match="Unknown metric 'aucc'; registered: accuracy, top_k, auc"):
        REGISTRY.get("aucc")
    spec = REGISTRY.get("auc")
    with pytest.raises(TfdeployError, match="Two metrics are named 'auc'"):
        MetricRegistry([spec, spec])
    with pytest.raises(TfdeployError, match="lowercase words joined by '_'"):
        MetricRegistry([MetricSpec("Bad-Name", "x", Direction.HIGHER, Against.LABELS, frozenset(Head),
                                   lambda o, p: Collected(lambda t, q: 0.0))])
    assert {s.name for s in REGISTRY.against(Against.ORIGINAL)} == {"agreement", "mean_abs_diff", "max_abs_diff",
                                                                     "cosine", "kl", "snr"}


def test_heads_come_from_activations_values_and_labels():
    assert head_of(TensorInfo("t", "float32", (8, 88), "sigmoid")).head is Head.MULTILABEL
    assert head_of(TensorInfo("p", "float32", (3,)), values=np.full((4, 3), 1 / 3)).head is Head.CLASSES
    logits = head_of(TensorInfo("z", "float32", (3,), "linear"), values=RNG.normal(0, 3, (6, 3)),
                     labels=np.array([0, 1, 2, 0, 1, 2]))
    assert (logits.head, logits.probabilities) == (Head.CLASSES, False)
    assert head_of(TensorInfo("c", "float32", (1,)), values=RNG.random((6, 1)), labels=np.array([0, 1] * 3)).head \
        is Head.BINARY
    assert head_of(TensorInfo("v", "float32", (1,), "linear"), values=RNG.normal(0, 3, (6, 1)),
                   labels=RNG.normal(0, 3, 6)).head is Head.VALUES


IO = ModelIO((TensorInfo("x", "float32", (3,)),),
             (TensorInfo("click", "float32", (1,), "sigmoid"), TensorInfo("price", "float32", (1,), "linear")))


def test_compiled_metrics_of_every_keras_format_become_defaults():
    keras3 = {"loss": {"click": "binary_crossentropy", "price": "mse"},
              "metrics": {"click": [{"module": "keras.metrics", "class_name": "AUC", "config": {"curve": "PR"}},
                                    "accuracy"], "price": ["mae"]}}
    refs, notes = compiled_refs(keras3, IO)
    assert [str(r) for r in refs] == ["pr_auc@click", "accuracy@click", "mae@price", "logloss@click", "rmse@price"]
    tf_keras = {"loss": ["binary_crossentropy", "mse"],
                "metrics": [[{"class_name": "AUC", "config": {"name": "click_auc", "curve": "ROC"}},
                             {"class_name": "MeanMetricWrapper", "config": {"fn": "binary_accuracy"}}],
                            [{"class_name": "Precision", "config": {}}]]}
    refs, notes = compiled_refs(tf_keras, IO)
    assert [str(r) for r in refs] == ["auc@click", "accuracy@click", "logloss", "rmse"]
    assert notes == ["compiled metric(s) Precision have no tfdeploy counterpart: pass --metric module:function to "
                     "judge by them"]
    keras_2_0 = {"loss": "binary_crossentropy", "metrics": ["accuracy"], "optimizer_config": {}}
    assert [str(r) for r in compiled_refs(keras_2_0, IO)[0]] == ["accuracy", "logloss"]


def test_plans_pick_what_a_practitioner_would_and_flag_uninformative_accuracy(ranking):
    y, p = ranking
    io = ModelIO(IO.inputs, (IO.outputs[0],))
    plan = build_plan(io, {"click": p}, {"click": y}, compiled={"loss": "binary_crossentropy", "metrics": ["accuracy"]},
                      compiled_from="ranker.keras")
    assert [str(r) for r in plan.chosen] == ["accuracy", "logloss", "auc"]
    assert plan.source == "compiled metrics of ranker.keras" and str(plan.driving) == "logloss"
    assert any("accuracy on 'click' says little: always answering the majority class scores" in n for n in plan.notes)
    assert str(build_plan(io, {"click": p}, {"click": y}).driving) == "auc"          # no compiled metrics: by head
    asked = build_plan(io, {"click": p}, {"click": y}, metrics=["accuracy"])
    assert str(asked.driving) == "accuracy"                                          # asked for: it drives
    label_free = build_plan(IO, {"click": p, "price": RNG.normal(0, 1, (N, 1))}, None)
    assert [str(r) for r in label_free.chosen] == ["agreement@click", "snr@price"]
    with pytest.raises(TfdeployError, match="Metric 'auc' compares with labels, and the data has none for click"):
        build_plan(io, {"click": p}, None, metrics=["auc"])
    with pytest.raises(TfdeployError, match="Metric 'mae' applies to values outputs; click \\(binary\\) is not one"):
        build_plan(io, {"click": p}, {"click": y}, metrics=["mae"])
    with pytest.raises(TfdeployError, match="names output 'clicks', which the model does not have"):
        build_plan(io, {"click": p}, {"click": y}, metrics=["auc@clicks"])


def test_the_whole_model_is_judged_by_its_worst_output():
    io = ModelIO(IO.inputs, (TensorInfo("a", "float32", (4,)), TensorInfo("b", "float32", (4,))))
    reference = {"a": RNG.normal(0, 1, (300, 4)), "b": RNG.normal(0, 1, (300, 4))}
    plan = build_plan(io, reference, None, metrics=["snr"])
    variant = {"a": reference["a"] + RNG.normal(0, 0.01, (300, 4)), "b": reference["b"] + RNG.normal(0, 0.1, (300, 4))}
    measured = measure_outputs(plan, None, reference, variant)
    assert measured.value(MetricRef("snr"), plan) == min(measured.values["a"]["snr"], measured.values["b"]["snr"])
    assert measured.values["b"]["snr"] == pytest.approx(20, abs=0.5)
    assert measured.drop(measure_outputs(plan, None, reference), MetricRef("snr"), plan) == pytest.approx(
        200 - measured.values["b"]["snr"])
    assert Measured({"a": {"snr": None}}).value(MetricRef("snr"), plan) is None


def test_the_docs_metric_table_is_the_registry():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "scripts" / "make_doc_tables.py"
    spec = importlib.util.spec_from_file_location("make_doc_tables", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    text = module.DOC.read_text()
    assert module.render(text) == text, "docs/compress.md is stale: run python scripts/make_doc_tables.py"
    assert all(f"| `{name}` |" in text for name in REGISTRY.names())
