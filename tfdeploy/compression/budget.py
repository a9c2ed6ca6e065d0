"""The quality budget of ``compress --auto``, in the units of the metric that drives it.

Two kinds of bound, alone or together: how much worse than the original the variant may be
(``max_drop``; for a lower-is-better metric such as logloss, worse is higher), and an absolute
value it must reach (``threshold``; for SNR, "at least 25 dB"). ``--max-accuracy-drop`` is the
accuracy shorthand; ``--relative-budget`` reads the drop as a percentage of the original's value.

Example:
    >>> budget = Budget("auc", "higher", 1.0, "", max_drop=0.005, original=0.71)
    >>> budget.allows(0.706), budget.allows(0.70)
    (True, False)
    >>> budget.describe()
    'auc at most 0.005 below the original (0.71)'
    >>> Budget("snr", "higher", 1.0, "dB", threshold=25.0).describe()
    'snr ≥ 25 dB'
"""

from __future__ import annotations

import dataclasses
from typing import Any

from tfdeploy.errors import TfdeployError
from tfdeploy.quality.registry import Direction

DEFAULT_ACCURACY_DROP = 1.0  # points, when accuracy drives --auto and no budget is given


@dataclasses.dataclass(frozen=True)
class Budget:
    """A bound on the driving metric, in its reporting units (accuracy in %, SNR in dB).

    Attributes:
        metric: The driving metric as given (``auc@click``).
        direction: ``higher``, ``lower`` or ``target`` (see :class:`~tfdeploy.quality.registry.Direction`).
        scale: Reporting units per raw unit (100 for accuracy).
        unit: ``%``, ``dB`` or empty.
        max_drop: How much worse than the original a variant may be (``None``: no such bound).
        threshold: A value the variant must reach (``None``: no such bound).
        original: The original's value, in reporting units.
        target: The ideal value of a ``target`` metric.
    """

    metric: str
    direction: str
    scale: float
    unit: str
    max_drop: float | None = None
    threshold: float | None = None
    original: float | None = None
    target: float = 1.0

    @property
    def _direction(self) -> Direction:
        return Direction(self.direction)

    def drop(self, value: float) -> float | None:
        """How much worse ``value`` (reporting units) is than the original's."""
        if self.original is None:
            return None
        return self._direction.worsening(self.original, value, self.target * self.scale)

    def allows(self, value: float | None) -> bool:
        """Whether a variant whose driving metric is ``value`` (reporting units) is within the budget."""
        if value is None:
            return False
        drop = self.drop(value)
        if self.max_drop is not None and (drop is None or drop > self.max_drop + 1e-9):
            return False
        return self.threshold is None or self._direction.meets(value, self.threshold, self.target * self.scale)

    def worst_allowed(self) -> float | None:
        """The worst value within budget (the Pareto plot's dashed line); ``None`` for a target metric."""
        bounds = []
        if self.max_drop is not None and self.original is not None:
            bounds.append(self.original - self.max_drop if self.direction == "higher" else self.original + self.max_drop)
        if self.threshold is not None:
            bounds.append(self.threshold)
        if not bounds or self.direction == "target":
            return None
        return max(bounds) if self.direction == "higher" else min(bounds)

    def drop_header(self) -> str:
        unit = "points" if self.unit == "%" else self.unit
        return f"drop ({unit})" if unit else "drop"

    def amount(self, value: float) -> str:
        """A difference in the metric's units: ``1.5 points``, ``3 dB``, ``0.005``."""
        if self.unit == "%":
            return f"{value:.4g} point{'' if value == 1 else 's'}"
        return f"{value:.4g} {self.unit}" if self.unit else f"{value:.4g}"

    def value(self, value: float) -> str:
        """A value in the metric's units: ``91.2%``, ``31.5 dB``, ``0.7012``."""
        return f"{value:.4g}%" if self.unit == "%" else f"{value:.4g} {self.unit}" if self.unit else f"{value:.4g}"

    def describe(self) -> str:
        parts = []
        if self.max_drop is not None:
            way = {"higher": "below", "lower": "above", "target": "further from the target than"}[self.direction]
            original = "unknown" if self.original is None else self.value(self.original)
            parts.append(f"at most {self.amount(self.max_drop)} {way} the original ({original})")
        if self.threshold is not None and self.direction == "target":
            parts.append(f"within {self.amount(self.threshold)} of {self.value(self.target * self.scale)}")
        elif self.threshold is not None:
            parts.append(f"{'≥' if self.direction == 'higher' else '≤'} {self.value(self.threshold)}")
        return f"{self.metric} " + " and ".join(parts)

    def verdict(self, value: float | None) -> str:
        """Why a measured variant is over the budget (for the verdicts table)."""
        drop = None if value is None else self.drop(value)
        if self.max_drop is not None and drop is not None and drop > self.max_drop + 1e-9:
            return f"{self.metric} worsens by {self.amount(drop)}, over the {self.amount(self.max_drop)} budget"
        shown = "unknown" if value is None else self.value(value)
        return f"{self.metric} is {shown}, short of the {self.value(self.threshold or 0.0)} threshold"


def make_budget(metric: str, spec: Any, original_raw: float | None, max_drop: float | None,
                threshold: float | None, relative: bool) -> Budget:
    """The :class:`Budget` of ``--auto`` for the driving metric ``metric`` (whose :class:`MetricSpec` is ``spec``).

    Raises:
        TfdeployError: When no bound is given for a metric other than accuracy, or a bound is negative.
    """
    original = None if original_raw is None else original_raw * spec.scale
    if max_drop is not None and not spec.has_drop:
        raise TfdeployError(f"{metric} has no meaningful drop from the original (identical outputs score "
                            f"{original:g} {spec.unit}): give --metric-threshold V instead (snr 25: at least 25 dB). "
                            f"Received: max_metric_drop={max_drop}")
    if max_drop is None and threshold is None:
        if spec.name != "accuracy":
            shown = "unknown" if original is None else f"{original:.4g}"
            drop = (f"--max-metric-drop X (how much worse than the original's {shown} a variant may be) or "
                    if spec.has_drop else "")
            raise TfdeployError(
                f"--auto is driven by {metric} (the first metric), so its budget is in {metric}'s units: pass "
                f"{drop}--metric-threshold V (a value it must reach). Received: metric={metric!r}")
        max_drop = DEFAULT_ACCURACY_DROP
    if max_drop is not None and max_drop < 0:
        raise TfdeployError(f"A drop budget cannot be negative. Received: max_metric_drop={max_drop}")
    if relative and max_drop is not None:
        if original is None:
            raise TfdeployError(f"A relative budget needs the original's {metric}. Received: relative=True")
        max_drop = max_drop / 100 * abs(original)
    return Budget(metric, spec.direction.value, spec.scale, spec.unit, max_drop, threshold, original,
                  spec.target)
