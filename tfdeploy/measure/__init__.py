"""Step 6, measurement: run any artifact and measure it — latency percentiles under load, cold start,
hot swap, determinism and parity.

Modules: :mod:`~tfdeploy.measure.predictors` (one interface over Keras, SavedModel and LiteRT),
:mod:`~tfdeploy.measure.benchmark` (``bench``), :mod:`~tfdeploy.measure.coldstart`,
:mod:`~tfdeploy.measure.hot_swap` (hot updates rehearsed the way TF Serving loads versions;
``tfdeploy.rehearse_hot_swap``), :mod:`~tfdeploy.measure.swap_timeline` (windowed percentiles of a swap), :mod:`~tfdeploy.measure.checks` (determinism and parity),
:mod:`~tfdeploy.measure.timing` (clocks, percentiles, load) and :mod:`~tfdeploy.measure.processes`
(measurements in a fresh process).

Example:
    >>> from tfdeploy.measure import BenchConfig, bench
    >>> report = bench(BenchConfig("models/clf/1"))     # doctest: +SKIP
"""

from tfdeploy._lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(__name__, {
    "bench": "tfdeploy.measure.benchmark", "BenchConfig": "tfdeploy.measure.benchmark",
    "check_determinism": "tfdeploy.measure.checks",
    "check_parity": "tfdeploy.measure.checks",
})
