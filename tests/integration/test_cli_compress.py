import json

from click.testing import CliRunner

from tfdeploy.cli import main
from tfdeploy.model.loading import load_model


def test_compress_strip_cli(model_files, tmp_path):
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["compress", str(model_files["keras3.keras"]), "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    original, strip = report["variants"]
    assert strip["name"] == "strip" and strip["path"] == str(out / "strip.keras")
    assert strip["raw_bytes"] < original["raw_bytes"]
    assert strip["gzip_bytes"] < original["gzip_bytes"]
    assert strip["params"] == original["params"] > 0
    from tfdeploy.model.loading import optimizer_state_bytes

    weighed = optimizer_state_bytes(model_files["keras3.keras"])
    assert weighed > 0 and strip["notes"] == [
        f"optimizer state removed: {weighed / 1024:.1f} KiB of variables, "
        f"{100 * weighed / model_files['keras3.keras'].stat().st_size:.0f} % of the file"]
    assert getattr(load_model(out / "strip.keras", compile=True).model, "optimizer", None) is None
    # a second run does not replace the artifact without --overwrite
    again = CliRunner().invoke(main, ["compress", str(model_files["keras3.keras"]), "--out", str(out)])
    assert again.exit_code == 2
    assert "already exist; pass --overwrite" in again.stderr and "Loading" not in again.stderr
    assert CliRunner().invoke(main, ["compress", str(model_files["keras3.keras"]), "--out", str(out),
                                     "--overwrite"]).exit_code == 0


def test_compress_table_output(model_files, tmp_path):
    result = CliRunner().invoke(main, ["compress", str(model_files["tf_keras.h5"]), "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "strip.h5" not in result.stdout  # the table shows names, not paths
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"model: {model_files['tf_keras.h5']} (tf_keras); evaluated on 64 samples")
    assert lines[1].split()[:3] == ["variant", "format", "raw"]
    assert [line.split()[0] for line in lines[3:5]] == ["original", "strip"]
    assert (tmp_path / "strip.h5").is_file()
