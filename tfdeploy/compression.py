"""Compress a model with one or more recipes and measure what each bought.

Every recipe writes one artifact into ``out_dir`` (``prune.keras``, ``ptq-int8.tflite``, ...) and
the run writes ``report.json``, ``report.md`` and ``report.png`` (size vs accuracy). TFMOT recipes
work on tf_keras; a Keras 3 model is bridged to tf_keras (:func:`tfdeploy.backend.to_tf_keras`,
checked numerically) and pruned/clustered weights are copied back, so Keras 3 users get a Keras 3
``.keras`` file back.

Example:
    >>> from tfdeploy import CompressConfig, Recipe, compress
    >>> report = compress(CompressConfig("example/model.keras", "out", data="example/data.npz",
    ...                                  recipes=[Recipe.PRUNE, Recipe.PTQ_INT8]))   # doctest: +SKIP
    >>> print(report)
"""

from __future__ import annotations

import dataclasses
import io
import math
import os
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from tfdeploy import backend
from tfdeploy.backend import KerasFlavour
from tfdeploy.data import Dataset, fit_to_input, load_data
from tfdeploy.errors import TfdeployError
from tfdeploy.files import ensure_writable, write_atomic
from tfdeploy.model import LoadedModel, ModelFormat, artifact_size, count_params, load_model, save_model
from tfdeploy.predictors import Predictor, keras_predictor, median_latency_ms, tflite_predictor
from tfdeploy.recipes import Int8Granularity, IoDtype, Recipe
from tfdeploy.report import Report, format_bytes, format_markdown_table, format_table
from tfdeploy.tflite import TfliteMode, convert

ProgressFn = Callable[[str], None]
KERNEL_WEIGHT_NAMES = ("kernel", "embeddings")


def _no_progress(message: str) -> None:
    del message


@dataclasses.dataclass
class CompressConfig:
    """Options of :func:`compress`.

    Attributes:
        model: The model file or SavedModel directory to compress.
        out_dir: Where artifacts and the report are written.
        recipes: Recipes to run, each producing one artifact.
        data: ``.npz``/image directory path or a :class:`~tfdeploy.data.Dataset` for
            fine-tuning, calibration and evaluation.
        epochs: Fine-tune epochs of TFMOT recipes.
        batch_size: Fine-tune batch size.
        learning_rate: Fine-tune learning rate (Adam).
        target_sparsity: Final sparsity of ``prune`` (0–1).
        prune_structure: ``"2:4"`` for M-by-N structured sparsity (Conv2D/Dense only).
        clusters: Number of weight clusters of ``cluster``.
        calibration_samples: Representative samples for full-int8 conversion.
        io_dtype: Input/output type of int8 TFLite models.
        int8_granularity: Weight-scale granularity of post-training int8 (ptq-int8, prune-int8).
        latency_repeats: Timed single-example calls per variant.
        seed: Seed for sampling calibration/synthetic inputs.
        custom_objects: Custom layers/functions needed to load the model.
        overwrite: Replace existing artifacts.
        progress: Called with a line of text as long work advances (the CLI prints it).
    """

    model: str | os.PathLike
    out_dir: str | os.PathLike
    recipes: Sequence[Recipe] = (Recipe.STRIP,)
    data: str | os.PathLike | Dataset | None = None
    epochs: int = 2
    batch_size: int = 32
    learning_rate: float = 5e-4
    target_sparsity: float = 0.5
    prune_structure: str | None = None
    clusters: int = 16
    calibration_samples: int = 300
    io_dtype: IoDtype = IoDtype.FLOAT32
    int8_granularity: Int8Granularity = Int8Granularity.PER_CHANNEL
    latency_repeats: int = 50
    seed: int = 0
    custom_objects: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    overwrite: bool = False
    progress: ProgressFn = _no_progress

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
    """Measurements of one artifact (the original or a recipe's output)."""

    name: str
    path: str
    format: str
    raw_bytes: int
    gzip_bytes: int
    raw_ratio: float
    gzip_ratio: float
    params: int | None
    sparsity: float | None = None
    sparsity_by_layer_type: dict[str, float] = dataclasses.field(default_factory=dict)
    accuracy: float | None = None
    accuracy_drop: float | None = None
    agreement: float | None = None
    max_abs_diff: float | None = None
    latency_ms: float | None = None
    runtime: str | None = None
    seconds: float | None = None
    notes: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class CompressionReport(Report):
    """All variants of one :func:`compress` run, the original first."""

    model: str
    flavour: str
    out_dir: str
    data: str | None
    eval_samples: int
    variants: list[VariantReport]
    bridge_max_abs_diff: float | None = None
    bridge_dropped_config_keys: list[str] = dataclasses.field(default_factory=list)
    files: list[str] = dataclasses.field(default_factory=list)

    HEADER = ("variant", "format", "raw", "gzip", "raw %", "gzip %", "sparsity", "accuracy", "drop (pts)",
              "agreement", "max |diff|", "latency ms", "time s")

    def table_rows(self) -> list[tuple[Any, ...]]:
        def pct(value: float | None) -> float | None:
            return None if value is None else round(100 * value, 1)

        return [
            (v.name, v.format, format_bytes(v.raw_bytes), format_bytes(v.gzip_bytes), pct(v.raw_ratio),
             pct(v.gzip_ratio), pct(v.sparsity), pct(v.accuracy),
             None if v.accuracy_drop is None else round(100 * v.accuracy_drop, 2), pct(v.agreement),
             v.max_abs_diff, v.latency_ms, None if v.seconds is None else round(v.seconds, 1))
            for v in self.variants
        ]

    def notes(self) -> list[str]:
        lines = [f"{v.name}: {note}" for v in self.variants for note in v.notes]
        if self.bridge_max_abs_diff is not None:
            dropped = ", ".join(self.bridge_dropped_config_keys)
            lines.insert(0, f"Keras 3 -> tf_keras bridge for TFMOT: max abs output difference "
                            f"{self.bridge_max_abs_diff:.3g}" + (f"; config keys tf_keras lacks, dropped: {dropped}"
                                                                 if dropped else ""))
        return lines

    def to_table(self) -> str:
        head = f"model: {self.model} ({self.flavour}); evaluated on {self.eval_samples} samples ({self.data or 'random inputs'})"
        notes = [note if len(note) <= 200 else note[:200] + "… (full list in report.md)" for note in self.notes()]
        return "\n".join([head, format_table(self.table_rows(), header=self.HEADER), *notes])

    def to_markdown(self) -> str:
        """The report as Markdown (``report.md``)."""
        notes = "\n".join(f"- {line}" for line in self.notes())
        return (f"# Compression report\n\nModel `{self.model}` ({self.flavour}), evaluated on {self.eval_samples} "
                f"samples from {self.data or 'random inputs (no --data)'}.\n\n"
                f"{format_markdown_table(self.table_rows(), self.HEADER)}\n\n"
                "Ratios are against the original file. Accuracy drop is in points (original − variant). "
                "Agreement is top-1 agreement with the original model; latency is the median single-example "
                "call in the runtime that would serve the variant.\n\n" + (f"## Notes\n\n{notes}\n" if notes else ""))


# ------------------------------------------------------------------------------------------------
# measurements
# ------------------------------------------------------------------------------------------------

def kernel_sparsity(model: Any) -> tuple[float | None, dict[str, float]]:
    """Fraction of zero weights over kernels (overall and by layer type; TFMOT wrappers seen through)."""
    zeros: dict[str, int] = {}
    totals: dict[str, int] = {}
    for layer in getattr(model, "layers", []):
        kind = type(getattr(layer, "layer", layer)).__name__
        for weight in layer.weights:
            name = weight.name.split("/")[-1]
            if not any(name.startswith(key) for key in KERNEL_WEIGHT_NAMES) and "_kernel" not in name:
                continue
            values = np.asarray(weight.numpy())
            zeros[kind] = zeros.get(kind, 0) + int(np.sum(values == 0))
            totals[kind] = totals.get(kind, 0) + values.size
    if not totals:
        return None, {}
    overall = sum(zeros.values()) / sum(totals.values())
    return overall, {kind: zeros[kind] / totals[kind] for kind in sorted(totals)}


def _is_softmax_output(model: Any) -> bool:
    last = model.layers[-1]
    activation = getattr(last, "activation", None)
    return type(last).__name__ == "Softmax" or getattr(activation, "__name__", "") == "softmax"


def top1(outputs: np.ndarray) -> np.ndarray | None:
    """Predicted classes, or ``None`` for non-classifier outputs."""
    if outputs.ndim == 2 and outputs.shape[1] > 1:
        return np.argmax(outputs, axis=1)
    if outputs.ndim == 2 and outputs.shape[1] == 1:
        return (outputs[:, 0] > 0.5).astype(int)
    return None


def accuracy_of(outputs: np.ndarray, y: np.ndarray | None) -> float | None:
    """Top-1 accuracy against integer or one-hot labels."""
    predicted = top1(outputs)
    if y is None or predicted is None:
        return None
    labels = np.argmax(y, axis=1) if y.ndim == 2 and y.shape[1] > 1 else y.reshape(-1)
    return float(np.mean(predicted == labels))


# ------------------------------------------------------------------------------------------------
# the run
# ------------------------------------------------------------------------------------------------

@dataclasses.dataclass
class _Artifact:
    path: Path
    predictor: Predictor
    sparsity_model: Any = None
    notes: list[str] = dataclasses.field(default_factory=list)


class CompressionSession:
    """One loaded model, its data and its reference outputs; runs and measures recipes.

    :func:`compress` runs a list of recipes through a session; the accuracy-aware search
    (:mod:`tfdeploy.auto`) tries candidates through the same session so the original is loaded and
    measured once.
    """

    def __init__(self, config: CompressConfig, recipes_needing_data: Sequence[Recipe] = ()) -> None:
        config.validate()
        out_dir = Path(config.out_dir)
        if out_dir.exists() and not out_dir.is_dir():
            raise TfdeployError(f"The output path exists and is not a directory. Received: out_dir={str(out_dir)!r}")
        config.progress(f"Loading {config.model}")
        loaded = load_model(config.model, custom_objects=config.custom_objects, compile=True)
        data = _load_data(config, loaded)
        needing = [r.value for r in recipes_needing_data if r.spec.needs_data]
        if data is None and needing:
            raise TfdeployError(
                f"Recipe(s) {', '.join(needing)} need data to fine-tune or calibrate: pass --data with an .npz "
                "(x, y, x_val, y_val) or an image directory. Without data, strip, tflite, ptq-dynamic and "
                f"ptq-float16 work. Received: data=None"
            )
        out_dir.mkdir(parents=True, exist_ok=True)
        self.config = config
        self.loaded = loaded
        self.data = data
        self.out_dir = out_dir
        self.progress = config.progress
        self.input_shape = tuple(loaded.model.input_shape[1:])
        self._tf_keras_model: Any = None
        self.bridge_max_abs_diff: float | None = None
        self.bridge_dropped_config_keys: list[str] = []
        self._stages: dict[str, tuple[Any, list[str]]] = {}
        self.x_eval = self.eval_inputs
        self.y_eval = data.y_val if data is not None else None
        self.progress(f"Measuring the original on {len(self.x_eval)} samples")
        predictor = keras_predictor(loaded.model, "original")
        self.reference = predictor.predict(self.x_eval)
        self.base_accuracy = accuracy_of(self.reference, self.y_eval)
        self._size0 = artifact_size(loaded.path)
        has_kernels = loaded.flavour is not KerasFlavour.SAVED_MODEL and kernel_sparsity(loaded.model)[0] is not None
        self.original = self.measure("original", loaded.path, predictor, loaded.model if has_kernels else None,
                                     None, [], self.reference)

    def measure(self, name: str, path: Path, predictor: Predictor, sparsity_model: Any, seconds: float | None,
                notes: list[str], outputs: np.ndarray) -> VariantReport:
        """Sizes, sparsity, accuracy, agreement and latency of one artifact against the original."""
        size = artifact_size(path)
        sparsity, by_type = kernel_sparsity(sparsity_model) if sparsity_model is not None else (None, {})
        accuracy = accuracy_of(outputs, self.y_eval)
        ref_top, out_top = top1(self.reference), top1(outputs)
        return VariantReport(
            name=name, path=str(path), format=path.suffix or "savedmodel", raw_bytes=size.raw_bytes,
            gzip_bytes=size.gzip_bytes, raw_ratio=size.raw_bytes / self._size0.raw_bytes,
            gzip_ratio=size.gzip_bytes / self._size0.gzip_bytes, params=count_params(self.loaded.model),
            sparsity=sparsity, sparsity_by_layer_type=by_type, accuracy=accuracy,
            accuracy_drop=None if accuracy is None or self.base_accuracy is None else self.base_accuracy - accuracy,
            agreement=None if ref_top is None else float(np.mean(ref_top == out_top)),
            max_abs_diff=float(np.max(np.abs(outputs - self.reference))),
            latency_ms=median_latency_ms(predictor, self.x_eval, repeats=self.config.latency_repeats),
            runtime=predictor.runtime, seconds=seconds, notes=notes,
        )

    def run_recipe(self, recipe: Recipe, label: str = "") -> VariantReport:
        """Runs one recipe, writes its artifact and measures it."""
        self.progress(f"{label}{recipe.value}: {recipe.spec.summary}")
        start = time.perf_counter()
        artifact = self.run(recipe)
        seconds = time.perf_counter() - start
        return self.measure(recipe.value, artifact.path, artifact.predictor, artifact.sparsity_model, seconds,
                            artifact.notes, artifact.predictor.predict(self.x_eval))

    def finish(self, variants: list[VariantReport]) -> CompressionReport:
        """The report of ``variants`` (original first), written as report.json/md/png."""
        report = CompressionReport(
            model=str(self.loaded.path), flavour=self.loaded.flavour.value, out_dir=str(self.out_dir),
            data=None if self.data is None else self.data.source, eval_samples=len(self.x_eval), variants=variants,
            bridge_max_abs_diff=self.bridge_max_abs_diff, bridge_dropped_config_keys=self.bridge_dropped_config_keys,
        )
        report.files = [str(self.out_dir / name) for name in ("report.json", "report.md", "report.png")]
        write_atomic(self.out_dir / "report.json", report.to_json())
        write_atomic(self.out_dir / "report.md", report.to_markdown())
        _write_chart(report, self.out_dir / "report.png")
        return report

    # --- shared pieces -------------------------------------------------------------------------

    @property
    def eval_inputs(self) -> np.ndarray:
        if self.data is not None:
            return self.data.x_val
        rng = np.random.default_rng(self.config.seed)
        return rng.normal(0, 1, size=(64, *self.input_shape)).astype("float32")

    def tf_keras_model(self) -> Any:
        """The model in tf_keras (bridged once from Keras 3 if needed)."""
        if self._tf_keras_model is None:
            model = self.loaded.model
            if self.loaded.flavour is KerasFlavour.KERAS3:
                self.progress("  bridging the Keras 3 model to tf_keras for TFMOT")
                bridge = backend.to_tf_keras(model, self.eval_inputs[:16])
                self.bridge_max_abs_diff = bridge.max_abs_diff
                self.bridge_dropped_config_keys = bridge.dropped_config_keys
                if bridge.max_abs_diff > 1e-4:
                    raise TfdeployError(
                        f"The tf_keras copy of Keras 3 model {model.name!r} differs from it (max abs output "
                        f"difference {bridge.max_abs_diff:.3g} > 1e-4); refusing to compress a different model. "
                        "Give a tf_keras model instead."
                    )
                model = bridge.model
            elif self.loaded.flavour is KerasFlavour.SAVED_MODEL:
                raise TfdeployError(
                    "TFMOT recipes need a Keras model with layers; this SavedModel has no Keras metadata. "
                    f"Pass the .keras/.h5 file it was exported from. Received: path={str(self.loaded.path)!r}"
                )
            self._tf_keras_model = model
        return self._tf_keras_model

    def clone_tf_keras(self) -> Any:
        tk = backend.tf_keras()
        source = self.tf_keras_model()
        clone = tk.models.clone_model(source)
        clone.set_weights(source.get_weights())
        return clone

    def training_target(self) -> tuple[np.ndarray, Any]:
        """Labels and loss for fine-tuning; soft labels from the original model without labels.

        The output activation is read from the unwrapped model: TFMOT wrappers hide it.
        """
        assert self.data is not None
        softmax = _is_softmax_output(self.loaded.model)
        if self.data.y is not None:
            y = self.data.y
            from_logits = not softmax
            if y.ndim == 2 and y.shape[1] > 1:
                return y, backend.tf_keras().losses.CategoricalCrossentropy(from_logits=from_logits)
            return y, backend.tf_keras().losses.SparseCategoricalCrossentropy(from_logits=from_logits)
        soft = keras_predictor(self.loaded.model).predict(self.data.x)
        if softmax:
            return soft, "categorical_crossentropy"
        return soft, "mse"

    def fine_tune(self, model: Any, label: str, callbacks: Sequence[Any] = ()) -> None:
        tk = backend.tf_keras()
        y, loss = self.training_target()
        model.compile(optimizer=tk.optimizers.Adam(self.config.learning_rate), loss=loss)
        callbacks = [*callbacks, backend.progress_callback(tk, self.progress, self.config.epochs, label)]
        model.fit(self.data.x, y, epochs=self.config.epochs, batch_size=self.config.batch_size, verbose=0,
                  callbacks=callbacks, shuffle=True)

    def steps_per_epoch(self) -> int:
        return max(1, math.ceil(len(self.data.x) / self.config.batch_size))

    def write_keras(self, recipe: Recipe, tf_keras_model: Any) -> tuple[Path, Any]:
        """Saves a compressed tf_keras model in the user's Keras flavour and format."""
        suffix = keras_suffix(self.loaded)
        target = self.out_dir / f"{recipe.value}{suffix}"
        if self.loaded.flavour is KerasFlavour.KERAS3:
            keras = backend.keras3()
            model = keras.models.clone_model(self.loaded.model)
            model.set_weights(self.loaded.model.get_weights())
            missing = backend.copy_weights_by_name(tf_keras_model, model)
            if missing:
                raise TfdeployError(f"Compressed weights have no match for layers {missing} of {model.name!r}.")
        else:
            model = tf_keras_model
        save_model(model, target, overwrite=self.config.overwrite)
        return target, model

    def write_tflite(self, recipe: Recipe, blob: bytes) -> Path:
        target = self.out_dir / f"{recipe.value}.tflite"
        ensure_writable(target, self.config.overwrite)
        return write_atomic(target, blob)

    def representative(self) -> np.ndarray:
        assert self.data is not None
        return self.data.sample(self.config.calibration_samples, seed=self.config.seed)

    # --- TFMOT stages (cached: prune-qat reuses prune, cluster-qat reuses cluster) --------------

    def pruned(self) -> tuple[Any, list[str]]:
        if "prune" not in self._stages:
            self._stages["prune"] = self._prune()
        return self._stages["prune"]

    def clustered(self) -> tuple[Any, list[str]]:
        if "cluster" not in self._stages:
            self._stages["cluster"] = self._cluster()
        return self._stages["cluster"]

    def _prune(self) -> tuple[Any, list[str]]:
        tfmot = backend.tfmot()
        sparsity = tfmot.sparsity.keras
        config = self.config
        total_steps = self.steps_per_epoch() * config.epochs
        end_step = max(1, int(total_steps * 0.7))  # reach the target, then fine-tune at it
        frequency = max(1, min(100, end_step // 10))
        params: dict[str, Any] = {
            "pruning_schedule": sparsity.PolynomialDecay(initial_sparsity=0.0, final_sparsity=config.target_sparsity,
                                                         begin_step=0, end_step=end_step, frequency=frequency),
        }
        structured = config.prune_structure == "2:4"
        if structured:
            params = {"sparsity_m_by_n": (2, 4)}
        skipped: list[str] = []
        from tensorflow_model_optimization.python.core.sparsity.keras import prune_registry

        tk = backend.tf_keras()

        def wrap(layer: Any) -> Any:
            if not layer.weights or isinstance(layer, tk.layers.InputLayer):
                return layer
            kind = type(layer).__name__
            supported = prune_registry.PruneRegistry.supports(layer) and bool(
                prune_registry.PruneRegistry._weight_names(layer))
            if structured and kind not in ("Conv2D", "Dense"):
                supported = False
            if not supported:
                if not isinstance(layer, tk.layers.BatchNormalization):
                    skipped.append(f"{layer.name} ({kind})")
                return layer
            return sparsity.prune_low_magnitude(layer, **params)

        self.progress(f"  pruning to {'2:4' if structured else config.target_sparsity} sparsity: "
                      f"{total_steps} steps, target reached at step {end_step}, pruning every {frequency} steps")
        model = tk.models.clone_model(self.clone_tf_keras(), clone_function=wrap)
        self.fine_tune(model, "prune", callbacks=[sparsity.UpdatePruningStep()])
        stripped = sparsity.strip_pruning(model)
        notes = ["pruning zeroes weights but keeps them: the raw file does not shrink, the gzip size does"]
        if structured:
            notes.append("2:4 structured sparsity on Conv2D/Dense kernels")
        if skipped:
            notes.append("not pruned (not supported by TFMOT pruning): " + ", ".join(skipped))
        return stripped, notes

    def _cluster(self) -> tuple[Any, list[str]]:
        tfmot = backend.tfmot()
        clustering = tfmot.clustering.keras
        from tensorflow_model_optimization.python.core.clustering.keras import clustering_registry

        tk = backend.tf_keras()
        skipped: list[str] = []
        params = {"number_of_clusters": self.config.clusters,
                  "cluster_centroids_init": clustering.CentroidInitialization.KMEANS_PLUS_PLUS}

        def wrap(layer: Any) -> Any:
            if not layer.weights or isinstance(layer, (tk.layers.InputLayer, tk.layers.BatchNormalization)):
                return layer
            names = [w.name.split("/")[-1] for w in layer.weights]
            if not clustering_registry.ClusteringRegistry.supports(layer) or not any(
                    k in n for n in names for k in KERNEL_WEIGHT_NAMES):
                skipped.append(f"{layer.name} ({type(layer).__name__})")
                return layer
            kernel_size = sum(int(np.prod(w.shape)) for w in layer.weights if "kernel" in w.name)
            if kernel_size <= self.config.clusters:
                return layer
            return clustering.cluster_weights(layer, **params)

        self.progress(f"  clustering weights into {self.config.clusters} clusters per layer")
        model = tk.models.clone_model(self.clone_tf_keras(), clone_function=wrap)
        self.fine_tune(model, "cluster")
        stripped = clustering.strip_clustering(model)
        notes = [f"{self.config.clusters} unique values per clustered kernel; like pruning, gzip shrinks, raw does not"]
        if skipped:
            notes.append("not clustered (not supported by TFMOT clustering): " + ", ".join(skipped))
        return stripped, notes

    def quantization_aware(self, base: Any, scheme: Any | None, label: str) -> tuple[Any, list[str]]:
        tfmot = backend.tfmot()
        quantize = tfmot.quantization.keras
        from tensorflow_model_optimization.python.core.quantization.keras.default_8bit import (
            default_8bit_quantize_registry,
        )

        registry = default_8bit_quantize_registry.Default8BitQuantizeRegistry()
        tk = backend.tf_keras()
        left_float: list[str] = []

        def folded_batch_norm(layer: Any) -> bool:
            # TFMOT folds BatchNormalization into the convolution before it (a layout transform,
            # not a registry entry); a BatchNormalization after anything else stays float.
            if not isinstance(layer, tk.layers.BatchNormalization) or not layer.inbound_nodes:
                return False
            inbound = layer.inbound_nodes[0].inbound_layers
            return isinstance(inbound, (tk.layers.Conv2D, tk.layers.DepthwiseConv2D))

        def annotate(layer: Any) -> Any:
            if isinstance(layer, tk.layers.InputLayer):
                return layer
            if registry.supports(layer) or folded_batch_norm(layer):
                return quantize.quantize_annotate_layer(layer)
            left_float.append(f"{layer.name} ({type(layer).__name__})")
            return layer

        clone = tk.models.clone_model(base, clone_function=annotate)
        with quantize.quantize_scope(dict(self.config.custom_objects)):  # quantize_apply rebuilds from config
            model = quantize.quantize_apply(clone, scheme) if scheme is not None else quantize.quantize_apply(clone)
        self.fine_tune(model, label)
        notes = []
        if left_float:
            notes.append("left in float (not supported by TFMOT QAT): " + ", ".join(left_float))
        return model, notes

    # --- recipes -----------------------------------------------------------------------------------

    def run(self, recipe: Recipe) -> _Artifact:
        return getattr(self, "_recipe_" + recipe.name.lower())(recipe)

    def _recipe_strip(self, recipe: Recipe) -> _Artifact:
        if self.loaded.flavour is KerasFlavour.SAVED_MODEL:
            raise TfdeployError(
                "The SavedModel has no Keras metadata, so there is no optimizer state to strip and no "
                f"Keras model to rewrite. Received: path={str(self.loaded.path)!r}"
            )
        target = self.out_dir / f"{recipe.value}{keras_suffix(self.loaded)}"
        had_optimizer = getattr(self.loaded.model, "optimizer", None) is not None
        save_model(self.loaded.model, target, include_optimizer=False, overwrite=self.config.overwrite)
        note = "optimizer state removed" if had_optimizer else "the model had no optimizer state"
        return _Artifact(target, keras_predictor(self.loaded.model), self.loaded.model, [note])

    def _keras_stage(self, recipe: Recipe, stage: tuple[Any, list[str]]) -> _Artifact:
        model, notes = stage
        path, written = self.write_keras(recipe, model)
        return _Artifact(path, keras_predictor(written), written, list(notes))

    def _recipe_prune(self, recipe: Recipe) -> _Artifact:
        return self._keras_stage(recipe, self.pruned())

    def _recipe_cluster(self, recipe: Recipe) -> _Artifact:
        return self._keras_stage(recipe, self.clustered())

    def _qat_artifact(self, recipe: Recipe, base: Any, scheme: Any, base_notes: list[str]) -> _Artifact:
        model, notes = self.quantization_aware(base, scheme, recipe.value)
        self.progress(f"  converting {recipe.value} to int8 TFLite")
        blob = convert(model, TfliteMode.QAT, io_dtype=self.config.io_dtype)
        return _Artifact(self.write_tflite(recipe, blob), tflite_predictor(blob, recipe.value), model,
                         [*base_notes, *notes])

    def _recipe_qat(self, recipe: Recipe) -> _Artifact:
        return self._qat_artifact(recipe, self.clone_tf_keras(), None, [])

    def _recipe_prune_int8(self, recipe: Recipe) -> _Artifact:
        model, notes = self.pruned()
        return self._ptq(recipe, TfliteMode.INT8, self.representative(), model=model, notes=notes[1:])

    def _recipe_prune_qat(self, recipe: Recipe) -> _Artifact:
        from tensorflow_model_optimization.python.core.quantization.keras.collab_opts.prune_preserve import (
            default_8bit_prune_preserve_quantize_scheme as scheme,
        )

        base, notes = self.pruned()
        return self._qat_artifact(recipe, base, scheme.Default8BitPrunePreserveQuantizeScheme(), notes[1:])

    def _recipe_cluster_qat(self, recipe: Recipe) -> _Artifact:
        from tensorflow_model_optimization.python.core.quantization.keras.collab_opts.cluster_preserve import (
            default_8bit_cluster_preserve_quantize_scheme as scheme,
        )

        base, notes = self.clustered()
        return self._qat_artifact(recipe, base, scheme.Default8BitClusterPreserveQuantizeScheme(preserve_sparsity=False),
                                  notes[1:])

    def _ptq(self, recipe: Recipe, mode: TfliteMode, representative: np.ndarray | None = None,
             model: Any = None, notes: Sequence[str] = ()) -> _Artifact:
        model = self.loaded.model if model is None else model
        self.progress(f"  converting to TFLite ({mode.value})")
        blob = convert(model, mode, representative=representative, io_dtype=self.config.io_dtype,
                       granularity=self.config.int8_granularity)
        notes = list(notes)
        if representative is not None:
            notes.append(f"calibrated on {len(representative)} samples, {self.config.int8_granularity.value} scales")
        return _Artifact(self.write_tflite(recipe, blob), tflite_predictor(blob, recipe.value), model, notes)

    def _recipe_tflite(self, recipe: Recipe) -> _Artifact:
        return self._ptq(recipe, TfliteMode.FLOAT32)

    def _recipe_ptq_dynamic(self, recipe: Recipe) -> _Artifact:
        return self._ptq(recipe, TfliteMode.DYNAMIC)

    def _recipe_ptq_float16(self, recipe: Recipe) -> _Artifact:
        return self._ptq(recipe, TfliteMode.FLOAT16)

    def _recipe_ptq_int8(self, recipe: Recipe) -> _Artifact:
        return self._ptq(recipe, TfliteMode.INT8, self.representative())


def keras_suffix(loaded: LoadedModel) -> str:
    """The Keras file suffix to write a variant of ``loaded`` in (its own, or ``.keras``)."""
    return loaded.format.value if loaded.format in (ModelFormat.KERAS, ModelFormat.H5) else ".keras"


def _load_data(config: CompressConfig, loaded: LoadedModel) -> Dataset | None:
    if config.data is None:
        return None
    input_shape = tuple(loaded.model.input_shape[1:])
    if isinstance(config.data, Dataset):
        data = config.data
    else:
        image_size = input_shape[:2] if len(input_shape) == 3 else None
        channels = input_shape[2] if len(input_shape) == 3 else None
        data = load_data(config.data, image_size=image_size, channels=channels)
    data = data.with_validation()
    return dataclasses.replace(data, x=fit_to_input(data.x, input_shape), x_val=fit_to_input(data.x_val, input_shape))


def _write_chart(report: CompressionReport, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    use_accuracy = report.variants[0].accuracy is not None
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for v in report.variants:
        y = (v.accuracy if use_accuracy else v.agreement) or 0.0
        ax.scatter(v.gzip_bytes / 1024, 100 * y, s=40)
        ax.annotate(v.name, (v.gzip_bytes / 1024, 100 * y), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set_xlabel("gzip size (KiB)")
    ax.set_ylabel("accuracy (%)" if use_accuracy else "top-1 agreement with original (%)")
    ax.set_title("Size vs accuracy per variant")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    write_atomic(path, buffer.getvalue())


def compress(config: CompressConfig) -> CompressionReport:
    """Runs each recipe of ``config`` on the model and measures every artifact.

    For the original and each variant the report gives file and format, raw and gzip bytes and
    their ratio to the original, parameters and kernel sparsity, accuracy and its drop (with
    labels), top-1 agreement and max abs output difference vs the original on the validation
    inputs, median single-example latency in the serving runtime (tf.function or TFLite
    interpreter), and the recipe's wall time.

    Args:
        config: A :class:`CompressConfig`.

    Returns:
        A :class:`CompressionReport`; also written as ``report.json``/``report.md``/``report.png``.

    Raises:
        TfdeployError: For unreadable models or data, recipes that need data without it,
            unsupported model structures, or outputs that exist without ``overwrite``.

    Example:
        >>> report = compress(CompressConfig("m.h5", "out", recipes=[Recipe.PTQ_DYNAMIC]))  # doctest: +SKIP
        >>> report.variants[1].raw_ratio
        0.27
    """
    session = CompressionSession(config, recipes_needing_data=config.recipes)
    variants = [session.original]
    for index, recipe in enumerate(config.recipes, start=1):
        variants.append(session.run_recipe(recipe, label=f"[{index}/{len(config.recipes)}] "))
    return session.finish(variants)
