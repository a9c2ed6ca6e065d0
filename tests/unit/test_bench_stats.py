import threading
import time

import pytest

from tfdeploy.measure.timing import LatencyStats, RequestLog, percentile, run_load, time_call, time_calls
from tfdeploy.errors import TfdeployError


def test_nearest_rank_percentiles_on_known_samples():
    values = list(range(1, 1001))  # 1..1000 ms
    assert [percentile(values, q) for q in (50, 90, 99, 99.9)] == [500, 900, 990, 999]
    assert percentile([5.0], 99.9) == 5.0
    assert percentile([3, 1, 2], 50) == 2  # order does not matter


def test_latency_stats_of_a_skewed_sample():
    stats = LatencyStats.of([1.0] * 990 + [50.0] * 9 + [400.0])
    assert (stats.requests, stats.p50_ms, stats.p99_ms, stats.p999_ms, stats.max_ms) == (1000, 1.0, 1.0, 50.0, 400.0)
    assert stats.mean_ms == pytest.approx((990 + 450 + 400) / 1000)


def test_percentile_of_nothing_is_an_error():
    with pytest.raises(TfdeployError, match="No latency samples"):
        percentile([], 50)


def test_run_load_counts_requests_across_threads_and_records_errors():
    calls = []
    lock = threading.Lock()

    def call(index):
        with lock:
            calls.append(index)
            if len(calls) % 10 == 0:
                raise ValueError("boom")

    result = run_load(call, requests=50, duration_s=None, concurrency=4, warmup_requests=2)
    assert len(calls) == 50 + 4 * 2  # timed requests plus per-thread warm-up
    assert len(result.samples) + len(result.errors) == 50
    assert result.errors and all(e == "ValueError: boom" for e in result.errors)
    assert set(calls) == {0, 1, 2, 3}


def test_run_load_by_duration():
    result = run_load(lambda i: time.sleep(0.002), requests=None, duration_s=0.2, concurrency=2)
    assert 20 < len(result.samples) < 250
    assert all(ms >= 2.0 for _, ms in result.samples)
    with pytest.raises(TfdeployError, match="either a number of requests or a duration"):
        run_load(lambda i: None, requests=10, duration_s=1.0, concurrency=1)


def test_time_call_and_time_calls():
    result, ms = time_call(lambda: time.sleep(0.01) or "done")
    assert result == "done" and ms >= 10
    calls = []
    times = time_calls(lambda: calls.append(1), repeats=3, warmup=2)
    assert len(times) == 3 and len(calls) == 5 and all(t >= 0 for t in times)


def test_request_log_records_tags_and_errors():
    log = RequestLog()
    seen = []
    assert log.request(lambda: None, tag="N", on_sample=lambda: seen.append(1))
    assert not log.request(lambda: 1 / 0, tag="N+1")
    assert [tag for _, _, tag in log.samples] == ["N"] and seen == [1]
    assert log.errors == ["ZeroDivisionError: division by zero"]
    start_s, ms, _ = log.samples[0]
    assert 0 <= start_s <= log.elapsed_s() and ms >= 0
