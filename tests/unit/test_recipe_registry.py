"""The recipe registry: what a recipe must declare, and what is derived from it."""

import dataclasses
from pathlib import Path

import pytest

from tfdeploy.compression.auto import CANDIDATES
from tfdeploy.compression.recipes import REGISTRY, Recipe
from tfdeploy.compression.registry import AutoHint, OutputKind, RecipeRegistry, RecipeSpec, recipe_enum
from tfdeploy.errors import TfdeployError

ROOT = Path(__file__).resolve().parents[2]


def spec(**changes):
    base = RecipeSpec("noop", "does nothing", OutputKind.KERAS, run=lambda session, recipe: None)
    return dataclasses.replace(base, **changes)


def test_the_enum_lists_every_registered_recipe_in_order():
    assert [r.value for r in Recipe] == REGISTRY.names()
    assert Recipe.PTQ_INT8 == "ptq-int8" and Recipe("cluster-int8") is Recipe.CLUSTER_INT8
    assert all(r.spec is REGISTRY[r.value] for r in Recipe)
    assert Recipe.choices()[-1] == "all" and Recipe.parse_list("all") == list(Recipe)


@pytest.mark.parametrize("changes, message", [
    ({"name": "Bad_Name"}, "lowercase words joined by '-'"),
    ({"name": "all"}, "not 'all'"),
    ({"summary": " "}, "one-line summary"),
    ({"output": ".onnx"}, "output must be an OutputKind"),
    ({"run": None}, "run must be callable"),
    ({"trains": True}, "needs data"),
    ({"needs_labels": True}, "needs data"),
    ({"auto": AutoHint(1, expected_size=0.0, expected_latency=0.5)}, "fractions of the original"),
])
def test_a_spec_that_breaks_the_contract_is_refused_at_registration(changes, message):
    with pytest.raises(TfdeployError, match=message):
        RecipeRegistry([spec(**changes)])


def test_names_are_unique():
    with pytest.raises(TfdeployError, match="unique. Received: name='noop' twice"):
        RecipeRegistry([spec(), spec(summary="another")])


def test_a_spec_must_declare_name_summary_output_and_run():
    required = [f.name for f in dataclasses.fields(RecipeSpec) if f.default is dataclasses.MISSING]
    assert required == ["name", "summary", "output", "run"]
    with pytest.raises(TypeError):
        RecipeSpec("x", "y", OutputKind.KERAS)  # no implementation


def test_a_new_registry_makes_its_own_enum():
    recipe = recipe_enum(RecipeRegistry([spec(), spec(name="two-step", needs_data=True, trains=True)]))
    assert [r.value for r in recipe] == ["noop", "two-step"] and recipe.TWO_STEP.spec.trains


def test_auto_candidates_come_from_the_registry():
    assert [c.recipe.value for c in CANDIDATES] == [s.name for s in REGISTRY.candidates()]
    assert [c.recipe.value for c in CANDIDATES][:3] == ["ptq-int4-weights", "ptq-int8", "prune-int8"]
    assert "ptq-int16x8" in [c.recipe.value for c in CANDIDATES]
    assert all(c.expected_size == c.recipe.spec.auto.expected_size for c in CANDIDATES)


def test_the_no_data_message_lists_the_recipes_that_need_none():
    assert REGISTRY.without_data() == ["strip", "tflite", "ptq-dynamic", "ptq-float16", "ptq-int4-weights",
                                       "ptq-mixed", "embedding-int8"]


def test_the_docs_table_is_the_registry():
    import importlib.util

    spec_ = importlib.util.spec_from_file_location("make_doc_tables", ROOT / "scripts" / "make_doc_tables.py")
    module = importlib.util.module_from_spec(spec_)
    spec_.loader.exec_module(module)
    text = module.DOC.read_text()
    assert module.render(text) == text, "docs/compress.md is stale: run python scripts/make_doc_tables.py"
    for name in REGISTRY.names():
        assert f"| `{name}` |" in text


def test_a_config_takes_recipe_names_too():
    from tfdeploy.compression import CompressConfig

    assert CompressConfig("m.keras", "out", recipes=["ptq-int8", "strip"]).recipes == [Recipe.PTQ_INT8, Recipe.STRIP]
    assert CompressConfig("m.keras", "out", recipes="prune,qat").recipes == [Recipe.PRUNE, Recipe.QAT]
    with pytest.raises(TfdeployError, match="Unknown recipe 'ptq-int3'; choose from strip, .*cluster-int8"):
        CompressConfig("m.keras", "out", recipes=["ptq-int3"])
