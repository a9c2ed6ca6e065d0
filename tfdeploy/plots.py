"""The PNG plots reports embed: size vs accuracy, latency percentiles, hot-swap timelines.

Every plot is drawn with matplotlib's Agg backend (no display needed) and written atomically.

Example:
    >>> from tfdeploy.plots import label_points
    >>> boxes = label_points(ax, [(1.0, 90.0), (1.01, 90.0)], ["a", "b"])   # doctest: +SKIP
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any, Sequence

from tfdeploy.files import write_atomic

# Offsets (points) tried in order around a marker for its label: right, left, above, below, diagonals, farther out.
_LABEL_OFFSETS = [(6, -3), (-6, -3), (0, 7), (0, -12), (6, 7), (-6, 7), (6, -12), (-6, -12)]
_LABEL_OFFSETS += [(dx * 2, dy * 2) for dx, dy in _LABEL_OFFSETS] + [(dx * 3, dy * 3) for dx, dy in _LABEL_OFFSETS]


def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend.

    Example:
        >>> fig, ax = pyplot().subplots()     # doctest: +SKIP
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig: Any, path: str | os.PathLike, dpi: int = 110) -> Path:
    """Writes ``fig`` as a PNG atomically and closes it.

    Example:
        >>> save(fig, "out/latency.png")      # doctest: +SKIP
        PosixPath('out/latency.png')
    """
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    pyplot().close(fig)
    return write_atomic(Path(path), buffer.getvalue())


def label_points(ax: Any, points: Sequence[tuple[float, float]], labels: Sequence[str],
                 fontsize: int = 8) -> list[Any]:
    """Labels each point where its text overlaps no other label or marker; returns the labels' bounding boxes.

    Each label tries offsets around its point, nearest first, and takes the first free one; a label
    with no free place gets an arrow to its point from the farthest offset.

    Example:
        >>> boxes = label_points(ax, [(1.0, 90.0), (1.01, 90.0)], ["a", "b"])   # doctest: +SKIP
    """
    fig = ax.figure
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    markers = [ax.transData.transform(p) for p in points]
    taken: list[Any] = []
    for (x, y), label in zip(points, labels):
        for dx, dy in _LABEL_OFFSETS:
            text = ax.annotate(label, (x, y), textcoords="offset points", xytext=(dx, dy), fontsize=fontsize,
                               ha="left" if dx >= 0 else "right", va="bottom" if dy >= 0 else "top")
            box = text.get_window_extent(renderer).expanded(1.05, 1.1)
            inside = ax.get_window_extent(renderer)
            free = (box.x0 >= inside.x0 and box.x1 <= inside.x1 and box.y0 >= inside.y0 and box.y1 <= inside.y1
                    and not any(box.overlaps(other) for other in taken)
                    and not any(box.contains(mx, my) for mx, my in markers))
            if free:
                break
            text.remove()
        else:
            text = ax.annotate(label, (x, y), textcoords="offset points", xytext=(dx, dy), fontsize=fontsize,
                               arrowprops={"arrowstyle": "-", "color": "grey", "lw": 0.6})
            box = text.get_window_extent(renderer)
        taken.append(box)
    return taken


def merge_coincident(names: Sequence[str], xs: Sequence[float], ys: Sequence[float],
                     tolerance: float = 0.005) -> tuple[list[str], list[float], list[float]]:
    """Joins the names of points that coincide (within ``tolerance`` of each axis' span) into one label.

    Example:
        >>> merge_coincident(["original", "strip", "int8"], [1500, 1500.2, 300], [92.4, 92.4, 92.1])
        (['original, strip', 'int8'], [1500, 300], [92.4, 92.1])
    """
    span_x, span_y = (max(xs) - min(xs)) or 1.0, (max(ys) - min(ys)) or 1.0
    merged: list[tuple[list[str], float, float]] = []
    for name, x, y in zip(names, xs, ys):
        same = next((m for m in merged if abs(m[1] - x) <= tolerance * span_x and abs(m[2] - y) <= tolerance * span_y),
                    None)
        if same:
            same[0].append(name)
        else:
            merged.append(([name], x, y))
    return [", ".join(m[0]) for m in merged], [m[1] for m in merged], [m[2] for m in merged]


def size_vs_accuracy(names: Sequence[str], kib: Sequence[float], percent: Sequence[float], ylabel: str,
                     path: str | os.PathLike, higher_is_better: bool = True) -> Path:
    """Scatter of gzip size against the driving quality metric (accuracy, AUC, logloss, SNR), one marker per variant.

    Variants at the same point (``strip`` and the original) share one marker and one label.

    Example:
        >>> size_vs_accuracy(["original", "int8"], [1500.0, 300.0], [92.4, 92.1], "accuracy %", "size.png")  # doctest: +SKIP
        PosixPath('size.png')
    """
    names, kib, percent = merge_coincident(names, kib, percent)
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    ax.scatter(kib, percent, s=36, c=[f"C{i % 10}" for i in range(len(names))], zorder=3)
    span_x, span_y = (max(kib) - min(kib)) or max(kib) or 1.0, (max(percent) - min(percent)) or 1.0
    ax.set_xlim(max(0.0, min(kib) - 0.15 * span_x), max(kib) + 0.35 * span_x)
    ax.set_ylim(min(percent) - 0.25 * span_y, max(percent) + 0.25 * span_y)
    ax.set_xlabel("gzip size (KiB)")
    ax.set_ylabel(ylabel)
    ax.set_title(f"Size vs {ylabel} per variant ({'up' if higher_is_better else 'down'} and left is better)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    label_points(ax, list(zip(kib, percent)), names)
    return save(fig, path)


def pareto(names: Sequence[str], costs: Sequence[float], percent: Sequence[float], front: set[str], xlabel: str,
           floor: float | None, path: str | os.PathLike, ylabel: str = "accuracy %",
           higher_is_better: bool = True) -> Path:
    """Cost (gzip KiB or latency) against the driving metric for every trial; the Pareto front joined by a line.

    ``floor`` (the worst value within budget) is drawn as a dashed line.

    Example:
        >>> pareto(["original", "int8"], [1500.0, 300.0], [92.4, 92.1], {"int8"}, "gzip size (KiB)", 91.4,
        ...        "pareto.png")  # doctest: +SKIP
        PosixPath('pareto.png')
    """
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    on_front = [name in front for name in names]
    ax.scatter([c for c, f in zip(costs, on_front) if not f], [p for p, f in zip(percent, on_front) if not f],
               s=30, c="0.6", zorder=2, label="other trials")
    line = sorted((c, p) for c, p, f in zip(costs, percent, on_front) if f)
    if line:
        ax.plot(*zip(*line), "-o", color="C0", zorder=3, label="Pareto front")
    if floor is not None:
        ax.axhline(floor, ls="--", color="C3", lw=1, label="budget")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(f"Trials of compress --auto ({'up' if higher_is_better else 'down'} and left is better)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    label_points(ax, list(zip(costs, percent)), list(names))
    return save(fig, path)


def latency_percentiles(labels: Sequence[str], p50: Sequence[float], p99: Sequence[float], p999: Sequence[float],
                        path: str | os.PathLike) -> Path:
    """Grouped bars of p50/p99/p999 latency, one group per artifact (and batch size).

    Example:
        >>> latency_percentiles(["v1, batch 1"], [0.4], [0.9], [1.5], "latency.png")   # doctest: +SKIP
        PosixPath('latency.png')
    """
    import numpy as np

    plt = pyplot()
    positions = np.arange(len(labels))
    fig, ax = plt.subplots(figsize=(max(6.0, 1.6 * len(labels)), 4.2))
    for offset, name, values in zip((-0.25, 0, 0.25), ("p50", "p99", "p999"), (p50, p99, p999)):
        ax.bar(positions + offset, values, width=0.25, label=name)
    ax.set_xticks(positions, labels, fontsize=8, rotation=20 if len(labels) > 4 else 0, ha="right" if len(labels) > 4
                  else "center")
    ax.set_ylabel("latency (ms)")
    ax.set_title("Latency percentiles per variant")
    ax.legend()
    fig.tight_layout()
    return save(fig, path, dpi=100)


def swap_timeline(run: Any, path: str | os.PathLike) -> Path:
    """p80/p90/p99/p999 per 1-second window over time, each version's load and switch marked, RSS below.

    Args:
        run: A :class:`~tfdeploy.measure.hot_swap.HotSwapRun` (``windows``, ``swaps``, ``rss_mb``,
            ``summary``, ``config``).
        path: The PNG to write.

    Example:
        >>> swap_timeline(report.runs[0], "hot_swap-no-fixes.png")   # doctest: +SKIP
        PosixPath('hot_swap-no-fixes.png')
    """
    plt = pyplot()
    fig, (ax, mem) = plt.subplots(2, 1, figsize=(9, 5.2), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    starts = [w.start_s for w in run.windows]
    for key, label in (("p80_ms", "p80"), ("p90_ms", "p90"), ("p99_ms", "p99"), ("p999_ms", "p999")):
        ax.step(starts, [getattr(w, key) for w in run.windows], where="post", label=label)
    ax.axhline(2 * run.summary.steady.p999_ms, color="grey", linestyle=":", label="2× steady p999")
    for index, swap in enumerate(run.swaps):
        ax.axvspan(swap.load_start_s, swap.ready_s, color="grey", alpha=0.2, label="loading" if index == 0 else None)
        ax.axvline(swap.switch_s, color="red", linestyle="--", linewidth=0.8, label="switch" if index == 0 else None)
    ax.set_yscale("log")
    ax.set_ylabel("latency per 1 s window (ms)")
    ax.set_title(f"{run.config}: swap p999 {run.summary.swap_p999_ms:.1f} ms = {run.summary.ratio:.1f}× steady "
                 f"{run.summary.steady.p999_ms:.1f} ms", fontsize=9)
    ax.legend(fontsize=7, loc="upper left", ncol=3)
    if run.rss_mb:
        mem.plot(*zip(*run.rss_mb), color="tab:purple")
    mem.set_ylabel("RSS (MB)")
    mem.set_xlabel("time since traffic began (s)")
    fig.tight_layout()
    return save(fig, path, dpi=100)
