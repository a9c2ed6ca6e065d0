import gzip
import struct

import numpy as np
import pytest

from tfdeploy.model import examples
from tfdeploy.errors import TfdeployError


def write_idx(path, array):
    header = struct.pack(">BBBB", 0, 0, 8, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as handle:
        handle.write(header + array.astype(np.uint8).tobytes())


def test_read_idx_round_trip(tmp_path):
    array = np.arange(2 * 3 * 4).reshape(2, 3, 4)
    write_idx(tmp_path / "a.gz", array)
    np.testing.assert_array_equal(examples.read_idx(tmp_path / "a.gz"), array)


def test_read_idx_rejects_truncated_and_bad_magic(tmp_path):
    array = np.zeros((5, 4, 4))
    write_idx(tmp_path / "a.gz", array)
    raw = gzip.decompress((tmp_path / "a.gz").read_bytes())
    (tmp_path / "short.gz").write_bytes(gzip.compress(raw[:-3]))
    with pytest.raises(TfdeployError, match="truncated: header says \\(5, 4, 4\\), found 77 values"):
        examples.read_idx(tmp_path / "short.gz")
    (tmp_path / "bad.gz").write_bytes(gzip.compress(b"\x01\x02\x03\x04" + raw[4:]))
    with pytest.raises(TfdeployError, match="bad magic"):
        examples.read_idx(tmp_path / "bad.gz")


def test_read_fashion_mnist_from_a_user_directory(tmp_path):
    for name, shape in [("train-images-idx3-ubyte.gz", (6, 28, 28)), ("train-labels-idx1-ubyte.gz", (6,)),
                        ("t10k-images-idx3-ubyte.gz", (2, 28, 28)), ("t10k-labels-idx1-ubyte.gz", (2,))]:
        write_idx(tmp_path / name, np.ones(shape))
    (x, y), (xt, yt), where = examples.read_fashion_mnist(tmp_path)
    assert (x.shape, y.shape, xt.shape, yt.shape, where) == ((6, 28, 28), (6,), (2, 28, 28), (2,), tmp_path)


def test_read_fashion_mnist_missing_files_names_the_places(tmp_path):
    with pytest.raises(TfdeployError, match="dataset-fashion-mnist.*Received: searched=\\[.*" + tmp_path.name):
        examples.read_fashion_mnist(tmp_path)


def test_packaged_subset_is_balanced_real_data():
    data = examples.example_dataset()
    assert data.x.shape == (4000, 32, 32, 3) and data.x_val.shape == (1000, 32, 32, 3)
    assert np.bincount(data.y).tolist() == [400] * 10
    assert np.bincount(data.y_val).tolist() == [100] * 10
    assert data.x.min() == -1.0 and data.x.max() == 1.0
    # padding is the background value; the three channels are copies
    assert np.all(data.x[:, :2] == -1.0)
    np.testing.assert_array_equal(data.x[..., 0], data.x[..., 2])


def test_example_rejects_small_images():
    with pytest.raises(TfdeployError, match="at least 32×32. Received: image_size=28"):
        examples.example_dataset(image_size=28)
