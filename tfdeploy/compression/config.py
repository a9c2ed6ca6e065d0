"""Options of :func:`~tfdeploy.compression.compress` and the files a run will write.

Example:
    >>> config = CompressConfig("model.keras", "out", recipes=[Recipe.PTQ_DYNAMIC])
    >>> [p.name for p in planned_outputs(config)][:1]
    ['ptq-dynamic.tflite']
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

from tfdeploy.compression.litert_quantization import LayerPlan, WeightAlgorithm
from tfdeploy.compression.recipes import Recipe
from tfdeploy.compression.registry import CHAIN, OutputKind
from tfdeploy.compression.tflite import Int8Granularity, IoDtype
from tfdeploy.errors import TfdeployError
from tfdeploy.model.data import Dataset
from tfdeploy.model.loading import LoadedModel, ModelFormat
from tfdeploy.progress import ProgressLike
from tfdeploy.quality.plan import MetricRef

REPORT_FILES = ("report.json", "report.md", "report.png")


@dataclasses.dataclass
class CompressConfig:
    """Options of :func:`compress`.

    Attributes:
        model: The model file or SavedModel directory to compress.
        out_dir: Where artifacts and the report are written.
        recipes: Recipes to run, each producing one artifact (``Recipe`` members or their names).
        data: ``.npz``/image directory path or a :class:`~tfdeploy.model.data.Dataset` for
            fine-tuning, calibration and evaluation.
        output: The output accuracy is measured on (default: the first classification head).
        metrics: What every variant is judged by: ``NAME``, ``NAME=PARAM`` or ``module:function``, each
            optionally ``@OUTPUT`` (``auc@click``); the first drives ``--auto`` (empty: the model's
            compiled metrics, else defaults by output head; see docs/compress.md, "How variants are judged").
        epochs: Fine-tune epochs of the recipes that train.
        batch_size: Fine-tune batch size.
        learning_rate: Fine-tune learning rate (Adam).
        target_sparsity: Final sparsity of ``prune`` (0–1).
        prune_structure: ``"2:4"`` for M-by-N structured sparsity.
        clusters: Number of weight clusters of ``cluster``.
        calibration_samples: Representative samples for full-int8 conversion.
        io_dtype: Input/output type of int8 TFLite models.
        int8_granularity: Weight-scale granularity of post-training int8 (ptq-int8, prune-int8).
        layer_plan: Per-layer precisions of ``ptq-mixed``: ``"default=int4,NAME=int8,NAME=float"``, a
            ``.json`` file or a :class:`~tfdeploy.compression.litert_quantization.LayerPlan`
            (``None``: int4 with the most int4-sensitive layers at int8).
        weight_algorithm: How int4/int8 weight scales of the LiteRT-quantizer recipes are chosen.
        student: ``distill``'s student: a Keras model file taking the teacher's inputs and giving
            its outputs (``None``: a narrower copy of the teacher at ``student_width``).
        student_width: Width of the narrower copy, as a fraction of the teacher's (0.5: half the channels).
        temperature: ``distill``: how much the teacher's class scores are softened (1: not at all; higher
            values pass on more of the teacher's ranking of the wrong classes and suit long runs).
        hard_label_weight: ``distill``: weight of the labels next to the teacher (0: teacher only).
        distill_epochs: ``distill``: epochs of training the student.
        distill_learning_rate: ``distill``: Adam's rate, held for 80 % of the steps, then decayed linearly to 0.
        select_tf_ops: Let TFLite conversion fall back to TensorFlow select ops (Flex delegate).
        latency_repeats: Timed single-example calls per variant.
        seed: Seed for sampling calibration/synthetic inputs.
        custom_objects: Custom layers/functions needed to load the model.
        safe_mode: Refuse Lambda layers (``False``: ``--unsafe-deserialization``).
        isolate: Make the recipes (and ``--auto``'s trials) in fresh processes, so that a native crash in
            TensorFlow or an out-of-memory kill fails one recipe, not the run (``False``: ``--in-process``).
        recipe_timeout_s: A recipe still running after this many seconds is stopped and reported failed.
        resume: Keep the recipes an earlier run of the same ``out_dir`` made (artifact and report row),
            make the rest.
        overwrite: Replace existing artifacts.
        progress: Called with a line of text as long work advances (the CLI prints it).
    """

    model: str | os.PathLike
    out_dir: str | os.PathLike
    recipes: Sequence[Recipe] = (Recipe.STRIP,)
    data: str | os.PathLike | Dataset | None = None
    output: str | None = None
    metrics: Sequence[str] = ()
    epochs: int = 2
    batch_size: int = 32
    learning_rate: float = 5e-4
    target_sparsity: float = 0.5
    prune_structure: str | None = None
    clusters: int = 16
    calibration_samples: int = 300
    io_dtype: IoDtype = IoDtype.FLOAT32
    int8_granularity: Int8Granularity = Int8Granularity.PER_CHANNEL
    layer_plan: str | os.PathLike | Mapping[str, Any] | LayerPlan | None = None
    weight_algorithm: WeightAlgorithm = WeightAlgorithm.OCTAV
    student: str | os.PathLike | None = None
    student_width: float = 0.5
    temperature: float = 1.0
    hard_label_weight: float = 0.1
    distill_epochs: int = 10
    distill_learning_rate: float = 2e-3
    select_tf_ops: bool = False
    latency_repeats: int = 50
    seed: int = 0
    custom_objects: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    safe_mode: bool = True
    isolate: bool = True
    recipe_timeout_s: float = 3600.0
    resume: bool = False
    overwrite: bool = False
    progress: ProgressLike = "auto"

    def __post_init__(self) -> None:
        if isinstance(self.recipes, str):
            self.recipes = Recipe.parse_list(self.recipes)
        elif any(not isinstance(r, Recipe) for r in self.recipes):
            self.recipes = Recipe.parse_list(",".join(str(r) for r in self.recipes))
        if self.layer_plan is not None:
            self.layer_plan = LayerPlan.parse(self.layer_plan)
        if isinstance(self.metrics, str):
            self.metrics = (self.metrics,)
        self.metrics = tuple(str(m) for m in self.metrics)

    def validate(self) -> None:
        """Raises TfdeployError naming the first invalid field."""
        if not 0.0 < self.target_sparsity < 1.0:
            raise TfdeployError(f"target_sparsity must be in (0, 1). Received: target_sparsity={self.target_sparsity}")
        if self.prune_structure not in (None, "2:4"):
            raise TfdeployError(f"prune_structure supports '2:4'. Received: prune_structure={self.prune_structure!r}")
        if self.clusters < 2:
            raise TfdeployError(f"clusters must be at least 2. Received: clusters={self.clusters}")
        if not 0.0 < self.student_width <= 1.0:
            raise TfdeployError(f"student_width is a fraction of the teacher's width, in (0, 1]. "
                                f"Received: student_width={self.student_width}")
        if self.temperature <= 0 or not 0.0 <= self.hard_label_weight <= 1.0:
            raise TfdeployError(f"temperature must be positive and hard_label_weight in [0, 1]. Received: "
                                f"temperature={self.temperature}, hard_label_weight={self.hard_label_weight}")
        if self.student is not None and not Path(self.student).exists():
            raise TfdeployError(f"The student model file does not exist. Received: student={str(self.student)!r}")
        for spec in self.metrics:
            MetricRef.parse(spec).spec()  # an unknown name or an unimportable function fails before any work
        for name in ("epochs", "batch_size", "calibration_samples", "latency_repeats", "distill_epochs"):
            if getattr(self, name) < 1:
                raise TfdeployError(f"{name} must be at least 1. Received: {name}={getattr(self, name)}")


def keras_suffix(loaded: LoadedModel) -> str:
    """The Keras file suffix to write a variant of ``loaded`` in (its own, or ``.keras``)."""
    return loaded.format.value if loaded.format in (ModelFormat.KERAS, ModelFormat.H5) else ".keras"


def planned_outputs(config: CompressConfig) -> list[Path]:
    """Every file :func:`compress` writes for ``config`` (artifacts and reports), known before loading."""
    out, fmt = Path(config.out_dir), ModelFormat.of_path(Path(config.model))
    suffix = fmt.value if fmt in (ModelFormat.KERAS, ModelFormat.H5) else ".keras"
    made = dict.fromkeys(name for r in config.recipes for name in _made_by(r.value))  # a chain writes each step's
    kinds = {name: Recipe.parse_list(name)[0].spec.output for name in made}
    files = [out / f"{name}{suffix if kinds[name] is OutputKind.KERAS else kinds[name].value}" for name in made]
    return files + [out / name for name in REPORT_FILES]


def _made_by(name: str) -> list[str]:
    """Names of the artifacts a recipe or chain writes: ``a+b+c`` -> ``a``, ``a+b``, ``a+b+c``."""
    steps = name.split(CHAIN)
    return [CHAIN.join(steps[:i]) for i in range(1, len(steps) + 1)]


def refuse_existing_outputs(config: CompressConfig) -> None:
    """Raises before any work if a file the run would write exists and neither ``overwrite`` nor ``resume`` is on."""
    existing = [str(p) for p in planned_outputs(config) if p.exists()]
    if existing and not (config.overwrite or config.resume):
        more = f" and {len(existing) - 1} more" if len(existing) > 1 else ""
        raise TfdeployError(f"Output file(s) already exist; pass --overwrite (overwrite=True) to replace them, or "
                            f"--resume to keep what that run made. Received: path={existing[0]!r}{more}")
