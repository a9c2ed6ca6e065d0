"""Export for TF Serving, warmup files and offline verification, on tiny Keras 3 and tf_keras models."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from tfdeploy import backend
from tfdeploy.cli import main
from tfdeploy.errors import TfdeployError
from tfdeploy.serving.export import ExportConfig, export
from tfdeploy.serving.signature import read_signatures
from tfdeploy.serving.verification import verify
from tfdeploy.serving.warmup import MAX_WARMUP_RECORDS, WARMUP_FILE, predict_log, read_warmup, write_warmup, write_warmup_records


def snapshot(base):
    """Every path under base with its size (to prove a failed command changed nothing)."""
    return sorted((str(p.relative_to(base)), p.stat().st_size if p.is_file() else -1) for p in base.rglob("*"))


@pytest.fixture(scope="module")
def exported(model_files, tmp_path_factory):
    base = tmp_path_factory.mktemp("serving")
    reports = {}
    for flavour in ("keras3", "tf_keras"):
        key = "keras3.keras" if flavour == "keras3" else "tf_keras.h5"
        reports[flavour] = export(ExportConfig(model_files[key], base / flavour, warmup_batch_sizes=(1, 4, 8),
                                               extra_signatures={"serving_b8": 8}))
    return base, reports


@pytest.mark.parametrize("flavour", ["keras3", "tf_keras"])
def test_export_writes_a_numbered_version_with_named_signature(exported, flavour):
    base, reports = exported
    report = reports[flavour]
    assert report.version == 1 and report.version_dir == str(base / flavour / "1")
    version = base / flavour / "1"
    assert (version / "saved_model.pb").is_file() and (version / "variables").is_dir()
    signatures = read_signatures(version)
    default = signatures["serving_default"]
    assert list(default.inputs) == ["image"] and list(default.outputs) == ["probabilities"]
    assert default.inputs["image"].shape == (None, 8, 8, 3) and default.inputs["image"].dtype == "float32"
    assert signatures["serving_b8"].inputs["image"].shape == (8, 8, 8, 3)
    assert [p.name for p in (base / flavour).iterdir()] == ["1"], "no staging leftovers"


@pytest.mark.parametrize("flavour", ["keras3", "tf_keras"])
def test_warmup_records_follow_tf_serving_rules(exported, flavour):
    base, reports = exported
    logs = read_warmup(base / flavour / "1" / WARMUP_FILE)
    assert len(logs) == 3
    tf = backend.tf()
    shapes = []
    for log in logs:
        request = log.predict_log.request
        assert request.model_spec.signature_name == "serving_default"
        assert request.model_spec.name == flavour
        assert list(request.inputs) == ["image"]
        shapes.append(tf.make_ndarray(request.inputs["image"]).shape)
    assert shapes == [(1, 8, 8, 3), (4, 8, 8, 3), (8, 8, 8, 3)]
    assert reports[flavour].warmup.records == 3


def test_verify_passes_with_cold_start_and_parity(exported, model_files):
    base, _ = exported
    report = verify(base / "keras3" / "1", source_model=model_files["keras3.keras"])
    assert report.passed, report.to_table()
    names = [c.name for c in report.checks]
    assert "warmup replay through the SavedModel" in names
    replay = next(c for c in report.checks if c.name == "warmup replay through the SavedModel")
    assert replay.detail == "3 request(s) succeeded"
    assert report.parity["max_abs_diff"] <= 1e-5 and report.parity["agreement"] == 1.0
    cold, warm = report.cold_start["without_warmup"], report.cold_start["with_warmup"]
    assert cold["replay_warmup"] is False and warm["replay_warmup"] is True and warm["warmup_calls"] == 3
    assert cold["first_ms"] > 0 and warm["steady_p50_ms"] > 0


def test_version_auto_and_existing_version_is_never_touched(model_files, tmp_path):
    base = tmp_path / "m"
    first = export(ExportConfig(model_files["keras3.keras"], base))
    second = export(ExportConfig(model_files["keras3.keras"], base))
    assert (first.version, second.version) == (1, 2)
    before = snapshot(base)
    result = CliRunner().invoke(main, ["export", str(model_files["keras3.keras"]), "--base-dir", str(base),
                                       "--version", "1"])
    assert result.exit_code == 2
    assert "Version 1 already exists" in result.stderr and "--version auto for the next one (3)" in result.stderr
    assert snapshot(base) == before
    replaced = export(ExportConfig(model_files["tf_keras.h5"], base, version=1, overwrite=True))
    assert replaced.flavour == "tf_keras" and sorted(p.name for p in base.iterdir()) == ["1", "2"]


def test_failing_mid_export_leaves_nothing(model_files, tmp_path, monkeypatch):
    import tfdeploy.serving.export as export_module

    base = tmp_path / "m"
    export(ExportConfig(model_files["keras3.keras"], base))
    before = snapshot(base)

    def explode(*args, **kwargs):
        raise RuntimeError("disk full while writing warmup")

    monkeypatch.setattr(export_module, "write_warmup", explode)
    with pytest.raises(RuntimeError, match="disk full"):
        export(ExportConfig(model_files["keras3.keras"], base))
    assert snapshot(base) == before
    assert [p.name for p in base.iterdir()] == ["1"]


def test_warmup_from_real_data_and_batch_sizes(exported, tmp_path, tiny_xy):
    base, _ = exported
    x, _ = tiny_xy
    np.savez(tmp_path / "w.npz", x=x[:5])
    report = write_warmup(base / "tf_keras" / "1", data=tmp_path / "w.npz", batch_sizes=(2, 7), overwrite=True)
    tf = backend.tf()
    logs = read_warmup(report.path)
    arrays = [tf.make_ndarray(log.predict_log.request.inputs["image"]) for log in logs]
    np.testing.assert_array_equal(arrays[0], x[:2])
    np.testing.assert_array_equal(arrays[1], x[[2, 3, 4, 0, 1, 2, 3]])
    assert report.source.startswith("data ")


def _version_copy(exported, tmp_path):
    import shutil

    base, _ = exported
    target = tmp_path / "copy" / "1"
    shutil.copytree(base / "keras3" / "1", target)
    return target


def test_1001_records_are_refused_and_nothing_written(exported, tmp_path):
    version = _version_copy(exported, tmp_path)
    before = snapshot(version.parent)
    log = predict_log("m", "serving_default", {"image": np.zeros((1, 8, 8, 3), "float32")})
    with pytest.raises(TfdeployError, match=f"at most {MAX_WARMUP_RECORDS} warmup records.*Received: records=1001"):
        write_warmup_records(version, [log] * 1001)
    assert snapshot(version.parent) == before


def test_wrong_input_key_is_refused_at_write_and_named_by_verify(exported, tmp_path):
    version = _version_copy(exported, tmp_path)
    bad = predict_log("m", "serving_default", {"pixels": np.zeros((1, 8, 8, 3), "float32")})
    with pytest.raises(TfdeployError, match="input keys \\['pixels'\\] must equal the inputs of signature "
                                            "'serving_default': \\['image'\\]"):
        write_warmup_records(version, [bad])
    tf = backend.tf()
    with tf.io.TFRecordWriter(str(version / WARMUP_FILE)) as writer:  # what another tool might have written
        writer.write(bad.SerializeToString())
    report = verify(version, cold_start=False)
    assert not report.passed
    failed = {c.name: c.detail for c in report.failed()}
    assert "warmup records match the signature" in failed and "['pixels']" in failed["warmup records match the signature"]
    assert failed["warmup replay through the SavedModel"].startswith("not run")


def test_wrong_dtype_and_unknown_signature_are_refused(exported, tmp_path):
    version = _version_copy(exported, tmp_path)
    with pytest.raises(TfdeployError, match="input 'image' is int32\\[1, 8, 8, 3\\] but signature 'serving_default' "
                                            "expects float32\\[None, 8, 8, 3\\]"):
        write_warmup_records(version, [predict_log("m", "serving_default", {"image": np.zeros((1, 8, 8, 3), "int32")})])
    with pytest.raises(TfdeployError, match="model_spec.signature_name 'nope' is not in the SavedModel"):
        write_warmup_records(version, [predict_log("m", "nope", {"image": np.zeros((1, 8, 8, 3), "float32")})])


def test_truncated_warmup_file_is_a_named_failure(exported, tmp_path):
    version = _version_copy(exported, tmp_path)
    path = version / WARMUP_FILE
    path.write_bytes(path.read_bytes()[:-10])
    report = verify(version, cold_start=False)
    failed = {c.name: c.detail for c in report.failed()}
    # TF Serving would fail the load too: the fresh process replaying the warmup fails, naming the file
    serving = "serves in a fresh process (load, warmup replay, 31 requests)"
    assert list(failed) == [serving, "warmup file framing (TFRecord CRCs)"]
    assert "DATA_LOSS" in failed["warmup file framing (TFRecord CRCs)"]
    assert "Cold-start measurement failed" in failed[serving] and "tf_serving_warmup_requests" in failed[serving]
    result = CliRunner().invoke(main, ["verify", str(version), "--no-cold-start"])
    assert result.exit_code == 1 and "FAIL  warmup file framing" in result.stdout
    assert "Traceback" not in result.output


def test_missing_signature_and_non_numeric_directory(exported, tmp_path):
    import shutil

    version = _version_copy(exported, tmp_path)
    report = verify(version, signature_name="predict_images", cold_start=False)
    failed = {c.name: c.detail for c in report.failed()}
    assert "signature 'predict_images' present" in failed
    assert "has ['serving_b8', 'serving_default']" in failed["signature 'predict_images' present"]
    named = tmp_path / "latest"
    shutil.copytree(version, named)
    assert "numeric version directory" in {c.name for c in verify(named, cold_start=False).failed()}
    empty = tmp_path / "7"
    empty.mkdir()
    report = verify(empty, cold_start=False)
    assert [c.name for c in report.failed()] == ["saved_model.pb has a 'serve' MetaGraph"]


def test_tflite_variant_is_exported_beside_its_savedmodel(compress_inputs, tmp_path):
    from tfdeploy.compression import CompressConfig, compress
    from tfdeploy.compression.recipes import Recipe

    compress(CompressConfig(compress_inputs["keras3"], tmp_path / "c", recipes=[Recipe.PTQ_DYNAMIC], latency_repeats=2))
    tflite = tmp_path / "c" / "ptq-dynamic.tflite"
    with pytest.raises(TfdeployError, match="pass --source-model"):
        export(ExportConfig(tflite, tmp_path / "m"))
    assert not (tmp_path / "m").exists()
    report = export(ExportConfig(tflite, tmp_path / "m", source_model=compress_inputs["keras3"]))
    assert (tmp_path / "m" / "1" / "model.tflite").read_bytes() == tflite.read_bytes()
    checks = {c.name: c for c in verify(report.version_dir, cold_start=False).checks}
    assert checks["model.tflite loads and matches the signature"].passed
    assert "['image']" in checks["model.tflite loads and matches the signature"].detail


def test_export_cli_json(model_files, tmp_path, tiny_xy):
    x, _ = tiny_xy
    np.savez(tmp_path / "w.npz", x=x[:3])
    args = ["export", str(model_files["tf_keras.savedmodel"]), "--base-dir", str(tmp_path / "m"), "--warmup-data",
            str(tmp_path / "w.npz"), "--signature-batch-size", "4", "--extra-signature", "any_batch", "--json"]
    refused = CliRunner().invoke(main, args + ["--warmup-batch-sizes", "1,2"])
    assert refused.exit_code == 2
    assert "input 'image' is float32[1, 8, 8, 3] but signature 'serving_default' expects float32[4, 8, 8, 3]" \
        in refused.stderr
    assert list((tmp_path / "m").iterdir()) == []
    result = CliRunner().invoke(main, args + ["--warmup-batch-sizes", "4"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["signatures"]["serving_default"]["inputs"] == {"image": [4, 8, 8, 3]}
    assert report["signatures"]["any_batch"]["inputs"] == {"image": [-1, 8, 8, 3]}
    assert report["warmup"]["records"] == 1 and report["warmup"]["source"] == f"data {tmp_path / 'w.npz'}"
