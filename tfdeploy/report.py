"""Report objects: every library call returns one; the CLI prints it.

A report is a dataclass with :meth:`Report.to_dict` (JSON-safe). What it shows is a list of
blocks (:class:`Text`, :class:`Table`, :class:`Image`) from :meth:`Report.blocks`, rendered as an
aligned text table by :meth:`Report.to_table` (``str(report)``, the CLI) and as Markdown by
:meth:`Report.to_markdown` (``report.md`` files, and the table a notebook shows when a report ends a
cell).

Example:
    >>> @dataclasses.dataclass
    ... class Hello(Report):
    ...     name: str
    ...     def rows(self):
    ...         return [("name", self.name)]
    >>> print(Hello("x"))
    name  x
"""

from __future__ import annotations

import base64
import dataclasses
import enum
import json
import math
import os
from pathlib import Path
from typing import Any, Iterable, Sequence, Union


@dataclasses.dataclass(frozen=True)
class Text:
    """A paragraph; ``terse`` replaces it in plain text, ``in_text=False`` keeps it to Markdown."""

    text: str
    terse: str | None = None
    in_text: bool = True


@dataclasses.dataclass(frozen=True)
class Heading:
    """A section title: ``== title ==`` in text (level 2), ``#``-heading in Markdown."""

    text: str
    level: int = 2
    in_text: bool = True


@dataclasses.dataclass(frozen=True)
class Table:
    """Rows of cells; ``header=None`` makes a key/value table; ``in_text=False`` keeps it to Markdown."""

    rows: Sequence[Sequence[Any]]
    header: Sequence[str] | None = None
    in_text: bool = True


@dataclasses.dataclass(frozen=True)
class Image:
    """A plot the report wrote: a Markdown image, a ``plot: PATH`` line in text."""

    path: str
    alt: str


Block = Union[Text, Heading, Table, Image]


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        if isinstance(value, Report):
            return value.to_dict()
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return _jsonable(value.item())
    return value


class Report:
    """Mixin for report dataclasses. Subclasses implement :meth:`rows`."""

    def to_dict(self) -> dict[str, Any]:
        """Returns the report as JSON-safe built-in types."""
        return {f.name: _jsonable(getattr(self, f.name)) for f in dataclasses.fields(self)}

    def to_json(self) -> str:
        """Returns :meth:`to_dict` as indented JSON."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=False)

    def rows(self) -> Iterable[Sequence[Any]]:
        """Key/value rows for the default table; override for a different layout."""
        return [(f.name, getattr(self, f.name)) for f in dataclasses.fields(self)]

    def blocks(self) -> list[Block]:
        """What the report shows, in order; the default is one key/value table of :meth:`rows`."""
        return [Table(list(self.rows()))]

    def to_table(self) -> str:
        """Returns the report as aligned plain text (what ``print(report)`` and the CLI show)."""
        return render_text(self.blocks())

    def to_markdown(self, relative_to: str | os.PathLike | None = None, embed_images: bool = False) -> str:
        """Returns the report as Markdown.

        Args:
            relative_to: Directory image links are written relative to (the ``report.md``'s folder).
            embed_images: Inline the PNGs as data URIs (for notebooks, which cannot follow file links).
        """
        return render_markdown(self.blocks(), relative_to, embed_images)

    def _repr_markdown_(self) -> str:
        return self.to_markdown(embed_images=True)

    def __str__(self) -> str:
        return self.to_table()


def render_text(blocks: Sequence[Block]) -> str:
    """Renders blocks as plain text: tables aligned, images as ``plot: PATH``."""
    parts = []
    for block in blocks:
        if isinstance(block, Table):
            parts.append(format_table(block.rows, header=block.header) if block.in_text else "")
        elif isinstance(block, Image):
            parts.append(f"plot: {block.path}")
        elif block.in_text:
            text = block.terse if isinstance(block, Text) and block.terse is not None else block.text
            parts.append(f"\n== {text} ==" if isinstance(block, Heading) and block.level > 1 else text)
    return "\n".join(part for part in parts if part).strip("\n")


def render_markdown(blocks: Sequence[Block], relative_to: str | os.PathLike | None = None,
                    embed_images: bool = False) -> str:
    """Renders blocks as Markdown: GitHub tables (a key/value table gets a blank header), image links."""
    parts = []
    for block in blocks:
        if isinstance(block, Table):
            if block.rows or block.header:
                parts.append(format_markdown_table(block.rows, block.header or ("", "")))
        elif isinstance(block, Image):
            if embed_images and Path(block.path).is_file():
                data = base64.b64encode(Path(block.path).read_bytes()).decode("ascii")
                parts.append(f"![{block.alt}](data:image/png;base64,{data})")
            elif not embed_images:
                target = os.path.relpath(block.path, relative_to) if relative_to else block.path
                parts.append(f"![{block.alt}]({Path(target).as_posix()})")
        elif isinstance(block, Heading):
            parts.append("#" * block.level + " " + block.text)
        else:
            parts.append(block.text.replace("\n", "  \n"))
    return "\n\n".join(part for part in parts if part) + "\n"


def format_value(value: Any) -> str:
    """Formats one cell: floats compactly, ``None`` as ``-``, enums by value."""
    if value is None:
        return "-"
    if isinstance(value, enum.Enum):
        return str(value.value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e6):
            return f"{value:.3g}"
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(format_value(v) for v in value) or "-"
    return str(value)


def format_table(rows: Sequence[Sequence[Any]], header: Sequence[str] | None = None) -> str:
    """Aligns rows of cells into a plain-text table (with a rule under ``header`` if given).

    Example:
        >>> print(format_table([("a", 1), ("bb", 2.5)], header=("key", "value")))
        key  value
        ---  -----
        a    1
        bb   2.5
    """
    cells = [[format_value(c) for c in row] for row in rows]
    if header is not None:
        cells.insert(0, list(header))
    if not cells:
        return ""
    widths = [max(len(r[i]) for r in cells if i < len(r)) for i in range(max(map(len, cells)))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    if header is not None:
        lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def format_markdown_table(rows: Sequence[Sequence[Any]], header: Sequence[str]) -> str:
    """Formats rows as a GitHub-flavoured Markdown table."""
    def cell(value: Any) -> str:
        return format_value(value).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def format_bytes(size: int | None) -> str:
    """Formats a byte count for humans: ``1536 -> '1.5 KiB'``."""
    if size is None:
        return "-"
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")
