"""Report objects: every library call returns one; the CLI prints it.

A report is a dataclass with :meth:`Report.to_dict` (JSON-safe) and :meth:`Report.to_table`
(a readable, aligned text table). ``str(report)`` is the table.

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

import dataclasses
import enum
import json
import math
from pathlib import Path
from typing import Any, Iterable, Sequence


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

    def to_table(self) -> str:
        """Returns the report as an aligned text table."""
        return format_table(list(self.rows()))

    def __str__(self) -> str:
        return self.to_table()


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
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(format_value(c) for c in row) + " |" for row in rows]
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
