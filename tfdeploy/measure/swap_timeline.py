"""The view of a hot update: latency percentiles per time window, and what each version swap cost.

A run's requests are ``(start s, latency ms, tag)`` samples (:class:`~tfdeploy.measure.timing.RequestLog`);
its swaps are :class:`Swap` event times. :func:`windowed_percentiles` gives p80/p90/p99/p999 per
1-second window (the view of the published TF Serving case: steady p999 under 30 ms, 120 ms+ for
about 10 s on every update); :func:`summarize_swaps` compares the swap windows with steady traffic.

Example:
    >>> samples = [(t / 100, 1.0, "N") for t in range(1000)]
    >>> summary = summarize_swaps(samples, [Swap(5.0, 5.5, 5.5, 5.6)], end_s=10.0)
    >>> summary.ratio
    1.0
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

from tfdeploy.errors import TfdeployError
from tfdeploy.measure.timing import LatencyStats, percentile
from tfdeploy.report import Block, Report, Table

WINDOW_S = 1.0  # the published case's view: percentiles per second
SPIKE_FACTOR = 2.0  # a window "spikes" while its p999 is above this multiple of steady p999
FIRST_AFTER_SWITCH = 5  # first requests on the new version listed per swap
RSS_AFTER_UNLOAD_S = 1.0  # resident memory is read this long after the old version is unloaded
WINDOW_PERCENTILES = (80.0, 90.0, 99.0, 99.9)

Sample = tuple[float, float, Any]


@dataclasses.dataclass(frozen=True)
class Swap:
    """One version update, in seconds since the traffic began.

    Attributes:
        load_start_s: The new version's load began (remote: the export was published).
        ready_s: Loaded, and warmup replayed when enabled (remote: its first response).
        switch_s: Traffic moved to the new version.
        unloaded_s: The old version was unloaded (``None`` when not observed, e.g. remote).
    """

    load_start_s: float
    ready_s: float
    switch_s: float
    unloaded_s: float | None = None

    @property
    def end_s(self) -> float:
        """When the update was over: the old version unloaded, else the switch."""
        return self.unloaded_s if self.unloaded_s is not None else self.switch_s


@dataclasses.dataclass(frozen=True)
class Window:
    """Percentiles of the requests that started in ``[start_s, start_s + window)``."""

    start_s: float
    requests: int
    p80_ms: float
    p90_ms: float
    p99_ms: float
    p999_ms: float


def windowed_percentiles(samples: Sequence[Sample], window_s: float = WINDOW_S) -> list[Window]:
    """p80/p90/p99/p999 per window of ``window_s`` seconds (windows without requests are skipped).

    Example:
        >>> [w.requests for w in windowed_percentiles([(0.1, 1.0, "N"), (0.2, 3.0, "N"), (1.5, 2.0, "N")])]
        [2, 1]
    """
    buckets: dict[int, list[float]] = {}
    for start, ms, _ in samples:
        buckets.setdefault(int(start // window_s), []).append(ms)
    return [Window(index * window_s, len(values), *(percentile(values, q) for q in WINDOW_PERCENTILES))
            for index, values in sorted(buckets.items())]


@dataclasses.dataclass
class SwapSummary(Report):
    """Steady latency vs. the swap windows of one run.

    Attributes:
        steady: Requests started before the first load.
        swap: Requests started while a version loaded, switched or unloaded, or in the window after.
        swap_p999_ms: ``swap.p999_ms``.
        worst_window_p999_ms: The worst 1-second p999 of a window overlapping a swap.
        spike_seconds: Seconds per swap (median over swaps) of windows whose p999 is above
            ``SPIKE_FACTOR`` × steady p999.
        ratio: ``swap_p999_ms / steady.p999_ms``.
        load_seconds: Seconds from load start to ready, per swap.
        first_after_switch_ms: The first requests on the new version, per swap.
    """

    steady: LatencyStats
    swap: LatencyStats
    swap_p999_ms: float
    worst_window_p999_ms: float
    spike_seconds: float
    ratio: float
    load_seconds: list[float]
    first_after_switch_ms: list[list[float]]

    def blocks(self) -> list[Block]:
        rows = [(name, s.requests, s.p50_ms, s.p99_ms, s.p999_ms, s.max_ms)
                for name, s in (("steady", self.steady), ("swap windows", self.swap))]
        return [Table(rows, header=("window", "requests", "p50 ms", "p99 ms", "p999 ms", "max ms"))]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SwapSummary":
        """The summary from :meth:`to_dict`."""
        return cls(**{**data, "steady": LatencyStats(**data["steady"]), "swap": LatencyStats(**data["swap"])})


def _in_swap(start: float, swaps: Sequence[Swap], settle_s: float) -> bool:
    return any(s.load_start_s <= start < s.end_s + settle_s for s in swaps)


def _spike_seconds(windows: Sequence[Window], swaps: Sequence[Swap], end_s: float, limit_ms: float,
                   window_s: float) -> float:
    """Median over swaps of the seconds, from its load start to the next one, with windowed p999 over ``limit_ms``."""
    bounds = [s.load_start_s for s in swaps] + [end_s]
    per_swap = sorted(sum(window_s for w in windows if lo <= w.start_s + window_s and w.start_s < hi
                          and w.p999_ms > limit_ms) for lo, hi in zip(bounds, bounds[1:]))
    return per_swap[len(per_swap) // 2]


def summarize_swaps(samples: Sequence[Sample], swaps: Sequence[Swap], end_s: float, window_s: float = WINDOW_S,
                    new_tags: Sequence[Any] | None = None) -> SwapSummary:
    """Steady vs. swap-window latency of one run.

    Args:
        samples: ``(start s, latency ms, tag)`` per request.
        swaps: The updates, in order.
        end_s: When the traffic stopped.
        window_s: Window of the percentile timeline.
        new_tags: Per swap, the tag of requests answered by the new version (for the first
            requests after the switch); ``None``: any request after the switch.

    Returns:
        A :class:`SwapSummary`.

    Raises:
        TfdeployError: If there are no swaps, or no requests in the steady or the swap windows.

    Example:
        >>> summarize_swaps(samples, [Swap(3.0, 3.8, 3.8, 3.9)], end_s=8.0).spike_seconds   # doctest: +SKIP
        1.0
    """
    if not swaps:
        raise TfdeployError("No version swap to summarize. Received: swaps=[]")
    steady = [ms for start, ms, _ in samples if start < swaps[0].load_start_s]
    during = [ms for start, ms, _ in samples if _in_swap(start, swaps, window_s)]
    if not steady or not during:
        raise TfdeployError(f"Too few requests to compare (steady {len(steady)}, during swaps {len(during)}); "
                            f"lengthen the steady seconds. Received: requests={len(samples)}")
    steady_stats, swap_stats = LatencyStats.of(steady), LatencyStats.of(during)
    windows = windowed_percentiles(samples, window_s)
    overlapping = [w.p999_ms for w in windows
                   if any(s.load_start_s < w.start_s + window_s and w.start_s <= s.end_s for s in swaps)]
    tags = list(new_tags) if new_tags is not None else [None] * len(swaps)
    return SwapSummary(
        steady=steady_stats, swap=swap_stats, swap_p999_ms=swap_stats.p999_ms,
        worst_window_p999_ms=max(overlapping, default=swap_stats.p999_ms),
        spike_seconds=_spike_seconds(windows, swaps, end_s, SPIKE_FACTOR * steady_stats.p999_ms, window_s),
        ratio=swap_stats.p999_ms / steady_stats.p999_ms,
        load_seconds=[s.ready_s - s.load_start_s for s in swaps],
        first_after_switch_ms=[[ms for start, ms, who in sorted(samples)
                                if start >= s.switch_s and (tag is None or who == tag)][:FIRST_AFTER_SWITCH]
                               for s, tag in zip(swaps, tags)],
    )


@dataclasses.dataclass(frozen=True)
class SwapCost:
    """What one update cost: its worst 1-second p999, seconds above ``SPIKE_FACTOR`` × steady, load time, memory.

    Attributes:
        window_p999_ms: The worst p999 of the 1-second windows from the load's start to ``WINDOW_S`` after the
            old version was unloaded (the figure the published case measured).
        spike_seconds: Seconds of windows, from this load's start to the next one's, with p999 above
            ``SPIKE_FACTOR`` × steady p999.
        load_seconds: From load start to ready (warmup included).
        rss_after_mb: Resident memory ``RSS_AFTER_UNLOAD_S`` after the old version was unloaded (``None``
            where not sampled).
    """

    window_p999_ms: float
    spike_seconds: float
    load_seconds: float
    rss_after_mb: float | None


def rss_after(rss_mb: Sequence[tuple[float, float]], at_s: float, until_s: float | None = None) -> float | None:
    """The first resident-memory sample at or after ``at_s`` (and before ``until_s``), in MB.

    Example:
        >>> rss_after([(0.0, 100.0), (1.0, 180.0), (2.1, 120.0)], 2.0)
        120.0
        >>> rss_after([(0.0, 100.0)], 2.0) is None
        True
    """
    return next((mb for t, mb in rss_mb if t >= at_s and (until_s is None or t < until_s)), None)


def swap_costs(windows: Sequence[Window], swaps: Sequence[Swap], end_s: float, steady_p999_ms: float,
               rss_mb: Sequence[tuple[float, float]] = (), window_s: float = WINDOW_S) -> list[SwapCost]:
    """Per swap: worst windowed p999, seconds above the spike limit, load seconds, RSS after the unload.

    Example:
        >>> w = [Window(float(t), 100, 1, 1, 1, 9.0 if t == 5 else 1.0) for t in range(10)]
        >>> cost = swap_costs(w, [Swap(5.0, 5.4, 5.4, 5.5)], 10.0, 1.0, [(6.4, 900.0), (6.6, 800.0)])[0]
        >>> cost.window_p999_ms, cost.spike_seconds, cost.rss_after_mb
        (9.0, 1.0, 800.0)
    """
    bounds = [s.load_start_s for s in swaps] + [end_s]
    limit = SPIKE_FACTOR * steady_p999_ms
    costs = []
    for swap, next_start in zip(swaps, bounds[1:]):
        mine = [w for w in windows if swap.load_start_s < w.start_s + window_s and w.start_s <= swap.end_s + window_s]
        costs.append(SwapCost(
            window_p999_ms=max((w.p999_ms for w in mine), default=0.0),
            spike_seconds=sum(window_s for w in windows if swap.load_start_s <= w.start_s + window_s
                              and w.start_s < next_start and w.p999_ms > limit),
            load_seconds=swap.ready_s - swap.load_start_s,
            rss_after_mb=rss_after(rss_mb, swap.end_s + RSS_AFTER_UNLOAD_S, next_start if next_start < end_s else None)))
    return costs


def rss_drift_pct(steady_rss_mb: float, rss_after_swap_mb: Sequence[float | None]) -> float | None:
    """How far resident memory ended above steady serving with one version: (last after-swap − steady) / steady × 100.

    Example:
        >>> rss_drift_pct(1000.0, [1100.0, 1050.0])
        5.0
    """
    measured = [mb for mb in rss_after_swap_mb if mb is not None]
    if not measured or steady_rss_mb <= 0:
        return None
    return (measured[-1] - steady_rss_mb) / steady_rss_mb * 100
