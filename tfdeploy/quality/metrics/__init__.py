"""The registered metrics, one module per family.

To add a metric, write its :class:`~tfdeploy.quality.registry.MetricSpec` in a family module (or a
new one) and add it to :data:`REGISTRY` below; ``--metric`` accepts it, the defaults by head and the
compiled-metric names it declares pick it up, and ``scripts/make_metric_table.py`` lists it in
``docs/compress.md``.

Example:
    >>> REGISTRY.get("auc").against.value
    'labels'
    >>> REGISTRY.from_keras("binary_crossentropy").name
    'logloss'
"""

from __future__ import annotations

from tfdeploy.quality.metrics import classification, fidelity, multilabel, ranking, regression
from tfdeploy.quality.registry import MetricRegistry

REGISTRY = MetricRegistry([
    classification.ACCURACY,
    classification.TOP_K,
    ranking.ROC_AUC,
    ranking.PR_AUC,
    ranking.LOGLOSS,
    ranking.ECE,
    ranking.CALIBRATION,
    multilabel.MICRO_F1,
    multilabel.MACRO_F1,
    multilabel.MAP,
    regression.MAE,
    regression.RMSE,
    regression.R2,
    fidelity.AGREEMENT,
    fidelity.MEAN_ABS_DIFF,
    fidelity.MAX_ABS_DIFF,
    fidelity.COSINE,
    fidelity.KL,
    fidelity.SNR,
])
