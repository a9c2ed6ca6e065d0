import numpy as np
import pytest
from click.testing import CliRunner

from tfdeploy.model import examples
from tfdeploy.cli import main
from tfdeploy.model.loading import has_optimizer_state, load_model


def test_example_model_is_flat_mobilenetv2(keras3):
    model = examples.build_example_model()
    assert model.name == "mobilenetv2_fashion"
    assert model.input_shape == (None, 32, 32, 3) and model.output_shape == (None, 10)
    assert not any(isinstance(layer, keras3.Model) for layer in model.layers), "no nested models (TFMOT)"
    assert {l.momentum for l in model.layers if isinstance(l, keras3.layers.BatchNormalization)} == {0.9}


def test_shipped_model_is_converged_on_the_packaged_test_images():
    """The shipped model and its record agree: ≥ 88 % on the 1,000 packaged test images (all 10 classes)."""
    record = examples.shipped_training_record()
    model = load_model(examples.SHIPPED_MODEL_PATH).model
    data = examples.example_dataset()
    assert sorted(set(data.y_val.tolist())) == list(range(10)) and len(data.y_val) == 1000
    predicted = np.argmax(model.predict(data.x_val, batch_size=500, verbose=0), -1)
    accuracy = float(np.mean(predicted == data.y_val))
    assert accuracy == pytest.approx(record["test_accuracy_subset"], abs=0.002)
    assert accuracy >= 0.88
    assert record["test_accuracy_full"] >= 0.90 and record["test_images_full"] == 10000
    assert record["data"].startswith("Fashion-MNIST, all 60000 training images")
    assert not has_optimizer_state(examples.SHIPPED_MODEL_PATH)


@pytest.mark.skipif(not examples.DEBIAN_FASHION_MNIST.is_dir(),
                    reason="needs Debian's dataset-fashion-mnist (.ci/run installs it)")
def test_shipped_model_reaches_its_recorded_accuracy_on_the_full_test_set():
    record = examples.shipped_training_record()
    model = load_model(examples.SHIPPED_MODEL_PATH).model
    full = examples.example_dataset(full=True)
    accuracy = float(np.mean(np.argmax(model.predict(full.x_val, batch_size=500, verbose=0), -1) == full.y_val))
    assert len(full.y_val) == 10000
    assert accuracy == pytest.approx(record["test_accuracy_full"], abs=0.002) and accuracy >= 0.90


def test_example_command_writes_the_shipped_model_and_data(tmp_path):
    out = tmp_path / "example"
    result = CliRunner().invoke(main, ["example", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.joinpath("model.keras").read_bytes() == examples.SHIPPED_MODEL_PATH.read_bytes()
    assert "shipped: " in result.stdout and "Using the shipped MobileNetV2" in result.stderr
    with np.load(out / "data.npz") as data:
        assert data["x"].shape == (4000, 32, 32, 3) and data["x_val"].shape == (1000, 32, 32, 3)
    refused = CliRunner().invoke(main, ["example", "--out", str(tmp_path / "other"), "--alpha", "0.5"])
    assert refused.exit_code == 2 and "other sizes need train=True (--train)" in refused.stderr


@pytest.mark.slow
def test_example_command_trains_from_scratch_with_train(tmp_path):
    out = tmp_path / "example"
    result = CliRunner().invoke(main, ["--seed", "0", "example", "--train", "--out", str(out), "--epochs", "1"])
    assert result.exit_code == 0, result.output
    assert "fine-tune: 100%" in result.stderr and "epoch=1/1" in result.stderr
    accuracy = float(next(l for l in result.stdout.splitlines()
                          if l.startswith("accuracy on the 1,000 packaged test images")).split()[-1])
    assert accuracy > 0.2  # 10 classes: chance is 0.1
    assert "trained now: 1 epochs on 4000 images" in result.stdout
    loaded = load_model(out / "model.keras", compile=True)
    assert getattr(loaded.model, "optimizer", None) is None
    with np.load(out / "data.npz") as data:
        assert data["x"].shape == (4000, 32, 32, 3) and data["x_val"].shape == (1000, 32, 32, 3)
    again = CliRunner().invoke(main, ["example", "--out", str(out), "--epochs", "1"])
    assert again.exit_code == 2 and "already exists; pass --overwrite" in again.stderr
