"""Compress a model with one or more recipes and measure what each bought.

Every recipe writes one artifact into ``out_dir`` (``prune.keras``, ``ptq-int8.tflite``, ...) and
the run writes ``report.json``, ``report.md`` and ``report.png`` (size vs accuracy). A recipe that
cannot apply to the model is reported as failed with its reason; the others still run.

A :class:`CompressionSession` loads the model and its data once and gives recipes the units they
are built from: :attr:`~CompressionSession.trainer` (fine-tuning), :meth:`~CompressionSession.bridge`
(the flat tf_keras copy TFMOT works on), :attr:`~CompressionSession.converter` (TFLite) and
:attr:`~CompressionSession.evaluator` (measurement); the recipes themselves live in
:mod:`tfdeploy.compression.recipes`.

Example:
    >>> from tfdeploy import CompressConfig, Recipe, compress
    >>> report = compress(CompressConfig("example/model.keras", "out", data="example/data.npz",
    ...                                  recipes=[Recipe.PRUNE, Recipe.PTQ_INT8]))   # doctest: +SKIP
    >>> print(report)
"""

from __future__ import annotations

import copy
import dataclasses
import json
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from tfdeploy import backend, faults
from tfdeploy.backend import KerasFlavour
from tfdeploy.compression import bridge, students
from tfdeploy.compression.config import REPORT_FILES, CompressConfig, keras_suffix, refuse_existing_outputs
from tfdeploy.compression.finetune import FitOptions, Trainer
from tfdeploy.compression.isolation import IsolatedRecipes, RecipeWorker, isolation_blocker, start_worker
from tfdeploy.compression.metrics import EvaluationChoice, Evaluator
from tfdeploy.compression.recipes import REGISTRY, Recipe
from tfdeploy.compression.recipes.distill import distilled_io
from tfdeploy.compression.registry import CHAIN, Artifact
from tfdeploy.compression.report import CompressionReport, VariantReport, write_chart
from tfdeploy.compression.tflite import FLEX_NOTE, Conversion, Converter, TfliteMode
from tfdeploy.errors import TfdeployError
from tfdeploy.files import ensure_writable, write_atomic
from tfdeploy.io_spec import Arrays, ModelIO, synthesize
from tfdeploy.measure.predictors import (Predictor, check_batch_one, keras_predictor, saved_model_predictor,
                                         tflite_predictor)
from tfdeploy.model.data import ModelData, read_data, require_two_classes
from tfdeploy.model.loading import load_model, save_model, training_config
from tfdeploy.progress import as_progress
from tfdeploy.runtime import seed_everything

__all__ = ["CompressConfig", "CompressionReport", "CompressionSession", "VariantReport", "compress"]


class CompressionSession:
    """One loaded model, its data and its reference outputs; runs and measures recipes.

    :func:`compress` runs a list of recipes through a session; the accuracy-aware search
    (:mod:`tfdeploy.compression.auto`) tries candidates through the same session so the original
    is loaded and measured once.
    """

    def __init__(self, config: CompressConfig, recipes: Sequence[Recipe] = ()) -> None:
        config.validate()
        self.config, self.out_dir, self.progress = config, Path(config.out_dir), as_progress(config.progress)
        if self.out_dir.exists() and not self.out_dir.is_dir():
            raise TfdeployError(f"The output path exists and is not a directory. Received: out_dir={str(self.out_dir)!r}")
        self.progress(f"Loading {config.model}")
        self.loaded = load_model(config.model, custom_objects=config.custom_objects, safe_mode=config.safe_mode)
        self.io: ModelIO = backend.model_io(self.loaded.model)
        self.data = self._read_data(recipes)
        self._check_student(recipes)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.keras_suffix = keras_suffix(self.loaded)
        self._stages: dict[str, Any] = {}
        self._bridge: bridge.BridgeResult | None = None
        self.prefix = ""  # "distill+" in the session of a chain's later steps
        self.made_elsewhere: tuple[float | None, list[str]] | None = None  # the bridge, as a worker reported it
        self.converter = Converter(self.io, config.io_dtype, config.int8_granularity, config.select_tf_ops, self.progress)
        original = self.original_predictor()
        self.trainer = None if self.data is None else Trainer(
            self.io, self.data, original.predict,
            FitOptions(config.epochs, config.batch_size, config.learning_rate, config.seed), self.progress)
        self.evaluator = self._evaluator(original)
        self.original = self.measure("original", Artifact(self.loaded.path, original,
                                                          self.loaded.model if self.is_keras else None), None)

    def _read_data(self, recipes: Sequence[Recipe]) -> ModelData | None:
        config = self.config
        data = None if config.data is None else read_data(config.data, self.io, config.output)
        needing = [r.value for r in recipes if r.spec.needs_data]
        if data is None and needing:
            raise TfdeployError(
                f"Recipe(s) {', '.join(needing)} need data to fine-tune or calibrate: pass --data with an .npz "
                "(x, y, x_val, y_val; x:NAME per input for several inputs) or an image directory. Without data, "
                f"{', '.join(REGISTRY.without_data())} work. Received: data=None")
        if data is not None:
            if any(r.spec.trains for r in recipes):
                require_two_classes(data, self.io)
            data.warnings += _scale_warnings(data, self.loaded.model, self.io)
        return data

    def _check_student(self, recipes: Sequence[Recipe]) -> None:
        """A ``student`` file that does not fit the model is refused before any recipe runs."""
        if self.config.student is not None and any(Recipe.DISTILL.value in r.value.split(CHAIN)
                                                  for r in recipes):
            students.from_file(self.config.student, distilled_io(self), self.config.custom_objects,
                               self.config.safe_mode)

    def _evaluator(self, original: Predictor) -> Evaluator:
        data, config = self.data, self.config
        x_eval = data.x_val if data is not None else synthesize(self.io, 64, np.random.default_rng(config.seed))
        self.progress(f"Measuring the original on {len(next(iter(x_eval.values())))} samples")
        choice = EvaluationChoice(config.metrics, training_config(self.loaded.path), self.loaded.path.name,
                                  config.output or (data.label_output if data is not None else None))
        evaluator = Evaluator(self.io, x_eval, data.y_val if data is not None else None, choice, original,
                              self.loaded.path, config.latency_repeats)
        plan = evaluator.plan
        self.progress(f"  judged by {', '.join(map(str, plan.chosen))} ({plan.source}); --auto uses {plan.driving}")
        return evaluator

    @property
    def is_keras(self) -> bool:
        return self.loaded.flavour is not KerasFlavour.SAVED_MODEL

    @property
    def x_eval(self) -> Arrays:
        return self.evaluator.x_eval

    @property
    def base_quality(self) -> float | None:
        """The original's value of the driving metric (raw)."""
        return self.evaluator.base_quality

    def original_predictor(self) -> Predictor:
        if self.is_keras:
            return keras_predictor(self.loaded.model, "original")
        return saved_model_predictor(self.loaded.path, name="original")

    def measure(self, name: str, artifact: Artifact, seconds: float | None) -> VariantReport:
        """Sizes, sparsity, accuracy, agreement and latency of one artifact against the original."""
        return self.evaluator.measure(name, artifact, seconds, params_model=self.loaded.model)

    def run_recipe(self, recipe: Recipe, label: str = "") -> VariantReport:
        """Runs one recipe, writes its artifact and measures it; a recipe that fails is reported as failed."""
        name = self.name_of(recipe)
        self.progress(f"{label}{name}: {recipe.spec.summary}")
        start = time.perf_counter()
        try:
            artifact = self.artifact_of(recipe)
            return self.measure(name, artifact, time.perf_counter() - start)
        except TfdeployError as exc:
            error, detail = str(exc), None
        except Exception as exc:  # the recipe boundary: TF/Keras/TFMOT errors fail this recipe only
            if faults.is_environment_fault(exc):  # a full or read-only disk fails every recipe: stop the run
                raise
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
            error, detail = f"{type(exc).__name__}: {first}", traceback.format_exc()
        self.progress(f"  {name} FAILED: {error}")
        return VariantReport(name=name, path=None, format=recipe.spec.output.value, status="failed",
                             error=error, seconds=time.perf_counter() - start, notes=[detail] if detail else [])

    def bridge_summary(self) -> tuple[float | None, list[str]]:
        """The flat tf_keras copy's max abs output difference (``None``: none was needed) and notes."""
        if self.made_elsewhere is not None:
            return self.made_elsewhere
        result = self._bridge
        if result is None:
            return None, []
        return (None if result.model is self.loaded.model else result.max_abs_diff), result.notes

    def finish(self, variants: list[VariantReport], run_notes: Sequence[str] = (), final: bool = True) -> CompressionReport:
        """The report of ``variants`` (original first), written atomically as report.json/md (and report.png
        when ``final``): after every recipe, so that a killed run leaves the rows it finished."""
        data, plan = self.data, self.evaluator.plan
        bridge_diff, bridge_notes = self.bridge_summary()
        report = CompressionReport(
            model=str(self.loaded.path), flavour=self.loaded.flavour.value, out_dir=str(self.out_dir),
            data=None if data is None else data.source, eval_samples=self.evaluator.samples,
            label_output=data.label_output if data else None, variants=variants,
            metrics=[str(ref) for ref in plan.chosen], driving_metric=str(plan.driving), metric_source=plan.source,
            metric_info=self.evaluator.metric_info(), metric_notes=list(plan.notes),
            bridge_max_abs_diff=bridge_diff, bridge_notes=bridge_notes, run_notes=[*self.loaded.notes, *run_notes],
            data_warnings=list(data.warnings) if data else [])
        for variant in report.variants:  # tracebacks belong in report.json, not in the table
            if variant.failed:
                variant.notes = [n for n in variant.notes if not n.startswith("Traceback")]
        chart = write_chart(report, self.out_dir / "report.png") if final else None
        report.files = [str(self.out_dir / name) for name in REPORT_FILES if name != "report.png" or chart]
        write_atomic(self.out_dir / "report.json", report.to_json())
        write_atomic(self.out_dir / "report.md", report.to_markdown(relative_to=self.out_dir))
        return report

    # --- what recipes are built from -------------------------------------------------------------

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

    def stage(self, name: str, build: Callable[[], Any]) -> Any:
        """A cached intermediate result (``prune-qat`` reuses ``prune``, ``cluster-qat`` reuses ``cluster``)."""
        if name not in self._stages:
            self._stages[name] = build()
        return self._stages[name]

    def artifact_of(self, recipe: Recipe) -> Artifact:
        """What ``recipe`` makes (made once: ``distill`` and ``distill+ptq-int8`` share one student).

        Each recipe starts from the run's seed, so what it makes does not depend on the recipes made before it
        or on the process it is made in (a worker, this one, a resumed run).
        """
        def make() -> Artifact:
            seed_everything(self.config.seed)
            return recipe.spec.run(self, recipe)

        return self.stage(f"artifact:{recipe.value}", make)

    def variant(self, prefix: str, **changes: Any) -> CompressionSession:
        """This session with other recipe options (``changes`` to its config), artifacts named ``prefix`` + recipe.

        ``--auto`` tries students of several widths this way (``w0.5-distill``, ``w0.25-distill+ptq-int8``).
        """
        other = copy.copy(self)
        other.config = dataclasses.replace(self.config, **changes) if changes else self.config
        other.prefix, other._stages, other._bridge = prefix, {}, None
        return other

    def derive(self, model_path: Path, step: str) -> CompressionSession:
        """A session on the model a chain's step made, measured against this session's original.

        It shares the data, the evaluator (the original's reference outputs) and the fine-tuning
        teacher; its artifacts are named after the chain (``distill+ptq-int8.tflite``).
        """
        derived = self.variant(f"{self.prefix}{step}{CHAIN}")
        derived.loaded = load_model(model_path, custom_objects=self.config.custom_objects,
                                    safe_mode=self.config.safe_mode)
        derived.io = backend.model_io(derived.loaded.model)
        derived.converter = Converter(derived.io, self.config.io_dtype, self.config.int8_granularity,
                                      self.config.select_tf_ops, self.progress)
        if self.trainer is not None:
            derived.trainer = copy.copy(self.trainer)
            derived.trainer.io = derived.io
        return derived

    def name_of(self, recipe: Recipe) -> str:
        """The artifact's name: the recipe's, after the chain steps that made this session's model."""
        return f"{self.prefix}{recipe.value}"

    def float_conversion(self) -> Conversion:
        """The float32 TFLite conversion of the original (made once: ``tflite`` and the LiteRT recipes share it)."""
        return self.stage("tflite-float32", lambda: self.converter.convert(self.loaded.model, TfliteMode.FLOAT32))

    def representative(self) -> Arrays:
        """Calibration samples for full-integer conversion."""
        assert self.data is not None
        return self.data.calibration(self.config.calibration_samples, seed=self.config.seed)

    def target(self, recipe: Recipe, suffix: str) -> Path:
        path = self.out_dir / f"{self.name_of(recipe)}{suffix}"
        ensure_writable(path, self.config.overwrite)
        return path

    def write_keras(self, recipe: Recipe, model: Any) -> Path:
        """Saves a compressed model of the user's structure in the user's Keras format."""
        return save_model(model, self.target(recipe, self.keras_suffix), overwrite=self.config.overwrite)

    def write_tflite(self, recipe: Recipe, conversion: Conversion, sparsity_model: Any = None,
                     notes: Sequence[str] = ()) -> Artifact:
        """Checks the conversion runs at batch 1 (:meth:`runnable`), then writes it as the recipe's ``.tflite``."""
        target, notes = self.target(recipe, ".tflite"), [*notes, *conversion.notes]
        if conversion.flex_ops:
            notes.append(FLEX_NOTE.format(ops=", ".join(conversion.flex_ops)))
            return Artifact(write_atomic(target, conversion.blob), None, sparsity_model, notes)
        predictor = self.runnable(conversion.blob, target)
        return Artifact(write_atomic(target, conversion.blob), predictor, sparsity_model, notes)

    def runnable(self, blob: bytes, target: Path) -> Predictor:
        """A ``.tflite``'s predictor, once it has run at batch 1 and batch N on evaluation samples and agreed.

        Raises:
            TfdeployError: Naming the failing op; nothing is written, and a stale ``target`` from an
                earlier run is removed.
        """
        predictor = tflite_predictor(blob, target.stem)
        try:
            check_batch_one(predictor, self.x_eval, target.name)
        except TfdeployError:
            target.unlink(missing_ok=True)
            raise
        return predictor

    def resumable(self) -> dict[str, VariantReport]:
        """The rows of an earlier ``report.json`` in ``out_dir`` whose artifacts exist, judged by the same metrics."""
        path = self.out_dir / "report.json"
        try:
            earlier = json.loads(path.read_text())
        except (OSError, ValueError):
            return {}
        if earlier.get("metrics") != [str(ref) for ref in self.evaluator.plan.chosen]:
            self.progress("  --resume: the earlier report was judged by other metrics; every recipe is made again")
            return {}
        rows = [VariantReport.from_dict(row) for row in earlier.get("variants", [])[1:]]
        return {row.name: row for row in rows if not row.failed and row.path and Path(row.path).exists()}


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


class InProcessRecipes:
    """Makes a session's recipes in this process (``--in-process``, or what a worker cannot receive)."""

    def __init__(self, session: CompressionSession, why: str) -> None:
        self.session, self.notes = session, [f"recipes made in this process: {why}"]

    def run(self, recipe: Recipe, label: str = "") -> VariantReport:
        return self.session.run_recipe(recipe, label)

    def close(self) -> None:
        """Nothing to end."""


def recipe_runner(session: CompressionSession, recipes: Sequence[Recipe],
                  worker: RecipeWorker | None = None) -> IsolatedRecipes | InProcessRecipes:
    """Where the session's recipes are made: worker processes (``worker``, if one was started already), unless
    ``--in-process`` or the config cannot travel."""
    if not session.config.isolate:
        return InProcessRecipes(session, "--in-process")
    blocker = isolation_blocker(session.config)
    return InProcessRecipes(session, blocker) if blocker else IsolatedRecipes(session, list(recipes), worker)


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
    if config.resume:  # what is not kept is made again, over what a killed run left
        config = dataclasses.replace(config, overwrite=True)
    early = None if config.resume or not config.isolate or isolation_blocker(config) else \
        start_worker(config, [str(r) for r in config.recipes])  # it loads TF and the model while this process does
    try:
        session = CompressionSession(config, recipes=config.recipes)
    except BaseException:
        if early is not None:
            early.close()
        raise
    kept = session.resumable() if config.resume else {}
    runner = recipe_runner(session, [r for r in config.recipes if r.value not in kept], early)
    variants = [session.original]
    try:
        for index, recipe in enumerate(config.recipes, start=1):
            label = f"[{index}/{len(config.recipes)}] "
            if recipe.value in kept:
                session.progress(f"{label}{recipe.value}: kept from the earlier run (--resume)")
                variants.append(kept[recipe.value])
            else:
                variants.append(runner.run(recipe, label))
            session.finish(variants, runner.notes, final=False)
    finally:
        runner.close()
    return session.finish(variants, runner.notes)
