"""bench against a running TF Serving: grpc:// and http:// targets, served by tests/serving_stub.py."""

from __future__ import annotations

import json
import shutil
import socket

import numpy as np
import pytest
from click.testing import CliRunner

from serving_stub import StubServing
from tfdeploy.cli import main
from tfdeploy.errors import TfdeployError
from tfdeploy.measure.benchmark import BenchConfig, bench
from tfdeploy.measure.predictors import request_batch, saved_model_predictor
from tfdeploy.measure.remote import connect, remote_predictor
from tfdeploy.serving.export import ExportConfig, export

SCHEMES = ("grpc", "rest")


def mixed_model(keras, seed):
    """Two inputs of two dtypes (float32 features, int32 ids), two outputs."""
    keras.utils.set_random_seed(seed)
    features = keras.Input((3,), name="features")
    ids = keras.Input((4,), dtype="int32", name="ids")
    pooled = keras.layers.GlobalAveragePooling1D(name="pool")(keras.layers.Embedding(10, 4, name="embed")(ids))
    hidden = keras.layers.Concatenate(name="concat")([features, pooled])
    return keras.Model({"features": features, "ids": ids},
                       {"probabilities": keras.layers.Dense(3, activation="softmax", name="probabilities")(hidden),
                        "score": keras.layers.Dense(1, name="score")(hidden)}, name="mixed")


def text_model(keras):
    """Raw strings in, one output."""
    keras.utils.set_random_seed(0)
    text = keras.Input((1,), dtype="string", name="text")
    ids = keras.layers.StringLookup(vocabulary=["the", "model", "serves"], name="lookup")(text)
    hidden = keras.layers.Flatten(name="flat")(keras.layers.Embedding(5, 4, name="embed")(ids))
    return keras.Model(text, keras.layers.Dense(2, activation="softmax", name="label")(hidden), name="text")


@pytest.fixture(scope="module")
def exported(keras3, tmp_path_factory):
    """Versions 1 and 2 of the mixed model and version 1 of the text model (and their .keras files)."""
    root = tmp_path_factory.mktemp("served")
    dirs = {}
    for name, model in (("mixed_1", mixed_model(keras3, 0)), ("mixed_2", mixed_model(keras3, 1)),
                        ("text_1", text_model(keras3))):
        model.save(root / f"{name}.keras")
        base = root / name.split("_")[0]
        dirs[name] = export(ExportConfig(root / f"{name}.keras", base, progress=None)).version_dir
    return root, dirs


@pytest.fixture(scope="module")
def served(exported):
    """The stand-in server: mixed versions 1 and 2 (labels stable=1, canary=2), text version 1."""
    root, dirs = exported
    with StubServing({"mixed": root / "mixed", "text": root / "text"},
                     labels={"mixed": {"stable": 1, "canary": 2}}) as server:
        yield server, dirs


@pytest.fixture
def watched(exported, tmp_path):
    """A server polling a base dir that holds version 1 of the mixed model, as TF Serving's file-system source."""
    root, dirs = exported
    base = tmp_path / "swap"
    shutil.copytree(dirs["mixed_1"], base / "1")
    with StubServing({"swap": base}, poll_s=0.2) as server:
        yield server, base, root / "mixed_2.keras"


def url(server, scheme, model, version=None, label=None):
    if scheme == "grpc":
        return server.grpc_url(model, f"/{version}" if version else f"@{label}" if label else "")
    return server.rest_url(model, f"/versions/{version}" if version else f"/labels/{label}" if label else "")


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("scheme", SCHEMES)
def test_the_served_signature_is_read_back_and_predictions_equal_the_saved_model(served, scheme):
    server, dirs = served
    predictor = remote_predictor(url(server, scheme, "mixed"))
    assert [(t.name, t.dtype, t.shape) for t in predictor.io.inputs] == [("features", "float32", (3,)),
                                                                         ("ids", "int32", (4,))]
    assert predictor.io.output_names == ["probabilities", "score"]
    x = request_batch(predictor.io, 5, None, seed=0)
    for version, label, expected_dir in ((None, None, "mixed_2"), (1, None, "mixed_1"), (None, "stable", "mixed_1"),
                                         (None, "canary", "mixed_2")):
        client = connect(url(server, scheme, "mixed", version, label))
        outputs, answered = client.predict(x, "serving_default", predictor.io)
        local = saved_model_predictor(dirs[expected_dir]).predict(x)
        assert sorted(outputs) == ["probabilities", "score"]
        for key in outputs:
            np.testing.assert_array_equal(outputs[key], local[key])
            assert outputs[key].dtype == np.float32
        assert answered == (int(expected_dir[-1]) if scheme == "grpc" else None)  # REST does not say


@pytest.mark.parametrize("scheme", SCHEMES)
def test_string_inputs_travel_as_tensors_and_b64(served, scheme):
    server, dirs = served
    predictor = remote_predictor(url(server, scheme, "text"))
    assert [(t.name, t.dtype, t.shape) for t in predictor.io.inputs] == [("text", "string", (1,))]
    x = {"text": np.array([[b"the model"], [b"serves"], ["caf\u00e9".encode()]], dtype=object)}
    np.testing.assert_array_equal(predictor.predict(x)["label"], saved_model_predictor(dirs["text_1"]).predict(x)["label"])


def test_bench_mixes_grpc_rest_and_a_local_version(served, tmp_path):
    server, dirs = served
    grpc_url, rest_url = url(server, "grpc", "mixed"), url(server, "rest", "mixed")
    report = bench(BenchConfig([grpc_url, rest_url, dirs["mixed_2"]], batch_sizes=(1, 4), requests=20, concurrency=2,
                               warmup_requests=2, cold_start=False, json_path=tmp_path / "b.json", progress=None))
    assert [(r.artifact, r.runtime.split(" ")[:3], r.batch_size) for r in report.results] == [
        (grpc_url, ["TF", "Serving", "gRPC"], 1), (grpc_url, ["TF", "Serving", "gRPC"], 4),
        (rest_url, ["TF", "Serving", "REST"], 1), (rest_url, ["TF", "Serving", "REST"], 4),
        (dirs["mixed_2"], ["SavedModel", "signature", "serving_default"], 1),
        (dirs["mixed_2"], ["SavedModel", "signature", "serving_default"], 4)]
    for result in report.results:
        s = result.stats
        assert s.requests == 20 and result.errors == 0
        assert 0 < s.p50_ms <= s.p90_ms <= s.p99_ms <= s.p999_ms <= s.max_ms
        assert result.throughput_rps > 0 and result.throughput_samples_s == pytest.approx(
            result.throughput_rps * result.batch_size)
    table = report.to_table()
    assert grpc_url in table and f"{rest_url} vs {grpc_url} (batch 1): p50 ×" in table
    assert json.loads((tmp_path / "b.json").read_text())["results"][0]["artifact"] == grpc_url


@pytest.mark.parametrize("scheme", SCHEMES)
def test_failed_requests_are_counted_and_a_dead_target_shows_the_first_error(served, scheme):
    server, _ = served
    target = url(server, scheme, "mixed")
    try:
        server.fail_every = 3
        result = bench(BenchConfig([target], requests=30, warmup_requests=2, concurrency=2, progress=None)).results[0]
        assert result.errors > 0 and result.stats.requests + result.errors == 30
        server.fail_every = 1
        with pytest.raises(TfdeployError, match=r"Every request to .+ failed: \[.*(StatusCode.INTERNAL|HTTP 500): "
                                                r"injected failure"):
            bench(BenchConfig([target], requests=5, progress=None))
    finally:
        server.fail_every = 0


def test_cold_start_is_not_measured_for_remote_targets(served):
    server, _ = served
    report = bench(BenchConfig([url(server, "grpc", "mixed")], requests=5, progress=None))
    assert report.cold_starts == {}
    assert "cold start: not measured for remote targets" in report.to_table()


@pytest.mark.parametrize("scheme,expected", [
    ("grpc", r"Cannot reach TF Serving at grpc://127\.0\.0\.1:\d+/mixed \(StatusCode\.UNAVAILABLE: .*\); is the server "
             r"running and the gRPC port \(--port, 8500\) published\? Received: target='grpc://127"),
    ("rest", r"Cannot reach TF Serving's REST API at http://127\.0\.0\.1:\d+/v1/models/mixed \(ConnectionRefusedError"
             r".*\); is the server running and the REST port \(--rest_api_port, 8501\) published\? Received: target="),
])
def test_an_unreachable_server_names_the_target_and_the_fix(scheme, expected):
    port = free_port()
    target = f"grpc://127.0.0.1:{port}/mixed" if scheme == "grpc" else f"http://127.0.0.1:{port}/v1/models/mixed"
    with pytest.raises(TfdeployError, match=expected):
        bench(BenchConfig([target], requests=5, progress=None))


def test_swapped_ports_say_which_port_is_which(served):
    server, _ = served
    with pytest.raises(TfdeployError, match=r"Failed parsing HTTP/2.*\); is this TF Serving's gRPC port \(--port, "
                                            r"8500\), not its REST port \(8501\)\?"):
        remote_predictor(f"grpc://127.0.0.1:{server.rest_port}/mixed")
    with pytest.raises(TfdeployError, match=r"does not answer HTTP/1\.1 \(BadStatusLine\); is this TF Serving's REST "
                                            r"port \(--rest_api_port, 8501\), not its gRPC port \(8500\)\?"):
        remote_predictor(f"http://127.0.0.1:{server.grpc_port}/v1/models/mixed")


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("model,version,label,expected", [
    ("nope", None, None, r"\((StatusCode\.NOT_FOUND|HTTP 404): Servable not found for request: Latest\(nope\)\); "
                         r"TF Serving does not serve model 'nope': check the model name"),
    ("mixed", 9, None, r"\((StatusCode\.NOT_FOUND|HTTP 404): Servable not found for request: Specific\(mixed, 9\)\); "
                       r"TF Serving does not serve model 'mixed' version 9"),
    ("mixed", None, "gold", r"\((StatusCode\.INVALID_ARGUMENT|HTTP 400): Unrecognized servable version label: gold\); "
                            r"TF Serving does not serve model 'mixed' label 'gold'"),
])
def test_an_unknown_model_version_or_label_is_named(served, scheme, model, version, label, expected):
    server, _ = served
    target = url(server, scheme, model, version, label)
    with pytest.raises(TfdeployError, match=rf"Error from TF Serving at {target} {expected}.*Received: target="):
        remote_predictor(target)


def test_an_unknown_signature_lists_the_served_ones(served):
    server, _ = served
    with pytest.raises(TfdeployError, match=r"model 'mixed' at 127\.0\.0\.1:\d+ has no signature 'nope' \(it serves "
                                            r"\['serving_default'\]\); pass --signature NAME"):
        remote_predictor(url(server, "grpc", "mixed"), "nope")


def test_cli_bench_on_a_grpc_target(served):
    server, _ = served
    target = url(server, "grpc", "mixed")
    result = CliRunner().invoke(main, ["bench", target, "--requests", "20", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["results"][0]["artifact"] == target and data["results"][0]["stats"]["requests"] == 20
    assert data["results"][0]["errors"] == 0 and data["cold_starts"] == {}
    assert data["notes"] == [f"cold start: not measured for remote targets ({target})"]
    for argv, message in (([f"grpc://127.0.0.1:{free_port()}/mixed"], "Cannot reach TF Serving at grpc://"),
                          (["grpc://127.0.0.1:1/"], "Malformed grpc:// target: expected grpc://HOST:PORT/MODEL"),
                          ([target, "--signature", "nope"], "has no signature 'nope'")):
        bad = CliRunner().invoke(main, ["bench", *argv, "--requests", "5"])
        assert bad.exit_code == 2 and message in bad.stderr, bad.output


# --------------------------------------------------------------------------------------------------
# --hot-swap --publish: a version published into the base dir the server watches, under traffic


def publish_config(target, model, base, **overrides):
    return BenchConfig([target], hot_swap=True, publish=model, base_dir=base, hot_swap_steady_s=0.6,
                       hot_swap_after_s=1.2, requests=5, warmup_requests=1, concurrency=2, cold_start=False,
                       progress=None, **overrides)


def test_publish_under_grpc_traffic_measures_the_load_and_the_first_requests_on_the_new_version(watched, tmp_path):
    server, base, model = watched
    report = bench(publish_config(server.grpc_url("swap"), model, base, plot_path=tmp_path / "update.png"))
    swap = report.remote_swap
    assert (swap.old_version, swap.new_version, swap.errors) == (1, 2, 0)
    assert (base / "2" / "saved_model.pb").is_file() and sorted(p.name for p in base.iterdir()) == ["1", "2"]
    assert server.warmup_calls[("swap", 2)] == 1, "the server replayed the published warmup file before serving"
    event = swap.swaps[0]
    assert event.load_start_s < event.switch_s == event.ready_s < swap.end_s
    assert swap.end_s - event.switch_s >= 1.2
    summary = swap.summary
    assert summary.steady.requests > 0 and summary.swap.requests > 0 and summary.load_seconds[0] > 0
    assert len(summary.first_after_switch_ms[0]) == 5
    assert summary.steady.p50_ms <= summary.steady.p999_ms and summary.ratio > 0 and swap.windows
    assert "each response's model_spec.version" in swap.switch_seen_by
    table = report.to_table()
    assert f"version 1 -> 2 published into {base}" in table and "first requests on version 2 (ms): " in table
    assert (tmp_path / "update.png").read_bytes()[:4] == b"\x89PNG"


def test_publish_under_rest_traffic_from_the_cli(watched, tmp_path):
    server, base, model = watched
    result = CliRunner().invoke(main, ["bench", server.rest_url("swap"), "--hot-swap", "--publish", str(model),
                                       "--base-dir", str(base), "--hot-swap-seconds", "0.6,1.2", "--requests", "5",
                                       "--no-cold-start", "--json"])
    assert result.exit_code == 0, result.output
    swap = json.loads(result.stdout)["remote_swap"]
    assert (swap["old_version"], swap["new_version"], swap["errors"]) == (1, 2, 0)
    assert "polled every 0.05 s" in swap["switch_seen_by"]
    assert swap["summary"]["swap"]["requests"] > 0 and len(swap["summary"]["first_after_switch_ms"][0]) == 5


def test_a_server_that_does_not_watch_the_dir_times_out_with_the_fix(exported, tmp_path):
    root, dirs = exported
    base = tmp_path / "unwatched"
    shutil.copytree(dirs["mixed_1"], base / "1")
    with StubServing({"swap": base}) as server:  # loads what is there, never polls
        with pytest.raises(TfdeployError, match=rf"Version 2 was published into {base} but grpc://.+/swap did not "
                                                r"answer with it within 0.5 s\. Does the server watch this directory "
                                                r".*--file_system_poll_wait_seconds"):
            bench(publish_config(server.grpc_url("swap"), root / "mixed_2.keras", base, publish_timeout_s=0.5))


def test_a_version_the_server_fails_to_load_stops_a_rest_run_with_its_message(watched):
    server, base, model = watched
    server.fail_loads = True
    with pytest.raises(TfdeployError, match=rf"TF Serving failed to load version 2 published into {base}: injected "
                                            r"load failure\. Received: target='http://"):
        bench(publish_config(server.rest_url("swap"), model, base, publish_timeout_s=30))


def test_publish_refuses_a_pinned_target_and_a_dir_without_the_served_version(watched, exported, tmp_path):
    server, base, model = watched
    with pytest.raises(TfdeployError, match=r"pinned to a version or label never sees: give the model itself "
                                            r"\(grpc://127\.0\.0\.1:\d+/swap\)"):
        bench(publish_config(server.grpc_url("swap", "/1"), model, base))
    other = tmp_path / "other"
    shutil.copytree(exported[1]["mixed_2"], other / "2")
    with pytest.raises(TfdeployError, match=rf"answers {server.rest_url('swap')} with version 1, which is not in "
                                            rf"{other} \(versions \[2\]\): the server does not watch this directory"):
        bench(publish_config(server.rest_url("swap"), model, other))
    assert sorted(p.name for p in other.iterdir()) == ["2"], "nothing was published or staged"


@pytest.mark.parametrize("argv", [["--publish", "m.keras", "--base-dir", "d"], ["--hot-swap"],
                                  ["--hot-swap", "--publish", "m.keras"]])
def test_publish_options_are_checked_before_anything_runs(argv):
    result = CliRunner().invoke(main, ["bench", "grpc://127.0.0.1:1/m", *argv])
    assert result.exit_code == 2 and "takes one remote target with --hot-swap --publish MODEL --base-dir DIR" in \
        result.stderr
