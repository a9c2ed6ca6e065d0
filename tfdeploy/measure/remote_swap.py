"""A hot update of a running TF Serving, measured from its clients: publish a version under traffic.

``tfdeploy bench TARGET --hot-swap --publish MODEL --base-dir DIR`` (:func:`publish_under_traffic`):

1. checks the target (a model, no version or label pinned) and that ``DIR`` is the directory the
   server watches (the version it answers with is one of ``DIR``'s);
2. exports ``MODEL`` with :func:`tfdeploy.serving.export.export` (warmup file included) as the next
   version into a hidden staging directory inside ``DIR`` (TF Serving ignores names that are not
   numbers), *before* the traffic starts, so the export's CPU does not disturb the clients;
3. sends ``concurrency`` clients' requests back to back for ``steady_s``, then publishes the version
   with one rename (the base directory fsynced): that is the load start;
4. tags every response with the version that answered — gRPC: ``PredictResponse.model_spec.version``;
   REST, whose responses do not say: the version ``GET /v1/models/MODEL`` listed as AVAILABLE when the
   request started (polled every :data:`STATUS_POLL_S`);
5. the switch is the first request the new version answered (REST: when it was first seen
   AVAILABLE); the clients go on for ``after_s``, then :func:`~tfdeploy.measure.swap_timeline.summarize_swaps`
   compares the swap window with steady traffic and lists the first requests on the new version
   (near steady p50 when the warmup file was replayed).

If the new version has not answered within ``timeout_s`` the run stops with an error naming the
base directory and TF Serving's ``--file_system_poll_wait_seconds``.

Example:
    >>> report = publish_under_traffic(PublishConfig("grpc://localhost:8500/fashion", "out/prune.keras",
    ...                                              "models/fashion"))        # doctest: +SKIP
    >>> report.summary.first_after_switch_ms
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import shutil
import threading
import time
import types
from pathlib import Path
from typing import Any, Mapping, Sequence

from tfdeploy import plots
from tfdeploy.errors import TfdeployError
from tfdeploy.files import publish_directory
from tfdeploy.io_spec import Arrays, ModelIO
from tfdeploy.measure.predictors import request_batch
from tfdeploy.measure.remote import Client, RemoteTarget, RequestFailed, connect, parse_target, signature_io
from tfdeploy.measure.swap_timeline import Swap, SwapSummary, Window, summarize_swaps, windowed_percentiles
from tfdeploy.measure.timing import RequestLog
from tfdeploy.progress import ProgressLike, as_progress
from tfdeploy.report import Block, Report, Text
from tfdeploy.serving.versions import existing_versions

STATUS_POLL_S = 0.05  # REST: how often the model's status is read to see the new version become AVAILABLE
CHECK_S = 0.02  # how often the main thread looks for the switch
STAGING_PREFIX = ".tfdeploy-publish-"  # inside the base dir; not numeric, so TF Serving ignores it
MAX_ERRORS_KEPT = 5


@dataclasses.dataclass
class PublishConfig:
    """Options of :func:`publish_under_traffic`.

    Attributes:
        target: ``grpc://HOST:PORT/MODEL`` or ``http://HOST:PORT/v1/models/MODEL`` (no version or label).
        model: The Keras model file exported as the next version.
        base_dir: The model's base directory the server watches, as this machine sees it.
        signature_name: The signature the clients call.
        concurrency: Client threads.
        batch_size: Samples per request (also the warmup file's batch sizes, with ``warmup_batch_sizes``).
        warmup_batch_sizes: Batch sizes of the new version's warmup records.
        steady_s: Seconds of traffic before the publish.
        after_s: Seconds of traffic after the new version first answered.
        timeout_s: Seconds to wait for the new version to answer after the publish.
        data: Real inputs for the requests and the warmup file (default: synthesized).
        seed: Seed of the synthesized inputs.
        custom_objects: Custom layers needed to load ``model``.
        safe_mode: Refuse Lambda layers (``False``: ``--unsafe-deserialization``).
        progress: Where progress goes.
    """

    target: str
    model: str | os.PathLike
    base_dir: str | os.PathLike
    signature_name: str = "serving_default"
    concurrency: int = 2
    batch_size: int = 1
    warmup_batch_sizes: Sequence[int] = (1,)
    steady_s: float = 3.0
    after_s: float = 3.0
    timeout_s: float = 120.0
    data: Any = None
    seed: int = 0
    custom_objects: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    safe_mode: bool = True
    progress: ProgressLike = None


@dataclasses.dataclass
class RemoteSwapReport(Report):
    """The latency a running TF Serving showed while it loaded a published version and switched to it.

    Attributes:
        target: The target measured.
        base_dir: Where the version was published.
        old_version: The version answering before the publish.
        new_version: The published version.
        version_dir: The published version's directory.
        concurrency: Client threads.
        batch_size: Samples per request.
        switch_seen_by: How the answering version was known (gRPC responses, or REST status polling).
        summary: Steady vs. swap-window latency and the first requests on the new version.
        swaps: The update's event times (load start = the publish, ready = switch = the new version's
            first answer), seconds since the traffic began.
        windows: Percentiles per 1-second window (the timeline).
        end_s: When the traffic stopped.
        errors: Failed requests.
        first_errors: The first few of their messages.
    """

    target: str
    base_dir: str
    old_version: int
    new_version: int
    version_dir: str
    concurrency: int
    batch_size: int
    switch_seen_by: str
    summary: SwapSummary
    swaps: list[Swap]
    windows: list[Window]
    end_s: float
    errors: int
    first_errors: list[str]

    def blocks(self) -> list[Block]:
        swap, s = self.swaps[0], self.summary
        first = ", ".join(f"{ms:.1f}" for ms in s.first_after_switch_ms[0])
        return [
            Text(f"hot update of {self.target}: version {self.old_version} -> {self.new_version} published into "
                 f"{self.base_dir} at {swap.load_start_s:.2f} s; version {self.new_version} first answered "
                 f"{swap.switch_s - swap.load_start_s:.2f} s later (the server's poll, load and warmup), "
                 f"{self.concurrency} client(s), batch {self.batch_size}; {self.switch_seen_by}"),
            *s.blocks(),
            Text(f"swap p999 {s.swap_p999_ms:.1f} ms = {s.ratio:.2f}× steady p999 {s.steady.p999_ms:.1f} ms; worst "
                 f"1 s window p999 {s.worst_window_p999_ms:.1f} ms; {s.spike_seconds:g} s above 2× steady p999"),
            Text(f"first requests on version {self.new_version} (ms): {first or 'none'} (steady p50 "
                 f"{s.steady.p50_ms:.1f} ms)"),
            *([Text(f"errors: {self.errors} (first: {self.first_errors[0]})")] if self.errors else []),
        ]


class _Traffic:
    """Client threads sending the same request back to back, each sample tagged with the version that answered."""

    def __init__(self, client: Client, io: ModelIO, signature_name: str, x: Arrays, concurrency: int) -> None:
        self.log = RequestLog()
        self.seen_version: int | None = None  # REST: the latest version the status listed as AVAILABLE
        self._client, self._io, self._signature, self._x = client, io, signature_name, x
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(concurrency)]

    def _run(self) -> None:
        while not self._stop.is_set():
            seen = self.seen_version
            self.log.request(lambda: self._client.predict(self._x, self._signature, self._io)[1],
                             tag_of=lambda answered: seen if answered is None else answered)

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def first_answer_s(self, version: int) -> float | None:
        """When the first request ``version`` answered started (s since the traffic began)."""
        return min((start for start, _, tag in list(self.log.samples) if tag == version), default=None)

    def stop(self) -> float:
        self._stop.set()
        for thread in self._threads:
            thread.join()
        return self.log.elapsed_s()


def _status_versions(client: Client) -> dict[int, str]:
    """REST: version -> state (``AVAILABLE``, ``LOADING``, ``END``, ...) from ``GET /v1/models/MODEL``."""
    return {int(s["version"]): str(s.get("state", "")) for s in client.status()}  # type: ignore[union-attr]


class _StatusWatch:
    """REST: a thread polling the model's status until ``version`` is AVAILABLE (or has failed to load)."""

    def __init__(self, client: Client, traffic: _Traffic, version: int) -> None:
        self.seen_s: float | None = None
        self.failed: str | None = None
        self._client, self._traffic, self._version = client, traffic, version
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(STATUS_POLL_S):
            try:
                states = {int(s["version"]): s for s in self._client.status()}  # type: ignore[union-attr]
            except TfdeployError:
                continue  # a missed poll; the clients' errors tell if the server went away
            state = states.get(self._version, {})
            if state.get("state") == "AVAILABLE":
                self.seen_s = self._traffic.log.elapsed_s()
                self._traffic.seen_version = self._version
                return
            if state.get("state") == "END":
                self.failed = str(state.get("status", {}).get("error_message") or "state END")
                return

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def check_publish(config: PublishConfig) -> tuple[RemoteTarget, Path]:
    """Checks what can be checked before any request: the target, the base directory, the model file.

    Raises:
        TfdeployError: For a malformed or pinned target, a missing base directory or model.

    Example:
        >>> check_publish(PublishConfig("grpc://h:8500/m/2", "m.keras", "models/m"))    # doctest: +SKIP
        Traceback (most recent call last):
        tfdeploy.errors.TfdeployError: --publish measures the switch to a new version, ...
    """
    target = parse_target(config.target)
    if target.version is not None or target.label is not None:
        model = f"/{target.model}" if target.scheme == "grpc" else f"/v1/models/{target.model}"
        raise TfdeployError(f"--publish measures the switch to a new version, which a target pinned to a version or "
                            f"label never sees: give the model itself ({target.scheme}://{target.address}{model}). "
                            f"Received: target={config.target!r}")
    base = Path(config.base_dir)
    if not base.is_dir():
        raise TfdeployError(f"No base directory to publish into: give the model's base directory that TF Serving "
                            f"watches (its base_path in models.config). Received: base_dir={str(base)!r}")
    if not Path(config.model).exists():
        raise TfdeployError(f"No model to publish at this path. Received: publish={str(config.model)!r}")
    return target, base


def _serving_version(client: Client, target: RemoteTarget, io: ModelIO, x: Arrays, config: PublishConfig,
                     base: Path) -> int:
    """The version answering now; refuses a base directory that does not hold it (not the one the server watches)."""
    if target.scheme == "grpc":
        try:
            version = client.predict(x, config.signature_name, io)[1]
        except RequestFailed as exc:
            raise TfdeployError(f"The first request to {target.url} failed ({exc}); fix that before measuring an "
                                f"update. Received: target={target.url!r}") from exc
    else:
        available = [v for v, state in _status_versions(client).items() if state == "AVAILABLE"]
        version = max(available) if available else None
    versions = existing_versions(base)
    if version is None or version not in versions:
        raise TfdeployError(f"TF Serving answers {target.url} with version {version}, which is not in {base} "
                            f"(versions {versions}): the server does not watch this directory. Give the model's base "
                            f"directory as this machine sees it (base_path in models.config, the directory mounted "
                            f"into the container). Received: base_dir={str(base)!r}, target={target.url!r}")
    return version


def _stage(config: PublishConfig, base: Path, version: int) -> tuple[Path, Path]:
    """Exports the model as ``version`` into a hidden staging directory inside ``base``; returns it and the version."""
    from tfdeploy.serving.export import ExportConfig, export

    staging = base / f"{STAGING_PREFIX}{os.getpid()}-{secrets.token_hex(4)}"
    try:
        exported = export(ExportConfig(config.model, staging / base.resolve().name, version=version,
                                       warmup_data=config.data, warmup_batch_sizes=tuple(config.warmup_batch_sizes),
                                       custom_objects=config.custom_objects, safe_mode=config.safe_mode,
                                       progress=None))
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return staging, Path(exported.version_dir)


def _wait_for_switch(traffic: _Traffic, watch: _StatusWatch | None, new: int, published_s: float,
                     config: PublishConfig, base: Path) -> float:
    """Waits until the new version answered (returns when, s since the traffic began), or times out."""
    while traffic.log.elapsed_s() < published_s + config.timeout_s:
        time.sleep(CHECK_S)
        if watch is not None and watch.failed:
            raise TfdeployError(f"TF Serving failed to load version {new} published into {base}: {watch.failed}. "
                                f"Received: target={config.target!r}")
        switch = watch.seen_s if watch is not None else traffic.first_answer_s(new)
        if switch is not None:
            return switch
    raise TfdeployError(
        f"Version {new} was published into {base} but {config.target} did not answer with it within "
        f"{config.timeout_s:g} s. Does the server watch this directory (base_path in models.config, the directory "
        f"mounted into the container)? It looks for new versions every --file_system_poll_wait_seconds (default 1 s; "
        f"0 never); with a version policy other than latest, or a failed load (the server's log says), it is never "
        f"served. The version stays published. Received: base_dir={str(base)!r}, target={config.target!r}")


def _run(config: PublishConfig, client: Client, target: RemoteTarget, base: Path) -> RemoteSwapReport:
    say = as_progress(config.progress)
    io = signature_io(client.signature_defs(), config.signature_name, target)
    x = request_batch(io, config.batch_size, config.data, config.seed)
    old = _serving_version(client, target, io, x, config, base)
    new = max(existing_versions(base) + [old]) + 1
    say(f"Exporting {config.model} as version {new} (staged in {base}, published under traffic)")
    staging, staged = _stage(config, base, new)
    traffic, watch = _Traffic(client, io, config.signature_name, x, config.concurrency), None
    try:
        if target.scheme == "http":
            traffic.seen_version = old
        traffic.start()
        time.sleep(config.steady_s)
        published_s = traffic.log.elapsed_s()
        publish_directory(staged, base / str(new), overwrite=False)
        say(f"Published {base / str(new)}; waiting for {target.url} to answer with version {new}")
        watch = _StatusWatch(client, traffic, new) if target.scheme == "http" else None
        switch = _wait_for_switch(traffic, watch, new, published_s, config, base)
        time.sleep(max(0.0, switch + config.after_s - traffic.log.elapsed_s()))
    finally:
        end_s = traffic.stop()
        if watch is not None:
            watch.stop()
        shutil.rmtree(staging, ignore_errors=True)
    return _report(config, traffic, old, new, base, Swap(published_s, switch, switch), end_s)


def _report(config: PublishConfig, traffic: _Traffic, old: int, new: int, base: Path, swap: Swap,
            end_s: float) -> RemoteSwapReport:
    samples = sorted(traffic.log.samples)
    seen_by = ("each response's model_spec.version" if parse_target(config.target).scheme == "grpc" else
               f"REST responses do not name their version: GET {parse_target(config.target).rest_path} was polled "
               f"every {STATUS_POLL_S:g} s, and requests count for the version AVAILABLE when they started")
    return RemoteSwapReport(
        target=config.target, base_dir=str(base), old_version=old, new_version=new, version_dir=str(base / str(new)),
        concurrency=config.concurrency, batch_size=config.batch_size, switch_seen_by=seen_by,
        summary=summarize_swaps(samples, [swap], end_s, new_tags=[new]), swaps=[swap],
        windows=windowed_percentiles(samples), end_s=end_s, errors=len(traffic.log.errors),
        first_errors=traffic.log.errors[:MAX_ERRORS_KEPT])


def publish_under_traffic(config: PublishConfig) -> RemoteSwapReport:
    """Publishes ``config.model`` as the next version of a served model and measures the server meanwhile.

    See the module docstring for the steps.

    Args:
        config: A :class:`PublishConfig`.

    Returns:
        A :class:`RemoteSwapReport`.

    Raises:
        TfdeployError: For a pinned target, a base directory the server does not watch, a server
            that cannot be reached, or a new version that never answers within ``timeout_s``.

    Example:
        >>> config = PublishConfig("grpc://localhost:8500/m", "m.keras", "models/m")
        >>> publish_under_traffic(config).new_version          # doctest: +SKIP
        3
    """
    target, base = check_publish(config)
    client = connect(target)
    try:
        return _run(config, client, target, base)
    finally:
        client.close()


def plot_remote_swap(report: RemoteSwapReport, path: str | os.PathLike) -> Path:
    """Writes the update's timeline: percentiles per 1-second window, the load and the switch marked.

    Example:
        >>> plot_remote_swap(report, "update.png")     # doctest: +SKIP
        PosixPath('update.png')
    """
    run = types.SimpleNamespace(config=f"{report.target}: {report.old_version} -> {report.new_version}",
                                windows=report.windows, swaps=report.swaps, rss_mb=[], summary=report.summary)
    return plots.swap_timeline(run, path)
