import zipfile

import numpy as np
import pytest

from tfdeploy.backend import KerasFlavour
from tfdeploy.errors import TfdeployError
from tfdeploy.model.loading import artifact_size, load_model, parse_custom_objects, save_model


@pytest.mark.parametrize("key, flavour", [
    ("keras3.keras", KerasFlavour.KERAS3), ("keras3.h5", KerasFlavour.KERAS3),
    ("tf_keras.h5", KerasFlavour.TF_KERAS), ("tf_keras.keras", KerasFlavour.TF_KERAS),
    ("tf_keras.savedmodel", KerasFlavour.TF_KERAS), ("keras3.export", KerasFlavour.SAVED_MODEL),
])
def test_load_every_format_and_detect_the_writer(model_files, tiny_xy, key, flavour):
    loaded = load_model(model_files[key])
    assert loaded.flavour is flavour
    x = tiny_xy[0][:4]
    source = model_files["models"]["keras3" if key.startswith("keras3") else "tf_keras"]
    if flavour is KerasFlavour.SAVED_MODEL:  # called through its signature, whatever its keys are
        (key_in,), (key_out,) = loaded.model.io.input_names, loaded.model.io.output_names
        actual = np.asarray(loaded.model({key_in: x})[key_out])
    else:
        actual = loaded.model.predict(x, verbose=0)
    np.testing.assert_allclose(actual, source.predict(x, verbose=0), atol=1e-6)


def test_missing_path(tmp_path):
    with pytest.raises(TfdeployError, match=f"No model at this path. Received: path='{tmp_path}/nope.keras'"):
        load_model(tmp_path / "nope.keras")


def test_directory_without_saved_model_pb(tmp_path):
    with pytest.raises(TfdeployError, match=f"holds no saved_model.pb.*Received: path='{tmp_path}'"):
        load_model(tmp_path)


@pytest.mark.parametrize("key", ["keras3.keras", "tf_keras.h5", "keras3.h5"])
def test_truncated_file(model_files, tmp_path, key):
    source = model_files[key]
    broken = tmp_path / f"broken{source.suffix}"
    broken.write_bytes(source.read_bytes()[: source.stat().st_size // 2])
    with pytest.raises(TfdeployError, match=f"(truncated|corrupt).*Received: path='{broken}'"):
        load_model(broken)


def test_keras_archive_missing_weights(model_files, tmp_path):
    broken = tmp_path / "noweights.keras"
    with zipfile.ZipFile(model_files["keras3.keras"]) as src, zipfile.ZipFile(broken, "w") as dst:
        for item in src.infolist():
            if item.filename != "model.weights.h5":
                dst.writestr(item, src.read(item))
    with pytest.raises(TfdeployError, match="incomplete or corrupt.*model.weights.h5"):
        load_model(broken)


@pytest.mark.parametrize("flavour", ["keras3", "tf_keras"])
def test_custom_objects_needed_and_given(request, tmp_path, flavour):
    import custom_layers

    keras = request.getfixturevalue(flavour)
    scale = custom_layers.Scale if flavour == "keras3" else custom_layers.make_scale_layer(keras)
    model = keras.Sequential([keras.Input((3,)), scale(3.0, name="scale"), keras.layers.Dense(2)])
    path = tmp_path / "custom.keras"
    model.save(path)
    with pytest.raises(TfdeployError, match="custom class\\(es\\) Scale that is not available.*--custom-objects module:Name.*Received: path="):
        load_model(path)
    loaded = load_model(path, custom_objects={"Scale": scale})
    assert loaded.model.get_layer("scale").factor == 3.0
    if flavour == "keras3":
        assert parse_custom_objects(["custom_layers:Scale"]) == {"Scale": custom_layers.Scale}


def test_parse_custom_objects_errors():
    with pytest.raises(TfdeployError, match="module:name"):
        parse_custom_objects(["nocolon"])
    with pytest.raises(TfdeployError, match="Cannot import"):
        parse_custom_objects(["no_such_module_xyz:Thing"])
    with pytest.raises(TfdeployError, match="has no attribute 'Nope'"):
        parse_custom_objects(["os:Nope"])


@pytest.mark.parametrize("flavour, suffix", [("keras3", ".keras"), ("keras3", ".h5"),
                                             ("tf_keras", ".keras"), ("tf_keras", ".h5")])
def test_save_without_optimizer(model_files, tmp_path, flavour, suffix):
    model = model_files["models"][flavour]
    with_opt = tmp_path / f"with{suffix}"
    save_model(model, with_opt, include_optimizer=True)
    without = save_model(model, tmp_path / f"without{suffix}")
    assert getattr(model, "optimizer", None) is not None, "the caller's model keeps its optimizer"
    reloaded = load_model(without, compile=True).model
    assert getattr(reloaded, "optimizer", None) is None
    assert without.stat().st_size < with_opt.stat().st_size
    assert load_model(with_opt, compile=True).model.optimizer is not None
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_save_refuses_to_replace_unless_overwrite(model_files, tmp_path):
    model = model_files["models"]["keras3"]
    target = tmp_path / "m.keras"
    target.write_bytes(b"keep me")
    with pytest.raises(TfdeployError, match="--overwrite.*Received: path="):
        save_model(model, target)
    assert target.read_bytes() == b"keep me"
    save_model(model, target, overwrite=True)
    assert zipfile.is_zipfile(target)


def test_save_rejects_other_suffixes(model_files, tmp_path):
    with pytest.raises(TfdeployError, match="writes .keras or .h5"):
        save_model(model_files["models"]["keras3"], tmp_path / "m.pb")


def test_artifact_size_counts_directories(model_files):
    size = artifact_size(model_files["tf_keras.savedmodel"])
    assert size.raw_bytes > size.gzip_bytes > 0


THREADED_IMPORT = """
import sys, threading, zipfile
from tfdeploy import backend
importer = threading.Thread(target=backend.tf_keras)  # tf_keras imported first in another thread
importer.start()
importer.join()
tf_keras = backend.tf_keras()
model = tf_keras.Sequential([tf_keras.Input((3,)), tf_keras.layers.Dense(2)])
model.save(sys.argv[1] + "/a.keras")      # the first save in this thread: tf_keras turns zip saving off after it
tf_keras.models.load_model(sys.argv[1] + "/a.keras")
model.save(sys.argv[1] + "/b.keras")
print(zipfile.is_zipfile(sys.argv[1] + "/a.keras"), zipfile.is_zipfile(sys.argv[1] + "/b.keras"))
"""


def test_tf_keras_imported_in_another_thread_still_saves_keras_archives(tmp_path):
    """tf_keras's zip-saving switch is thread-local: imported in an --auto trial thread, the main thread's second
    .keras save wrote HDF5. tfdeploy's import turns it on in every thread."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", THREADED_IMPORT, str(tmp_path)], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["True", "True"], done.stdout
