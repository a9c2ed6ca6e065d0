"""Data files bound to a model's named inputs and outputs (no TensorFlow needed)."""

import numpy as np
import pytest

from tfdeploy.model.data import Dataset, default_label_output, load_data, read_data
from tfdeploy.errors import TfdeployError
from tfdeploy.io_spec import ModelIO, TensorInfo, as_feed, sample, synthesize

IMAGE = ModelIO(inputs=(TensorInfo("image", "float32", (4, 4, 3)),),
                outputs=(TensorInfo("probabilities", "float32", (3,), "softmax"),))
MIXED = ModelIO(inputs=(TensorInfo("ids", "int32", (5,)), TensorInfo("meta", "float32", (2,)),
                        TensorInfo("text", "string", (1,))),
                outputs=(TensorInfo("value", "float32", (1,), "linear"), TensorInfo("class", "float32", (4,), "softmax")))


def test_single_input_npz_binds_to_the_input_name_and_holds_out_validation(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.zeros((10, 4, 4, 3)), y=np.arange(10) % 3)
    data = read_data(tmp_path / "d.npz", IMAGE)
    assert list(data.x) == ["image"] and data.x["image"].dtype == np.float32
    assert (len(data.x["image"]), len(data.x_val["image"])) == (8, 2)
    assert data.y_val["probabilities"].tolist() == [2, 0] and data.label_output == "probabilities"


def test_named_arrays_for_every_input_and_output(tmp_path):
    n = 6
    np.savez(tmp_path / "d.npz", **{"x:ids": np.ones((n, 5)), "x:meta": np.zeros((n, 2)),
                                    "x:text": np.asarray([["a b"]] * n), "y:class": np.arange(n) % 4,
                                    "y:value": np.zeros((n, 1)), "x_val:ids": np.ones((2, 5)),
                                    "x_val:meta": np.zeros((2, 2)), "x_val:text": np.asarray([["c"]] * 2),
                                    "y_val:class": np.array([1, 2])})
    data = read_data(tmp_path / "d.npz", MIXED)
    assert data.x["ids"].dtype == np.int32 and data.x["text"].dtype.kind == "U"
    assert sorted(data.y) == ["class", "value"] and data.label_output == "class"
    assert as_feed(data.x["text"], MIXED.input("text"))[0, 0] == b"a b"


def test_plain_x_for_a_multi_input_model_names_the_keys(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.zeros((4, 5)))
    with pytest.raises(TfdeployError, match=r"has 3 inputs \(ids, meta, text\), so the data needs one array per "
                                            r"input: x:ids, x:meta, x:text"):
        read_data(tmp_path / "d.npz", MIXED)


def test_missing_and_unknown_named_inputs(tmp_path):
    np.savez(tmp_path / "d.npz", **{"x:ids": np.ones((3, 5)), "x:metadata": np.zeros((3, 2))})
    with pytest.raises(TfdeployError, match=r"missing x:meta, x:text; no model input named 'metadata'"):
        read_data(tmp_path / "d.npz", MIXED)


def test_labels_for_an_output_the_model_lacks(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.zeros((3, 4, 4, 3)), **{"y:score": np.zeros(3)})
    with pytest.raises(TfdeployError, match=r"labels outputs the model does not have: score \(outputs: probabilities\)"):
        read_data(tmp_path / "d.npz", IMAGE)


def test_sample_shape_mismatch_names_the_array_and_both_shapes(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.zeros((2, 4, 4, 1)))
    with pytest.raises(TfdeployError, match=r"'x' has samples of shape \(4, 4, 1\), but model input 'image' takes "
                                            r"\(4, 4, 3\).*Received: x.shape=\(2, 4, 4, 1\)"):
        read_data(tmp_path / "d.npz", IMAGE)


def test_dtype_faults_are_named(tmp_path):
    good = {"meta": np.zeros((2, 2)), "text": np.asarray([["a"], ["b"]])}
    with pytest.raises(TfdeployError, match="input 'ids' takes integer ids \\(int32\\), but 'x:ids' holds fractional"):
        read_data(Dataset(x={**good, "ids": np.full((2, 5), 0.5)}), MIXED)
    with pytest.raises(TfdeployError, match="input 'text' takes strings, but 'x:text' holds float64"):
        read_data(Dataset(x={**good, "ids": np.ones((2, 5)), "text": np.zeros((2, 1))}), MIXED)
    with pytest.raises(TfdeployError, match="input 'image' takes float32, but 'x' holds strings"):
        read_data(Dataset(x=np.full((2, 4, 4, 3), "a")), IMAGE)


def test_file_faults(tmp_path):
    (tmp_path / "text.npz").write_text("x,y\n1,2\n")
    with pytest.raises(TfdeployError, match="not a NumPy .npz archive"):
        load_data(tmp_path / "text.npz")
    np.savez(tmp_path / "objects.npz", x=np.array([{"a": 1}], dtype=object))
    with pytest.raises(TfdeployError, match="object array, which tfdeploy does not unpickle"):
        load_data(tmp_path / "objects.npz")
    np.savez(tmp_path / "nox.npz", y=np.arange(3))
    with pytest.raises(TfdeployError, match="needs inputs: an array named 'x'.*Found arrays \\['y'\\]"):
        load_data(tmp_path / "nox.npz")
    np.savez(tmp_path / "both.npz", x=np.zeros(3), **{"x:a": np.zeros(3)})
    with pytest.raises(TfdeployError, match="both 'x' and named x:NAME arrays"):
        load_data(tmp_path / "both.npz")
    with pytest.raises(TfdeployError, match="No data at this path"):
        load_data(tmp_path / "missing.npz")
    (tmp_path / "data.csv").write_text("1,2")
    with pytest.raises(TfdeployError, match="must be an .npz file"):
        load_data(tmp_path / "data.csv")


def test_default_label_output_is_the_first_classification_head():
    assert default_label_output(MIXED) == "class"
    assert default_label_output(IMAGE) == "probabilities"
    binary = ModelIO(inputs=IMAGE.inputs, outputs=(TensorInfo("p", "float32", (1,), "sigmoid"),))
    assert binary.classification_outputs() == ["p"]


def test_sample_and_synthesize_are_reproducible():
    arrays = {"a": np.arange(100)[:, None], "b": np.arange(100)}
    first, again = sample(arrays, 5, seed=1), sample(arrays, 5, seed=1)
    assert first["a"][:, 0].tolist() == again["a"][:, 0].tolist() == first["b"].tolist()
    assert len(sample(arrays, 500)["a"]) == 100
    made = synthesize(MIXED, 3, np.random.default_rng(0))
    assert made["ids"].dtype == np.int32 and made["ids"].max() < 10 and made["text"].dtype == object
