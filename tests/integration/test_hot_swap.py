"""Hot-update rehearsal: versions loaded the way TF Serving loads them, swapped under traffic, with the ablation."""

import json
import os
import re

import numpy as np
import pytest
from click.testing import CliRunner

import corpus
from tfdeploy import backend
from tfdeploy.cli import main
from tfdeploy.errors import TfdeployError
from tfdeploy.measure.hot_swap import (ABLATION, Fix, HotSwapConfig, _ablated, config_name, plot_path_for,
                                      rehearse_hot_swap)
from tfdeploy.measure.predictors import keras_predictor, request_batch
from tfdeploy.model.loading import load_model
from tfdeploy.serving import ServedModel, ServingConfig, write_serving_config
from tfdeploy.serving.config.options import JEMALLOC
from tfdeploy.serving.config.protos import read_session_bundle_config
from tfdeploy.serving.export import ExportConfig, export


@pytest.fixture(scope="module")
def versions(compress_inputs, tmp_path_factory):
    """Versions 1 and 2 of the tiny classifier (warmup files), and a serving config for them."""
    base = tmp_path_factory.mktemp("swap") / "tiny"
    v1 = export(ExportConfig(compress_inputs["keras3"], base, warmup_batch_sizes=(1, 8)))
    v2 = export(ExportConfig(compress_inputs["tf_keras"], base, warmup_batch_sizes=(1, 8)))
    serving = base.parent / "serving"
    write_serving_config(ServingConfig([ServedModel("tiny", str(base))], serving, load_pool_threads=1,
                                       warmup_iterations=2))
    return v1.version_dir, v2.version_dir, serving


@pytest.mark.parametrize("name", ["two_inputs", "text_vectorization", "two_outputs_tabular", "nested_mobilenetv2",
                                  "bilstm_text", "gru_text", "custom_layer"])
def test_a_session_loaded_like_tf_serving_returns_the_keras_outputs(name, keras3, tmp_path):
    """Restore and init ops on the load pool, then the signature by tensor name: Keras's outputs (to float32
    rounding: the session's graph optimiser may fuse ops differently from tf.function)."""
    entry = corpus.build(name, keras3)
    model, data = corpus.save(entry, tmp_path)
    version = export(ExportConfig(model, tmp_path / "base", warmup=False, **corpus.loading(entry))).version_dir
    config_pb2 = backend.tf_proto("config_pb2")
    session_config = config_pb2.ConfigProto(session_inter_op_thread_pool=[
        config_pb2.ThreadPoolOptionProto(num_threads=2), config_pb2.ThreadPoolOptionProto(num_threads=1)])
    session = backend.ServingSession(version, session_config, load_pool_index=1)
    io = backend.signature_io(session.signatures["serving_default"])
    keras = keras_predictor(load_model(model, **corpus.loading(entry)).model)
    x = request_batch(io, 4, data, seed=0)
    got = session.run("serving_default", x)
    want = keras.predict(x)
    assert sorted(got) == sorted(want) == io.output_names
    for key in want:
        np.testing.assert_allclose(got[key], want[key], rtol=1e-6, atol=1e-7)
    session.close()


def test_the_ablation_adds_one_fix_per_run_in_fresh_processes(versions, tmp_path):
    v1, v2, serving = versions
    report = rehearse_hot_swap(HotSwapConfig(v1, v2, serving_config=serving, ablation=True, steady_s=1.0, gap_s=1.5,
                                             plot_path=tmp_path / "swap.png"))
    jemalloc = os.path.exists(JEMALLOC)
    expected = [config_name(fixes) for fixes in ABLATION if jemalloc or Fix.JEMALLOC not in fixes]
    assert [row["config"] for row in report.ablation] == expected
    assert [run.jemalloc for run in report.runs] == [False, False, False] + ([True] * 4 if jemalloc else [])
    assert bool(report.notes) is not jemalloc, "a missing jemalloc is reported with the way to install it"
    for run in report.runs:
        assert len(run.swaps) == 3 and run.errors == []
        assert all(s.load_start_s < s.ready_s <= s.switch_s <= s.unloaded_s for s in run.swaps)
        assert run.summary.steady.requests > 50 and run.summary.swap.requests > 0, "N kept serving during the loads"
        assert run.peak_rss_mb >= run.steady_rss_mb > 0 and run.rss_mb
        assert [w.start_s for w in run.windows] == sorted(w.start_s for w in run.windows)
        # Memory after each swap is the first RSS sample from 1 s after the old version's unload, before the next load
        bounds = [s.load_start_s for s in run.swaps[1:]] + [None]
        assert run.rss_after_swap_mb == [next((mb for t, mb in run.rss_mb if t >= s.unloaded_s + 1.0
                                               and (end is None or t < end)), None)
                                         for s, end in zip(run.swaps, bounds)]
        assert all(mb is not None for mb in run.rss_after_swap_mb), "sampled every 50 ms, 1.5 s between swaps"
        row = run.row()
        assert row["rss_drift_pct"] == pytest.approx(
            (row["rss_after_swap_mb"][-1] - row["steady_rss_mb"]) / row["steady_rss_mb"] * 100)
        assert len(row["swap_window_p999_ms"]) == len(row["swap_spike_seconds"]) == 3
        assert max(row["swap_window_p999_ms"]) >= row["worst_window_p999_ms"] > 0, "each swap's window reaches 1 s past it"
    no_fixes, warmup, pool = report.runs[:3]
    # Warmup: N's load and three swaps replay 2 records x 2 iterations (warmup_iterations=2) each.
    assert no_fixes.warmup_calls == 0 and warmup.warmup_calls == pool.warmup_calls == 4 * 2 * 2
    assert "session_run_load_threadpool_index" not in warmup.bundle_config
    assert "session_run_load_threadpool_index {\n  value: 1\n}" in pool.bundle_config
    assert "enable_model_warmup: true" in warmup.bundle_config and "enable_model_warmup" not in no_fixes.bundle_config
    # Without warmup the first request on each new version pays TF's lazy initialisation.
    cold_first = np.median([firsts[0] for firsts in no_fixes.summary.first_after_switch_ms])
    warm_first = np.median([firsts[0] for firsts in warmup.summary.first_after_switch_ms])
    assert cold_first > 3 * warm_first, (cold_first, warm_first)
    assert [p.rsplit("/", 1)[-1] for p in report.files] == [
        plot_path_for(tmp_path / "swap.png", row["config"]).name for row in report.ablation]
    assert all(open(p, "rb").read(4) == b"\x89PNG" for p in report.files)
    table = report.to_table()
    assert "swap p999" in table and "no fixes" in table and "first requests after each switch" in table


def test_bench_hot_swap_cli_writes_the_ablation_json(versions, tmp_path):
    v1, v2, serving = versions
    result = CliRunner().invoke(main, ["bench", v1, v2, "--hot-swap", "--serving-config", str(serving),
                                       "--hot-swap-seconds", "1,1", "--requests", "10", "--no-cold-start",
                                       "--json-out", str(tmp_path / "h.json")])
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "h.json").read_text())
    (row,) = data["ablation"]
    # the process the generated Dockerfile starts: jemalloc with its MALLOC_CONF (decay, huge pages)
    assert row["config"] == "warmup + load pool" + (" + jemalloc + jemalloc decay 1 s + huge pages"
                                                    if os.path.exists(JEMALLOC) else "")
    assert {"steady_p50_ms", "steady_p99_ms", "steady_p999_ms", "swap_p999_ms", "spike_seconds",
            "peak_rss_mb"} <= set(row)
    assert row["swap_p999_ms"] == data["hot_swap"]["runs"][0]["summary"]["swap"]["p999_ms"]
    assert "hot-update rehearsal" in result.stdout


@pytest.mark.parametrize("args, message", [
    (["--swaps", "2"], "--swaps"),
    (["--serving-config", "nowhere"], "No platform config here; write one with `tfdeploy serving-config`"),
])
def test_bench_hot_swap_refuses_bad_options(versions, args, message):
    v1, v2, _ = versions
    result = CliRunner().invoke(main, ["bench", v1, v2, "--hot-swap", "--no-cold-start", "--requests", "5", *args])
    assert result.exit_code == 2 and message in result.stderr, result.output
    with pytest.raises(TfdeployError, match="two SavedModel version directories"):
        rehearse_hot_swap(HotSwapConfig(v1, "not-a-version"))


def test_fixes_are_removed_from_the_generated_session_bundle_config(tmp_path):
    (tmp_path / "m" / "1").mkdir(parents=True)
    write_serving_config(ServingConfig([ServedModel("m", str(tmp_path / "m"))], tmp_path / "serving",
                                       load_pool_threads=3, warmup_iterations=4))
    bundle = read_session_bundle_config(tmp_path / "serving")
    assert bundle.enable_model_warmup and bundle.model_warmup_options.num_request_iterations.value == 4
    assert bundle.session_run_load_threadpool_index.value == 1
    assert [p.num_threads for p in bundle.session_config.session_inter_op_thread_pool] == [0, 3]
    none = _ablated(bundle, ())
    assert not none.enable_model_warmup and not none.HasField("session_run_load_threadpool_index")
    assert not none.session_config.session_inter_op_thread_pool and not none.HasField("model_warmup_options")
    warm = _ablated(bundle, (Fix.WARMUP,))
    assert warm.enable_model_warmup and not warm.session_config.session_inter_op_thread_pool
    assert _ablated(bundle, (Fix.WARMUP, Fix.LOAD_POOL)) == bundle


@pytest.mark.parametrize("text, message", [
    (None, "No platform config here"),
    ("platform_configs { key: 'tensorflow' value { nonsense: 1 } }", "does not parse as a PlatformConfigMap"),
    ("platform_configs { key: 'other' value { } }", "has no 'tensorflow' platform (it has ['other'])"),
])
def test_a_bad_platform_config_is_named(tmp_path, text, message):
    path = tmp_path / "platform_config.txt"
    if text is not None:
        path.write_text(text)
    with pytest.raises(TfdeployError, match=re.escape(message)) as info:
        read_session_bundle_config(tmp_path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("name", ["two_inputs", "gru_text"])
def test_the_rehearsal_swaps_multi_input_and_recurrent_models(name, keras3, tmp_path):
    """Requests are built from the served signature (several dtypes, token ids through a GRU's while loop)."""
    entry = corpus.build(name, keras3)
    model, data = corpus.save(entry, tmp_path)
    v1, v2 = (export(ExportConfig(model, tmp_path / "base", warmup_data=data, **corpus.loading(entry))).version_dir
              for _ in range(2))
    report = rehearse_hot_swap(HotSwapConfig(v1, v2, steady_s=1.0, gap_s=0.5))
    (run,) = report.runs
    assert run.errors == [] and len(run.swaps) == 3 and run.summary.swap.requests > 0
    assert Fix.WARMUP.value in run.fixes and run.warmup_calls > 0
