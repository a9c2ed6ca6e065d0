"""Hot-update rehearsal: versions swapped under traffic, loaded the way TF Serving loads them.

Each configuration runs in a fresh process (``python -m tfdeploy.measure.hot_swap``): version N is
loaded into a ``Session`` built from the platform config's ``SessionBundleConfig``
(:class:`~tfdeploy.backend.sessions.ServingSession`: its inter-op pools, the restore and init ops on
``session_run_load_threadpool_index``, warmup replayed ``num_request_iterations`` times when
``enable_model_warmup``), client threads send closed-loop traffic, and ``swaps`` times the other
version is loaded beside the serving one, the traffic switches to it and the old one is unloaded.

``ablation`` runs the fixes of the published case in order, each in its own process with the same
traffic and swaps (:data:`ABLATION`): no fixes → warmup → warmup + load pool → warmup + load pool
+ jemalloc (the process started with ``LD_PRELOAD`` of ``libjemalloc.so.2``), then the fixes that
hold memory flat and the load's stall short on GB-scale versions (:class:`Fix`). Every run reports,
per swap, the worst 1-second p999, the seconds above 2× steady, the load time and the resident
memory 1 s after the old version's unload, and the drift of that memory over the swaps.

Example:
    >>> report = rehearse_hot_swap(HotSwapConfig("models/m/1", "models/m/2", serving_config="serving",
    ...                                          ablation=True))          # doctest: +SKIP
    >>> [row["rss_drift_pct"] for row in report.ablation]                 # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import dataclasses
import enum
import gc
import os
import re
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from tfdeploy import backend, plots
from tfdeploy.errors import TfdeployError
from tfdeploy.io_spec import as_feed
from tfdeploy.measure.predictors import request_batch
from tfdeploy.measure.processes import (ONEDNN_ENV, PROGRESS_PREFIX, child_main, child_progress, current_rss_bytes,
                                        onednn_enabled, run_child, surviving_onednn)
from tfdeploy.measure.swap_timeline import (Swap, SwapCost, SwapSummary, Window, rss_drift_pct, summarize_swaps,
                                            swap_costs, windowed_percentiles)
from tfdeploy.measure.timing import RequestLog
from tfdeploy.model.loading import is_saved_model_dir
from tfdeploy.progress import ProgressLike, as_progress
from tfdeploy.report import Block, Image, Report, Table, Text
from tfdeploy.serving.config.options import (JEMALLOC, JEMALLOC_DECAY_CONF, JEMALLOC_THP_CONF, SERVER_MALLOC_CONF,
                                             ServedModel, ServingConfig)
from tfdeploy.serving.config.protos import (platform_config, proto_text, read_session_bundle_config,
                                            session_bundle_config_of)
from tfdeploy.serving.warmup import has_warmup, read_warmup, replay_warmup, WARMUP_FILE

CHILD_MODULE = "tfdeploy.measure.hot_swap"  # what each configuration's process runs
WARM_CALLS = 20  # untimed requests to version N before the clients start
SETTLE_S = 1.0  # unrecorded traffic before the steady window
SWITCH_INTERVAL_S = 0.0005  # the GIL hand-over period while a version loads (Python's default: 5 ms)
RSS_EVERY_S = 0.05  # resident memory sampling period
SIGNATURE = "serving_default"
MIN_SWAPS = 3  # one noisy swap must not decide


class Fix(str, enum.Enum):
    """The hot-update fixes: the published case's, in its order, then the ones measured here (docs/benchmarks.md).

    * ``oneDNN off``: with oneDNN on (TensorFlow's default on x86) tensors come from oneDNN's
      pooling allocator, which keeps what an unloaded version freed: resident memory grew by a
      version at each swap until it held two. Off, freed memory goes back to malloc.
    * ``jemalloc decay 1 s``: jemalloc returns freed pages after ``dirty_decay_ms`` (10 s by
      default, and only when the process allocates); 1 s with its background thread purging.
    * ``huge pages``: jemalloc backs its memory with transparent huge pages (``thp:always``), so
      loading a GB of variables takes 512 times fewer page faults; the load's stall of the other
      threads shrank with it.
    """

    WARMUP = "warmup"
    LOAD_POOL = "load pool"
    JEMALLOC = "jemalloc"
    ONEDNN_OFF = "oneDNN off"
    JEMALLOC_DECAY = "jemalloc decay 1 s"
    HUGE_PAGES = "huge pages"

    @property
    def env(self) -> dict[str, str]:
        """What this fix sets in the server's environment (empty for the fixes in the platform config)."""
        return {Fix.JEMALLOC: {"LD_PRELOAD": JEMALLOC}, Fix.ONEDNN_OFF: {ONEDNN_ENV: "0"},
                Fix.JEMALLOC_DECAY: {"MALLOC_CONF": JEMALLOC_DECAY_CONF},
                Fix.HUGE_PAGES: {"MALLOC_CONF": JEMALLOC_THP_CONF}}.get(self, {})


def fixes_env(fixes: Sequence[Fix]) -> dict[str, str]:
    """The environment of a process with ``fixes`` (jemalloc's ``MALLOC_CONF`` options joined).

    Example:
        >>> fixes_env([Fix.JEMALLOC_DECAY, Fix.HUGE_PAGES])["MALLOC_CONF"]
        'background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0,thp:always'
    """
    env: dict[str, str] = {}
    for fix in fixes:
        for key, value in fix.env.items():
            env[key] = f"{env[key]},{value}" if key in env else value
    return env


_PUBLISHED = (Fix.WARMUP, Fix.LOAD_POOL, Fix.JEMALLOC)
ABLATION: tuple[tuple[Fix, ...], ...] = ((), *(_PUBLISHED[:n] for n in range(1, 4)),
                                         (*_PUBLISHED, Fix.ONEDNN_OFF), (*_PUBLISHED, Fix.ONEDNN_OFF, Fix.JEMALLOC_DECAY),
                                         (*_PUBLISHED, Fix.ONEDNN_OFF, Fix.JEMALLOC_DECAY, Fix.HUGE_PAGES))
NEEDS_JEMALLOC = (Fix.JEMALLOC, Fix.JEMALLOC_DECAY, Fix.HUGE_PAGES)
JEMALLOC_MISSING = (f"jemalloc is not on this machine ({JEMALLOC} missing), so the jemalloc step was not run; "
                    "install it with `apt-get install libjemalloc2` (Debian/Ubuntu).")


def config_name(fixes: Sequence[Fix]) -> str:
    """A configuration's name: its fixes joined with ``+``, or ``no fixes``.

    Example:
        >>> config_name([Fix.WARMUP, Fix.LOAD_POOL])
        'warmup + load pool'
    """
    return " + ".join(fix.value for fix in fixes) or "no fixes"


@dataclasses.dataclass
class HotSwapConfig:
    """Options of :func:`rehearse_hot_swap`.

    Attributes:
        old_version: Version N's directory (serving from the start).
        new_version: Version N+1's directory (swapped in, then N again, alternately).
        serving_config: The ``tfdeploy serving-config`` directory or its ``platform_config.txt``
            (``None``: the configuration ``tfdeploy serving-config`` writes by default).
        ablation: Run every step of :data:`ABLATION` instead of the configuration as given.
        swaps: Version swaps per configuration (at least 3).
        concurrency: Client threads sending requests back to back.
        steady_s: Seconds of traffic before the first swap.
        gap_s: Seconds of traffic after each swap.
        batch_size: Batch size of each request.
        seed: Seed of the synthesized request.
        timeout_s: Seconds before a configuration's process is killed.
        plot_path: Write one timeline PNG per configuration (``NAME-<config>.png``).
        progress: Where progress goes (see :mod:`tfdeploy.progress`).
    """

    old_version: str | os.PathLike
    new_version: str | os.PathLike
    serving_config: str | os.PathLike | None = None
    ablation: bool = False
    swaps: int = MIN_SWAPS
    concurrency: int = 2
    steady_s: float = 3.0
    gap_s: float = 3.0
    batch_size: int = 1
    seed: int = 0
    timeout_s: float = 900.0
    plot_path: str | os.PathLike | None = None
    progress: ProgressLike = None


@dataclasses.dataclass
class HotSwapRun(Report):
    """One configuration's run in its own process.

    Attributes:
        config: The fixes it ran with (``no fixes``, ``warmup + load pool``, ...).
        fixes: The same, as a list.
        jemalloc: jemalloc was mapped in the process (``LD_PRELOAD`` took effect).
        bundle_config: The ``SessionBundleConfig`` the versions were loaded with (text format).
        summary: Steady vs. swap-window latency.
        swaps: The swaps' event times.
        windows: Percentiles per 1-second window (the timeline).
        rss_mb: ``(s, MB)`` resident memory over the run.
        steady_rss_mb: Resident memory with version N loaded and warm, before traffic.
        peak_rss_mb: The highest sample (old and new version resident together).
        costs: Per swap: worst 1-second p999, seconds above 2× steady, load time, RSS 1 s after the unload.
        warmup_calls: Warmup requests replayed in the process (N's load included).
        end_s: When the traffic stopped.
        errors: The first failed requests.
    """

    config: str
    fixes: list[str]
    jemalloc: bool
    bundle_config: str
    summary: SwapSummary
    swaps: list[Swap]
    windows: list[Window]
    rss_mb: list[tuple[float, float]]
    steady_rss_mb: float
    peak_rss_mb: float
    costs: list[SwapCost]
    warmup_calls: int
    end_s: float
    errors: list[str]

    @property
    def headroom_mb(self) -> float:
        """Memory a hot update needs on top of steady serving: both versions resident."""
        return self.peak_rss_mb - self.steady_rss_mb

    @property
    def rss_after_swap_mb(self) -> list[float | None]:
        """Resident memory 1 s after each swap's old version was unloaded."""
        return [cost.rss_after_mb for cost in self.costs]

    @property
    def rss_drift_pct(self) -> float | None:
        """(last of :attr:`rss_after_swap_mb` − steady RSS) / steady RSS × 100: memory an unload did not give back."""
        return rss_drift_pct(self.steady_rss_mb, self.rss_after_swap_mb)

    def row(self) -> dict[str, Any]:
        """The run as one row of the ablation (what ``--json``'s ``"ablation"`` holds)."""
        s = self.summary
        return {"config": self.config, "fixes": self.fixes, "steady_p50_ms": s.steady.p50_ms,
                "steady_p99_ms": s.steady.p99_ms, "steady_p999_ms": s.steady.p999_ms, "swap_p999_ms": s.swap_p999_ms,
                "worst_window_p999_ms": s.worst_window_p999_ms, "ratio": s.ratio, "spike_seconds": s.spike_seconds,
                "load_seconds": s.load_seconds, "first_after_switch_ms": s.first_after_switch_ms,
                "steady_rss_mb": self.steady_rss_mb, "peak_rss_mb": self.peak_rss_mb,
                "headroom_mb": self.headroom_mb, "rss_after_swap_mb": self.rss_after_swap_mb,
                "rss_drift_pct": self.rss_drift_pct, "swap_window_p999_ms": [c.window_p999_ms for c in self.costs],
                "swap_spike_seconds": [c.spike_seconds for c in self.costs],
                "requests": s.steady.requests + s.swap.requests, "errors": len(self.errors)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "HotSwapRun":
        """The run from :meth:`to_dict` (what the child process prints)."""
        return cls(**{**data, "summary": SwapSummary.from_dict(data["summary"]),
                      "swaps": [Swap(**swap) for swap in data["swaps"]],
                      "windows": [Window(**window) for window in data["windows"]],
                      "costs": [SwapCost(**cost) for cost in data["costs"]],
                      "rss_mb": [tuple(point) for point in data["rss_mb"]]})


@dataclasses.dataclass
class HotSwapReport(Report):
    """Hot-update rehearsal: one run per configuration, in the order of the ablation."""

    old_version: str
    new_version: str
    platform_config: str
    concurrency: int
    swaps: int
    runs: list[HotSwapRun]
    notes: list[str] = dataclasses.field(default_factory=list)
    files: list[str] = dataclasses.field(default_factory=list)

    @property
    def ablation(self) -> list[dict[str, Any]]:
        """One row per configuration (no fixes first, all fixes last)."""
        return [run.row() for run in self.runs]

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "ablation": self.ablation}

    def blocks(self) -> list[Block]:
        header = ("configuration", "steady p50", "steady p99", "steady p999", "swap p999", "worst 1 s p999",
                  "× steady", "s > 2× steady", "load s", "steady RSS MB", "peak RSS MB", "RSS after last swap",
                  "RSS drift %")
        rows = [(run.config, run.summary.steady.p50_ms, run.summary.steady.p99_ms, run.summary.steady.p999_ms,
                 run.summary.swap_p999_ms, run.summary.worst_window_p999_ms, run.summary.ratio,
                 run.summary.spike_seconds, max(run.summary.load_seconds), run.steady_rss_mb, run.peak_rss_mb,
                 next((mb for mb in reversed(run.rss_after_swap_mb) if mb is not None), None), run.rss_drift_pct)
                for run in self.runs]
        head = (f"hot-update rehearsal {Path(self.old_version).name} <-> {Path(self.new_version).name}: "
                f"{self.swaps} swaps per configuration, {self.concurrency} client(s), loaded as TF Serving loads "
                f"(platform config: {self.platform_config}); latencies in ms")
        firsts = [Text(f"{run.config}: first requests after each switch (ms): "
                       + "; ".join(", ".join(f"{ms:.1f}" for ms in swap) for swap in run.summary.first_after_switch_ms))
                  for run in self.runs]
        per_swap = [Text(f"{run.config}: per swap, worst 1 s p999 ms / s > 2× steady / load s / RSS MB 1 s after the "
                         "unload: " + "; ".join(f"{c.window_p999_ms:.1f}/{c.spike_seconds:g}/{c.load_seconds:.2f}/"
                                                f"{'-' if c.rss_after_mb is None else f'{c.rss_after_mb:.0f}'}"
                                                for c in run.costs))
                    for run in self.runs]
        return [Text(head), Table(rows, header=header), *per_swap, *firsts, *(Text(f"note: {note}") for note in self.notes),
                *(Image(path, "hot-swap timeline") for path in self.files)]


def _ablated(bundle: Any, fixes: Sequence[Fix]) -> Any:
    """A copy of the ``SessionBundleConfig`` without the fixes not in ``fixes``."""
    out = type(bundle)()
    out.CopyFrom(bundle)
    if Fix.WARMUP not in fixes:
        out.enable_model_warmup = False
        out.ClearField("model_warmup_options")
    if Fix.LOAD_POOL not in fixes:
        out.ClearField("session_run_load_threadpool_index")
        del out.session_config.session_inter_op_thread_pool[:]
    return out


def _bundle_config(serving_config: str | os.PathLike | None) -> Any:
    if serving_config is not None:
        return read_session_bundle_config(serving_config)
    return session_bundle_config_of(platform_config(ServingConfig([ServedModel("m", ".")], ".")))


def _fixes_in(bundle: Any, jemalloc: bool, env: Mapping[str, str]) -> list[Fix]:
    """The fixes a run had: from its platform config, and from its process (jemalloc mapped, its environment)."""
    return ([Fix.WARMUP] if bundle.enable_model_warmup else []) + \
        ([Fix.LOAD_POOL] if bundle.HasField("session_run_load_threadpool_index") else []) + \
        ([Fix.JEMALLOC] if jemalloc else []) + ([] if onednn_enabled(env) else [Fix.ONEDNN_OFF]) + \
        [fix for fix in (Fix.JEMALLOC_DECAY, Fix.HUGE_PAGES) if jemalloc and fix.env["MALLOC_CONF"] in env.get("MALLOC_CONF", "")]


@dataclasses.dataclass
class _Version:
    """A loaded version: its session, the request it answers, its tag, and requests in flight on it."""

    session: Any
    call: Callable[[], Any]
    tag: str
    in_flight: int = 0


class _Serving:
    """The versions of one process: load (as TF Serving does), switch, unload, under client traffic.

    As in TF Serving, a version is unloaded only once the requests already sent to it have finished.
    """

    def __init__(self, bundle: Any, batch_size: int, seed: int) -> None:
        self.bundle = bundle
        self._batch, self._seed = batch_size, seed
        self.warmup_calls = 0
        self.log = RequestLog()
        self._current: _Version | None = None
        self._lock = threading.Condition()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.rss: list[tuple[float, float]] = []

    def load(self, path: Path, tag: str) -> _Version:
        """Loads a version like TF Serving: session config, load pool, then warmup replay."""
        has_pool = self.bundle.HasField("session_run_load_threadpool_index")
        session = backend.ServingSession(path, self.bundle.session_config,
                                         self.bundle.session_run_load_threadpool_index.value if has_pool else None)
        if self.bundle.enable_model_warmup and has_warmup(path):
            iterations = self.bundle.model_warmup_options.num_request_iterations.value or 1
            functions = {name: (lambda name=name, **inputs: session.run(name, inputs)) for name in session.signatures}
            self.warmup_calls += replay_warmup(functions, read_warmup(path / WARMUP_FILE), iterations)
        io = backend.signature_io(session.signatures[SIGNATURE])
        x = request_batch(io, self._batch, None, self._seed)
        feed = {t.name: as_feed(x[t.name], t) for t in io.inputs}
        return _Version(session, lambda: session.run(SIGNATURE, feed), tag)

    def start(self, first: _Version, concurrency: int) -> None:
        """Serves ``first`` to ``concurrency`` client threads; samples resident memory."""
        self._current = first
        self._threads = [threading.Thread(target=self._client, daemon=True) for _ in range(concurrency)]
        self._threads.append(threading.Thread(target=self._sample_rss, daemon=True))
        for thread in self._threads:
            thread.start()

    def _client(self) -> None:
        while not self._stop.is_set():
            with self._lock:  # each request goes to one version, which stays loaded until it is answered
                version = self._current
                version.in_flight += 1
            try:
                self.log.request(version.call, tag=version.tag)
            finally:
                with self._lock:
                    version.in_flight -= 1
                    self._lock.notify_all()

    def restart_log(self) -> None:
        """Starts a new request log (and clock): what came before is discarded."""
        self.log, self.rss = RequestLog(), []

    def _sample_rss(self) -> None:
        while not self._stop.wait(RSS_EVERY_S):
            self.rss.append((self.log.elapsed_s(), current_rss_bytes() / 2**20))

    def swap(self, path: Path, tag: str) -> Swap:
        """Loads ``path`` beside the serving version, switches the traffic to it, unloads the old one."""
        load_start = self.log.elapsed_s()
        new = self.load(path, tag)
        ready = self.log.elapsed_s()
        with self._lock:
            old, self._current = self._current, new
        switch = self.log.elapsed_s()
        with self._lock:
            self._lock.wait_for(lambda: old.in_flight == 0)
        old.session.close()
        del old
        # TF Serving's C++ frees an unloaded version at once; here its Python graph objects are cyclic garbage that
        # would wait for the collector (measured: about 8 MB per swap of a 28-input ranker, counted as drift)
        gc.collect()
        return Swap(load_start, ready, switch, self.log.elapsed_s())

    def stop(self) -> float:
        """Stops the clients; returns the end time (s since the traffic began)."""
        self._stop.set()
        for thread in self._threads:
            thread.join()
        return self.log.elapsed_s()


def _rehearse(old: Path, new: Path, bundle: Any, swaps: int, concurrency: int, steady_s: float, gap_s: float,
              batch_size: int, seed: int, say: Callable[[str], None]) -> dict[str, Any]:
    """One configuration in this process: N serving, ``swaps`` alternating updates, the samples."""
    serving = _Serving(bundle, batch_size, seed)
    first = serving.load(old, "N")
    for _ in range(WARM_CALLS):
        first.call()
    steady_rss = current_rss_bytes() / 2**20
    serving.start(first, concurrency)
    del first  # the serving object holds the only reference: an unloaded version can be freed
    done: list[Swap] = []
    try:
        time.sleep(SETTLE_S)  # the clients' own start-up (threads, first concurrent runs) is not the baseline
        serving.restart_log()
        time.sleep(steady_s)
        for index in range(swaps):
            path, tag = (new, "N+1") if index % 2 == 0 else (old, "N")
            done.append(serving.swap(path, tag))
            say(f"swap {index + 1}/{swaps}: {tag} ({path.name}) loaded in {done[-1].ready_s - done[-1].load_start_s:.2f} s")
            time.sleep(gap_s)
    finally:
        end = serving.stop()
    return {"swaps": done, "end_s": end, "samples": serving.log.samples, "errors": serving.log.errors,
            "rss_mb": serving.rss, "steady_rss_mb": steady_rss, "warmup_calls": serving.warmup_calls}


def _jemalloc_loaded() -> bool:
    """Whether this process runs with jemalloc mapped (``LD_PRELOAD`` took effect)."""
    try:
        return "libjemalloc" in Path("/proc/self/maps").read_text()
    except OSError:
        return False


def _run_in_child(args: argparse.Namespace) -> dict[str, Any]:
    # TF Serving loads in C++; here the MetaGraph import runs Python code that holds the GIL, so the clients get it
    # back more often than Python's default 5 ms, which would otherwise add up to 5 ms per request to the swap.
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    fixes = [Fix(value) for value in args.fixes.split(",") if value]
    bundle = _ablated(_bundle_config(args.serving_config), fixes) if args.ablate else _bundle_config(args.serving_config)
    result = _rehearse(Path(args.old_version), Path(args.new_version), bundle, args.swaps, args.concurrency,
                       args.steady_s, args.gap_s, args.batch_size, args.seed,
                       child_progress)
    jemalloc = _jemalloc_loaded()
    fixes_run = _fixes_in(bundle, jemalloc, os.environ)
    summary = summarize_swaps(result["samples"], result["swaps"], result["end_s"],
                              new_tags=["N+1" if i % 2 == 0 else "N" for i in range(len(result["swaps"]))])
    rss = result["rss_mb"]
    windows = windowed_percentiles(result["samples"])
    run = HotSwapRun(config=config_name(fixes_run), fixes=[fix.value for fix in fixes_run], jemalloc=jemalloc,
                     bundle_config=proto_text(bundle),
                     summary=summary, swaps=result["swaps"], windows=windows,
                     rss_mb=rss, steady_rss_mb=result["steady_rss_mb"],
                     peak_rss_mb=max([mb for _, mb in rss] + [result["steady_rss_mb"]]),
                     costs=swap_costs(windows, result["swaps"], result["end_s"], summary.steady.p999_ms, rss),
                     warmup_calls=result["warmup_calls"], end_s=result["end_s"], errors=result["errors"][:20])
    return run.to_dict()


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("old_version")
    parser.add_argument("new_version")
    parser.add_argument("--serving-config", default=None)
    parser.add_argument("--ablate", action="store_true", help="Remove the fixes not in --fixes.")
    parser.add_argument("--fixes", default="")
    parser.add_argument("--swaps", type=int, default=MIN_SWAPS)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--steady-s", type=float, default=3.0)
    parser.add_argument("--gap-s", type=float, default=3.0)
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)


def _child_args(config: HotSwapConfig, fixes: Sequence[Fix] | None) -> list[str]:
    args = [str(config.old_version), str(config.new_version), "--swaps", str(config.swaps),
            "--concurrency", str(config.concurrency), "--steady-s", str(config.steady_s), "--gap-s", str(config.gap_s),
            "--batch-size", str(config.batch_size), "--seed", str(config.seed)]
    if config.serving_config is not None:
        args += ["--serving-config", str(config.serving_config)]
    if fixes is not None:
        args += ["--ablate", "--fixes", ",".join(fix.value for fix in fixes)]
    return args


def _plans(config: HotSwapConfig, jemalloc: bool) -> tuple[list[tuple[str, Sequence[Fix] | None, dict[str, str]]],
                                                            list[str]]:
    """``(name, fixes to keep or None for the config as given, the process's environment)`` per run, and notes."""
    notes = [] if jemalloc else [JEMALLOC_MISSING]
    if not config.ablation:
        # the process the generated Dockerfile starts: jemalloc preloaded with its options
        return [("serving config", None, {**Fix.JEMALLOC.env, "MALLOC_CONF": SERVER_MALLOC_CONF} if jemalloc else {})], notes
    steps = [fixes for fixes in ABLATION if jemalloc or not set(NEEDS_JEMALLOC) & set(fixes)]
    return [(config_name(fixes), fixes, fixes_env(fixes)) for fixes in steps], notes


def _check(config: HotSwapConfig) -> tuple[Path, Path]:
    paths = Path(config.old_version), Path(config.new_version)
    for path in paths:
        if not is_saved_model_dir(path):
            raise TfdeployError(f"A hot-swap rehearsal needs two SavedModel version directories, N then N+1. "
                                f"Received: path={str(path)!r}")
    if config.swaps < MIN_SWAPS:
        raise TfdeployError(f"Give at least {MIN_SWAPS} swaps, so that one noisy swap does not decide. "
                            f"Received: swaps={config.swaps}")
    if config.serving_config is not None:
        read_session_bundle_config(config.serving_config)  # fails early, naming the file
    return paths


def plot_path_for(path: str | os.PathLike, config: str) -> Path:
    """The timeline PNG of one configuration: ``hot_swap.png`` -> ``hot_swap-warmup-load-pool.png``.

    Example:
        >>> plot_path_for("out/hot_swap.png", "warmup + load pool").name
        'hot_swap-warmup-load-pool.png'
    """
    path = Path(path)
    slug = re.sub(r"[^a-z0-9]+", "-", config.lower()).strip("-")
    return path.with_name(f"{path.stem}-{slug}{path.suffix or '.png'}")


def rehearse_hot_swap(config: HotSwapConfig) -> HotSwapReport:
    """Rehearses hot updates the way TF Serving loads versions, one fresh process per configuration.

    Args:
        config: A :class:`HotSwapConfig`.

    Returns:
        A :class:`HotSwapReport` (``report.ablation``: one row per configuration).

    Raises:
        TfdeployError: For directories that are not versions, fewer than 3 swaps, an unreadable
            platform config, or a configuration's process that fails (its error is included).

    Example:
        >>> rehearse_hot_swap(HotSwapConfig("models/m/1", "models/m/2", ablation=True)).ablation[0]["config"]  # doctest: +SKIP
        'no fixes'
    """
    old, new = _check(config)
    say = as_progress(config.progress)
    jemalloc = Path(JEMALLOC).is_file()
    plans, notes = _plans(config, jemalloc)
    runs = []
    for index, (name, fixes, env) in enumerate(plans, 1):
        with say.task(f"Hot-swap rehearsal {index}/{len(plans)}: {name} (fresh process)", total=config.swaps,
                      unit="swap") as task:
            data, retried = surviving_onednn(lambda env: run_child(
                CHILD_MODULE, _child_args(config, fixes), "Hot-swap rehearsal",
                f"config={name!r}, old={str(old)!r}, new={str(new)!r}", config.timeout_s,
                on_line=lambda line: task.advance() if line.startswith(PROGRESS_PREFIX) else None, env=env),
                env)
        runs.append(HotSwapRun.from_dict(data))
        if retried:
            notes.append(f"{name}: {retried}; serve this model with TF_ENABLE_ONEDNN_OPTS=0 (serving-config --no-onednn)")
    report = HotSwapReport(old_version=str(old), new_version=str(new), concurrency=config.concurrency,
                           platform_config=str(config.serving_config or "tfdeploy serving-config defaults"),
                           swaps=config.swaps, runs=runs, notes=notes)
    if config.plot_path:
        report.files = [str(plots.swap_timeline(run, plot_path_for(config.plot_path, run.config))) for run in runs]
    return report


def main() -> None:  # pragma: no cover - exercised through rehearse_hot_swap
    """``python -m tfdeploy.measure.hot_swap``: one configuration's run, printed as JSON.

    Example:
        >>> main()   # python -m tfdeploy.measure.hot_swap models/m/1 models/m/2 --ablate --fixes warmup  # doctest: +SKIP
    """
    child_main("One hot-swap rehearsal configuration (used by rehearse_hot_swap).", _arguments, _run_in_child)


if __name__ == "__main__":
    main()
