import numpy as np
import pytest
from click.testing import CliRunner

from tfdeploy import examples
from tfdeploy.cli import main
from tfdeploy.model import load_model


def test_example_model_is_flat_mobilenetv2(keras3):
    model = examples.build_example_model()
    assert model.name == "mobilenetv2_fashion"
    assert model.input_shape == (None, 32, 32, 3) and model.output_shape == (None, 10)
    assert not any(isinstance(layer, keras3.Model) for layer in model.layers), "no nested models (TFMOT)"
    assert {l.momentum for l in model.layers if isinstance(l, keras3.layers.BatchNormalization)} == {0.9}


@pytest.mark.slow
def test_example_command_fine_tunes_and_writes_files(tmp_path):
    out = tmp_path / "example"
    result = CliRunner().invoke(main, ["--seed", "0", "example", "--out", str(out), "--epochs", "1"])
    assert result.exit_code == 0, result.output
    assert "fine-tune epoch 1/1" in result.stderr
    accuracy = float(next(l for l in result.stdout.splitlines() if l.startswith("validation accuracy")).split()[-1])
    assert accuracy > 0.2  # 10 classes: chance is 0.1
    loaded = load_model(out / "model.keras", compile=True)
    assert getattr(loaded.model, "optimizer", None) is None
    with np.load(out / "data.npz") as data:
        assert data["x"].shape == (4000, 32, 32, 3) and data["x_val"].shape == (1000, 32, 32, 3)
    again = CliRunner().invoke(main, ["example", "--out", str(out), "--epochs", "1"])
    assert again.exit_code == 2 and "already exists; pass --overwrite" in again.stderr
