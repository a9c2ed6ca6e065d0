"""Determinism and parity checks.

* :func:`check_determinism` runs the same inputs N times in one process and across K fresh
  loads, compares outputs bit for bit, and names the usual causes when they differ: layers
  random at inference because they are called with ``training=True`` (Dropout family, noise,
  also inside nested models), BatchNormalization in training mode, random ops in the inference
  graph, op determinism off.
* :func:`check_parity` runs the same inputs through a source model and each artifact
  (SavedModel, TFLite float/int8 with (de)quantized int8 I/O) and checks max abs difference and
  top-1 agreement against limits.

Example:
    >>> report = check_determinism("model.keras", runs=3, reloads=2)    # doctest: +SKIP
    >>> report.identical, [c.kind for c in report.causes]
    (False, ['random layer called with training=True'])
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from tfdeploy import backend, faults
from tfdeploy.model.data import Dataset, read_data
from tfdeploy.errors import TfdeployError
from tfdeploy.io_spec import Arrays, ModelIO, as_feed, batch_size, sample, synthesize, top1
from tfdeploy.measure.predictors import Predictor, predictor_for_file
from tfdeploy.model.loading import is_plain_saved_model, load_model, training_config
from tfdeploy.quality.evaluation import Measured, measure_outputs
from tfdeploy.quality.plan import QualityPlan, build_plan
from tfdeploy.report import Block, Table, Text, Report
from tfdeploy.runtime import op_determinism_enabled

RANDOM_LAYERS = {"Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "GaussianDropout",
                 "GaussianNoise", "AlphaDropout", "RandomFlip", "RandomRotation", "RandomZoom", "RandomCrop",
                 "RandomTranslation", "RandomContrast", "RandomBrightness"}
BATCH_NORM_LAYERS = {"BatchNormalization", "SyncBatchNormalization"}
STATEFUL_RANDOM_OPS = {"RandomUniform", "RandomUniformInt", "RandomStandardNormal", "TruncatedNormal",
                       "RandomShuffle", "Multinomial", "RandomGamma", "RandomPoisson", "RandomPoissonV2",
                       "StatefulUniform", "StatefulStandardNormalV2", "StatefulUniformInt",
                       "StatefulTruncatedNormal", "StatefulRandomBinomial"}


@dataclasses.dataclass
class Cause:
    """A reason outputs can change between runs, where it is, and the fix."""

    kind: str
    where: str
    fix: str


@dataclasses.dataclass
class DeterminismReport(Report):
    """Outcome of :func:`check_determinism`."""

    artifact: str
    runs: int
    reloads: int
    samples: int
    identical: bool
    hashes: list[str]
    max_abs_diff: float
    first_divergence: str | None
    causes: list[Cause]
    op_determinism: bool

    def blocks(self) -> list[Block]:
        verdict = "IDENTICAL" if self.identical else "DIFFERENT"
        lines: list[Block] = [Text(f"determinism of {self.artifact}: {verdict} over {self.runs} run(s) x "
                                   f"{1 + self.reloads} load(s) on {self.samples} samples (max abs diff "
                                   f"{self.max_abs_diff:.3g})")]
        if self.first_divergence:
            lines.append(Text(f"first divergence: {self.first_divergence}"))
        if self.causes:
            lines.append(Table([(c.kind, c.where, c.fix) for c in self.causes], header=("cause", "where", "fix")))
        lines.append(Text(f"op determinism: {'on' if self.op_determinism else 'off'}"))
        return lines


def _inbound_training_flags(layer_config: Mapping[str, Any]) -> list[bool]:
    """``training=`` values a layer is called with, from a Keras 3 or tf_keras functional config."""
    flags = []
    for node in layer_config.get("inbound_nodes") or []:
        if isinstance(node, dict):  # Keras 3
            value = (node.get("kwargs") or {}).get("training")
            if value is not None:
                flags.append(bool(value))
        else:  # tf_keras: [[name, node, tensor, kwargs], ...]
            for entry in node:
                if isinstance(entry, (list, tuple)) and len(entry) > 3 and isinstance(entry[3], dict):
                    if entry[3].get("training") is not None:
                        flags.append(bool(entry[3]["training"]))
    return flags


def layer_causes(model: Any, prefix: str = "") -> list[Cause]:
    """Layers that make inference random or batch-dependent, found in the model's config (recursively).

    Example:
        >>> [c.kind for c in layer_causes(model)]       # doctest: +SKIP
        ['random layer called with training=True']
    """
    causes: list[Cause] = []
    try:
        config = model.get_config()
    except Exception:  # subclassed models without get_config: only the graph scan applies
        return causes
    by_name = {layer.name: layer for layer in getattr(model, "layers", [])}
    for layer_config in config.get("layers", []) if isinstance(config, dict) else []:
        name = layer_config.get("config", {}).get("name") or layer_config.get("name")
        kind = layer_config.get("class_name")
        where = f"{prefix}{name} ({kind})"
        training = any(_inbound_training_flags(layer_config))
        if kind in RANDOM_LAYERS and training:
            causes.append(Cause("random layer called with training=True", where,
                                "call it with training=False (or drop the training=True argument) for serving"))
        if kind in BATCH_NORM_LAYERS and training:
            causes.append(Cause("BatchNormalization called with training=True", where,
                                "call it with training=False: in training mode it normalises with the batch's "
                                "statistics and updates its moving averages on every call"))
        inner = by_name.get(name)
        if inner is not None and hasattr(inner, "layers") and hasattr(inner, "get_config"):
            causes.extend(layer_causes(inner, prefix=f"{prefix}{name}/"))
    return causes


def graph_nodes(function: Any) -> Iterable[Any]:
    """NodeDefs of a concrete function, including the functions it calls.

    Example:
        >>> {node.op for node in graph_nodes(loaded.signatures["serving_default"])}   # doctest: +SKIP
        {'Placeholder', 'MatMul', ...}
    """
    graph_def = function.graph.as_graph_def()
    yield from graph_def.node
    for library_function in graph_def.library.function:
        yield from library_function.node_def


def graph_causes(function: Any) -> list[Cause]:
    """Stateful random ops in an inference graph (unseeded ones named as such).

    Example:
        >>> [c.where for c in graph_causes(loaded.signatures["serving_default"])]   # doctest: +SKIP
        ['random_uniform (RandomUniform, unseeded)']
    """
    causes = []
    for node in graph_nodes(function):
        if node.op in STATEFUL_RANDOM_OPS:
            seeded = node.attr["seed"].i != 0 or node.attr["seed2"].i != 0
            causes.append(Cause("random op in the inference graph",
                                f"{node.name} ({node.op}, {'seeded: still new values on every call' if seeded else 'unseeded'})",
                                "remove random ops from the serving path; for reproducible runs call "
                                "tfdeploy.seed_everything / pass --seed"))
        elif node.op.startswith("StatelessRandom"):
            causes.append(Cause("random op fed by a changing seed state", f"{node.name} ({node.op})",
                                "remove random ops from the serving path"))
    return causes


def check_inputs(io: ModelIO, data: str | os.PathLike | Dataset | None, samples: int, seed: int) -> Arrays:
    """``samples`` named inputs: drawn from the data's validation split, or synthesized.

    Example:
        >>> x = check_inputs(predictor.io, None, samples=16, seed=0)     # doctest: +SKIP
    """
    return labelled_inputs(io, data, samples, seed)[0]


def labelled_inputs(io: ModelIO, data: str | os.PathLike | Dataset | None, samples: int,
                    seed: int) -> tuple[Arrays, Arrays | None]:
    """:func:`check_inputs` and the same samples' labels (``None`` without labelled data)."""
    if data is None:
        return synthesize(io, samples, np.random.default_rng(seed)), None
    bound = read_data(data, io, hold_out=False)
    x = {k: as_feed(v, io.input(k)) for k, v in sample(bound.x_val, samples, seed=seed).items()}
    return x, None if bound.y_val is None else sample(bound.y_val, samples, seed=seed)


def _hash(outputs: Arrays) -> str:
    digest = hashlib.sha256()
    for name in sorted(outputs):
        digest.update(name.encode())
        digest.update(np.ascontiguousarray(outputs[name]).tobytes())
    return digest.hexdigest()[:16]


def _max_diff(a: Arrays, b: Arrays) -> float:
    return max(float(np.max(np.abs(a[k].astype(np.float64) - b[k].astype(np.float64)))) for k in a)


@faults.boundary("check determinism")
def check_determinism(artifact: str | os.PathLike, runs: int = 5, reloads: int = 2,
                      data: str | os.PathLike | Dataset | None = None, samples: int = 16, seed: int = 0,
                      custom_objects: Mapping[str, Any] | None = None, safe_mode: bool = True) -> DeterminismReport:
    """Checks that an artifact returns bit-identical outputs (every output) run after run and load after load.

    Args:
        artifact: Keras file, SavedModel directory or ``.tflite`` file.
        runs: Calls with the same inputs per load.
        reloads: Extra fresh loads of the artifact.
        data: Inputs (``.npz``/image dir/Dataset); synthesized from ``seed`` if ``None``.
        samples: Batch of inputs used for every call.
        seed: Seed of the synthesized inputs.
        custom_objects: Custom layers to load a Keras file.
        safe_mode: Refuse Lambda layers (``False``: ``--unsafe-deserialization``).

    Returns:
        A :class:`DeterminismReport`; ``identical`` is the verdict.

    Raises:
        TfdeployError: For unreadable artifacts or bad options.

    Example:
        >>> check_determinism("model.keras").identical    # doctest: +SKIP
        True
    """
    if runs < 1 or reloads < 0 or samples < 1:
        raise TfdeployError(f"runs and samples must be ≥ 1 and reloads ≥ 0. Received: runs={runs}, reloads={reloads}, "
                            f"samples={samples}")
    path = Path(artifact)
    if not path.exists():
        raise TfdeployError(f"No artifact at this path. Received: path={str(path)!r}")

    def load() -> Predictor:
        # Keras models are called as model(x), the way notebook code calls them: a Keras 3 layer called
        # with training=True inside the model is random then (served with training=False, it is not).
        return predictor_for_file(path, custom_objects=custom_objects, training=None, safe_mode=safe_mode)

    predictor = load()
    x = check_inputs(predictor.io, data, samples, seed)
    outputs: list[tuple[str, Arrays]] = []
    for index in range(1 + reloads):
        predictor = predictor if index == 0 else load()
        outputs.extend((f"load {index + 1}, run {run + 1}", predictor.predict(x)) for run in range(runs))
    reference = outputs[0][1]
    hashes = [_hash(out) for _, out in outputs]
    first = next(((label, out) for (label, out), h in zip(outputs, hashes) if h != hashes[0]), None)
    divergence = None if first is None else _divergence(first, reference, predictor.runtime)
    causes = _find_causes(path, custom_objects, safe_mode)
    op_determinism = op_determinism_enabled()
    if first is not None and not causes and not op_determinism:
        causes.append(Cause("op determinism off", "TensorFlow runtime",
                            "enable it: tfdeploy --deterministic (tf.config.experimental.enable_op_determinism)"))
    return DeterminismReport(artifact=str(path), runs=runs, reloads=reloads, samples=batch_size(x),
                             identical=first is None, hashes=sorted(set(hashes)),
                             max_abs_diff=max(_max_diff(out, reference) for _, out in outputs),
                             first_divergence=divergence, causes=causes, op_determinism=op_determinism)


def _divergence(first: tuple[str, Arrays], reference: Arrays, runtime: str) -> str:
    label, out = first
    name = max(out, key=lambda k: float(np.max(np.abs(out[k].astype(np.float64) - reference[k]))))
    per_sample = np.abs(out[name].astype(np.float64) - reference[name]).reshape(len(out[name]), -1).max(axis=1)
    return (f"{label} differs from load 1, run 1 in output {name!r} ({runtime}); most at sample "
            f"{int(np.argmax(per_sample))} (abs diff {float(per_sample.max()):.3g})")


def _find_causes(path: Path, custom_objects: Mapping[str, Any] | None, safe_mode: bool) -> list[Cause]:
    if path.suffix == ".tflite":
        return []
    if is_plain_saved_model(path):
        loaded = backend.tf().saved_model.load(str(path))
        return [c for f in loaded.signatures.values() for c in graph_causes(f)]
    tf = backend.tf()
    model = load_model(path, custom_objects=custom_objects, safe_mode=safe_mode).model
    specs = {t.name: backend.tensor_spec(t, None) for t in backend.model_io(model).inputs}
    function = tf.function(lambda inputs: backend.call_model(model, inputs, training=None)).get_concrete_function(specs)
    causes = layer_causes(model)
    random_layers = {c.where.split(" (")[0].split("/")[-1] for c in causes}
    causes += [c for c in graph_causes(function) if not any(name in c.where for name in random_layers)]
    return causes


@dataclasses.dataclass
class ParityResult:
    """One output of one artifact against the source."""

    artifact: str
    output: str
    runtime: str
    max_abs_diff: float
    max_rel_diff: float
    agreement: float | None
    worst_sample: int
    passed: bool
    reason: str


@dataclasses.dataclass
class QualityRow:
    """One chosen metric of one artifact, in reporting units, next to the source's."""

    artifact: str
    metric: str
    value: float | None
    source_value: float | None
    drop: float | None
    unit: str


@dataclasses.dataclass
class ParityReport(Report):
    """Outcome of :func:`check_parity`: one result per artifact and output, and each artifact's chosen metrics."""

    source: str
    samples: int
    atol: float
    rtol: float
    min_agreement: float
    results: list[ParityResult]
    metrics: list[str] = dataclasses.field(default_factory=list)
    quality: list[QualityRow] = dataclasses.field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "passed": self.passed}

    def blocks(self) -> list[Block]:
        rows = [("PASS" if r.passed else "FAIL", Path(r.artifact).name, r.output, r.runtime, r.max_abs_diff,
                 r.max_rel_diff, r.agreement, r.worst_sample, r.reason) for r in self.results]
        quality = [(Path(q.artifact).name, f"{q.metric} {q.unit}".strip(), q.value, q.source_value, q.drop)
                    for q in self.quality]
        return [Text(f"parity with {self.source} on {self.samples} samples (atol {self.atol}, rtol {self.rtol}, min "
                     f"agreement {self.min_agreement})"),
                Table(rows, header=("", "artifact", "output", "runtime", "max abs", "max rel", "top-1 agreement",
                                    "worst sample", "")),
                *([Text(f"judged by {', '.join(self.metrics)}"),
                   Table(quality, header=("artifact", "metric", "value", "source", "drop"))] if quality else [])]


def _compare(artifact: str, runtime: str, name: str, expected: np.ndarray, actual: np.ndarray, binary: bool,
             atol: float, rtol: float, min_agreement: float) -> ParityResult:
    if actual.shape != expected.shape:
        raise TfdeployError(f"Output {name!r} of {artifact} has shape {actual.shape}, the source's {expected.shape}. "
                            f"Received: path={artifact!r}")
    diff = np.abs(actual - expected)
    per_sample = diff.reshape(len(diff), -1).max(axis=1)
    ref_top, got_top = top1(expected, binary), top1(actual, binary)
    agreement = None if ref_top is None else float(np.mean(ref_top == got_top))
    max_abs = float(diff.max())
    tolerance = atol + rtol * float(np.max(np.abs(expected)))
    close = max_abs <= tolerance
    agrees = agreement is not None and agreement >= min_agreement
    reason = ("within tolerance" if close else f"agreement {agreement:.3f} ≥ {min_agreement}" if agrees else
              f"differs by {max_abs:.3g} > {tolerance:.3g}" + (f" and agreement {agreement:.3f} < {min_agreement}"
                                                               if agreement is not None else ""))
    return ParityResult(artifact=artifact, output=name, runtime=runtime, max_abs_diff=max_abs,
                        max_rel_diff=float((diff / np.maximum(np.abs(expected), 1e-6)).max()), agreement=agreement,
                        worst_sample=int(np.argmax(per_sample)), passed=close or agrees, reason=reason)


@faults.boundary("check parity")
def check_parity(source: str | os.PathLike, artifacts: Sequence[str | os.PathLike],
                 data: str | os.PathLike | Dataset | None = None, samples: int = 256, atol: float = 1e-3,
                 min_agreement: float = 0.99, seed: int = 0, custom_objects: Mapping[str, Any] | None = None,
                 rtol: float = 0.0, safe_mode: bool = True, metrics: Sequence[str] = ()) -> ParityReport:
    """Compares every output of each artifact with the source model's on the same inputs.

    An output passes when its max abs difference is ≤ ``atol + rtol × max|source output|`` or, for
    class scores, its top-1 agreement is ≥ ``min_agreement`` (quantized models differ in value but
    must agree on the class). Each artifact is also judged by ``metrics`` (``--metric``; default: the
    source's compiled metrics, else by output head, or fidelity without labels) next to the source.

    Example:
        >>> check_parity("model.keras", ["out/ptq-int8.tflite"], data="data.npz").passed   # doctest: +SKIP
        True
    """
    if not artifacts:
        raise TfdeployError("Give at least one artifact to compare. Received: artifacts=[]")
    reference = predictor_for_file(source, custom_objects=custom_objects, safe_mode=safe_mode)
    x, labels = labelled_inputs(reference.io, data, samples, seed)
    raw = reference.predict(x)
    expected = {k: v.astype(np.float64) for k, v in raw.items()}
    plan = build_plan(reference.io, raw, labels, metrics, training_config(source), compiled_from=Path(source).name)
    base = measure_outputs(plan, labels, raw)
    results, quality = [], []
    for artifact in artifacts:
        if not Path(artifact).exists():
            raise TfdeployError(f"No artifact at this path. Received: path={str(artifact)!r}")
        predictor = predictor_for_file(artifact, custom_objects=custom_objects, safe_mode=safe_mode)
        missing = sorted(set(reference.io.input_names) ^ set(predictor.io.input_names))
        if missing:
            raise TfdeployError(f"{artifact} takes inputs {predictor.io.input_names}, the source takes "
                                f"{reference.io.input_names}; compare models of the same inputs. Received: "
                                f"path={str(artifact)!r}")
        actual = predictor.predict(x)
        for info in reference.io.outputs:
            if info.name not in actual:
                raise TfdeployError(f"{artifact} has no output {info.name!r} (it has {sorted(actual)}). Received: "
                                    f"path={str(artifact)!r}")
            results.append(_compare(str(artifact), predictor.runtime, info.name, expected[info.name],
                                    actual[info.name].astype(np.float64), info.is_binary, atol, rtol, min_agreement))
        quality += _quality_rows(str(artifact), plan, base, measure_outputs(plan, labels, raw, actual))
    return ParityReport(source=str(source), samples=batch_size(x), atol=atol, rtol=rtol, min_agreement=min_agreement,
                        results=results, metrics=[str(ref) for ref in plan.chosen], quality=quality)


def _quality_rows(artifact: str, plan: QualityPlan, base: Measured, measured: Measured) -> list[QualityRow]:
    rows = []
    for ref in plan.chosen:
        spec = ref.spec()
        drop = measured.drop(base, ref, plan)
        rows.append(QualityRow(artifact, str(ref), measured.shown(ref, plan), base.shown(ref, plan),
                               None if drop is None else drop * spec.scale, spec.unit))
    return rows
