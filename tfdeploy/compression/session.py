"""Compress a model with one or more recipes and measure what each bought.

Every recipe writes one artifact into ``out_dir`` (``prune.keras``, ``ptq-int8.tflite``, ...) and
the run writes ``report.json``, ``report.md`` and ``report.png`` (size vs accuracy). A recipe that
cannot apply to the model is reported as failed with its reason; the others still run.

How each family works (``docs/compress.md`` has the reasons):

* ``prune`` is magnitude pruning with masks on TFMOT's schedule (:mod:`tfdeploy.compression.pruning`), applied
  to the user's own model: any Keras, nested models, recurrent and depthwise layers;
* ``cluster`` and the QAT recipes use TFMOT on a flat tf_keras copy (:mod:`tfdeploy.compression.bridge`);
  clustered weights are copied back into the user's model, so the ``.keras`` file keeps its
  structure;
* TFLite recipes convert the model's named-signature SavedModel (:mod:`tfdeploy.compression.tflite`).

Example:
    >>> from tfdeploy import CompressConfig, Recipe, compress
    >>> report = compress(CompressConfig("example/model.keras", "out", data="example/data.npz",
    ...                                  recipes=[Recipe.PRUNE, Recipe.PTQ_INT8]))   # doctest: +SKIP
    >>> print(report)
"""

from __future__ import annotations

import dataclasses
import os
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from tfdeploy import backend, faults
from tfdeploy.compression import bridge
from tfdeploy.compression import finetune
from tfdeploy.backend import KerasFlavour
from tfdeploy.model.data import Dataset, ModelData, default_label_output, read_data, require_two_classes
from tfdeploy.errors import TfdeployError
from tfdeploy.files import ensure_writable, write_atomic
from tfdeploy.io_spec import Arrays, ModelIO, synthesize, top1
from tfdeploy.model.loading import (LoadedModel, ModelFormat, artifact_size, count_params, has_optimizer_state, load_model,
                            save_model)
from tfdeploy.measure.predictors import Predictor, keras_predictor, median_latency_ms, tflite_predictor
from tfdeploy.progress import ProgressLike, as_progress
from tfdeploy.compression.pruning import kernel_sparsity
from tfdeploy.compression.choices import Int8Granularity, IoDtype, Recipe
from tfdeploy.report import Block, Heading, Image, Table, Text, Report, format_bytes
from tfdeploy.compression.tflite import FLEX_NOTE, Conversion, TfliteMode, convert

REPORT_FILES = ("report.json", "report.md", "report.png")


@dataclasses.dataclass
class CompressConfig:
    """Options of :func:`compress`.

    Attributes:
        model: The model file or SavedModel directory to compress.
        out_dir: Where artifacts and the report are written.
        recipes: Recipes to run, each producing one artifact.
        data: ``.npz``/image directory path or a :class:`~tfdeploy.model.data.Dataset` for
            fine-tuning, calibration and evaluation.
        output: The output accuracy is measured on (default: the first classification head).
        epochs: Fine-tune epochs of the recipes that train.
        batch_size: Fine-tune batch size.
        learning_rate: Fine-tune learning rate (Adam).
        target_sparsity: Final sparsity of ``prune`` (0–1).
        prune_structure: ``"2:4"`` for M-by-N structured sparsity.
        clusters: Number of weight clusters of ``cluster``.
        calibration_samples: Representative samples for full-int8 conversion.
        io_dtype: Input/output type of int8 TFLite models.
        int8_granularity: Weight-scale granularity of post-training int8 (ptq-int8, prune-int8).
        select_tf_ops: Let TFLite conversion fall back to TensorFlow select ops (Flex delegate).
        latency_repeats: Timed single-example calls per variant.
        seed: Seed for sampling calibration/synthetic inputs.
        custom_objects: Custom layers/functions needed to load the model.
        safe_mode: Refuse Lambda layers (``False``: ``--unsafe-deserialization``).
        overwrite: Replace existing artifacts.
        progress: Called with a line of text as long work advances (the CLI prints it).
    """

    model: str | os.PathLike
    out_dir: str | os.PathLike
    recipes: Sequence[Recipe] = (Recipe.STRIP,)
    data: str | os.PathLike | Dataset | None = None
    output: str | None = None
    epochs: int = 2
    batch_size: int = 32
    learning_rate: float = 5e-4
    target_sparsity: float = 0.5
    prune_structure: str | None = None
    clusters: int = 16
    calibration_samples: int = 300
    io_dtype: IoDtype = IoDtype.FLOAT32
    int8_granularity: Int8Granularity = Int8Granularity.PER_CHANNEL
    select_tf_ops: bool = False
    latency_repeats: int = 50
    seed: int = 0
    custom_objects: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    safe_mode: bool = True
    overwrite: bool = False
    progress: ProgressLike = "auto"

    def validate(self) -> None:
        """Raises TfdeployError naming the first invalid field."""
        if not 0.0 < self.target_sparsity < 1.0:
            raise TfdeployError(f"target_sparsity must be in (0, 1). Received: target_sparsity={self.target_sparsity}")
        if self.prune_structure not in (None, "2:4"):
            raise TfdeployError(f"prune_structure supports '2:4'. Received: prune_structure={self.prune_structure!r}")
        if self.clusters < 2:
            raise TfdeployError(f"clusters must be at least 2. Received: clusters={self.clusters}")
        for name in ("epochs", "batch_size", "calibration_samples", "latency_repeats"):
            if getattr(self, name) < 1:
                raise TfdeployError(f"{name} must be at least 1. Received: {name}={getattr(self, name)}")


@dataclasses.dataclass
class VariantReport(Report):
    """Measurements of one artifact (the original or a recipe's output); ``status`` says if it was made."""

    name: str
    path: str | None
    format: str
    raw_bytes: int | None = None
    gzip_bytes: int | None = None
    raw_ratio: float | None = None
    gzip_ratio: float | None = None
    params: int | None = None
    sparsity: float | None = None
    sparsity_by_layer_type: dict[str, float] = dataclasses.field(default_factory=dict)
    accuracy: float | None = None
    accuracy_drop: float | None = None
    agreement: float | None = None
    max_abs_diff: float | None = None
    max_abs_diff_by_output: dict[str, float] = dataclasses.field(default_factory=dict)
    latency_ms: float | None = None
    runtime: str | None = None
    seconds: float | None = None
    notes: list[str] = dataclasses.field(default_factory=list)
    status: str = "ok"
    error: str | None = None

    @property
    def failed(self) -> bool:
        return self.status == "failed"


@dataclasses.dataclass
class CompressionReport(Report):
    """All variants of one :func:`compress` run, the original first."""

    model: str
    flavour: str
    out_dir: str
    data: str | None
    eval_samples: int
    label_output: str | None
    variants: list[VariantReport]
    bridge_max_abs_diff: float | None = None
    bridge_notes: list[str] = dataclasses.field(default_factory=list)
    data_warnings: list[str] = dataclasses.field(default_factory=list)
    files: list[str] = dataclasses.field(default_factory=list)

    HEADER = ("variant", "format", "raw", "gzip", "raw %", "gzip %", "sparsity", "accuracy", "drop (pts)",
              "agreement", "max |diff|", "latency ms", "time s")

    @property
    def failed(self) -> list[VariantReport]:
        return [v for v in self.variants if v.failed]

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "failed": [v.name for v in self.failed]}

    def table_rows(self) -> list[tuple[Any, ...]]:
        def pct(value: float | None) -> float | None:
            return None if value is None else round(100 * value, 1)

        rows = []
        for v in self.variants:
            if v.failed:
                rows.append((v.name, "FAILED", *[None] * (len(self.HEADER) - 3), None if v.seconds is None else
                             round(v.seconds, 1)))
                continue
            rows.append((v.name, v.format, format_bytes(v.raw_bytes), format_bytes(v.gzip_bytes), pct(v.raw_ratio),
                         pct(v.gzip_ratio), pct(v.sparsity), pct(v.accuracy),
                         None if v.accuracy_drop is None else round(100 * v.accuracy_drop, 2), pct(v.agreement),
                         v.max_abs_diff, v.latency_ms, None if v.seconds is None else round(v.seconds, 1)))
        return rows

    def notes(self) -> list[str]:
        lines = [f"{v.name} FAILED: {v.error}" for v in self.failed]
        lines += [f"{v.name}: {note}" for v in self.variants for note in v.notes]
        if self.bridge_max_abs_diff is not None:
            lines.insert(0, f"tf_keras copy for TFMOT: max abs output difference {self.bridge_max_abs_diff:.3g}")
            lines[1:1] = [f"tf_keras copy: {note}" for note in self.bridge_notes]
        return [f"data: {w}" for w in self.data_warnings] + lines

    def heading(self) -> str:
        measured = f"accuracy on output {self.label_output!r}" if self.label_output else "no labels: agreement only"
        return (f"model: {self.model} ({self.flavour}); evaluated on {self.eval_samples} samples "
                f"({self.data or 'random inputs'}; {measured})")

    def blocks(self) -> list[Block]:
        notes = [Text(note, terse=note if len(note) <= 240 else note[:240] + "… (full text in report.md)")
                 for note in self.notes()]
        plots = [Image(path, "size vs accuracy per variant") for path in self.files if path.endswith(".png")]
        return [Heading("Compression report", level=1, in_text=False), Text(self.heading()),
                Table(self.table_rows(), header=self.HEADER), Text(self.LEGEND, in_text=False), *plots, *notes]

    LEGEND = ("Ratios are against the original file. Accuracy drop is in points (original − variant). Agreement is "
              "top-1 agreement with the original model; max |diff| is over every output; latency is the median "
              "single-example call in the runtime that would serve the variant.")


# ------------------------------------------------------------------------------------------------
# the run
# ------------------------------------------------------------------------------------------------

@dataclasses.dataclass
class Artifact:
    """What a recipe produced: the file, how to run it, the Keras model for sparsity, notes."""

    path: Path
    predictor: Predictor | None
    sparsity_model: Any = None
    notes: list[str] = dataclasses.field(default_factory=list)


class CompressionSession:
    """One loaded model, its data and its reference outputs; runs and measures recipes.

    :func:`compress` runs a list of recipes through a session; the accuracy-aware search
    (:mod:`tfdeploy.compression.auto`) tries candidates through the same session so the original is loaded and
    measured once.
    """

    def __init__(self, config: CompressConfig, recipes: Sequence[Recipe] = ()) -> None:
        config.validate()
        out_dir = Path(config.out_dir)
        if out_dir.exists() and not out_dir.is_dir():
            raise TfdeployError(f"The output path exists and is not a directory. Received: out_dir={str(out_dir)!r}")
        as_progress(config.progress)(f"Loading {config.model}")
        self.loaded = load_model(config.model, custom_objects=config.custom_objects, safe_mode=config.safe_mode)
        self.io: ModelIO = backend.model_io(self.loaded.model)
        self.data: ModelData | None = None if config.data is None else read_data(config.data, self.io, config.output)
        needing = [r.value for r in recipes if r.spec.needs_data]
        if self.data is None and needing:
            raise TfdeployError(
                f"Recipe(s) {', '.join(needing)} need data to fine-tune or calibrate: pass --data with an .npz "
                "(x, y, x_val, y_val; x:NAME per input for several inputs) or an image directory. Without data, "
                f"{', '.join(r.value for r in Recipe if not r.spec.needs_data)} work. Received: data=None")
        if self.data is not None:
            if any(r.spec.trains for r in recipes):
                require_two_classes(self.data, self.io)
            self.data.warnings += _scale_warnings(self.data, self.loaded.model, self.io)
        out_dir.mkdir(parents=True, exist_ok=True)
        self.config, self.out_dir, self.progress = config, out_dir, as_progress(config.progress)
        self.head = config.output or default_label_output(self.io)
        self._stages: dict[str, Any] = {}
        self._bridge: bridge.BridgeResult | None = None
        self._teacher_train: Arrays | None = None
        self.x_eval = self.data.x_val if self.data is not None else synthesize(self.io, 64, np.random.default_rng(config.seed))
        self.y_eval = self.data.y_val if self.data is not None and self.data.label_output else None
        self.progress(f"Measuring the original on {len(next(iter(self.x_eval.values())))} samples")
        predictor = self.original_predictor()
        self.reference = predictor.predict(self.x_eval)
        self.base_accuracy = self.accuracy_of(self.reference)
        self._size0 = artifact_size(self.loaded.path)
        keras_model = self.loaded.model if self.is_keras else None
        self.original = self.measure("original", Artifact(self.loaded.path, predictor, keras_model), None)

    @property
    def is_keras(self) -> bool:
        return self.loaded.flavour is not KerasFlavour.SAVED_MODEL

    def original_predictor(self) -> Predictor:
        if self.is_keras:
            return keras_predictor(self.loaded.model, "original")
        from tfdeploy.measure.predictors import saved_model_predictor

        return saved_model_predictor(self.loaded.path, name="original")

    # --- measurement -------------------------------------------------------------------------------

    def accuracy_of(self, outputs: Arrays) -> float | None:
        """Top-1 accuracy of the labelled output against integer or one-hot labels."""
        if self.y_eval is None or self.data is None or self.data.label_output is None:
            return None
        name = self.data.label_output
        predicted = top1(outputs[name], binary=self.io.output(name).is_binary)
        labels = self.y_eval[name]
        if predicted is None:
            return None
        labels = np.argmax(labels, axis=1) if labels.ndim == 2 and labels.shape[1] > 1 else labels.reshape(-1)
        return float(np.mean(predicted == labels))

    def agreement_of(self, outputs: Arrays) -> float | None:
        if self.head is None:
            return None
        binary = self.io.output(self.head).is_binary
        ref, got = top1(self.reference[self.head], binary), top1(outputs[self.head], binary)
        return None if ref is None else float(np.mean(ref == got))

    def measure(self, name: str, artifact: Artifact, seconds: float | None) -> VariantReport:
        """Sizes, sparsity, accuracy, agreement and latency of one artifact against the original."""
        size = artifact_size(artifact.path)
        sparsity, by_type = kernel_sparsity(artifact.sparsity_model) if artifact.sparsity_model is not None else (None, {})
        report = VariantReport(
            name=name, path=str(artifact.path), format=artifact.path.suffix or "savedmodel", raw_bytes=size.raw_bytes,
            gzip_bytes=size.gzip_bytes, raw_ratio=size.raw_bytes / self._size0.raw_bytes,
            gzip_ratio=size.gzip_bytes / self._size0.gzip_bytes,
            params=count_params(artifact.sparsity_model if artifact.sparsity_model is not None else self.loaded.model),
            sparsity=sparsity, sparsity_by_layer_type=by_type, seconds=seconds, notes=list(artifact.notes))
        if artifact.predictor is None:
            return report
        outputs = artifact.predictor.predict(self.x_eval)
        report.accuracy = self.accuracy_of(outputs)
        if report.accuracy is not None and self.base_accuracy is not None:
            report.accuracy_drop = self.base_accuracy - report.accuracy
        report.agreement = self.agreement_of(outputs)
        report.max_abs_diff_by_output = {
            k: float(np.max(np.abs(outputs[k].astype(np.float64) - self.reference[k].astype(np.float64))))
            for k in self.io.output_names}
        report.max_abs_diff = max(report.max_abs_diff_by_output.values())
        report.latency_ms = median_latency_ms(artifact.predictor, self.x_eval, repeats=self.config.latency_repeats)
        report.runtime = artifact.predictor.runtime
        return report

    def run_recipe(self, recipe: Recipe, label: str = "") -> VariantReport:
        """Runs one recipe, writes its artifact and measures it; a recipe that fails is reported as failed."""
        from tfdeploy.compression.recipe_impl import RECIPES

        self.progress(f"{label}{recipe.value}: {recipe.spec.summary}")
        start = time.perf_counter()
        try:
            artifact = RECIPES[recipe](self, recipe)
            return self.measure(recipe.value, artifact, time.perf_counter() - start)
        except TfdeployError as exc:
            error, detail = str(exc), None
        except Exception as exc:  # the recipe boundary: TF/Keras/TFMOT errors fail this recipe only
            if faults.is_environment_fault(exc):  # a full or read-only disk fails every recipe: stop the run
                raise
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
            error, detail = f"{type(exc).__name__}: {first}", traceback.format_exc()
        self.progress(f"  {recipe.value} FAILED: {error}")
        return VariantReport(name=recipe.value, path=None, format=recipe.spec.output, status="failed", error=error,
                             seconds=time.perf_counter() - start, notes=[detail] if detail else [])

    def finish(self, variants: list[VariantReport]) -> CompressionReport:
        """The report of ``variants`` (original first), written as report.json/md/png."""
        bridge_result = self._bridge
        report = CompressionReport(
            model=str(self.loaded.path), flavour=self.loaded.flavour.value, out_dir=str(self.out_dir),
            data=None if self.data is None else self.data.source, eval_samples=len(next(iter(self.x_eval.values()))),
            label_output=self.data.label_output if self.data else None, variants=variants,
            bridge_max_abs_diff=None if bridge_result is None or bridge_result.model is self.loaded.model
            else bridge_result.max_abs_diff,
            bridge_notes=[] if bridge_result is None else bridge_result.notes,
            data_warnings=list(self.data.warnings) if self.data else [])
        for variant in report.variants:  # tracebacks belong in report.json, not in the table
            if variant.failed:
                variant.notes = [n for n in variant.notes if not n.startswith("Traceback")]
        chart = _write_chart(report, self.out_dir / "report.png")
        report.files = [str(self.out_dir / name) for name in REPORT_FILES if name != "report.png" or chart]
        write_atomic(self.out_dir / "report.json", report.to_json())
        write_atomic(self.out_dir / "report.md", report.to_markdown(relative_to=self.out_dir))
        return report

    # --- pieces the recipes share --------------------------------------------------------------------

    def require_keras(self, what: str) -> None:
        if not self.is_keras:
            raise TfdeployError(
                f"{what} needs a Keras model with layers; this SavedModel has no Keras metadata. Pass the .keras/.h5 "
                f"file it was exported from. Received: path={str(self.loaded.path)!r}")

    def fresh_model(self) -> Any:
        """A new copy of the user's model, read again from its file (custom layers, vocabularies and all)."""
        return load_model(self.loaded.path, custom_objects=self.config.custom_objects,
                          safe_mode=self.config.safe_mode).model

    def bridge(self) -> bridge.BridgeResult:
        """The flat tf_keras copy of the original for TFMOT (built once)."""
        if self._bridge is None:
            self.require_keras("TFMOT")
            if bridge.needs_rebuild(self.loaded.model):
                self.progress("  building a flat tf_keras copy of the model for TFMOT")
            self._bridge = bridge.to_tf_keras(self.loaded.model, self.x_eval)
        return self._bridge

    def teacher_train(self) -> Arrays:
        """The original model's outputs on the training inputs (targets for unlabelled outputs)."""
        assert self.data is not None
        if self._teacher_train is None:
            self._teacher_train = self.original_predictor().predict(self.data.x)
        return self._teacher_train

    def fine_tune(self, model: Any, label: str, callbacks: Sequence[Any] = (), freeze_batch_norm: bool = False) -> None:
        """Fine-tunes ``model`` on the data towards the labels (and the original's outputs where unlabelled)."""
        assert self.data is not None
        targets = finetune.training_targets(self.io, self.data.y, self.teacher_train())
        options = finetune.FitOptions(self.config.epochs, self.config.batch_size, self.config.learning_rate,
                                      self.config.seed, freeze_batch_norm=freeze_batch_norm)
        finetune.fit(model, self.data.x, targets, options, callbacks, self.progress, label)

    def steps(self) -> int:
        assert self.data is not None
        n = len(next(iter(self.data.x.values())))
        return finetune.steps_per_epoch(n, self.config.batch_size) * self.config.epochs

    def target(self, recipe: Recipe, suffix: str) -> Path:
        path = self.out_dir / f"{recipe.value}{suffix}"
        ensure_writable(path, self.config.overwrite)
        return path

    def write_keras(self, recipe: Recipe, model: Any) -> Path:
        """Saves a compressed model of the user's structure in the user's Keras format."""
        return save_model(model, self.target(recipe, keras_suffix(self.loaded)), overwrite=self.config.overwrite)

    def write_tflite(self, recipe: Recipe, conversion: Conversion, sparsity_model: Any = None,
                     notes: Sequence[str] = ()) -> Artifact:
        path = write_atomic(self.target(recipe, ".tflite"), conversion.blob)
        notes = [*notes, *conversion.notes]
        if conversion.flex_ops:
            notes.append(FLEX_NOTE.format(ops=", ".join(conversion.flex_ops)))
            return Artifact(path, None, sparsity_model, notes)
        return Artifact(path, tflite_predictor(conversion.blob, recipe.value), sparsity_model, notes)

    def representative(self) -> Arrays:
        assert self.data is not None
        return self.data.calibration(self.config.calibration_samples, seed=self.config.seed)

    def convert(self, model: Any, mode: TfliteMode, representative: Arrays | None = None,
                io: ModelIO | None = None) -> Conversion:
        with self.progress.task(f"  converting to TFLite ({mode.value})"):
            return convert(model, mode, representative=representative, io_dtype=self.config.io_dtype,
                           granularity=self.config.int8_granularity, select_tf_ops=self.config.select_tf_ops,
                           io=io or self.io)

    def stage(self, name: str, build: Callable[[], Any]) -> Any:
        """A cached intermediate result (``prune-qat`` reuses ``prune``, ``cluster-qat`` reuses ``cluster``)."""
        if name not in self._stages:
            self._stages[name] = build()
        return self._stages[name]

    def had_optimizer_state(self) -> bool:
        return has_optimizer_state(self.loaded.path)


def _scale_warnings(data: ModelData, model: Any, io: ModelIO) -> list[str]:
    """Images in 0–255 fed to a model that does not rescale them itself are probably unscaled."""
    if isinstance(model, backend.SavedModelFunction) or backend.rescales_inputs(model):
        return []
    warnings = []
    for info in io.inputs:
        x = data.x[info.name]
        if info.is_float and len(info.shape) == 3 and x.size and float(x.min()) >= 0 and float(x.max()) > 2.0:
            warnings.append(f"input {info.name!r} spans {float(x.min()):g}..{float(x.max()):g}, like unscaled 0–255 "
                            "images, and the model has no Rescaling/Normalization layer: check the preprocessing")
    return warnings


def keras_suffix(loaded: LoadedModel) -> str:
    """The Keras file suffix to write a variant of ``loaded`` in (its own, or ``.keras``)."""
    return loaded.format.value if loaded.format in (ModelFormat.KERAS, ModelFormat.H5) else ".keras"


def planned_outputs(config: CompressConfig) -> list[Path]:
    """Every file :func:`compress` writes for ``config`` (artifacts and reports), known before loading."""
    out, fmt = Path(config.out_dir), ModelFormat.of_path(Path(config.model))
    suffix = fmt.value if fmt in (ModelFormat.KERAS, ModelFormat.H5) else ".keras"
    files = [out / f"{r.value}{suffix if r.spec.output == '.keras' else r.spec.output}" for r in config.recipes]
    return files + [out / name for name in REPORT_FILES]


def refuse_existing_outputs(config: CompressConfig) -> None:
    """Raises before any work if a file the run would write exists and ``overwrite`` is off."""
    existing = [str(p) for p in planned_outputs(config) if p.exists()]
    if existing and not config.overwrite:
        more = f" and {len(existing) - 1} more" if len(existing) > 1 else ""
        raise TfdeployError(f"Output file(s) already exist; pass --overwrite (overwrite=True) to replace them. "
                            f"Received: path={existing[0]!r}{more}")


def _write_chart(report: CompressionReport, path: Path) -> Path | None:
    from tfdeploy import plots

    measured = [v for v in report.variants if not v.failed and v.gzip_bytes is not None]
    if not measured:
        return None
    use_accuracy = report.variants[0].accuracy is not None
    return plots.size_vs_accuracy(
        [v.name for v in measured], [v.gzip_bytes / 1024 for v in measured],
        [100 * ((v.accuracy if use_accuracy else v.agreement) or 0.0) for v in measured],
        "accuracy (%)" if use_accuracy else "top-1 agreement with original (%)", path)


@faults.boundary("compress", where="out_dir")
def compress(config: CompressConfig) -> CompressionReport:
    """Runs each recipe of ``config`` on the model and measures every artifact.

    For the original and each variant the report gives file and format, raw and gzip bytes and
    their ratio to the original, parameters and kernel sparsity, accuracy on the labelled output
    and its drop, top-1 agreement and max abs output difference (every output) vs the original on
    the validation inputs, median single-example latency in the serving runtime (tf.function or
    LiteRT), and the recipe's wall time. A recipe that fails is listed with its reason
    (``report.failed``) and the others still run.

    Args:
        config: A :class:`CompressConfig`.

    Returns:
        A :class:`CompressionReport`; also written as ``report.json``/``report.md``/``report.png``.

    Raises:
        TfdeployError: For unreadable models or data, recipes that need data without it, or
            outputs that exist without ``overwrite``.

    Example:
        >>> report = compress(CompressConfig("m.h5", "out", recipes=[Recipe.PTQ_DYNAMIC]))  # doctest: +SKIP
        >>> report.variants[1].raw_ratio
        0.27
    """
    refuse_existing_outputs(config)
    session = CompressionSession(config, recipes=config.recipes)
    variants = [session.original]
    for index, recipe in enumerate(config.recipes, start=1):
        variants.append(session.run_recipe(recipe, label=f"[{index}/{len(config.recipes)}] "))
    return session.finish(variants)
