"""Per-layer plans and the Pareto front, without TensorFlow."""

import json

import pytest

from tfdeploy.backend import WeightedOp
from tfdeploy.compression.auto import Objective, pareto_front
from tfdeploy.compression.litert_quantization import LayerPlan, Precision, mixed_assignment, plan_of, Sensitivity
from tfdeploy.compression.trials import Trial
from tfdeploy.errors import TfdeployError

OPS = [WeightedOp(0, "CONV_2D", "m/Conv1_relu/Relu6;m/Conv1/convolution", "Conv1", "float32", 864, 216),
       WeightedOp(1, "DEPTHWISE_CONV_2D", "m/block_1_depthwise_relu/Relu6", "block_1_depthwise", "float32", 288, 72),
       WeightedOp(2, "CONV_2D", "m/block_1_project_BN/add;m/block_1_project/convolution", "block_1_project",
                  "float32", 1024, 256),
       WeightedOp(3, "CONV_2D", "m/block_10_project_BN/add;m/block_10_project/convolution", "block_10_project",
                  "float32", 4096, 1024),
       WeightedOp(4, "FULLY_CONNECTED", "m/predictions/MatMul", "predictions", "float32", 400, 100)]


def test_plans_parse_from_text_json_and_dicts(tmp_path):
    text = LayerPlan.parse("default=int8, Conv1=int4 ,predictions=float")
    assert text == LayerPlan(Precision.INT8, (("Conv1", Precision.INT4), ("predictions", Precision.FLOAT)))
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(text.to_dict()))
    assert LayerPlan.parse(path) == LayerPlan.parse(str(path)) == LayerPlan.parse(text.to_dict()) == text
    assert LayerPlan.parse(None) == LayerPlan() and LayerPlan().default is Precision.INT4


@pytest.mark.parametrize("value, message", [
    ("Conv1=int2", "Unknown precision in the layer plan .*use one of int4, int8, float"),
    ("Conv1", "NAME=PRECISION pairs separated by commas"),
])
def test_bad_plans_say_what_a_plan_is(value, message):
    with pytest.raises(TfdeployError, match=message):
        LayerPlan.parse(value)


def test_an_unreadable_plan_file_names_the_path(tmp_path):
    path = tmp_path / "plan.json"
    path.write_text("{not json")
    with pytest.raises(TfdeployError, match=f"Cannot read the layer plan.*Received: path='{path}'"):
        LayerPlan.parse(path)


def test_exact_names_win_over_regexes_and_later_entries_win():
    plan = LayerPlan.parse("block_1_project=int8,block_1.*=float,predictions=int8,predictions=float")
    assignment = plan.assign(OPS)
    assert assignment == {0: Precision.INT4, 1: Precision.FLOAT, 2: Precision.FLOAT, 3: Precision.FLOAT,
                          4: Precision.FLOAT}  # the regex block_1.* also catches block_10_project
    # a layer name is matched exactly: block_1_project does not also catch block_10_project
    only = LayerPlan.parse("block_1_project=int8").assign(OPS)
    assert only[2] is Precision.INT8 and only[3] is Precision.INT4


def test_a_key_matching_nothing_lists_the_layers():
    with pytest.raises(TfdeployError, match="'Conv9' matches no weighted layer of the model; its layers are Conv1, "
                                            "block_1_depthwise, block_1_project, block_10_project, predictions"):
        LayerPlan.parse("Conv9=int8").assign(OPS)


def test_a_search_assignment_round_trips_through_a_plan():
    ranked = [Sensitivity("predictions", 4, 0.5, 50), Sensitivity("Conv1", 0, 0.2, 108)]
    assignment = mixed_assignment(OPS, ranked, keep_int8=2)
    plan = plan_of(OPS, assignment)
    assert plan.to_dict() == {"default": "int4", "layers": {"Conv1": "int8", "predictions": "int8"}}
    assert plan.assign(OPS) == assignment
    assert ranked[0].per_byte == 0.01


def test_the_pareto_front_keeps_only_undominated_trials_cheapest_first():
    def trial(name, size, accuracy, latency=1.0):
        return Trial(name, size, accuracy, None, latency, True, 1.0)

    trials = [trial("int8", 300, 0.91), trial("int4", 200, 0.88), trial("float16", 700, 0.92),
              trial("dynamic", 350, 0.90), trial("broken", None, None), trial("int4-mixed", 210, 0.91)]
    assert pareto_front(trials, Objective.SIZE) == ["int4", "int4-mixed", "float16"]
    fast = [trial("a", 100, 0.9, latency=2.0), trial("b", 50, 0.8, latency=1.0)]
    assert pareto_front(fast, Objective.LATENCY) == ["b", "a"]
