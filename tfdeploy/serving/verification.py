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
from typing import Any, Callable, Mapping

import numpy as np

from tfdeploy import backend, faults
from tfdeploy.errors import TfdeployError
from tfdeploy.serving.export import TFLITE_FILE
from tfdeploy.progress import ProgressLike, as_progress
from tfdeploy.report import Block, Table, Text, Report
from tfdeploy.serving.signature import PREDICT_METHOD, read_signatures
from tfdeploy.serving.warmup import MAX_WARMUP_RECORDS, WARMUP_FILE, check_warmup_logs, read_warmup, request_of


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


class _Checks:
    def __init__(self) -> None:
        self.items: list[Check] = []

    def run(self, name: str, step: Callable[[], str]) -> bool:
        try:
            detail = step()
        except TfdeployError as exc:
            self.items.append(Check(name, False, str(exc)))
            return False
        except Exception as exc:  # TF raises many kinds for a broken SavedModel; report, don't crash
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            self.items.append(Check(name, False, f"{type(exc).__name__}: {first}"))
            return False
        self.items.append(Check(name, True, detail))
        return True

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
    state: dict[str, Any] = {}

    checks.run("numeric version directory", lambda: _numeric(path))

    def signatures() -> str:
        state["signatures"] = read_signatures(path)
        return f"MetaGraph 'serve' with signatures {sorted(state['signatures'])}"

    if not checks.run("saved_model.pb has a 'serve' MetaGraph", signatures):
        return VerifyReport(str(path), checks.items)

    def signature_present() -> str:
        sigs = state["signatures"]
        if signature_name not in sigs:
            raise TfdeployError(f"signature {signature_name!r} missing (has {sorted(sigs)}); clients calling it fail")
        sig = sigs[signature_name]
        if sig.method_name != PREDICT_METHOD:
            return f"{signature_name}: {sig.method_name}"
        return f"{signature_name}: inputs {sorted(sig.inputs)} -> outputs {sorted(sig.outputs)}"

    have_signature = checks.run(f"signature {signature_name!r} present", signature_present)

    def load() -> str:
        tf = backend.tf()
        state["loaded"] = tf.saved_model.load(str(path), tags=["serve"])
        return "tf.saved_model.load(tags=['serve']) succeeded"

    loaded_ok = checks.run("SavedModel loads with tag 'serve'", load)

    warmup_path = path / WARMUP_FILE

    def framing() -> str:
        if not warmup_path.is_file():
            raise TfdeployError(
                f"no {WARMUP_FILE}: TF Serving will serve the first requests cold; write it with "
                f"`tfdeploy warmup write {path}`"
            )
        state["logs"] = read_warmup(warmup_path)
        return f"{len(state['logs'])} record(s), TFRecord framing and CRCs intact"

    if checks.run("warmup file framing (TFRecord CRCs)", framing):
        logs = state["logs"]

        def count() -> str:
            if len(logs) > MAX_WARMUP_RECORDS:
                raise TfdeployError(f"more than {MAX_WARMUP_RECORDS} records: TF Serving fails the load")
            return f"{len(logs)} ≤ {MAX_WARMUP_RECORDS}"

        checks.run("warmup record count", count)

        def records() -> str:
            check_warmup_logs(logs[:MAX_WARMUP_RECORDS], state["signatures"])
            kinds = sorted({request_of(log)[0] for log in logs})
            return f"every record parses ({', '.join(kinds)}) and matches its signature's input keys, dtypes, shapes"

        records_ok = checks.run("warmup records match the signature", records)
        if loaded_ok and records_ok:
            from tfdeploy.serving.warmup import replay_warmup

            checks.run("warmup replay through the SavedModel",
                       lambda: f"{replay_warmup(state['loaded'].signatures, logs)} request(s) succeeded")
        else:
            checks.skip("warmup replay through the SavedModel", "the SavedModel or the records are broken")

    tflite = path / TFLITE_FILE
    if tflite.exists() and have_signature:
        checks.run(f"{TFLITE_FILE} loads and matches the signature",
                   lambda: _check_tflite(tflite, state["signatures"][signature_name]))

    report = VerifyReport(str(path), checks.items)
    if cold_start and loaded_ok and have_signature:
        from tfdeploy.measure.coldstart import measure_cold_start

        def measure() -> str:
            runs = 2 if "logs" in state else 1
            with as_progress(progress).task("cold start in fresh processes", total=runs, unit="process") as task:
                cold = measure_cold_start(path, replay_warmup=False, signature_name=signature_name)
                task.advance()
                warm = measure_cold_start(path, replay_warmup=True, signature_name=signature_name) \
                    if runs == 2 else None
                task.advance(runs - 1)
            report.cold_start = {"without_warmup": cold, "with_warmup": warm}
            text = (f"without warmup: first {cold['first_ms']:.1f} ms = {cold['first_over_steady']:.1f}× steady "
                    f"p50 {cold['steady_p50_ms']:.2f} ms")
            if warm:
                text += (f"; after replaying warmup: first {warm['first_ms']:.1f} ms = "
                         f"{warm['first_over_steady']:.1f}× steady")
            return text

        checks.run("cold start (fresh processes)", measure)
    if source_model is not None and loaded_ok and have_signature:
        def parity() -> str:
            report.parity = _parity(state["loaded"].signatures[signature_name], state["signatures"][signature_name],
                                    source_model, state.get("logs"), custom_objects, atol, safe_mode)
            p = report.parity
            diffs = ", ".join(f"{name} {diff:.3g}" for name, diff in p["max_abs_diff_by_output"].items())
            text = f"max abs diff per output: {diffs} (atol {atol}) on {p['samples']} samples"
            if p["max_abs_diff"] > atol:
                raise TfdeployError(f"outputs differ from the source model: {text}")
            return text

        checks.run(f"output parity with {source_model}", parity)
    report.checks = checks.items
    return report


def _numeric(path: Path) -> str:
    if not path.name.isdigit():
        raise TfdeployError(f"TF Serving only loads numeric version directories; {path.name!r} is not one")
    return f"version {int(path.name)}"


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
    from tfdeploy.io_spec import as_feed, concat, synthesize, top1
    from tfdeploy.measure.predictors import predictor_for_file
    from tfdeploy.serving.warmup import request_inputs

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
