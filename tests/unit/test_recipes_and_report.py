import dataclasses

import numpy as np
import pytest

from tfdeploy.errors import TfdeployError
from tfdeploy.compression.recipes import Recipe
from tfdeploy.report import Report, format_bytes, format_table


def test_parse_list_keeps_order_and_drops_repeats():
    assert Recipe.parse_list(" strip , strip") == [Recipe.STRIP]
    assert Recipe.parse_list("all") == list(Recipe)


@pytest.mark.parametrize("text, message", [("", "No recipe given"), ("strip,nope", "Unknown recipe 'nope'")])
def test_parse_list_errors(text, message):
    with pytest.raises(TfdeployError, match=message):
        Recipe.parse_list(text)


def test_every_recipe_has_a_spec():
    for recipe in Recipe:
        assert recipe.spec.summary


@dataclasses.dataclass
class _Sample(Report):
    name: str
    value: float
    arr: object


def test_report_to_dict_is_json_safe():
    report = _Sample("a", float("nan"), np.float32(1.5))
    assert report.to_dict() == {"name": "a", "value": None, "arr": 1.5}
    assert '"value": null' in report.to_json()


def test_format_table_aligns_and_formats():
    text = format_table([("a", 0.123456, None), ("long", True, [1, 2])], header=("k", "v", "w"))
    assert text.splitlines() == ["k     v       w", "----  ------  ----", "a     0.1235  -", "long  yes     1, 2"]


def test_format_bytes():
    assert [format_bytes(v) for v in (None, 12, 1536, 5 * 1024**2)] == ["-", "12 B", "1.5 KiB", "5.0 MiB"]
