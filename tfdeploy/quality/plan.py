"""Which metrics judge a model: the user's ``--metric``, else the ones it was compiled with, else by output head.

The first metric **drives** ``--auto``; every metric is computed on every variant. A practitioner's
defaults, in order:

1. ``--metric SPEC`` (repeatable): ``NAME``, ``NAME=PARAM`` or ``module:function``, each optionally
   ``@OUTPUT``; without an output, a metric judges every output it applies to, and the model as a
   whole by the worst of them.
2. The metrics and loss the file was compiled with (Keras 3 ``compile_config``, ``training_config`` of
   tf_keras and legacy ``.h5``), mapped to registered metrics by their Keras names; then the head
   defaults below for what they do not cover.
3. By output head, where the data labels it: softmax → accuracy; one sigmoid → AUC and logloss;
   several sigmoids → micro and macro F1; values → MAE and RMSE.
4. Outputs without labels are judged by fidelity to the original: agreement for classifier heads,
   SNR (dB) otherwise.

Accuracy barely above always answering the majority class is flagged, and a head metric drives ``--auto``
instead.

Example:
    >>> MetricRef.parse("auc@click"), str(MetricRef.parse("top_k=3"))
    (MetricRef(name='auc', output='click', param=None), 'top_k=3')
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Sequence

import numpy as np

from tfdeploy.errors import TfdeployError
from tfdeploy.io_spec import Arrays, ModelIO
from tfdeploy.quality.custom import custom_metric, is_custom
from tfdeploy.quality.heads import class_ids, head_of
from tfdeploy.quality.metrics import REGISTRY
from tfdeploy.quality.metrics.fidelity import CLASSIFIERS
from tfdeploy.quality.registry import Against, Head, MetricSpec, Output

HEAD_DEFAULTS = {Head.CLASSES: ("accuracy",), Head.BINARY: ("auc", "logloss"),
                 Head.MULTILABEL: ("micro_f1", "macro_f1"), Head.VALUES: ("mae", "rmse")}
UNINFORMATIVE = 0.25  # accuracy that avoids less than this share of the majority class's errors says little
FIDELITY = ("agreement", "mean_abs_diff", "max_abs_diff", "cosine", "kl", "snr")  # computed on every variant


@dataclasses.dataclass(frozen=True)
class MetricRef:
    """One ``--metric`` SPEC: a metric name (or ``module:function``), its parameter and the output it judges."""

    name: str
    output: str | None = None
    param: float | None = None

    @classmethod
    def parse(cls, spec: str) -> MetricRef:
        """``NAME``, ``NAME=PARAM`` or ``module:function``, each optionally followed by ``@OUTPUT``.

        Raises:
            TfdeployError: For an empty spec or a parameter that is not a number.
        """
        text, at, output = spec.strip().partition("@")
        name, equals, param = text.partition("=")
        if not name or "@" in output or (at and not output) or (equals and not param):
            raise TfdeployError(f"A metric is NAME, NAME=PARAM or module:function, optionally @OUTPUT (e.g. auc@click, "
                                f"top_k=3, mymetrics:recall_at_10). Received: metric={spec!r}")
        try:
            value = float(param) if param else None
        except ValueError:
            raise TfdeployError(f"A metric's parameter is a number (top_k=3, micro_f1=0.3). Received: metric={spec!r}") \
                from None
        return cls(name, output or None, value)

    def __str__(self) -> str:
        param = "" if self.param is None else f"={self.param:g}"
        return f"{self.name}{param}" + (f"@{self.output}" if self.output else "")

    def spec(self) -> MetricSpec:
        return custom_metric(self.name) if is_custom(self.name) else REGISTRY.get(self.name)

    @property
    def key(self) -> str:
        """The name its values are stored under in ``{output: {key: value}}``."""
        return self.spec().key(self.param) if not is_custom(self.name) else self.name


@dataclasses.dataclass(frozen=True)
class Column:
    """One metric computed on one output."""

    spec: MetricSpec
    output: Output
    param: Any = None

    @property
    def key(self) -> str:
        return self.spec.key(self.param)


@dataclasses.dataclass
class QualityPlan:
    """What every variant is measured by.

    Attributes:
        outputs: Each output's head, by name.
        columns: Every (metric, output) pair to compute: the chosen metrics and the fidelity ones.
        chosen: The metrics reports show, in order; the first drives ``--auto``.
        driving: The metric ``--auto`` optimises within its budget.
        source: Where the chosen metrics came from.
        notes: What the plan decided and why (uninformative accuracy, compiled metrics it cannot map).
    """

    outputs: dict[str, Output]
    columns: list[Column]
    chosen: list[MetricRef]
    driving: MetricRef
    source: str
    notes: list[str] = dataclasses.field(default_factory=list)

    def outputs_of(self, ref: MetricRef) -> list[str]:
        """The outputs ``ref`` is computed on."""
        key = ref.key
        return [c.output.name for c in self.columns if c.key == key and (ref.output in (None, c.output.name))]


def _compiled_entry_name(entry: Any) -> tuple[str | None, float | None]:
    """A compile-config metric or loss entry as (Keras name, parameter)."""
    if isinstance(entry, str):
        return entry, None
    if not isinstance(entry, Mapping):
        return None, None
    name, config = entry.get("class_name"), entry.get("config") or {}
    if name == "MeanMetricWrapper":
        return config.get("fn") or config.get("name"), None
    if name == "AUC":
        return ("average_precision" if str(config.get("curve", "ROC")).upper() == "PR" else "auc"), None
    if name in ("TopKCategoricalAccuracy", "SparseTopKCategoricalAccuracy"):
        return name, config.get("k")
    if name == "F1Score":
        return name, config.get("threshold")
    return name, None


def _per_output(value: Any, names: Sequence[str]) -> list[tuple[str | None, Any]]:
    """(output or None for all, entry) pairs from a compile field: a dict per output, a list per output, or one."""
    if isinstance(value, Mapping) and "class_name" not in value:
        return [(str(output), entry) for output, entries in value.items()
                for entry in (entries if isinstance(entries, list) else [entries])]
    if isinstance(value, list) and value and all(isinstance(v, list) for v in value):
        return [(names[i] if i < len(names) else None, entry) for i, entries in enumerate(value) for entry in entries]
    return [(None, entry) for entry in (value if isinstance(value, list) else [value])]


def compiled_refs(config: Mapping[str, Any] | None, io: ModelIO) -> tuple[list[MetricRef], list[str]]:
    """The registered metrics a file's compile config names (metrics first, then the loss), and notes on the rest."""
    if not config:
        return [], []
    refs: list[MetricRef] = []
    unknown: list[str] = []
    for field in ("metrics", "weighted_metrics", "loss"):
        for output, entry in _per_output(config.get(field), io.output_names):
            name, param = _compiled_entry_name(entry)
            if not name:
                continue
            spec = REGISTRY.from_keras(name)
            ref = None if spec is None else MetricRef(spec.name, output, None if param is None else float(param))
            if ref is None and field != "loss":
                unknown.append(str(name))
            elif ref is not None and ref not in refs:
                refs.append(ref)
    notes = [f"compiled metric(s) {', '.join(sorted(set(unknown)))} have no tfdeploy counterpart: pass --metric "
             "module:function to judge by them"] if unknown else []
    return refs, notes


def majority_rate(labels: np.ndarray, output: Output) -> float | None:
    """The accuracy of always answering the most frequent class (or 0/1 value per unit)."""
    if output.head is Head.CLASSES:
        counts = np.bincount(class_ids(labels, output.units))
        return float(counts.max() / counts.sum()) if counts.sum() else None
    if output.head in (Head.BINARY, Head.MULTILABEL):
        positive = np.asarray(labels, dtype="float64").reshape(-1, output.units).mean(axis=0)
        return float(np.mean(np.maximum(positive, 1 - positive)))
    return None


def heads(io: ModelIO, reference: Arrays, labels: Arrays | None) -> dict[str, Output]:
    """Each output's head, from its activation, the original's values and the labels."""
    labels = labels or {}
    return {info.name: head_of(info, reference.get(info.name), labels.get(info.name)) for info in io.outputs}


def build_plan(io: ModelIO, reference: Arrays, labels: Arrays | None, metrics: Sequence[str] = (),
               compiled: Mapping[str, Any] | None = None, first_output: str | None = None,
               compiled_from: str = "the model file") -> QualityPlan:
    """The metrics every variant is measured by (see the module docs for the order of choice).

    Args:
        io: The model's inputs and outputs.
        reference: The original's outputs on the evaluation inputs (decide heads where activations are unknown).
        labels: Evaluation labels by output (``None``: fidelity only).
        metrics: ``--metric`` specs.
        compiled: The file's compile config (:func:`tfdeploy.model.loading.training_config`).
        first_output: The output listed first among the defaults (``--output``).
        compiled_from: Names the file in the plan's source.

    Raises:
        TfdeployError: For a metric, output or parameter that does not fit the model or data.
    """
    outputs = heads(io, reference, labels)
    labelled = [name for name in io.output_names if labels and name in labels]
    if first_output in labelled:
        labelled.remove(first_output)
        labelled.insert(0, first_output)
    notes: list[str] = []
    if metrics:
        chosen, source = [MetricRef.parse(spec) for spec in metrics], "--metric"
    else:
        chosen, notes = compiled_refs(compiled, io)
        chosen = [dataclasses.replace(ref, output=None) if len(outputs) == 1 else ref for ref in chosen]
        chosen = [ref for ref in dict.fromkeys(chosen) if _fits(ref, outputs, labelled)]
        source = f"compiled metrics of {compiled_from}" if chosen else "defaults by output head"
        chosen += [ref for ref in _head_defaults(outputs, labelled, io.output_names) if ref not in chosen]
    columns = _columns(chosen, outputs, labelled)
    driving, warnings = _driving(chosen, outputs, labels or {}, reference, bool(metrics))
    return QualityPlan(outputs, columns, chosen, driving, source, notes + warnings)


def _fits(ref: MetricRef, outputs: Mapping[str, Output], labelled: Sequence[str]) -> bool:
    spec = ref.spec()
    names = [ref.output] if ref.output else list(outputs)
    return any(name in outputs and spec.applies_to(outputs[name]) and
               (spec.against is Against.ORIGINAL or name in labelled) for name in names)


def _head_defaults(outputs: Mapping[str, Output], labelled: Sequence[str], order: Sequence[str]) -> list[MetricRef]:
    several = len(outputs) > 1
    refs = [MetricRef(name, output if several else None) for output in labelled
            for name in HEAD_DEFAULTS[outputs[output].head]]
    unlabelled = [name for name in order if name not in labelled]
    refs += [MetricRef("agreement", name if several else None) for name in unlabelled
             if outputs[name].head in CLASSIFIERS]
    if any(outputs[name].head not in CLASSIFIERS for name in unlabelled):
        others = [name for name in unlabelled if outputs[name].head not in CLASSIFIERS]
        refs.append(MetricRef("snr", others[0] if len(others) == 1 and several else None))
    return refs


def _columns(chosen: Sequence[MetricRef], outputs: Mapping[str, Output], labelled: Sequence[str]) -> list[Column]:
    """Every chosen metric on each output it applies to, then every fidelity metric on every output."""
    columns: list[Column] = []
    for ref in chosen:
        spec = ref.spec()
        if ref.output is not None and ref.output not in outputs:
            raise TfdeployError(f"Metric {str(ref)!r} names output {ref.output!r}, which the model does not have; "
                                f"its outputs are {', '.join(outputs)}. Received: metric={str(ref)!r}")
        names = [ref.output] if ref.output else list(outputs)
        fitting = [outputs[n] for n in names if spec.applies_to(outputs[n])]
        usable = [o for o in fitting if spec.against is Against.ORIGINAL or o.name in labelled]
        if not usable:
            raise TfdeployError(_unusable(ref, spec, [outputs[n] for n in names], fitting))
        columns += [Column(spec, output, ref.param if ref.param is not None else spec.default_param) for output in usable]
    for name in FIDELITY:
        spec = REGISTRY.get(name)
        columns += [Column(spec, o) for o in outputs.values() if spec.applies_to(o) and
                    not any(c.spec.name == name and c.output == o for c in columns)]
    return columns


def _unusable(ref: MetricRef, spec: MetricSpec, wanted: Sequence[Output], fitting: Sequence[Output]) -> str:
    described = ", ".join(f"{o.name} ({o.head.value})" for o in wanted)
    if not fitting:
        heads_text = ", ".join(sorted(h.value for h in spec.heads))
        return (f"Metric {ref.name!r} applies to {heads_text} outputs; {described} is not one. Pick a metric for its "
                f"head (docs/compress.md, 'How variants are judged'). Received: metric={str(ref)!r}")
    return (f"Metric {ref.name!r} compares with labels, and the data has none for {described}: add y_val (y_val:NAME "
            "per output) or judge by fidelity to the original (--metric agreement, --metric snr). "
            f"Received: metric={str(ref)!r}")


def _says_little(accuracy: float, majority: float) -> bool:
    """Accuracy that avoids less than a quarter of the errors of always answering the majority class."""
    return accuracy - majority < UNINFORMATIVE * (1 - majority)


def _driving(chosen: Sequence[MetricRef], outputs: Mapping[str, Output], labels: Arrays, reference: Arrays,
             asked: bool) -> tuple[MetricRef, list[str]]:
    """The metric that drives ``--auto``, and warnings about accuracy that tells nothing."""
    warnings, driving = [], chosen[0]
    for ref in chosen:
        if ref.name != "accuracy":
            continue
        for name in [ref.output] if ref.output else [n for n in outputs if n in labels]:
            output = outputs[name]
            if name not in labels or output.head not in (Head.CLASSES, Head.BINARY, Head.MULTILABEL):
                continue
            majority = majority_rate(labels[name], output)
            model = REGISTRY.get("accuracy").make(output, None)
            model.update(labels[name], reference[name])
            achieved = model.result()
            if majority is not None and achieved is not None and _says_little(achieved, majority):
                avoided = 0.0 if majority >= 1 else max(0.0, achieved - majority) / (1 - majority)
                warnings.append(f"accuracy on {name!r} says little: always answering the majority class scores "
                                f"{100 * majority:.1f}%, the model {100 * achieved:.1f}% (it avoids {100 * avoided:.0f}% "
                                f"of the majority's errors); judge it by "
                                f"{' or '.join(HEAD_DEFAULTS[output.head] if output.head is not Head.CLASSES else ('logloss',))}")
                if ref is driving and not asked:
                    driving = next((r for r in chosen if r.name != "accuracy"), driving)
    if driving is not chosen[0]:
        warnings.append(f"--auto is driven by {driving} instead of {chosen[0]}; pass --metric {chosen[0]} to insist")
    return driving, warnings
