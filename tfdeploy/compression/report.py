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


@dataclasses.dataclass
class VariantReport(Report):
    """Measurements of one artifact (the original or a recipe's output); ``status`` says if it was made."""

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


@dataclasses.dataclass
class CompressionReport(Report):
    """All variants of one :func:`compress` run, the original first."""

    model: str
    flavour: str
    out_dir: str
    data: str | None
    eval_samples: int
    label_output: str | None
    variants: list[VariantReport]
    bridge_max_abs_diff: float | None = None
    bridge_notes: list[str] = dataclasses.field(default_factory=list)
    data_warnings: list[str] = dataclasses.field(default_factory=list)
    files: list[str] = dataclasses.field(default_factory=list)

    HEADER = ("variant", "format", "raw", "gzip", "raw %", "gzip %", "sparsity", "accuracy", "drop (pts)",
              "agreement", "max |diff|", "latency ms", "time s")

    @property
    def failed(self) -> list[VariantReport]:
        return [v for v in self.variants if v.failed]

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "failed": [v.name for v in self.failed]}

    def table_rows(self) -> list[tuple[Any, ...]]:
        def pct(value: float | None) -> float | None:
            return None if value is None else round(100 * value, 1)

        rows = []
        for v in self.variants:
            if v.failed:
                rows.append((v.name, "FAILED", *[None] * (len(self.HEADER) - 3), None if v.seconds is None else
                             round(v.seconds, 1)))
                continue
            rows.append((v.name, v.format, format_bytes(v.raw_bytes), format_bytes(v.gzip_bytes), pct(v.raw_ratio),
                         pct(v.gzip_ratio), pct(v.sparsity), pct(v.accuracy),
                         None if v.accuracy_drop is None else round(100 * v.accuracy_drop, 2), pct(v.agreement),
                         v.max_abs_diff, v.latency_ms, None if v.seconds is None else round(v.seconds, 1)))
        return rows

    def notes(self) -> list[str]:
        lines = [f"{v.name} FAILED: {v.error}" for v in self.failed]
        lines += [f"{v.name}: {note}" for v in self.variants for note in v.notes]
        if self.bridge_max_abs_diff is not None:
            lines.insert(0, f"tf_keras copy for TFMOT: max abs output difference {self.bridge_max_abs_diff:.3g}")
            lines[1:1] = [f"tf_keras copy: {note}" for note in self.bridge_notes]
        return [f"data: {w}" for w in self.data_warnings] + lines

    def heading(self) -> str:
        measured = f"accuracy on output {self.label_output!r}" if self.label_output else "no labels: agreement only"
        return (f"model: {self.model} ({self.flavour}); evaluated on {self.eval_samples} samples "
                f"({self.data or 'random inputs'}; {measured})")

    def blocks(self) -> list[Block]:
        notes = [Text(note, terse=note if len(note) <= 240 else note[:240] + "… (full text in report.md)")
                 for note in self.notes()]
        plots = [Image(path, "size vs accuracy per variant") for path in self.files if path.endswith(".png")]
        return [Heading("Compression report", level=1, in_text=False), Text(self.heading()),
                Table(self.table_rows(), header=self.HEADER), Text(self.LEGEND, in_text=False), *plots, *notes,
                *self.runtime_blocks(), *self.layer_blocks(), *self.training_blocks()]

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
                rows = [(s["epoch"], None if s["agreement"] is None else round(100 * s["agreement"], 1),
                         None if s["accuracy"] is None else round(100 * s["accuracy"], 1), s["mean_abs_diff"])
                        for s in v.training]
                blocks += [Heading(f"{v.name}: the student by epoch (validation; epoch 0 is untrained)", level=2,
                                   in_text=False),
                           Table(rows, header=("epoch", "agreement %", "accuracy %", "mean |diff|"), in_text=False)]
        return blocks

    LEGEND = ("Ratios are against the original file. Accuracy drop is in points (original − variant). Agreement is "
              "top-1 agreement with the original model; max |diff| is over every output; latency is the median "
              "single-example call in the runtime that would serve the variant.")


def write_chart(report: CompressionReport, path: Path) -> Path | None:
    measured = [v for v in report.variants if not v.failed and v.gzip_bytes is not None]
    if not measured:
        return None
    use_accuracy = report.variants[0].accuracy is not None
    return plots.size_vs_accuracy(
        [v.name for v in measured], [v.gzip_bytes / 1024 for v in measured],
        [100 * ((v.accuracy if use_accuracy else v.agreement) or 0.0) for v in measured],
        "accuracy (%)" if use_accuracy else "top-1 agreement with original (%)", path)
