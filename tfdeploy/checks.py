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

from tfdeploy import backend
from tfdeploy.data import Dataset, load_data
from tfdeploy.errors import TfdeployError
from tfdeploy.predictors import Predictor, is_saved_model_dir, predictor_for_file
from tfdeploy.report import Report, format_table

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

    def to_table(self) -> str:
        verdict = "IDENTICAL" if self.identical else "DIFFERENT"
        lines = [f"determinism of {self.artifact}: {verdict} over {self.runs} run(s) x {1 + self.reloads} load(s) "
                 f"on {self.samples} samples (max abs diff {self.max_abs_diff:.3g})"]
        if self.first_divergence:
            lines.append(f"first divergence: {self.first_divergence}")
        if self.causes:
            lines.append(format_table([(c.kind, c.where, c.fix) for c in self.causes],
                                      header=("cause", "where", "fix")))
        lines.append(f"op determinism: {'on' if self.op_determinism else 'off'}")
        return "\n".join(lines)


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
    """Layers that make inference random or batch-dependent, found in the model's config (recursively)."""
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
    """NodeDefs of a concrete function, including the functions it calls."""
    graph_def = function.graph.as_graph_def()
    yield from graph_def.node
    for library_function in graph_def.library.function:
        yield from library_function.node_def


def graph_causes(function: Any) -> list[Cause]:
    """Stateful random ops in an inference graph (unseeded ones named as such)."""
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


def _inputs(predictor: Predictor, data: str | os.PathLike | Dataset | None, samples: int, seed: int) -> np.ndarray:
    if data is None:
        from tfdeploy.benchmark import synthetic_inputs

        return synthetic_inputs(predictor.sample_shape, samples, seed)
    shape = predictor.sample_shape
    if not isinstance(data, Dataset):
        image = len(shape) == 3
        data = load_data(data, image_size=shape[:2] if image else None, channels=shape[2] if image else None)
    x = data.x_val if data.x_val is not None else data.x
    return Dataset(x=x).sample(samples, seed=seed).astype("float32")


def _hash(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()[:16]


def check_determinism(artifact: str | os.PathLike, runs: int = 5, reloads: int = 2,
                      data: str | os.PathLike | Dataset | None = None, samples: int = 16, seed: int = 0,
                      custom_objects: Mapping[str, Any] | None = None) -> DeterminismReport:
    """Checks that an artifact returns bit-identical outputs run after run and load after load.

    Args:
        artifact: Keras file, SavedModel directory or ``.tflite`` file.
        runs: Calls with the same inputs per load.
        reloads: Extra fresh loads of the artifact.
        data: Inputs (``.npz``/image dir/Dataset); synthesized from ``seed`` if ``None``.
        samples: Batch of inputs used for every call.
        seed: Seed of the synthesized inputs.
        custom_objects: Custom layers to load a Keras file.

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
    from tfdeploy.runtime import op_determinism_enabled

    # Keras models are called as model(x), the way notebook code calls them: a Keras 3 layer called
    # with training=True inside the model is random then (served with training=False, it is not).
    predictor = predictor_for_file(path, custom_objects=custom_objects, training=None)
    x = _inputs(predictor, data, samples, seed)
    outputs: list[tuple[str, np.ndarray]] = []
    for load in range(1 + reloads):
        if load:
            predictor = predictor_for_file(path, custom_objects=custom_objects, training=None)
        for run in range(runs):
            outputs.append((f"load {load + 1}, run {run + 1}", predictor.predict(x)))
    reference = outputs[0][1]
    hashes = [_hash(out) for _, out in outputs]
    diffs = [float(np.max(np.abs(out.astype(np.float64) - reference))) for _, out in outputs]
    first = next(((label, out) for (label, out), h in zip(outputs, hashes) if h != hashes[0]), None)
    divergence = None
    if first is not None:
        label, out = first
        per_sample = np.abs(out.astype(np.float64) - reference).reshape(len(x), -1).max(axis=1)
        divergence = (f"{label} differs from load 1, run 1 in output 0 ({predictor.runtime}); most at sample "
                      f"{int(np.argmax(per_sample))} (abs diff {float(per_sample.max()):.3g})")
    causes = _find_causes(path, custom_objects)
    op_determinism = op_determinism_enabled()
    if first is not None and not causes and not op_determinism:
        causes.append(Cause("op determinism off", "TensorFlow runtime",
                            "enable it: tfdeploy --deterministic (tf.config.experimental.enable_op_determinism)"))
    return DeterminismReport(artifact=str(path), runs=runs, reloads=reloads, samples=len(x),
                             identical=first is None, hashes=sorted(set(hashes)), max_abs_diff=max(diffs),
                             first_divergence=divergence, causes=causes, op_determinism=op_determinism)


def _find_causes(path: Path, custom_objects: Mapping[str, Any] | None) -> list[Cause]:
    if path.suffix == ".tflite":
        return []
    tf = backend.tf()
    if is_saved_model_dir(path) and not (path / "keras_metadata.pb").is_file():
        loaded = tf.saved_model.load(str(path))
        return [c for f in loaded.signatures.values() for c in graph_causes(f)]
    from tfdeploy.model import load_model

    model = load_model(path, custom_objects=custom_objects).model
    spec = tf.TensorSpec([None, *model.input_shape[1:]], tf.float32)
    function = tf.function(lambda x: model(x)).get_concrete_function(spec)
    causes = layer_causes(model)
    random_layers = {c.where.split(" (")[0].split("/")[-1] for c in causes}
    causes += [c for c in graph_causes(function) if not any(name in c.where for name in random_layers)]
    return causes


@dataclasses.dataclass
class ParityResult:
    """One artifact against the source."""

    artifact: str
    runtime: str
    max_abs_diff: float
    max_rel_diff: float
    agreement: float | None
    worst_sample: int
    passed: bool
    reason: str


@dataclasses.dataclass
class ParityReport(Report):
    """Outcome of :func:`check_parity`."""

    source: str
    samples: int
    atol: float
    min_agreement: float
    results: list[ParityResult]

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "passed": self.passed}

    def to_table(self) -> str:
        rows = [("PASS" if r.passed else "FAIL", Path(r.artifact).name, r.runtime, r.max_abs_diff, r.max_rel_diff,
                 r.agreement, r.worst_sample, r.reason) for r in self.results]
        return (f"parity with {self.source} on {self.samples} samples (atol {self.atol}, min agreement "
                f"{self.min_agreement})\n" + format_table(rows, header=("", "artifact", "runtime", "max abs", "max rel",
                                                                       "top-1 agreement", "worst sample", "")))


def check_parity(source: str | os.PathLike, artifacts: Sequence[str | os.PathLike],
                 data: str | os.PathLike | Dataset | None = None, samples: int = 256, atol: float = 1e-3,
                 min_agreement: float = 0.99, seed: int = 0,
                 custom_objects: Mapping[str, Any] | None = None) -> ParityReport:
    """Compares each artifact's outputs with the source model's on the same inputs.

    An artifact passes when its max abs difference is ≤ ``atol`` or, for classifiers, its top-1
    agreement is ≥ ``min_agreement`` (quantized models differ in value but must agree on the class).

    Example:
        >>> check_parity("model.keras", ["out/ptq-int8.tflite"], data="data.npz").passed   # doctest: +SKIP
        True
    """
    from tfdeploy.compression import top1

    if not artifacts:
        raise TfdeployError("Give at least one artifact to compare. Received: artifacts=[]")
    reference_predictor = predictor_for_file(source, custom_objects=custom_objects)
    x = _inputs(reference_predictor, data, samples, seed)
    expected = reference_predictor.predict(x).astype(np.float64)
    results = []
    for artifact in artifacts:
        if not Path(artifact).exists():
            raise TfdeployError(f"No artifact at this path. Received: path={str(artifact)!r}")
        predictor = predictor_for_file(artifact, custom_objects=custom_objects)
        actual = predictor.predict(x).astype(np.float64)
        if actual.shape != expected.shape:
            raise TfdeployError(f"Output 0 of {artifact} has shape {actual.shape}, the source's {expected.shape}. "
                                f"Received: path={str(artifact)!r}")
        diff = np.abs(actual - expected)
        per_sample = diff.reshape(len(x), -1).max(axis=1)
        ref_top, got_top = top1(expected), top1(actual)
        agreement = None if ref_top is None else float(np.mean(ref_top == got_top))
        max_abs = float(diff.max())
        close = max_abs <= atol
        agrees = agreement is not None and agreement >= min_agreement
        reason = ("max abs diff within atol" if close else
                  f"agreement {agreement:.3f} ≥ {min_agreement}" if agrees else
                  f"output 0 differs by {max_abs:.3g} > atol" + (f" and agreement {agreement:.3f} < {min_agreement}"
                                                                  if agreement is not None else ""))
        results.append(ParityResult(
            artifact=str(artifact), runtime=predictor.runtime, max_abs_diff=max_abs,
            max_rel_diff=float((diff / np.maximum(np.abs(expected), 1e-6)).max()), agreement=agreement,
            worst_sample=int(np.argmax(per_sample)), passed=close or agrees, reason=reason))
    return ParityReport(source=str(source), samples=len(x), atol=atol, min_agreement=min_agreement, results=results)
