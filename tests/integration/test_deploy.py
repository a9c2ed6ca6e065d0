"""The one-command pipeline."""

import json

import pytest
from click.testing import CliRunner

from tfdeploy.cli import main
from tfdeploy.errors import TfdeployError
from tfdeploy.pipeline import DeployConfig, deploy
from tfdeploy.recipes import Recipe


def test_deploy_serves_a_tflite_variant_of_a_user_model(compress_inputs, tmp_path):
    lines = []
    report = deploy(DeployConfig(tmp_path / "run", model=compress_inputs["keras3"], data=compress_inputs["data"],
                                 recipes=[Recipe.PTQ_INT8], serve_variant="ptq-int8", model_name="tiny",
                                 bench_requests=20, progress=lines.append))
    assert list(report.steps) == ["gpus", "seeds", "compress", "export", "serving config", "verify", "bench"]
    version = tmp_path / "run" / "models" / "tiny" / "1"
    assert (version / "model.tflite").read_bytes() == (tmp_path / "run" / "compressed" / "ptq-int8.tflite").read_bytes()
    assert report.steps["verify"].passed
    assert (tmp_path / "run" / "serving" / "models.config").is_file()
    saved = json.loads((tmp_path / "run" / "report.json").read_text())
    assert saved["steps"]["export"]["version"] == 1 and saved["steps"]["verify"]["passed"] is True
    assert "## verify" in (tmp_path / "run" / "report.md").read_text()
    assert [line for line in lines if line.startswith("== ")] == [
        "== setup: GPUs and seeds ==", "== compress ==", "== export 'ptq-int8' for TF Serving ==",
        "== serving config ==", "== verify ==", "== bench =="]


def test_deploy_option_errors(compress_inputs, tmp_path):
    with pytest.raises(TfdeployError, match="Give a MODEL or --example"):
        deploy(DeployConfig(tmp_path / "a"))
    with pytest.raises(TfdeployError, match="variant to serve must be 'original' or one of the recipes run"):
        deploy(DeployConfig(tmp_path / "a", model=compress_inputs["keras3"], recipes=[Recipe.STRIP],
                            serve_variant="qat"))
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "keep").write_text("x")
    with pytest.raises(TfdeployError, match="not empty; pass --overwrite"):
        deploy(DeployConfig(tmp_path / "b", model=compress_inputs["keras3"], recipes=[Recipe.STRIP]))


@pytest.mark.slow
def test_deploy_example_end_to_end(tmp_path):
    """The README's main job, shortened: every step's numbers land in one report."""
    result = CliRunner().invoke(main, ["--seed", "0", "deploy", "--example", "--out", str(tmp_path / "run"),
                                       "--example-epochs", "1", "--epochs", "1", "--recipe", "strip,prune,ptq-int8",
                                       "--bench-requests", "30"])
    assert result.exit_code == 0, result.output
    for section in ("== example ==", "== compress ==", "== export ==", "== verify ==", "== bench =="):
        assert section in result.stdout, section
    assert "verify " in result.stdout and "all checks passed" in result.stdout
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    names = [v["name"] for v in report["steps"]["compress"]["variants"]]
    assert names == ["original", "strip", "prune", "ptq-int8"]
    assert report["steps"]["example"]["fine_tune"]["val_accuracy"] > 0.2
    assert (tmp_path / "run" / "models" / "fashion" / "1" / "assets.extra" / "tf_serving_warmup_requests").is_file()
