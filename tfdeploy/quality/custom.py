"""Your own metric: a Python callable ``(y_true, y_pred) -> float`` named as ``module:function``.

The function declares which way it improves (and, optionally, that it compares with the original
model's outputs rather than with labels), with the :func:`metric` decorator or plain attributes:

.. code-block:: python

    # mymetrics.py
    import numpy as np
    from tfdeploy.quality import metric

    @metric(direction="higher")
    def recall_at_10(y_true, y_pred):
        '''Share of positives among the 10 % highest scores.'''
        top = np.argsort(-y_pred.ravel())[: len(y_pred) // 10]
        return y_true.ravel()[top].sum() / max(y_true.sum(), 1)

``tfdeploy compress ... --metric mymetrics:recall_at_10`` then computes it on every variant (the
module is imported from the working directory or ``PYTHONPATH``; ``--auto``'s trials import it
again in their own processes). ``y_true`` is the labels as the data holds them (or the original's
output with ``against="original"``), ``y_pred`` the variant's output, both over the whole
evaluation set.

Example:
    >>> spec = custom_metric("statistics:fmean")   # doctest: +SKIP
    TfdeployError: Custom metric 'statistics:fmean' does not say which way it improves ...
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

from tfdeploy.errors import TfdeployError
from tfdeploy.model.loading import import_spec
from tfdeploy.quality.registry import Against, Collected, Direction, Head, MetricSpec, Output


def metric(direction: str | Direction = "higher", against: str | Against = "labels") -> Callable[[Any], Any]:
    """Declares a function a tfdeploy metric: which way it improves and what it compares with.

    Args:
        direction: ``"higher"`` or ``"lower"`` is better.
        against: ``"labels"`` (``y_true`` is the labels) or ``"original"`` (the original model's outputs).

    Example:
        >>> @metric(direction="lower")
        ... def worst_error(y_true, y_pred):
        ...     return float(abs(y_true - y_pred).max())
        >>> worst_error.direction
        'lower'
    """
    Direction(direction), Against(against)

    def mark(function: Any) -> Any:
        function.direction, function.against = str(Direction(direction).value), str(Against(against).value)
        return function

    return mark


def _declared(function: Any, spec: str) -> tuple[Direction, Against]:
    direction = getattr(function, "direction", None)
    if direction is None and hasattr(function, "higher_is_better"):
        direction = "higher" if function.higher_is_better else "lower"
    try:
        return Direction(direction), Against(getattr(function, "against", "labels"))
    except ValueError:
        raise TfdeployError(
            f"Custom metric {spec!r} does not say which way it improves: decorate it with "
            "@tfdeploy.quality.metric(direction='higher') (or 'lower'), or set function.direction = 'higher'. "
            f"Received: direction={direction!r}") from None


def custom_metric(spec: str) -> MetricSpec:
    """The :class:`~tfdeploy.quality.registry.MetricSpec` of the function ``spec`` (``module:function``) names.

    Raises:
        TfdeployError: If it cannot be imported, is not callable or does not declare its direction.
    """
    function = import_spec(spec, "custom metric", "mymetrics:recall_at_10")
    if not callable(function):
        raise TfdeployError(f"A custom metric is a function (y_true, y_pred) -> float. Received: {spec!r}")
    direction, against = _declared(function, spec)
    summary = ((function.__doc__ or "").strip().splitlines() or [f"{spec} (your metric)"])[0]

    def make(output: Output, param: Any) -> Collected:
        def call(truth: np.ndarray, predicted: np.ndarray) -> float:
            value = function(truth, predicted)
            try:
                value = float(value)
            except (TypeError, ValueError):
                raise TfdeployError(f"Custom metric {spec!r} returned {type(value).__name__} for output "
                                    f"{output.name!r}; it must return a number. Received: {value!r}") from None
            return value if math.isfinite(value) else float("nan")

        return Collected(call)

    return MetricSpec(spec, summary, direction, against, frozenset(Head), make)


def is_custom(name: str) -> bool:
    """``module:function`` names a custom metric; registered names have no colon."""
    return ":" in name
