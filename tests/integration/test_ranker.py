"""The ranker example at test size, and what GB-scale rankers need from export, warmup, loading and TFLite.

The big sizes (a 1.2 GB ranker exported, rehearsed over 24 swaps) are in ``scripts/bench_ranker_scale.py``.
"""

import json
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from tfdeploy import backend
from tfdeploy.backend import streaming
from tfdeploy.cli import main
from tfdeploy.model import examples, ranker_example
from tfdeploy.model.loading import load_model
from tfdeploy.serving.export import ExportConfig, export
from tfdeploy.serving.warmup import WARMUP_FILE, read_warmup, request_inputs


@pytest.fixture(scope="module")
def ranker(tmp_path_factory):
    out = tmp_path_factory.mktemp("ranker")
    return ranker_example.prepare_ranker(out, embedding_rows=5000, features=10, train_rows=4000, val_rows=1500,
                                         epochs=2, progress=None)


def test_the_cli_writes_a_ranker_with_named_int_string_and_float_features(tmp_path):
    result = CliRunner().invoke(main, ["example", "--kind", "ranker", "--embedding-rows", "2000", "--features", "7",
                                       "--epochs", "1", "--out", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["tables"]["user_id_embedding"] == {"rows": 2000, "dim": 32, "bytes": 2000 * 32 * 4}
    assert report["tables"]["item_id_embedding"]["rows"] == 500
    data = np.load(tmp_path / "data.npz")
    names = ["user_id", "item_id", "country", "hour", "weekday", "device", "category"]
    assert sorted(k[2:] for k in data if k.startswith("x:")) == sorted(names + list(ranker_example.DENSE_FEATURES))
    strings = {"country", "device"}
    for name in names:
        x, x_val = data[f"x:{name}"], data[f"x_val:{name}"]
        assert x.shape == (20_000, 1) and x_val.shape == (5_000, 1)
        assert x.dtype.kind == ("U" if name in strings else "i"), name
        assert report["features"][name] == ("string" if name in strings else "int64")
    for name in ranker_example.DENSE_FEATURES:
        assert data[f"x:{name}"].dtype == np.float32 and report["features"][name] == "float32"
    assert 0.01 <= data["y"].mean() <= 0.10 and set(np.unique(data["y"])) == {0, 1}
    users = data["x:user_id"][:, 0]
    counts = np.sort(np.unique(users, return_counts=True)[1])[::-1]
    assert counts[:20].sum() > 0.25 * len(users), "a few head ids carry much of the traffic (power law)"
    assert np.isin(data["x_val:user_id"][:, 0], users, invert=True).mean() > 0.02, "cold users in validation"
    assert np.char.find(data["x_val:country"][:, 0], "_new_").__ge__(0).mean() > 0.03, "unseen strings"
    loaded = load_model(tmp_path / "model.keras")
    io = backend.model_io(loaded.model)
    assert {t.name: t.dtype for t in io.inputs}["country"] == "string" and io.output_names == ["click"]
    assert 0.5 < report["auc"] < 1 and report["logloss"] > 0


def test_the_example_refuses_a_ranker_too_small_to_mean_anything(tmp_path):
    with pytest.raises(Exception, match="at least 1000 embedding rows"):
        examples.prepare_example(tmp_path, kind="ranker", embedding_rows=10)


def _checkpoint(version_dir):
    reader = backend.tf().train.load_checkpoint(str(version_dir / "variables" / "variables"))
    keys = [k for k in reader.get_variable_to_shape_map() if k != "_CHECKPOINTABLE_OBJECT_GRAPH"]
    data = sum(p.stat().st_size for p in (version_dir / "variables").glob("variables.data-*"))
    return keys, data


@pytest.mark.parametrize("which", ["ranker", "shipped example"])
def test_an_exported_version_stores_every_variable_once(which, ranker, tmp_path):
    model = ranker.model_path if which == "ranker" else examples.SHIPPED_MODEL_PATH
    report = export(ExportConfig(model, tmp_path / "m", warmup=False, progress=None))
    version = tmp_path / "m" / "1"
    keys, data = _checkpoint(version)
    params = sum(int(np.prod(v.shape)) for v in backend.variables_of(load_model(model).model))
    assert all(k.startswith("variables/") for k in keys), keys[:5]
    assert len(keys) == len(backend.variables_of(load_model(model).model))
    assert 4 * params <= data <= 4 * params + 64 * 1024, (data, 4 * params)
    assert report.memory.variables_bytes == data
    if which == "ranker":
        assert next(iter(report.memory.tables)) == "user_id_embedding/embeddings"
        assert report.memory.tables["user_id_embedding/embeddings"] == 5000 * 32 * 4
    assert "memory for a hot update" in report.to_table()


def test_warmup_records_carry_every_feature_with_real_and_unseen_ids(ranker, tmp_path):
    report = export(ExportConfig(ranker.model_path, tmp_path / "m", warmup_data=ranker.data_path,
                                 warmup_batch_sizes=(1, 8), progress=None))
    assert "unseen in training first" in report.warmup.source
    logs = read_warmup(tmp_path / "m" / "1" / WARMUP_FILE)
    data = np.load(ranker.data_path)
    names = set(ranker.features)
    records = [request_inputs(log.predict_log.request) for log in logs]
    assert [len(next(iter(r.values()))) for r in records] == [1, 8]
    for record in records:
        assert set(record) == names
        for name, value in record.items():
            known = np.concatenate([data[f"x:{name}"], data[f"x_val:{name}"]]).reshape(-1)
            if ranker.features[name] == "string":
                assert value.dtype == object and isinstance(value.reshape(-1)[0], bytes)
                value = value.astype(str)
            assert np.isin(value.reshape(-1), known).all(), f"{name}: every value is a real row's"
    first = records[0]
    unseen = [name for name in names if ranker.features[name] != "float32"
              and not np.isin(first[name].reshape(-1).astype(str), data[f"x:{name}"].reshape(-1).astype(str)).all()]
    assert unseen, "the first record is a validation row holding an id or string unseen in training"
    assert records[1]["user_id"].max() > 10, "realistic ids, not the first rows of each table"


def test_a_large_keras_file_streams_into_the_same_weights(ranker, monkeypatch):
    expected = backend.keras3().models.load_model(ranker.model_path).get_weights()
    monkeypatch.setattr(streaming, "STREAM_FROM_BYTES", 1)
    monkeypatch.setattr(streaming, "CHUNK_BYTES", 4096)  # the 5000x32 table goes in blocks of 32 rows
    with streaming.streamed_weights(ranker.model_path) as streamed:
        assert streamed
    loaded = load_model(ranker.model_path).model
    for want, got in zip(expected, loaded.get_weights()):
        np.testing.assert_array_equal(got, want)
    with zipfile.ZipFile(ranker.model_path) as archive:
        assert archive.getinfo(streaming.WEIGHTS_MEMBER).compress_type == zipfile.ZIP_STORED
    assert not list(Path(ranker.model_path).parent.glob("tmp*")), "the extracted weights file is removed"


def test_synthesized_ids_are_valid_for_the_smallest_table(ranker):
    """Without --data, bench and the rehearsal synthesize requests: ids must fit a 3-row table (gender)."""
    loaded = load_model(ranker.model_path).model
    from tfdeploy.io_spec import synthesize

    x = synthesize(backend.model_io(loaded), 16, np.random.default_rng(0))
    assert backend.call_model(loaded, x)["click"].shape == (16, 1)


@pytest.mark.slow
def test_a_tflite_file_over_the_2_gib_flatbuffer_limit_converts_and_runs():
    """TF 2.21 writes weights past the flatbuffer's 2 GiB (Buffer.offset); LiteRT runs the file. Built cheaply: one
    table just over the limit; the outputs for the last rows show the offsets are read right."""
    from tfdeploy.compression.tflite import FLATBUFFER_LIMIT, TfliteMode, convert

    keras = backend.keras3()
    rows = FLATBUFFER_LIMIT // (32 * 4) + 64
    ids = keras.Input((1,), dtype="int64", name="user_id")
    table = keras.layers.Embedding(rows, 32, embeddings_initializer="uniform", name="user_embedding")
    model = keras.Model(ids, keras.layers.Dense(1, name="click")(keras.layers.Flatten()(table(ids))))
    conversion = convert(model, TfliteMode.FLOAT32)
    assert len(conversion.blob) > FLATBUFFER_LIMIT
    assert any("over the 2 GiB flatbuffer limit" in note for note in conversion.notes), conversion.notes
    interpreter, _ = backend.tflite_interpreter(conversion.blob)
    runner = interpreter.get_signature_runner()
    for row in (0, rows // 2, rows - 1):
        x = np.array([[row]], dtype="int64")
        got = next(iter(runner(user_id=x).values()))
        np.testing.assert_allclose(got, model.predict(x, verbose=0), rtol=1e-6)


def test_embedding_int8_keeps_the_rankers_metrics_and_serves_a_quarter_of_the_table_bytes(ranker, tmp_path):
    from tfdeploy.compression import CompressConfig, compress
    from tfdeploy.compression.recipes import Recipe
    from tfdeploy.io_spec import take
    from tfdeploy.measure.predictors import saved_model_predictor
    from tfdeploy.model.data import read_data

    report = compress(CompressConfig(ranker.model_path, tmp_path / "c", recipes=[Recipe.EMBEDDING_INT8],
                                     data=ranker.data_path, progress=None))
    (variant,) = [v for v in report.variants if v.name == "embedding-int8"]
    assert variant.status != "failed", variant.error
    assert abs(variant.summary_drops["auc"]) < 0.005 and abs(variant.summary_drops["logloss"]) < 0.005
    assert "int8 codes with a float32 scale per row" in " ".join(variant.notes)
    float_version = export(ExportConfig(ranker.model_path, tmp_path / "f", warmup=False, progress=None))
    int8_version = export(ExportConfig(variant.path, tmp_path / "q", warmup=False, progress=None))
    assert int8_version.memory.variables_bytes < 0.4 * float_version.memory.variables_bytes
    codes = int8_version.memory.tables["user_id_embedding/embeddings"]
    assert codes == 5000 * 32, "one byte per weight"
    original = load_model(ranker.model_path).model
    data = read_data(ranker.data_path, backend.model_io(original))
    x = take(data.x_val, slice(0, 256))
    served = saved_model_predictor(int8_version.version_dir).predict(x)["click"]
    np.testing.assert_allclose(served, backend.call_model(original, x)["click"], atol=0.01)
