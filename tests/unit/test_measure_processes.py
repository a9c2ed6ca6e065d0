"""Fresh-process measurements: one runner for every child, errors named; no import cycle between measure modules."""

import subprocess
import sys

import pytest

from tfdeploy.errors import TfdeployError
from tfdeploy.measure.processes import run_child


def test_a_failing_child_is_named_with_its_last_error_line(tmp_path):
    with pytest.raises(TfdeployError, match=r"^Cold-start measurement failed: .*No such file.*\. "
                                            r"Received: path='missing'$"):
        run_child("json.tool", [str(tmp_path / "missing.json")], "Cold-start measurement", "path='missing'")


def test_a_child_without_json_and_a_slow_child_are_named():
    with pytest.raises(TfdeployError, match="printed no JSON result .*Received: old='1', new='2'"):
        run_child("this", [], "Hot-swap run", "old='1', new='2'")
    with pytest.raises(TfdeployError, match=r"no result within 0.5 s\. Received: path='x'"):
        run_child("timeit", ["-n", "1", "import time; time.sleep(30)"], "Cold-start measurement", "path='x'",
                  timeout=0.5)


def test_a_child_json_result_is_returned(tmp_path):
    (tmp_path / "r.json").write_text('{"first_ms": 1.5}')
    assert run_child("json.tool", ["--compact", str(tmp_path / "r.json")], "m", "path='r'") == {"first_ms": 1.5}


@pytest.mark.parametrize("module, must_not_import", [
    ("tfdeploy.measure.coldstart", ["tfdeploy.measure.benchmark", "tfdeploy.measure.hot_swap"]),
    ("tfdeploy.measure.hot_swap", ["tfdeploy.measure.benchmark", "tfdeploy.measure.coldstart"]),
    ("tfdeploy.serving.config", ["tfdeploy.serving.export", "numpy", "tensorflow"]),
])
def test_measure_modules_do_not_import_each_other(module, must_not_import):
    code = f"import sys, {module}; print(sorted(m for m in {must_not_import!r} if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
