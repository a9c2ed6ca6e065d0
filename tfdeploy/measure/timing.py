"""Timing: one place that reads the clock for latencies, and the summaries of what it measured.

* :func:`time_call` / :func:`time_calls`: wall time of one call / of a series after untimed warm-up calls;
* :class:`RequestLog`: thread-safe record of timed requests (start time, latency, tag) and errors,
  used by :func:`run_load` (``bench``) and by the hot-swap clients;
* :func:`percentile` and :class:`LatencyStats`: nearest-rank percentiles of latencies.

Example:
    >>> _, ms = time_call(lambda: sum(range(1000)))
    >>> ms >= 0
    True
"""

from __future__ import annotations

import dataclasses
import math
import threading
import time
from typing import Any, Callable, Sequence, TypeVar

import numpy as np

from tfdeploy.errors import TfdeployError
from tfdeploy.progress import Task
from tfdeploy.report import Report

PERCENTILES = (50.0, 90.0, 99.0, 99.9)
T = TypeVar("T")


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile: the smallest value with at least ``q``% of the samples at or below it.

    Raises:
        TfdeployError: For no values.

    Example:
        >>> percentile(list(range(1, 101)), 99)
        99.0
    """
    if len(values) == 0:
        raise TfdeployError("No latency samples to summarise. Received: values=[]")
    ordered = sorted(values)
    rank = max(1, math.ceil(round(q * len(ordered) / 100, 9)))  # round: 99.9% of 1000 is 999, not 999.0000001
    return float(ordered[min(rank, len(ordered)) - 1])


@dataclasses.dataclass
class LatencyStats(Report):
    """Summary of a set of request latencies (ms)."""

    requests: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    p999_ms: float
    mean_ms: float
    max_ms: float

    @classmethod
    def of(cls, latencies_ms: Sequence[float]) -> "LatencyStats":
        """Percentiles, mean and max of ``latencies_ms``.

        Example:
            >>> LatencyStats.of([1.0, 2.0, 3.0]).p50_ms
            2.0
        """
        p50, p90, p99, p999 = (percentile(latencies_ms, q) for q in PERCENTILES)
        return cls(requests=len(latencies_ms), p50_ms=p50, p90_ms=p90, p99_ms=p99, p999_ms=p999,
                   mean_ms=float(np.mean(latencies_ms)), max_ms=float(np.max(latencies_ms)))


def time_call(call: Callable[[], T]) -> tuple[T, float]:
    """Calls ``call()`` once; returns its result and its wall time in ms.

    Example:
        >>> time_call(lambda: 42)[0]
        42
    """
    start = time.perf_counter()
    result = call()
    return result, (time.perf_counter() - start) * 1000


def time_calls(call: Callable[[], Any], repeats: int, warmup: int = 5) -> list[float]:
    """Wall times (ms) of ``repeats`` calls after ``warmup`` untimed ones.

    Example:
        >>> len(time_calls(lambda: None, repeats=3, warmup=0))
        3
    """
    for _ in range(warmup):
        call()
    return [time_call(call)[1] for _ in range(repeats)]


class RequestLog:
    """Timed requests from many threads: ``(start s since the log began, latency ms, tag)`` and errors.

    Example:
        >>> log = RequestLog()
        >>> log.request(lambda: None, tag="N")
        True
        >>> [tag for _, _, tag in log.samples]
        ['N']
    """

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.samples: list[tuple[float, float, Any]] = []
        self.errors: list[str] = []
        self._lock = threading.Lock()

    def elapsed_s(self) -> float:
        """Seconds since the log began."""
        return time.perf_counter() - self.start

    def request(self, call: Callable[[], Any], tag: Any = None, on_sample: Callable[[], None] | None = None,
                tag_of: Callable[[Any], Any] | None = None) -> bool:
        """Times ``call()``; records the sample (then runs ``on_sample`` under the lock) or its error.

        ``tag_of``, when given, tags the sample from the call's result instead (e.g. the model version
        a server says answered).

        Returns:
            Whether the call succeeded; a failed request is recorded as data, not raised.
        """
        begin = time.perf_counter()
        try:
            result = call()
        except Exception as exc:  # a failed request is data, not a crash
            with self._lock:
                self.errors.append(f"{type(exc).__name__}: {exc}")
            return False
        end = time.perf_counter()
        if tag_of is not None:
            tag = tag_of(result)
        with self._lock:
            self.samples.append((begin - self.start, (end - begin) * 1000, tag))
            if on_sample is not None:
                on_sample()
        return True


@dataclasses.dataclass
class LoadResult:
    """Raw samples of one load run: (start time since run start s, latency ms) per request."""

    samples: list[tuple[float, float]]
    errors: list[str]
    wall_s: float


def run_load(call: Callable[[int], None], requests: int | None, duration_s: float | None, concurrency: int,
             warmup_requests: int = 0, task: Task | None = None) -> LoadResult:
    """Runs ``call(thread_index)`` from ``concurrency`` threads until ``requests`` or ``duration_s``.

    Each thread first makes ``warmup_requests`` untimed calls (their failures ignored). Exceptions of timed
    calls are recorded, not raised.

    Args:
        call: One request; receives the client thread's index.
        requests: Timed requests in total (``None`` with ``duration_s``).
        duration_s: Seconds of requests (``None`` with ``requests``).
        concurrency: Client threads.
        warmup_requests: Untimed calls per thread first.
        task: A :class:`~tfdeploy.progress.Task` advanced once per finished request.

    Returns:
        A :class:`LoadResult`.

    Raises:
        TfdeployError: Unless exactly one of ``requests`` and ``duration_s`` is given.

    Example:
        >>> len(run_load(lambda i: None, requests=10, duration_s=None, concurrency=2).samples)
        10
    """
    if (requests is None) == (duration_s is None):
        raise TfdeployError("Give either a number of requests or a duration. "
                            f"Received: requests={requests}, duration_s={duration_s}")
    for index in range(concurrency):
        for _ in range(warmup_requests):
            try:
                call(index)
            except Exception:  # untimed; a request that keeps failing is recorded by the timed ones
                pass
    log = RequestLog()
    deadline = None if duration_s is None else log.start + duration_s
    issued = iter(range(requests)) if requests is not None else None
    issue_lock = threading.Lock()

    def next_request() -> bool:
        if issued is not None:
            with issue_lock:
                return next(issued, None) is not None
        return time.perf_counter() < deadline

    def worker(index: int) -> None:
        while next_request():
            log.request(lambda: call(index), on_sample=task.advance if task is not None else None)

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return LoadResult(samples=[(t, ms) for t, ms, _ in log.samples], errors=log.errors, wall_s=log.elapsed_s())
