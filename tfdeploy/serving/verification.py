"""Check a version directory the way TF Serving would load it.

Every check is reported as passed or failed with its detail; a broken file is a named failure,
never a traceback. The warmup records are replayed through TF's own SavedModel loader, cold
start is measured in fresh processes with and without the warmup, and with a source model the
outputs are compared.

Example:
    >>> report = verify("models/fashion/1", source_model="example/model.keras")   # doctest: +SKIP
    >>> report.passed
    True
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, Callable, Generic, Mapping, TypeVar

import numpy as np

from tfdeploy import backend, faults
from tfdeploy.errors import TfdeployError
from tfdeploy.io_spec import as_feed, concat, synthesize, top1
from tfdeploy.measure.coldstart import measure_cold_start
from tfdeploy.measure.predictors import predictor_for_file
from tfdeploy.measure.processes import onednn_enabled, surviving_onednn
from tfdeploy.progress import ProgressLike, as_progress
from tfdeploy.report import Block, Report, Table, Text
from tfdeploy.serving.export import TFLITE_FILE
from tfdeploy.serving.signature import PREDICT_METHOD, SignatureInfo, read_signatures
from tfdeploy.serving.warmup import (MAX_WARMUP_RECORDS, WARMUP_FILE, check_warmup_logs, has_warmup, read_warmup,
                                     replay_warmup, request_inputs, request_of)


@dataclasses.dataclass
class Check:
    """One verification step."""

    name: str
    passed: bool
    detail: str


@dataclasses.dataclass
class VerifyReport(Report):
    """All checks of one version directory."""

    version_dir: str
    checks: list[Check]
    cold_start: dict[str, Any] = dataclasses.field(default_factory=dict)
    parity: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)

    def failed(self) -> list[Check]:
        return [check for check in self.checks if not check.passed]

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "passed": self.passed}

    def blocks(self) -> list[Block]:
        rows = [("PASS" if c.passed else "FAIL", c.name, c.detail) for c in self.checks]
        verdict = "all checks passed" if self.passed else f"{len(self.failed())} check(s) failed"
        return [Text(f"verify {self.version_dir}: {verdict}"), Table(rows, header=("", "check", "detail"))]


T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class Outcome(Generic[T]):
    """What one verification step found: its detail line, a value later steps use, and whether it passed."""

    detail: str
    value: T | None = None
    passed: bool = True


class _Checks:
    """The list of checks; runs each step and records it, a step's exception being its failure."""

    def __init__(self) -> None:
        self.items: list[Check] = []

    def run(self, name: str, step: Callable[[], Outcome[T]]) -> Outcome[T] | None:
        """Runs ``step``; returns its outcome (even a failed one), or ``None`` if it raised."""
        try:
            outcome = step()
        except TfdeployError as exc:
            self.items.append(Check(name, False, str(exc)))
            return None
        except Exception as exc:  # TF raises many kinds for a broken SavedModel; report, don't crash
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            self.items.append(Check(name, False, f"{type(exc).__name__}: {first}"))
            return None
        self.items.append(Check(name, outcome.passed, outcome.detail))
        return outcome

    def passes(self, name: str, step: Callable[[], Outcome[Any]]) -> bool:
        """Runs ``step``; whether it passed."""
        outcome = self.run(name, step)
        return outcome is not None and outcome.passed

    def skip(self, name: str, why: str) -> None:
        self.items.append(Check(name, False, f"not run: {why}"))


@faults.boundary("verify")
def verify(
    version_dir: str | os.PathLike,
    source_model: str | os.PathLike | None = None,
    signature_name: str = "serving_default",
    cold_start: bool = True,
    atol: float = 1e-4,
    custom_objects: Mapping[str, Any] | None = None,
    safe_mode: bool = True,
    progress: ProgressLike = "auto",
) -> VerifyReport:
    """Verifies an exported TF Serving version directory.

    The steps run in order, each one's result passed to the steps that need it: the signatures
    (from ``saved_model.pb``), the loaded SavedModel, the warmup records; a step whose inputs
    failed is skipped or not run.

    Args:
        version_dir: ``<base_dir>/<version>``.
        source_model: The model it was exported from, for output parity.
        signature_name: The signature clients call.
        cold_start: Measure first-call latency in fresh processes, with and without warmup.
        atol: Max abs output difference allowed against ``source_model`` (every output).
        custom_objects: Custom layers needed to load ``source_model``.
        safe_mode: Refuse Lambda layers in ``source_model`` (``False``: ``--unsafe-deserialization``).
        progress: Where the cold-start measurement shows its progress (see :mod:`tfdeploy.progress`).

    Returns:
        A :class:`VerifyReport`; ``report.passed`` only if every check passed.

    Example:
        >>> print(verify("models/fashion/1", cold_start=False))    # doctest: +SKIP
    """
    path = Path(version_dir)
    checks = _Checks()
    report = VerifyReport(str(path), checks.items)
    checks.run("numeric version directory", lambda: _numeric(path))
    found = checks.run("saved_model.pb has a 'serve' MetaGraph", lambda: _signatures(path))
    if found is None:
        return report
    signatures = found.value
    have_signature = checks.passes(f"signature {signature_name!r} present",
                                   lambda: _signature_present(signatures, signature_name))
    served = checks.run("serves in a fresh process (load, warmup replay, 31 requests)",
                        lambda: _serves(path, signature_name)) if have_signature else None
    if served is not None and served.value and served.value.get("crashes_with_onednn") and onednn_enabled():
        for name in ("SavedModel loads with tag 'serve'", "warmup replay, cold start and output parity"):
            checks.skip(name, "the model crashes TensorFlow with oneDNN on, as this process has it: rerun as "
                              "`tfdeploy --no-onednn verify ...`")
        return report
    loaded = checks.run("SavedModel loads with tag 'serve'", lambda: _load(path))
    logs = _check_warmup(checks, path, signatures, loaded.value if loaded else None)
    tflite = path / TFLITE_FILE
    if tflite.exists() and have_signature:
        checks.run(f"{TFLITE_FILE} loads and matches the signature",
                   lambda: Outcome(_check_tflite(tflite, signatures[signature_name])))
    if not (loaded and have_signature):
        return report
    if cold_start:
        first = served.value.get("result") if served is not None and served.value else None
        measured = checks.run("cold start (fresh processes)",
                              lambda: _cold_start(path, signature_name, first, logs is not None, progress))
        report.cold_start = measured.value if measured else {}
    if source_model is not None:
        compared = checks.run(f"output parity with {source_model}", lambda: _parity_outcome(
            loaded.value.signatures[signature_name], signatures[signature_name], source_model, logs,
            custom_objects, atol, safe_mode))
        report.parity = compared.value if compared else {}
    return report


def _signatures(path: Path) -> Outcome[dict[str, SignatureInfo]]:
    signatures = read_signatures(path)
    return Outcome(f"MetaGraph 'serve' with signatures {sorted(signatures)}", signatures)


def _signature_present(signatures: Mapping[str, SignatureInfo], signature_name: str) -> Outcome[None]:
    if signature_name not in signatures:
        raise TfdeployError(f"signature {signature_name!r} missing (has {sorted(signatures)}); clients calling it fail")
    sig = signatures[signature_name]
    if sig.method_name != PREDICT_METHOD:
        return Outcome(f"{signature_name}: {sig.method_name}")
    return Outcome(f"{signature_name}: inputs {sorted(sig.inputs)} -> outputs {sorted(sig.outputs)}")


def _load(path: Path) -> Outcome[Any]:
    loaded = backend.tf().saved_model.load(str(path), tags=["serve"])
    return Outcome("tf.saved_model.load(tags=['serve']) succeeded", loaded)


def _check_warmup(checks: _Checks, path: Path, signatures: Mapping[str, SignatureInfo],
                  loaded: Any) -> list[Any] | None:
    """The warmup checks: framing, record count, records against the signature, replay. Returns the records."""
    framed = checks.run("warmup file framing (TFRecord CRCs)", lambda: _warmup_framing(path))
    if framed is None:
        return None
    logs = framed.value
    checks.run("warmup record count", lambda: _warmup_count(logs))
    records_ok = checks.passes("warmup records match the signature", lambda: _warmup_records(logs, signatures))
    if loaded is not None and records_ok:
        checks.run("warmup replay through the SavedModel",
                   lambda: Outcome(f"{replay_warmup(loaded.signatures, logs)} request(s) succeeded"))
    else:
        checks.skip("warmup replay through the SavedModel", "the SavedModel or the records are broken")
    return logs


def _warmup_framing(path: Path) -> Outcome[list[Any]]:
    if not has_warmup(path):
        raise TfdeployError(
            f"no {WARMUP_FILE}: TF Serving will serve the first requests cold; write it with "
            f"`tfdeploy warmup write {path}`"
        )
    logs = read_warmup(path / WARMUP_FILE)
    return Outcome(f"{len(logs)} record(s), TFRecord framing and CRCs intact", logs)


def _warmup_count(logs: list[Any]) -> Outcome[None]:
    if len(logs) > MAX_WARMUP_RECORDS:
        raise TfdeployError(f"more than {MAX_WARMUP_RECORDS} records: TF Serving fails the load")
    return Outcome(f"{len(logs)} ≤ {MAX_WARMUP_RECORDS}")


def _warmup_records(logs: list[Any], signatures: Mapping[str, SignatureInfo]) -> Outcome[None]:
    check_warmup_logs(logs[:MAX_WARMUP_RECORDS], dict(signatures))
    kinds = sorted({request_of(log)[0] for log in logs})
    return Outcome(f"every record parses ({', '.join(kinds)}) and matches its signature's input keys, dtypes, shapes")


def _serves(path: Path, signature_name: str) -> Outcome[dict[str, Any]]:
    """The version loaded and called in a fresh process; once more without oneDNN if TensorFlow crashed with it.

    A native crash there would take TF Serving down on every load; one that goes away without oneDNN
    is named, with the setting that avoids it.
    """
    warmup = has_warmup(path)
    result, retried = surviving_onednn(lambda env: measure_cold_start(path, replay_warmup=warmup,
                                                                      signature_name=signature_name, env=env))
    done = f"loaded{', replayed its warmup' if warmup else ''} and answered {1 + 30} requests"
    if retried:
        return Outcome(f"crashes with oneDNN on ({retried.split(' after ')[1].split(':')[0]}) and serves without it "
                       f"({done}): on this CPU TF Serving needs TF_ENABLE_ONEDNN_OPTS=0 — `tfdeploy serving-config "
                       "--no-onednn` writes it into run.sh, the Dockerfile, Compose and the KServe runtime",
                       {"crashes_with_onednn": True, "result": result}, passed=False)
    return Outcome(done, {"crashes_with_onednn": False, "result": result})


def _cold_start(path: Path, signature_name: str, served: dict[str, Any] | None, warmup: bool,
                progress: ProgressLike) -> Outcome[dict[str, Any]]:
    """First-call latency in fresh processes: the serving check's run (after warmup when the version has it),
    and one without warmup."""
    warm = served if warmup else None
    cold = None if warmup else served
    if cold is None:
        with as_progress(progress).task("cold start in a fresh process", total=1, unit="process") as task:
            cold = measure_cold_start(path, replay_warmup=False, signature_name=signature_name)
            task.advance()
    text = (f"without warmup: first {cold['first_ms']:.1f} ms = {cold['first_over_steady']:.1f}× steady "
            f"p50 {cold['steady_p50_ms']:.2f} ms")
    if warm:
        text += f"; after replaying warmup: first {warm['first_ms']:.1f} ms = {warm['first_over_steady']:.1f}× steady"
    return Outcome(text, {"without_warmup": cold, "with_warmup": warm})


def _parity_outcome(function: Any, signature: SignatureInfo, source_model: Any, logs: list[Any] | None,
                    custom_objects: Mapping[str, Any] | None, atol: float, safe_mode: bool) -> Outcome[dict[str, Any]]:
    parity = _parity(function, signature, source_model, logs, custom_objects, atol, safe_mode)
    diffs = ", ".join(f"{name} {diff:.3g}" for name, diff in parity["max_abs_diff_by_output"].items())
    text = f"max abs diff per output: {diffs} (atol {atol}) on {parity['samples']} samples"
    if parity["max_abs_diff"] > atol:
        return Outcome(f"outputs differ from the source model: {text}", parity, passed=False)
    return Outcome(text, parity)


def _numeric(path: Path) -> Outcome[None]:
    if not path.name.isdigit():
        raise TfdeployError(f"TF Serving only loads numeric version directories; {path.name!r} is not one")
    return Outcome(f"version {int(path.name)}")


def _check_tflite(path: Path, signature: Any) -> str:
    interpreter, _ = backend.tflite_interpreter(path)
    runners = interpreter.get_signature_list()
    keys = {key for sig in runners.values() for key in sig.get("inputs", [])}
    if keys and keys != set(signature.inputs):
        raise TfdeployError(f"model.tflite inputs {sorted(keys)} differ from the SavedModel's {sorted(signature.inputs)}")
    interpreter.allocate_tensors()
    return f"signatures {sorted(runners)} with inputs {sorted(keys)}"


PARITY_SAMPLES = 32


def _parity(function: Any, signature: Any, source_model: Any, logs: list[Any] | None,
            custom_objects: Mapping[str, Any] | None, atol: float, safe_mode: bool) -> dict[str, Any]:
    """Source model vs the exported signature on every warmup sample (topped up to 32 with synthesized ones)."""
    tf = backend.tf()
    io = signature.io
    parts = [request_inputs(request) for kind, request in (request_of(log) for log in logs or [])
             if kind == "predict_log" and set(request.inputs) == set(io.input_names)]
    have = sum(len(next(iter(p.values()))) for p in parts)
    if have < PARITY_SAMPLES:
        parts.append(synthesize(io, PARITY_SAMPLES - have, np.random.default_rng(0)))
    x = concat([{k: as_feed(v, io.input(k)) for k, v in part.items()} for part in parts])
    source = predictor_for_file(source_model, custom_objects=custom_objects, safe_mode=safe_mode)
    missing = sorted(set(io.output_names) - set(source.io.output_names))
    if missing:
        raise TfdeployError(f"the signature's outputs {missing} are not outputs of the source model "
                            f"({source.io.output_names}); is it the model this version was exported from?")
    expected = source.predict(x)
    actual = function(**{k: tf.constant(v) for k, v in x.items()})
    diffs = {name: float(np.max(np.abs(np.asarray(actual[name], np.float64) - np.asarray(expected[name], np.float64))))
             for name in io.output_names}
    agreements = [float(np.mean(top1(np.asarray(actual[t.name]), t.is_binary) == top1(expected[t.name], t.is_binary)))
                  for t in source.io.outputs if t.name in diffs and t.name in source.io.classification_outputs()]
    return {"samples": int(len(next(iter(x.values())))), "from_warmup": int(have), "max_abs_diff": max(diffs.values()),
            "max_abs_diff_by_output": diffs, "agreement": min(agreements) if agreements else None, "atol": atol}
