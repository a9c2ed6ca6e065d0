"""The metric contract: what a metric declares, how it accumulates, and the registry that checks both.

A metric is one :class:`MetricSpec` registered in :mod:`tfdeploy.quality.metrics`. Everything
else is derived from the registry: ``--metric``'s help, the defaults by output head
(:mod:`tfdeploy.quality.plan`), the names Keras files use for the metrics they were compiled with,
and the table in ``docs/compress.md``.

A metric judges one output. Against **labels** it measures the model's quality (AUC, logloss,
MAE, ...); against the **original** model's outputs it measures fidelity (agreement, SNR, ...), which
needs no labels. Each declares its direction, so a drop is always a worsening: for a
lower-is-better metric such as logloss, a drop is an increase.

Example:
    >>> spec = MetricSpec("hits", "share of exact hits", Direction.HIGHER, Against.LABELS,
    ...                   frozenset({Head.VALUES}), make=lambda output, param: Collected(lambda t, p: 1.0))
    >>> MetricRegistry([spec]).get("hits").direction.worsening(0.9, 0.8)
    0.09999999999999998
"""

from __future__ import annotations

import dataclasses
import enum
import re
from typing import Any, Callable, Iterator, Protocol, Sequence

import numpy as np

from tfdeploy.errors import TfdeployError

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")


class Direction(str, enum.Enum):
    """Which way a metric improves: ``higher`` (AUC), ``lower`` (logloss) or towards ``target`` (calibration 1.0)."""

    HIGHER = "higher"
    LOWER = "lower"
    TARGET = "target"

    def worsening(self, base: float, value: float, target: float = 1.0) -> float:
        """How much worse ``value`` is than ``base`` (negative: better)."""
        if self is Direction.HIGHER:
            return base - value
        if self is Direction.LOWER:
            return value - base
        return abs(value - target) - abs(base - target)

    def meets(self, value: float, bound: float, target: float = 1.0) -> bool:
        """Whether ``value`` is on the good side of ``bound`` (for ``target``: within ``bound`` of it)."""
        if self is Direction.HIGHER:
            return value >= bound
        if self is Direction.LOWER:
            return value <= bound
        return abs(value - target) <= bound

    def better(self, a: float, b: float, target: float = 1.0) -> bool:
        """Whether ``a`` is strictly better than ``b``."""
        return self.worsening(b, a, target) < 0


class Head(str, enum.Enum):
    """What an output is, which decides the metrics that apply to it (:func:`tfdeploy.quality.heads.head_of`)."""

    CLASSES = "classes"        # class scores: softmax, or logits of one-of-N labels
    BINARY = "binary"          # one sigmoid unit (a ranker's click, a two-class classifier)
    MULTILABEL = "multilabel"  # several independent sigmoid units (per sample, or per frame)
    VALUES = "values"          # regression, embeddings, anything else


class Against(str, enum.Enum):
    """What a metric compares an output with."""

    LABELS = "labels"      # the data's labels: quality
    ORIGINAL = "original"  # the original model's outputs: fidelity


@dataclasses.dataclass(frozen=True)
class Output:
    """The output a metric is computed on: its name, head, width and whether it gives probabilities."""

    name: str
    head: Head
    units: int
    probabilities: bool


class Accumulator(Protocol):
    """Takes an output batch by batch and gives the metric's value at the end (``None``: undefined here)."""

    def update(self, truth: np.ndarray, predicted: np.ndarray) -> None: ...

    def result(self) -> float | None: ...


class Collected:
    """An :class:`Accumulator` that keeps the batches and calls ``function(truth, predicted)`` once at the end.

    For metrics computed by a maintained implementation that needs every sample at once (ROC AUC,
    average precision, R²): what it keeps is this one output's column(s), not every output.
    """

    def __init__(self, function: Callable[[np.ndarray, np.ndarray], float | None]) -> None:
        self.function, self.truth, self.predicted = function, [], []  # type: ignore[var-annotated]

    def update(self, truth: np.ndarray, predicted: np.ndarray) -> None:
        self.truth.append(np.asarray(truth))
        self.predicted.append(np.asarray(predicted))

    def result(self) -> float | None:
        if not self.truth:
            return None
        value = self.function(np.concatenate(self.truth), np.concatenate(self.predicted))
        return None if value is None else float(value)


MakeAccumulator = Callable[[Output, Any], Accumulator]


@dataclasses.dataclass(frozen=True)
class MetricSpec:
    """Everything tfdeploy needs to know about one metric.

    Attributes:
        name: The ``--metric`` name (lowercase words joined by ``_``).
        summary: One line for ``--help``, reports and the docs table.
        direction: Which way it improves.
        against: Labels (quality) or the original's outputs (fidelity).
        heads: The output heads it applies to.
        make: ``(output, param) -> Accumulator`` for one output.
        unit: Shown after values (``"%"``, ``"dB"``).
        scale: Shown value = value × ``scale`` (accuracy is a fraction shown in %, drops in points).
        param: The name of its parameter (``"k"``, ``"threshold"``), set as ``NAME=VALUE``.
        default_param: The parameter's default.
        keras_names: Names Keras uses for it in a file's compile config (metrics and losses).
        target: For :attr:`Direction.TARGET`, the ideal value.
        has_drop: A worsening from the original's value means something (not for SNR, whose original
            is the cap identical outputs get: judge it by a threshold).
    """

    name: str
    summary: str
    direction: Direction
    against: Against
    heads: frozenset[Head]
    make: MakeAccumulator
    unit: str = ""
    scale: float = 1.0
    param: str | None = None
    default_param: float | None = None
    keras_names: tuple[str, ...] = ()
    target: float = 1.0
    has_drop: bool = True

    def check(self) -> None:
        """Raises TfdeployError naming the first field that breaks the contract."""
        if not isinstance(self.name, str) or not NAME_PATTERN.match(self.name):
            raise TfdeployError(f"A metric name is lowercase words joined by '_'. Received: name={self.name!r}")
        if not isinstance(self.summary, str) or not self.summary.strip():
            raise TfdeployError(f"Metric {self.name!r} needs a one-line summary. Received: summary={self.summary!r}")
        if not isinstance(self.direction, Direction) or not isinstance(self.against, Against):
            raise TfdeployError(f"Metric {self.name!r}: direction must be a Direction and against an Against. "
                                f"Received: direction={self.direction!r}, against={self.against!r}")
        if not self.heads or not all(isinstance(h, Head) for h in self.heads):
            raise TfdeployError(f"Metric {self.name!r}: heads must be a non-empty set of Head. Received: heads={self.heads!r}")
        if not callable(self.make):
            raise TfdeployError(f"Metric {self.name!r}: make must be callable. Received: make={self.make!r}")
        if (self.param is None) != (self.default_param is None):
            raise TfdeployError(f"Metric {self.name!r}: a parameter needs a default and a default needs a parameter. "
                                f"Received: param={self.param!r}, default_param={self.default_param!r}")

    def key(self, param: float | None = None) -> str:
        """The name results are stored under: ``top_k``, or ``top_k=3`` for a parameter other than the default."""
        if param is None or param == self.default_param:
            return self.name
        return f"{self.name}={param:g}"

    def applies_to(self, output: Output) -> bool:
        return output.head in self.heads

    def shown(self, value: float | None) -> float | None:
        """``value`` in the units reports and budgets use (× :attr:`scale`)."""
        return None if value is None else value * self.scale

    def describe_unit(self) -> str:
        return {"%": "points"}.get(self.unit, self.unit)


class MetricRegistry:
    """The registered metrics, in the order ``--help`` and the docs list them; checked when built.

    Raises:
        TfdeployError: For a spec that breaks the contract, or two metrics with one name or Keras name.
    """

    def __init__(self, specs: Sequence[MetricSpec]) -> None:
        names: dict[str, MetricSpec] = {}
        keras: dict[str, str] = {}
        for spec in specs:
            spec.check()
            if spec.name in names:
                raise TfdeployError(f"Two metrics are named {spec.name!r}. Received: name={spec.name!r}")
            names[spec.name] = spec
            for alias in spec.keras_names:
                if alias.lower() in keras:
                    raise TfdeployError(f"Keras name {alias!r} is claimed by {keras[alias.lower()]!r} and "
                                        f"{spec.name!r}. Received: keras_names={spec.keras_names!r}")
                keras[alias.lower()] = spec.name
        self._specs, self._keras = names, keras

    def __iter__(self) -> Iterator[MetricSpec]:
        return iter(self._specs.values())

    def names(self) -> list[str]:
        return list(self._specs)

    def get(self, name: str) -> MetricSpec:
        """The metric ``name``.

        Raises:
            TfdeployError: For an unknown name, listing the registered ones.
        """
        if name not in self._specs:
            raise TfdeployError(f"Unknown metric {name!r}; registered: {', '.join(self._specs)} (or module:function "
                                f"for your own). Received: metric={name!r}")
        return self._specs[name]

    def from_keras(self, name: str) -> MetricSpec | None:
        """The metric a Keras metric or loss name stands for (``"AUC"``, ``"binary_crossentropy"``), if any."""
        found = self._keras.get(name.lower())
        return None if found is None else self._specs[found]

    def against(self, against: Against) -> list[MetricSpec]:
        return [spec for spec in self if spec.against is against]

    def markdown_table(self) -> str:
        """The metric table of ``docs/compress.md`` (``scripts/make_doc_tables.py`` writes it there)."""
        rows = ["| metric | what it measures | better | against | outputs | unit | Keras names read from files |",
                "|---|---|---|---|---|---|---|"]
        for s in self:
            better = {"higher": "higher", "lower": "lower", "target": f"closer to {s.target:g}"}[s.direction.value]
            param = f" (`{s.name}={s.default_param:g}` is the default {s.param})" if s.param else ""
            heads = ", ".join(h.value for h in Head if h in s.heads)
            unit = {"%": "% (drops in points)"}.get(s.unit, s.unit) or "–"
            names = ", ".join(f"`{n}`" for n in s.keras_names) or "–"
            rows.append(f"| `{s.name}` | {s.summary}{param} | {better} | {s.against.value} | {heads} | {unit} | {names} |")
        return "\n".join(rows) + "\n"
