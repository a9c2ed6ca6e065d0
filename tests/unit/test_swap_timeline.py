"""Swap statistics (windowed percentiles, spikes) and the hot-swap rehearsal's plans, without TensorFlow runs."""

import pytest

from tfdeploy.errors import TfdeployError
from tfdeploy.measure.hot_swap import (ABLATION, JEMALLOC_MISSING, HotSwapConfig, _plans, config_name,
                                       plot_path_for)
from tfdeploy.measure.swap_timeline import (Swap, Window, rss_after, rss_drift_pct, summarize_swaps, swap_costs,
                                            windowed_percentiles)
from tfdeploy.serving.config.options import JEMALLOC, JEMALLOC_DECAY_CONF, SERVER_MALLOC_CONF


def _traffic(spike_from=None, spike_to=None, spike_ms=50.0, rate=200, seconds=12):
    """1 ms requests at ``rate``/s, ``spike_ms`` between the two times, tagged by version."""
    samples = []
    for i in range(rate * seconds):
        t = i / rate
        slow = spike_from is not None and spike_from <= t < spike_to
        samples.append((t, spike_ms if slow else 1.0 + (i % 10) / 100, "N" if t < 5.5 else "N+1"))
    return samples


def test_windowed_percentiles_are_per_second_nearest_rank():
    samples = [(0.01 * i, float(i + 1), "N") for i in range(100)] + [(1.5, 7.0, "N")]
    first, second = windowed_percentiles(samples)
    assert (first.start_s, first.requests, first.p80_ms, first.p90_ms, first.p99_ms, first.p999_ms) == \
        (0.0, 100, 80.0, 90.0, 99.0, 100.0)
    assert (second.start_s, second.requests, second.p999_ms) == (1.0, 1, 7.0)


def test_a_spike_during_the_swap_is_measured_against_steady_traffic():
    summary = summarize_swaps(_traffic(5.0, 7.0), [Swap(5.0, 5.4, 5.5, 5.6)], end_s=12.0, new_tags=["N+1"])
    assert summary.steady.p999_ms == pytest.approx(1.09) and summary.swap.p999_ms == 50.0
    assert summary.swap_p999_ms == 50.0 and summary.worst_window_p999_ms == 50.0
    assert summary.ratio == pytest.approx(50.0 / 1.09)
    assert summary.spike_seconds == 2.0, "windows [5,6) and [6,7) are above 2x steady p999"
    assert summary.load_seconds == [pytest.approx(0.4)]
    assert summary.first_after_switch_ms == [[50.0] * 5]


def test_without_a_spike_the_swap_window_matches_steady():
    summary = summarize_swaps(_traffic(), [Swap(3.0, 3.5, 3.5, 3.6), Swap(6.0, 6.5, 6.5, 6.6),
                                           Swap(9.0, 9.5, 9.5, 9.6)], end_s=12.0)
    assert summary.spike_seconds == 0.0 and summary.ratio == pytest.approx(1.0, abs=0.01)
    assert len(summary.first_after_switch_ms) == 3


def test_spike_seconds_is_the_median_over_swaps():
    samples = _traffic(3.0, 6.0)  # only the first of three swaps spikes (3 s)
    summary = summarize_swaps(samples, [Swap(3.0, 3.5, 3.5), Swap(7.0, 7.5, 7.5), Swap(9.0, 9.5, 9.5)], end_s=12.0)
    assert summary.spike_seconds == 0.0


def test_summaries_need_swaps_and_requests_on_both_sides():
    with pytest.raises(TfdeployError, match="No version swap"):
        summarize_swaps(_traffic(), [], end_s=12.0)
    with pytest.raises(TfdeployError, match="Too few requests"):
        summarize_swaps([(0.1, 1.0, "N")], [Swap(0.0, 1.0, 1.0)], end_s=2.0)


def test_the_ablation_is_cumulative_and_ordered_as_the_published_case():
    assert [config_name(fixes) for fixes in ABLATION] == [
        "no fixes", "warmup", "warmup + load pool", "warmup + load pool + jemalloc",
        "warmup + load pool + jemalloc + oneDNN off", "warmup + load pool + jemalloc + oneDNN off + jemalloc decay 1 s",
        "warmup + load pool + jemalloc + oneDNN off + jemalloc decay 1 s + huge pages"]
    plans, notes = _plans(HotSwapConfig("1", "2", ablation=True), jemalloc=False)
    assert [name for name, _, _ in plans] == ["no fixes", "warmup", "warmup + load pool"] and notes == [JEMALLOC_MISSING]
    assert "apt-get install libjemalloc2" in JEMALLOC_MISSING
    plans, notes = _plans(HotSwapConfig("1", "2", ablation=True), jemalloc=True)
    preload = {"LD_PRELOAD": JEMALLOC}
    off = {**preload, "TF_ENABLE_ONEDNN_OPTS": "0"}
    assert [env for _, _, env in plans] == [{}, {}, {}, preload, off, {**off, "MALLOC_CONF": JEMALLOC_DECAY_CONF},
                                            {**off, "MALLOC_CONF": f"{JEMALLOC_DECAY_CONF},thp:always"}]
    assert notes == []
    as_served = {**preload, "MALLOC_CONF": SERVER_MALLOC_CONF}  # what the generated Dockerfile sets
    assert _plans(HotSwapConfig("1", "2"), jemalloc=True) == ([("serving config", None, as_served)], [])


def test_each_configuration_gets_its_own_timeline_file():
    assert plot_path_for("out/swap.png", "warmup + load pool + jemalloc").as_posix() == \
        "out/swap-warmup-load-pool-jemalloc.png"
    assert plot_path_for("out/swap", "no fixes").name == "swap-no-fixes.png"


def test_each_swap_costs_its_worst_window_its_spike_seconds_and_the_memory_left_after_the_unload():
    steady = [Window(float(t), 100, 1.0, 1.0, 1.0, 1.0) for t in range(4)]
    spiky = [Window(4.0, 80, 1.0, 2.0, 20.0, 40.0), Window(5.0, 90, 1.0, 1.0, 3.0, 5.0)]
    calm = [Window(float(t), 100, 1.0, 1.0, 1.0, 1.5) for t in range(6, 12)]
    swaps = [Swap(4.2, 5.1, 5.1, 5.3), Swap(8.0, 8.5, 8.5, 8.6)]
    rss = [(0.0, 1000.0), (5.0, 2100.0), (6.2, 1500.0), (6.4, 1400.0), (9.5, 1250.0), (11.0, 1100.0)]
    first, second = swap_costs(steady + spiky + calm, swaps, end_s=12.0, steady_p999_ms=1.0, rss_mb=rss)
    assert (first.window_p999_ms, first.spike_seconds, first.load_seconds) == (40.0, 2.0, pytest.approx(0.9))
    assert first.rss_after_mb == 1400.0, "the first sample from 1 s after the old version was unloaded (6.3 s)"
    assert (second.window_p999_ms, second.spike_seconds, second.rss_after_mb) == (1.5, 0.0, 1100.0)
    assert rss_drift_pct(1000.0, [first.rss_after_mb, second.rss_after_mb]) == pytest.approx(10.0), "the last one counts"
    assert rss_drift_pct(1000.0, [None]) is None
    assert rss_after(rss, 6.3, until_s=6.35) is None, "no sample in the window: not measured, not guessed"
