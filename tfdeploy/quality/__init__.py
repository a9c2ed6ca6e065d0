"""How variants are judged: a registry of metrics, the defaults a practitioner would pick, and streamed evaluation.

Modules: :mod:`~tfdeploy.quality.registry` (the metric contract), :mod:`~tfdeploy.quality.metrics`
(one module per family, registered there), :mod:`~tfdeploy.quality.heads` (what each output is),
:mod:`~tfdeploy.quality.plan` (``--metric``, compiled metrics and defaults by head),
:mod:`~tfdeploy.quality.custom` (your own ``module:function``) and
:mod:`~tfdeploy.quality.evaluation` (a variant measured batch by batch).

Example:
    >>> from tfdeploy.quality import REGISTRY
    >>> REGISTRY.get("logloss").direction.value
    'lower'
"""

from tfdeploy._lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(__name__, {
    "REGISTRY": "tfdeploy.quality.metrics", "MetricSpec": "tfdeploy.quality.registry",
    "Direction": "tfdeploy.quality.registry", "Head": "tfdeploy.quality.registry",
    "Against": "tfdeploy.quality.registry", "metric": "tfdeploy.quality.custom",
    "MetricRef": "tfdeploy.quality.plan", "QualityPlan": "tfdeploy.quality.plan",
    "build_plan": "tfdeploy.quality.plan", "Measured": "tfdeploy.quality.evaluation",
    "measure": "tfdeploy.quality.evaluation",
})
