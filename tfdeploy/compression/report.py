"""What :func:`~tfdeploy.compression.compress` reports: one row per variant, the original first.

Example:
    >>> print(CompressionReport.HEADER[:3])
    ('variant', 'format', 'raw')
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from tfdeploy import plots
from tfdeploy.report import Block, Heading, Image, Report, Table, Text, format_bytes


@dataclasses.dataclass(frozen=True)
class MetricInfo:
    """How a chosen metric reads: its unit, the scale values are shown at, which way it improves, what it is."""

    unit: str
    scale: float
    direction: str
    summary: str
    has_drop: bool = True

    def header(self, name: str) -> str:
        return f"{name} {self.unit}".strip()

    def show(self, value: float | None, digits: int = 4) -> float | None:
        return None if value is None else round(value * self.scale, digits) + 0.0  # no -0

    def drop_header(self, name: str) -> str:
        unit = {"%": "points"}.get(self.unit, self.unit)
        return f"drop {name}" + (f" ({unit})" if unit else "")


@dataclasses.dataclass
class VariantReport(Report):
    """Measurements of one artifact (the original or a recipe's output); ``status`` says if it was made.

    ``metrics`` holds every metric by output, raw (accuracy as a fraction, SNR in dB); ``metric_drops``
    how much worse each is than the original's (a lower-is-better metric's increase);
    ``summary``/``summary_drops`` the chosen metrics for the whole model (the worst output).
    ``accuracy``/``agreement``/``max_abs_diff`` are the classic columns, kept where they apply.
    """

    name: str
    path: str | None
    format: str
    raw_bytes: int | None = None
    gzip_bytes: int | None = None
    raw_ratio: float | None = None
    gzip_ratio: float | None = None
    params: int | None = None
    sparsity: float | None = None
    sparsity_by_layer_type: dict[str, float] = dataclasses.field(default_factory=dict)
    accuracy: float | None = None
    accuracy_drop: float | None = None
    agreement: float | None = None
    max_abs_diff: float | None = None
    max_abs_diff_by_output: dict[str, float] = dataclasses.field(default_factory=dict)
    snr_db: float | None = None
    metrics: dict[str, dict[str, float | None]] = dataclasses.field(default_factory=dict)
    metric_drops: dict[str, dict[str, float | None]] = dataclasses.field(default_factory=dict)
    summary: dict[str, float | None] = dataclasses.field(default_factory=dict)
    summary_drops: dict[str, float | None] = dataclasses.field(default_factory=dict)
    eval_seconds: float | None = None
    latency_ms: float | None = None
    runtime: str | None = None
    layers: dict[str, str] = dataclasses.field(default_factory=dict)
    training: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    seconds: float | None = None
    notes: list[str] = dataclasses.field(default_factory=list)
    status: str = "ok"
    error: str | None = None

    @property
    def failed(self) -> bool:
        return self.status == "failed"

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> VariantReport:
        """A row read back from ``report.json`` (``--resume``)."""
        names = {field.name for field in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})


@dataclasses.dataclass
class CompressionReport(Report):
    """All variants of one :func:`compress` run, the original first.

    ``metrics`` are the chosen metrics (``--metric``, compiled, or by head) in order, ``driving_metric``
    the one ``--auto`` optimises and the plot's y axis, ``metric_info`` how each reads.
    """

    model: str
    flavour: str
    out_dir: str
    data: str | None
    eval_samples: int
    label_output: str | None
    variants: list[VariantReport]
    metrics: list[str] = dataclasses.field(default_factory=list)
    driving_metric: str | None = None
    metric_source: str | None = None
    metric_info: dict[str, MetricInfo] = dataclasses.field(default_factory=dict)
    metric_notes: list[str] = dataclasses.field(default_factory=list)
    bridge_max_abs_diff: float | None = None
    bridge_notes: list[str] = dataclasses.field(default_factory=list)
    run_notes: list[str] = dataclasses.field(default_factory=list)
    data_warnings: list[str] = dataclasses.field(default_factory=list)
    files: list[str] = dataclasses.field(default_factory=list)

    SIZE_HEADER = ("variant", "format", "raw", "gzip", "raw %", "gzip %", "sparsity")

    @property
    def failed(self) -> list[VariantReport]:
        return [v for v in self.variants if v.failed]

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "failed": [v.name for v in self.failed]}

    def _drop_info(self) -> MetricInfo | None:
        """How the driving metric reads, when a drop from the original's value means something."""
        info = self.metric_info.get(self.driving_metric or "")
        return info if info is not None and info.has_drop else None

    def _fidelity_column(self) -> str | None:
        """The fidelity column the table adds when the chosen metrics do not already show it."""
        names = {ref.split("@")[0] for ref in self.metrics}
        if any(v.agreement is not None for v in self.variants) and "agreement" not in names:
            return "agreement"
        if any(v.snr_db is not None for v in self.variants) and "snr" not in names:
            return "snr"
        return None

    @property
    def header(self) -> tuple[str, ...]:
        chosen = [self.metric_info[ref].header(ref) for ref in self.metrics]
        drop = [self.metric_info[self.driving_metric].drop_header(self.driving_metric)] if self._drop_info() else []
        fidelity = {"agreement": ["agreement %"], "snr": ["SNR dB"], None: []}[self._fidelity_column()]
        return (*self.SIZE_HEADER, *chosen, *drop, *fidelity, "max |diff|", "latency ms", "time s")

    def table_rows(self) -> list[tuple[Any, ...]]:
        def pct(value: float | None) -> float | None:
            return None if value is None else round(100 * value, 1)

        width, rows = len(self.header), []
        for v in self.variants:
            seconds = None if v.seconds is None else round(v.seconds, 1)
            if v.failed:
                rows.append((v.name, "FAILED", *[None] * (width - 3), seconds))
                continue
            quality = [self.metric_info[ref].show(v.summary.get(ref)) for ref in self.metrics]
            info = self._drop_info()
            drop = [info.show(v.summary_drops.get(self.driving_metric))] if info else []
            fidelity = {"agreement": [pct(v.agreement)], "snr": [None if v.snr_db is None else round(v.snr_db, 1)],
                        None: []}[self._fidelity_column()]
            rows.append((v.name, v.format, format_bytes(v.raw_bytes), format_bytes(v.gzip_bytes), pct(v.raw_ratio),
                         pct(v.gzip_ratio), pct(v.sparsity), *quality, *drop, *fidelity, v.max_abs_diff,
                         v.latency_ms, seconds))
        return rows

    def notes(self) -> list[str]:
        lines = [f"{v.name} FAILED: {v.error}" for v in self.failed]
        lines += [f"{v.name}: {note}" for v in self.variants for note in v.notes]
        if self.bridge_max_abs_diff is not None:
            lines.insert(0, f"tf_keras copy for TFMOT: max abs output difference {self.bridge_max_abs_diff:.3g}")
            lines[1:1] = [f"tf_keras copy: {note}" for note in self.bridge_notes]
        return ([f"data: {w}" for w in self.data_warnings] + [f"metrics: {n}" for n in self.metric_notes] +
                [f"run: {n}" for n in self.run_notes] + lines)

    def heading(self) -> str:
        judged = (f"judged by {', '.join(self.metrics)} ({self.metric_source}); --auto and the plot use "
                  f"{self.driving_metric}") if self.metrics else "not judged"
        seconds = sum(v.eval_seconds or 0.0 for v in self.variants)
        return (f"model: {self.model} ({self.flavour}); evaluated on {self.eval_samples} samples "
                f"({self.data or 'random inputs'}) in {seconds:.1f} s; {judged}")

    def blocks(self) -> list[Block]:
        notes = [Text(note, terse=note if len(note) <= 240 else note[:240] + "… (full text in report.md)")
                 for note in self.notes()]
        plots = [Image(path, f"size vs {self.driving_metric} per variant") for path in self.files if path.endswith(".png")]
        return [Heading("Compression report", level=1, in_text=False), Text(self.heading()),
                Table(self.table_rows(), header=self.header), Text(self.LEGEND, in_text=False), *plots, *notes,
                *self.runtime_blocks(), *self.metric_blocks(), *self.layer_blocks(), *self.training_blocks()]

    def metric_blocks(self) -> list[Block]:
        """Every metric of every output, per variant, with its drop (Markdown only; JSON has them too)."""
        measured = [v for v in self.variants if v.metrics]
        if not measured:
            return []
        keys = [(output, key) for output, values in measured[0].metrics.items() for key in values]
        rows = [(output, key, *[_cell(v, output, key) for v in measured]) for output, key in keys]
        return [Heading("Every metric by output (value, and drop from the original)", level=2, in_text=False),
                Table(rows, header=("output", "metric", *[v.name for v in measured]), in_text=False)]

    def runtime_blocks(self) -> list[Block]:
        by_runtime: dict[str, list[str]] = {}
        for v in self.variants:
            if v.runtime:
                by_runtime.setdefault(v.runtime, []).append(v.name)
        return [Text("runtimes: " + "; ".join(f"{runtime} for {', '.join(names)}"
                                              for runtime, names in by_runtime.items()))] if by_runtime else []

    def layer_blocks(self) -> list[Block]:
        """Per-layer weight precisions of the variants that record them (Markdown only; JSON has them too)."""
        blocks: list[Block] = []
        for v in self.variants:
            if v.layers:
                blocks += [Heading(f"{v.name}: weights per layer", level=2, in_text=False),
                           Table(list(v.layers.items()), header=("layer", "weights"), in_text=False)]
        return blocks

    def training_blocks(self) -> list[Block]:
        """The student against the original after each epoch of the variants that trained one (``distill``)."""
        blocks: list[Block] = []
        for v in self.variants:
            if v.training:
                info = self.metric_info.get(self.driving_metric or "")
                rows = [(s["epoch"], None if s["agreement"] is None else round(100 * s["agreement"], 1),
                         info.show(s["quality"]) if info else None, s["mean_abs_diff"]) for s in v.training]
                blocks += [Heading(f"{v.name}: the student by epoch (validation; epoch 0 is untrained)", level=2,
                                   in_text=False),
                           Table(rows, header=("epoch", "agreement %", info.header(str(self.driving_metric))
                                               if info else "quality", "mean |diff|"), in_text=False)]
        return blocks

    LEGEND = ("Ratios are against the original file. Quality columns are the chosen metrics for the whole model (the "
              "worst output); a drop is how much worse than the original (an increase for lower-is-better metrics; "
              "points for %). Agreement is top-1 agreement with the original model, SNR the worst output's "
              "signal-to-noise ratio against the original; max |diff| is over every output; latency is the median "
              "single-example call in the runtime that would serve the variant.")


def _cell(variant: VariantReport, output: str, key: str) -> str:
    value = variant.metrics.get(output, {}).get(key)
    drop = variant.metric_drops.get(output, {}).get(key)
    if value is None:
        return "-"
    return f"{value:.4g}" if not drop else f"{value:.4g} ({drop:+.3g})"


def write_chart(report: CompressionReport, path: Path) -> Path | None:
    measured = [v for v in report.variants if not v.failed and v.gzip_bytes is not None]
    info = report.metric_info.get(report.driving_metric or "")
    if not measured or info is None:
        return None
    values = [info.show(v.summary.get(str(report.driving_metric))) for v in measured]
    keep = [i for i, value in enumerate(values) if value is not None]
    if not keep:
        return None
    return plots.size_vs_accuracy(
        [measured[i].name for i in keep], [measured[i].gzip_bytes / 1024 for i in keep], [values[i] for i in keep],
        info.header(str(report.driving_metric)), path, higher_is_better=info.direction != "lower")
