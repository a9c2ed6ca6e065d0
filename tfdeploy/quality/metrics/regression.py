"""Regression: mean absolute error, root mean squared error and R², by scikit-learn (averaged over units).

Example:
    >>> RMSE.keras_names[:2]
    ('mse', 'mean_squared_error')
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tfdeploy import backend
from tfdeploy.quality.heads import rows
from tfdeploy.quality.registry import Against, Collected, Direction, Head, MetricSpec, Output


def _regression(output: Output, param: Any, score: str, root: bool = False) -> Collected:
    def measure(truth: np.ndarray, predicted: np.ndarray) -> float:
        value = getattr(backend.sklearn_metrics(), score)(rows(truth, output.units).astype("float64"),
                                                          rows(predicted, output.units).astype("float64"))
        return float(np.sqrt(value)) if root else float(value)

    return Collected(measure)


VALUES = frozenset({Head.VALUES})
MAE = MetricSpec("mae", "mean absolute error", Direction.LOWER, Against.LABELS, VALUES,
                 lambda output, param: _regression(output, param, "mean_absolute_error"),
                 keras_names=("mae", "mean_absolute_error", "MeanAbsoluteError"))
RMSE = MetricSpec("rmse", "root mean squared error", Direction.LOWER, Against.LABELS, VALUES,
                  lambda output, param: _regression(output, param, "mean_squared_error", root=True),
                  keras_names=("mse", "mean_squared_error", "MeanSquaredError", "rmse", "root_mean_squared_error",
                               "RootMeanSquaredError"))
R2 = MetricSpec("r2", "coefficient of determination (1 is perfect, 0 predicts the mean)", Direction.HIGHER,
                Against.LABELS, VALUES, lambda output, param: _regression(output, param, "r2_score"),
                keras_names=("r2", "r2_score", "R2Score"))
