"""Quality-aware compression: the smallest (or fastest) variant within a budget on the metric that judges the model.

Candidates are the recipes registered with an :class:`~tfdeploy.compression.registry.AutoHint`,
tried in order of expected gain (:data:`CANDIDATES`), each in its own process by default
(:mod:`tfdeploy.compression.trials`), ``jobs`` at a time. Each is measured on the validation set by
the driving metric (the first ``--metric``, else the model's compiled or head default; without
labels, fidelity to the original) against a :class:`~tfdeploy.compression.budget.Budget` in that
metric's units; a candidate that fails is recorded with its reason and the search goes on. The
search stops early once a candidate meets the budget and no remaining candidate is expected to
beat it, and respects ``max_trials`` and ``timeout_s``. When a uniform precision misses the budget
(``ptq-int8``, ``ptq-int4-weights``), a per-layer search follows: the layers that suffer most are
kept at a higher precision, as few as the budget allows. The report lists every trial, the peak
memory of each, and the Pareto front (size or latency vs the driving metric) as a table and a plot.

Example:
    >>> report = auto_compress(AutoConfig(CompressConfig("m.keras", "out", data="d.npz"),
    ...                                   max_accuracy_drop=1.0, jobs=2))      # doctest: +SKIP
    >>> report.chosen
    'ptq-int4-weights'
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import enum
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from tfdeploy import faults, plots
from tfdeploy.compression.budget import Budget, make_budget
from tfdeploy.compression.config import CompressConfig
from tfdeploy.compression.recipes import REGISTRY, Recipe
from tfdeploy.compression.session import CompressionSession
from tfdeploy.compression.isolation import isolation_blocker
from tfdeploy.compression.trials import FOLLOW_UPS, Trial, TrialSpec, run_isolated, run_trial
from tfdeploy.errors import TfdeployError
from tfdeploy.files import refuse_existing, write_atomic
from tfdeploy.measure.processes import peak_rss_bytes
from tfdeploy.model.loading import optimizer_state_bytes
from tfdeploy.report import Block, Heading, Image, Report, Table, Text, format_bytes


class Objective(str, enum.Enum):
    """What ``compress --auto`` minimises among the candidates within the quality budget."""

    SIZE = "size"        # gzip bytes: what is stored and shipped
    LATENCY = "latency"  # median single-example latency in the serving runtime


@dataclasses.dataclass(frozen=True)
class Candidate:
    """A compression candidate and its expected outcome (used for ordering and early stopping).

    Attributes:
        recipe: The compress recipe that makes it.
        expected_size: Expected gzip size as a fraction of the original's.
        expected_latency: Expected latency as a fraction of the original's.
        student_width: For ``distill``: the width of the narrower student (``None``: the ``student`` file).
    """

    recipe: Recipe
    expected_size: float
    expected_latency: float
    student_width: float | None = None

    def trial(self) -> TrialSpec:
        """What to run for this candidate."""
        if self.recipe is Recipe.DISTILL:
            return TrialSpec("distill", "distill" if self.student_width is None else f"w{self.student_width:g}-distill",
                             self.student_width)
        return TrialSpec("recipe", self.recipe.value)

    @property
    def summary(self) -> str:
        if self.recipe is Recipe.DISTILL:
            student = "the --student model" if self.student_width is None else f"a copy at width {self.student_width:g}"
            return f"knowledge distillation into {student}, then float and int8 TFLite"
        return self.recipe.spec.summary


# From the registry, in order of expected gain (the hints were measured on the built-in example, docs/benchmarks.md).
CANDIDATES: tuple[Candidate, ...] = tuple(
    Candidate(Recipe(spec.name), spec.auto.expected_size, spec.auto.expected_latency)  # type: ignore[union-attr]
    for spec in REGISTRY.candidates())
AUTO_REPORTS = ("auto_report.json", "auto_report.md", "auto_pareto.png")
STUDENT_WIDTHS = (0.5, 0.25)


def distill_candidates(widths: Sequence[float], student_file: bool) -> list[Candidate]:
    """Distilled students to try with ``--objective latency``: the ``student`` file, else one per width.

    A student of width ``w`` has about ``w²`` of the compute; its int8 version is expected at
    ``w²`` of ``ptq-int8``'s latency and size. They are tried last: each trains a new model.

    Example:
        >>> [c.student_width for c in distill_candidates((0.5, 0.25), student_file=False)]
        [0.5, 0.25]
    """
    int8 = Recipe.PTQ_INT8.spec.auto
    assert int8 is not None
    if student_file:
        return [Candidate(Recipe.DISTILL, int8.expected_size, int8.expected_latency)]
    return [Candidate(Recipe.DISTILL, int8.expected_size * w * w, int8.expected_latency * w * w, w) for w in widths]


@dataclasses.dataclass
class AutoReport(Report):
    """Outcome of :func:`auto_compress`: every trial, the choice, the Pareto front, memory and time.

    ``metric`` drives the search; ``original_quality`` and each trial's ``quality``/``drop`` are in its
    reporting units (accuracy in %, drops in points), ``budget`` the bound it was held to.
    """

    model: str
    objective: str
    metric: str
    budget: Budget
    original_quality: float | None
    trials: list[Trial]
    chosen: str
    chosen_path: str
    stopped_because: str
    pareto: list[str] = dataclasses.field(default_factory=list)
    verdicts: dict[str, str] = dataclasses.field(default_factory=dict)
    notes: list[str] = dataclasses.field(default_factory=list)
    jobs: str = "1"
    isolation: str = ""
    wall_seconds: float | None = None
    peak_rss_bytes: int | None = None
    files: list[str] = dataclasses.field(default_factory=list)

    def blocks(self) -> list[Block]:
        quality = f"{self.metric} {self.budget.unit}".strip()
        rows = [(t.name, format_bytes(t.gzip_bytes), _round(t.quality), _round(t.drop),
                 "error" if t.error else "passed" if t.passed else "failed", t.latency_ms,
                 format_bytes(t.peak_rss_bytes), round(t.seconds, 1)) for t in self.trials]
        notes = [f"{t.name}: kept in float {', '.join(t.kept_float)}" for t in self.trials if t.kept_float]
        notes += [f"{t.name}: int8 layers {', '.join(k for k, v in t.plan['layers'].items())}"
                  for t in self.trials if t.plan and t.plan.get("layers")]
        notes += [f"{t.name} could not be made: {t.error}" for t in self.trials if t.error]
        runtimes = sorted({t.runtime for t in self.trials if t.runtime})
        by_name = {t.name: t for t in self.trials}
        front = [(name, format_bytes(by_name[name].gzip_bytes), _round(by_name[name].quality),
                  by_name[name].latency_ms) for name in self.pareto if name in by_name]
        return [
            Text(f"auto-compress {self.model}: objective {self.objective}, budget {self.budget.describe()}"),
            Table(rows, header=("candidate", "gzip", quality, self.budget.drop_header(), "budget", "latency ms",
                                "peak RSS", "time s")),
            *map(Text, notes),
            Heading("Why each candidate was chosen or rejected"),
            Table(list(self.verdicts.items()), header=("candidate", "verdict")),
            *map(Text, self.notes),
            Text(f"trials: {self.isolation}; jobs {self.jobs}; search peak RSS {format_bytes(self.peak_rss_bytes)}; "
                 f"wall {self.wall_seconds or 0:.1f} s" + (f"; latency measured in {'; '.join(runtimes)}"
                                                           if runtimes else "")),
            Heading(f"Pareto front ({'gzip size' if self.objective == 'size' else 'latency'} vs {self.metric})"),
            Table(front, header=("variant", "gzip", quality, "latency ms")),
            *[Image(path, "Pareto front") for path in self.files if path.endswith(".png")],
            Text(f"chosen: {self.chosen} -> {self.chosen_path} ({self.stopped_because})")]


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


@dataclasses.dataclass
class AutoConfig:
    """Options of :func:`auto_compress`.

    Attributes:
        compress: Model, data, output directory, recipe options and ``metrics`` (its ``recipes`` are ignored).
        max_accuracy_drop: Accuracy budget in points, the shorthand for ``metrics=["accuracy"]`` with
            ``max_metric_drop`` (default: 1 point when accuracy drives the search and no budget is given).
        max_metric_drop: How much worse than the original the driving metric may get, in its units
            (an increase for lower-is-better metrics such as logloss).
        metric_threshold: A value the driving metric must reach (``snr`` 25: at least 25 dB).
        relative: Read the drop budget as a percentage of the original's value.
        objective: Minimise gzip size or latency among candidates within budget.
        candidates: Candidates in order of expected gain.
        max_trials: Stop after this many measured candidates (per-layer searches not counted).
        timeout_s: Stop starting new candidates after this many seconds.
        keep_all: Keep every trial's artifact (otherwise only the chosen one).
        jobs: Trials run at once, capped by the machine's cores and available memory.
        trial_timeout_s: A trial still running after this many seconds is killed and recorded as failed.
        student_widths: With ``objective=latency``, distilled students of these widths (or the
            ``compress.student`` file) are candidates too, with their float and int8 TFLite versions
            (empty: none).
    """

    compress: CompressConfig
    max_accuracy_drop: float | None = None
    max_metric_drop: float | None = None
    metric_threshold: float | None = None
    relative: bool = False
    objective: Objective = Objective.SIZE
    candidates: Sequence[Candidate] = CANDIDATES
    max_trials: int | None = None
    timeout_s: float | None = None
    keep_all: bool = False
    jobs: int = 1
    trial_timeout_s: float = 3600.0
    student_widths: Sequence[float] = STUDENT_WIDTHS


def _score(trial_or_variant: Any, objective: Objective) -> float:
    return trial_or_variant.gzip_bytes if objective is Objective.SIZE else trial_or_variant.latency_ms


@faults.boundary("compress --auto")
def auto_compress(config: AutoConfig) -> AutoReport:
    """Searches the candidates for the best variant within the budget on the driving metric.

    Returns:
        An :class:`AutoReport`; the chosen artifact is in ``compress.out_dir`` (the original model
        when nothing meets the budget), the trial table in ``auto_report.json``, the Pareto plot
        in ``auto_pareto.png``.

    Raises:
        TfdeployError: Without data, without a budget for a driving metric other than accuracy,
            for conflicting or negative budgets, or ``jobs`` below 1.

    Example:
        >>> auto_compress(AutoConfig(CompressConfig("m.keras", "out", data="d.npz"), 0.5)).chosen  # doctest: +SKIP
        'ptq-int8'
    """
    started = time.perf_counter()
    _check(config)
    out_dir = Path(config.compress.out_dir)
    previous = [*out_dir.glob("auto-*"), *(out_dir / name for name in AUTO_REPORTS)] if out_dir.is_dir() else []
    refuse_existing(previous, config.compress.overwrite)
    # each trial is already a process of its own (or runs here with --in-process): no worker inside it
    trials_config = dataclasses.replace(config.compress, out_dir=out_dir / "trials", overwrite=True,
                                        metrics=_metrics(config), isolate=False)
    candidates, notes = _candidates(config)
    config = dataclasses.replace(config, candidates=candidates)
    session = CompressionSession(trials_config, recipes=[c.recipe for c in candidates])
    budget = _budget(config, session)
    jobs, jobs_text = plan_jobs(config.jobs)
    runner, isolation = _runner(config, trials_config, session, budget, jobs)
    trials, best, stopped = _search(config, session, runner, jobs, budget)
    chosen_name, chosen_path = _publish_choice(config, session, best, trials)
    report = AutoReport(model=str(session.loaded.path), objective=config.objective.value, metric=budget.metric,
                        budget=budget, original_quality=budget.original, trials=trials, chosen=chosen_name,
                        chosen_path=chosen_path,
                        stopped_because=stopped if best else "no candidate met the budget: the original stays",
                        jobs=jobs_text, isolation=isolation, notes=notes + session.evaluator.plan.notes,
                        verdicts=verdicts(trials, best, budget, config.objective))
    return _write_reports(report, session, config, out_dir, started)


def _metrics(config: AutoConfig) -> tuple[str, ...]:
    """The run's metrics: ``--max-accuracy-drop`` makes accuracy drive when no ``--metric`` is given."""
    metrics = tuple(config.compress.metrics)
    if config.max_accuracy_drop is None or metrics:
        return metrics
    return ("accuracy",)


def _budget(config: AutoConfig, session: CompressionSession) -> Budget:
    """The budget on the session's driving metric, from the config's bounds."""
    driving = session.evaluator.plan.driving
    return make_budget(str(driving), driving.spec(), session.base_quality,
                       config.max_accuracy_drop if config.max_accuracy_drop is not None else config.max_metric_drop,
                       config.metric_threshold, config.relative)


def _candidates(config: AutoConfig) -> tuple[list[Candidate], list[str]]:
    """The candidates to try, distilled students included when they can pay off; and notes on that choice."""
    candidates = list(config.candidates)
    if any(c.recipe is Recipe.DISTILL for c in candidates):
        return candidates, []
    student_file = config.compress.student is not None
    if config.objective is not Objective.LATENCY:
        return candidates, ["distilled students were not tried: they cut compute, and are candidates with "
                            "--objective latency (quantization already gives the smallest files)"]
    if not config.student_widths and not student_file:
        return candidates, ["distilled students were not tried: no --student-widths"]
    return candidates + distill_candidates(config.student_widths, student_file), []


def _check(config: AutoConfig) -> None:
    if config.max_accuracy_drop is not None and config.max_accuracy_drop < 0:
        raise TfdeployError(f"The accuracy budget cannot be negative. Received: max_accuracy_drop={config.max_accuracy_drop}")
    if config.max_accuracy_drop is not None and config.max_metric_drop is not None:
        raise TfdeployError("--max-accuracy-drop is the accuracy budget and --max-metric-drop the driving metric's: "
                            f"give one. Received: max_accuracy_drop={config.max_accuracy_drop}, "
                            f"max_metric_drop={config.max_metric_drop}")
    first = config.compress.metrics[0].split("@")[0] if config.compress.metrics else "accuracy"
    if config.max_accuracy_drop is not None and first != "accuracy":
        raise TfdeployError(f"--max-accuracy-drop budgets accuracy, but --metric {config.compress.metrics[0]} drives "
                            f"the search: give its budget with --max-metric-drop or --metric-threshold. "
                            f"Received: max_accuracy_drop={config.max_accuracy_drop}")
    if config.jobs < 1:
        raise TfdeployError(f"jobs must be at least 1. Received: jobs={config.jobs}")
    if any(not 0 < w <= 1 for w in config.student_widths):
        raise TfdeployError(f"Student widths are fractions of the model's, in (0, 1]. "
                            f"Received: student_widths={list(config.student_widths)}")
    if config.compress.data is None:
        raise TfdeployError("--auto needs data to calibrate and judge candidates on: pass --data (an .npz or an image "
                            "directory; without labels, variants are judged by fidelity to the original). "
                            "Received: data=None")


def _write_reports(report: AutoReport, session: CompressionSession, config: AutoConfig, out_dir: Path,
                   started: float) -> AutoReport:
    original = session.original
    report.pareto = pareto_front(report.trials, config.objective, report.budget.direction)
    chart = _pareto_chart(report, original, config.objective, out_dir / AUTO_REPORTS[2])
    report.files = [str(out_dir / name) for name in AUTO_REPORTS if name.endswith(".png") is False or chart]
    report.peak_rss_bytes = max([peak_rss_bytes(), *(t.peak_rss_bytes or 0 for t in report.trials)])
    report.wall_seconds = time.perf_counter() - started
    write_atomic(out_dir / AUTO_REPORTS[0], report.to_json())
    write_atomic(out_dir / AUTO_REPORTS[1], "# Accuracy-aware compression\n\n" + report.to_markdown(relative_to=out_dir))
    return report


def plan_jobs(requested: int) -> tuple[int, str]:
    """How many trials to run at once: ``requested``, capped by cores and by available memory.

    A trial loads TensorFlow and the model like this process, so each is budgeted at twice this
    process's resident memory.
    """
    cores = os.cpu_count() or 1
    available, resident = _meminfo_bytes("MemAvailable"), _resident_bytes()
    by_memory = max(1, available // max(2 * resident, 1)) if available and resident else requested
    jobs = max(1, min(requested, cores, by_memory))
    if jobs == requested:
        return jobs, str(jobs)
    why = f"{cores} cores" if jobs == cores else f"{format_bytes(available)} available at ~{format_bytes(2 * resident)} per trial"
    return jobs, f"{jobs} (asked {requested}; {why})"


def _meminfo_bytes(key: str) -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _resident_bytes() -> int | None:
    try:
        return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


Runner = Callable[[TrialSpec], list[Trial]]


def _runner(config: AutoConfig, trials_config: CompressConfig, session: CompressionSession, budget: Budget,
            jobs: int) -> tuple[Runner, str]:
    """The function that runs one trial, and how (fresh processes or this one)."""
    blocker = isolation_blocker(trials_config)
    if not config.compress.isolate or blocker:
        how = "in this process" + (f" ({blocker})" if blocker else "")
        return (lambda spec: _guarded(spec, lambda: run_trial(session, spec, budget))), how
    say, threads = session.progress, max(1, (os.cpu_count() or 1) // jobs)
    env = {"TF_NUM_INTRAOP_THREADS": str(threads), "OMP_NUM_THREADS": str(threads)} if jobs > 1 else None

    def isolated(spec: TrialSpec) -> list[Trial]:
        return _guarded(spec, lambda: run_isolated(trials_config, spec, budget, lambda line: say(f"  [{spec.name}] "
                                                   f"{line.strip()}"), config.trial_timeout_s, env))

    return isolated, "each in a fresh process" + (f" ({threads} TF threads each)" if env else "")


def _guarded(spec: TrialSpec, run: Callable[[], list[Trial]]) -> list[Trial]:
    """A trial that raises becomes a failed row with its reason; the search goes on."""
    began = time.perf_counter()
    try:
        return run()
    except TfdeployError as exc:
        error = str(exc)
    except Exception as exc:  # TF/TFLite/quantizer errors fail this trial only
        if faults.is_environment_fault(exc):
            raise
        error = f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0][:300]}"
    return [Trial(name=spec.name, gzip_bytes=None, quality=None, drop=None, latency_ms=None, passed=False,
                  seconds=time.perf_counter() - began, error=error)]


def _stop_reason(config: AutoConfig, session: CompressionSession, started: int, elapsed: float,
                 best: Trial | None, remaining: Sequence[Candidate], base: float) -> str | None:
    """Why the search starts no more candidates (``None``: go on)."""
    if config.max_trials is not None and started >= config.max_trials:
        return f"max trials ({config.max_trials}) reached"
    if config.timeout_s is not None and elapsed > config.timeout_s:
        return f"timeout ({config.timeout_s} s) reached"
    if best is not None and remaining:
        original = session.original
        expected = [(c.expected_size * base if config.objective is Objective.SIZE
                     else c.expected_latency * original.latency_ms) for c in remaining]
        if min(expected) >= _score(best, config.objective):
            return f"{best.name} meets the budget and no remaining candidate is expected to beat it"
    return None


def without_optimizer(gzip_bytes: int, raw_bytes: int, optimizer_bytes: int) -> float:
    """What expected sizes are fractions of: the original's gzip size, less its share of optimizer state.

    The hints were measured on a file without optimizer state; a file saved with Adam's is up to 3× its
    weights, and fractions of it would stop the search before the smaller candidates are tried.

    Example:
        >>> without_optimizer(gzip_bytes=126_000, raw_bytes=204_000, optimizer_bytes=84_000)
        73882.35294117648
    """
    return gzip_bytes * max(raw_bytes - optimizer_bytes, 0) / raw_bytes if raw_bytes else gzip_bytes


def _search(config: AutoConfig, session: CompressionSession, runner: Runner, jobs: int,
            budget: Budget) -> tuple[list[Trial], Trial | None, str]:
    """Runs candidates (and per-layer follow-ups) ``jobs`` at a time; returns trials, the best and why it stopped."""
    say, start, original = session.progress, time.perf_counter(), session.original
    base = without_optimizer(original.gzip_bytes, original.raw_bytes, optimizer_state_bytes(session.loaded.path))
    pending = collections.deque(config.candidates)
    follow_ups: collections.deque[TrialSpec] = collections.deque()
    trials: list[Trial] = []
    best: Trial | None = None
    stopped, started = "every candidate tried", 0
    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        running: dict[concurrent.futures.Future, TrialSpec] = {}
        while pending or follow_ups or running:
            while (pending or follow_ups) and len(running) < jobs:
                if follow_ups:
                    spec = follow_ups.popleft()
                else:
                    reason = _stop_reason(config, session, started, time.perf_counter() - start, best, pending, base)
                    if reason:
                        stopped = reason
                        pending.clear()
                        break
                    candidate = pending.popleft()
                    spec, started = candidate.trial(), started + 1
                    say(f"[trial {started}] {spec.name}: {candidate.summary}")
                running[pool.submit(runner, spec)] = spec
            if not running:
                break
            done, _ = concurrent.futures.wait(running, return_when=concurrent.futures.FIRST_COMPLETED)
            for future in done:
                spec, rows = running.pop(future), future.result()
                trials += rows
                best = _best([best, *rows], config.objective)
                _say_rows(say, rows, budget)
                if spec.kind == "recipe" and spec.name in FOLLOW_UPS and not any(r.passed or r.error for r in rows):
                    follow_ups.append(TrialSpec(FOLLOW_UPS[spec.name], f"{spec.name}-layers"))
    return trials, best, stopped


def _best(trials: Sequence[Trial | None], objective: Objective) -> Trial | None:
    passed = [t for t in trials if t is not None and t.passed]
    return min(passed, key=lambda t: _score(t, objective)) if passed else None


def verdicts(trials: Sequence[Trial], best: Trial | None, budget: Budget, objective: Objective) -> dict[str, str]:
    """Why each trial was chosen or rejected, by name, in the driving metric's terms.

    Example:
        >>> budget = Budget("accuracy", "higher", 100.0, "%", max_drop=1.0, original=91.0)
        >>> rows = [Trial("a", 100, 90.5, 0.5, 2.0, True, 1.0), Trial("b", 50, 80.5, 10.5, 1.0, False, 1.0)]
        >>> verdicts(rows, rows[0], budget, Objective.LATENCY)["b"]
        'rejected: accuracy worsens by 10.5 points, over the 1 point budget'
    """
    unit, what = ("ms", "latency") if objective is Objective.LATENCY else ("bytes gzip", "size")
    out = {}
    for trial in trials:
        if trial.error:
            out[trial.name] = f"rejected: could not be made ({trial.error[:120]})"
        elif not trial.passed:
            out[trial.name] = f"rejected: {budget.verdict(trial.quality)}"
        elif trial is best:
            out[trial.name] = (f"chosen: the lowest {what} within the budget ({_score(trial, objective):g} {unit}; "
                               f"{budget.metric} {budget.value(trial.quality)}, {_worse(trial.drop, budget)})")
        else:
            out[trial.name] = (f"rejected: within the budget, but {what} {_score(trial, objective):g} {unit} against "
                               f"{_score(best, objective):g} {unit} for {best.name}" if best else "rejected")
    return out


def _worse(drop: float | None, budget: Budget) -> str:
    if drop is None:
        return "drop unknown"
    return f"{budget.amount(drop)} worse than the original" if drop >= 0 else \
        f"{budget.amount(-drop)} better than the original"


def _say_rows(say: Callable[[str], None], rows: Sequence[Trial], budget: Budget) -> None:
    for trial in rows:
        if trial.error:
            say(f"  {trial.name}: could not be made ({trial.error}); the search goes on")
        else:
            say(f"  {trial.name}: {format_bytes(trial.gzip_bytes)} gzip, {budget.metric} {budget.value(trial.quality)} "
                f"({_worse(trial.drop, budget)}) -> {'passed' if trial.passed else 'failed'}")


def pareto_front(trials: Sequence[Trial], objective: Objective, direction: str = "higher") -> list[str]:
    """Names of the measured trials no other trial beats on both cost (gzip or latency) and quality, cheapest first.

    Example:
        >>> rows = [Trial("a", 100, 90.0, 1.0, 1.0, True, 1.0), Trial("b", 200, 85.0, 6.0, 1.0, False, 1.0)]
        >>> pareto_front(rows, Objective.SIZE)
        ['a']
    """
    measured = [t for t in trials if t.quality is not None and _score(t, objective) is not None]
    # quality as "higher is better" (the drop is the worsening whatever the metric's direction)
    goodness = {t.name: -t.drop if t.drop is not None else (t.quality if direction == "higher" else -t.quality)
                for t in measured}
    measured.sort(key=lambda t: (_score(t, objective), -goodness[t.name]))
    front, best = [], float("-inf")
    for trial in measured:
        if goodness[trial.name] > best:
            front.append(trial.name)
            best = goodness[trial.name]
    return front


def _pareto_chart(report: AutoReport, original: Any, objective: Objective, path: Path) -> Path | None:
    measured = [t for t in report.trials if t.quality is not None and _score(t, objective) is not None]
    if not measured or report.original_quality is None:
        return None
    size, budget = objective is Objective.SIZE, report.budget
    names = ["original", *(t.name for t in measured)]
    costs = [original.gzip_bytes / 1024 if size else original.latency_ms,
             *((t.gzip_bytes / 1024 if size else t.latency_ms) for t in measured)]
    quality = [report.original_quality, *(t.quality for t in measured)]
    return plots.pareto(names, costs, quality, set(report.pareto), "gzip size (KiB)" if size else "latency (ms)",
                        budget.worst_allowed(), path, ylabel=f"{budget.metric} {budget.unit}".strip(),
                        higher_is_better=budget.direction != "lower")


def _publish_choice(config: AutoConfig, session: CompressionSession, best: Trial | None,
                    trials: list[Trial]) -> tuple[str, str]:
    out_dir = Path(config.compress.out_dir)
    if best is None:
        name, source = "original", Path(session.loaded.path)
    else:
        name, source = best.name, Path(best.path)
    target = out_dir / f"auto-{name}{source.suffix if source.is_file() else ''}"
    if source.is_dir():
        shutil.copytree(source, target, dirs_exist_ok=True)
    else:
        write_atomic(target, source.read_bytes())
    if best is not None and best.plan:
        write_atomic(out_dir / f"auto-{name}.layer_plan.json", json.dumps(best.plan, indent=2) + "\n")
    if not config.keep_all:
        shutil.rmtree(out_dir / "trials", ignore_errors=True)
        for trial in trials:
            trial.path = "" if trial is not best else str(target)
    return name, str(target)
