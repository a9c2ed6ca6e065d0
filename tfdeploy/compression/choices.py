"""The choices of tfdeploy: one enum each, the single source of truth for names and CLI choices.

Example:
    >>> Recipe.parse_list("strip")
    [<Recipe.STRIP: 'strip'>]
    >>> Recipe.PRUNE.spec.needs_data
    True
"""

from __future__ import annotations

import dataclasses
import enum

from tfdeploy.errors import TfdeployError


@dataclasses.dataclass(frozen=True)
class RecipeSpec:
    """What a recipe does and what it needs.

    Attributes:
        summary: One line for ``--help`` and reports.
        needs_data: Fine-tuning or calibration data is required (``--data``).
        output: File suffix of the artifact (``.keras`` means the input's Keras format).
        trains: The recipe fine-tunes the model (its labels need at least two classes).
    """

    summary: str
    needs_data: bool
    output: str
    trains: bool = False


class IoDtype(str, enum.Enum):
    """Input/output tensor type of an int8 TFLite model (``--io-dtype``)."""

    FLOAT32 = "float32"
    INT8 = "int8"
    UINT8 = "uint8"


class Int8Granularity(str, enum.Enum):
    """Scale granularity of post-training int8 weights (``--int8-granularity``).

    Per-channel is TFLite's default and the most accurate; per-tensor stores one scale per
    tensor instead of a scale and a 64-bit zero point per output channel, which is a large part
    of a narrow model's file (e.g. MobileNetV2 alpha 0.35).
    """

    PER_CHANNEL = "per-channel"
    PER_TENSOR = "per-tensor"


class Objective(str, enum.Enum):
    """What ``compress --auto`` minimises among the candidates within the accuracy budget."""

    SIZE = "size"        # gzip bytes: what is stored and shipped
    LATENCY = "latency"  # median single-example latency in the serving runtime


class Recipe(str, enum.Enum):
    """Compression recipes, in the order ``all`` runs them."""

    STRIP = "strip"
    PRUNE = "prune"
    CLUSTER = "cluster"
    QAT = "qat"
    PRUNE_INT8 = "prune-int8"
    PRUNE_QAT = "prune-qat"
    CLUSTER_QAT = "cluster-qat"
    TFLITE = "tflite"
    PTQ_DYNAMIC = "ptq-dynamic"
    PTQ_FLOAT16 = "ptq-float16"
    PTQ_INT8 = "ptq-int8"

    @property
    def spec(self) -> RecipeSpec:
        return _SPECS[self]

    def __str__(self) -> str:
        return self.value

    @classmethod
    def choices(cls) -> list[str]:
        """Names accepted by ``--recipe`` (plus ``all``)."""
        return [r.value for r in cls] + ["all"]

    @classmethod
    def parse_list(cls, text: str) -> list["Recipe"]:
        """Parses ``"prune,qat"`` or ``"all"`` into recipes, keeping order and dropping repeats."""
        names = [part.strip() for part in text.split(",") if part.strip()]
        if not names:
            raise TfdeployError(f"No recipe given; choose from {', '.join(cls.choices())}. Received: recipe={text!r}")
        if "all" in names:
            return list(cls)
        recipes: list[Recipe] = []
        for name in names:
            try:
                recipe = cls(name)
            except ValueError:
                raise TfdeployError(
                    f"Unknown recipe {name!r}; choose from {', '.join(cls.choices())}. Received: recipe={text!r}"
                ) from None
            if recipe not in recipes:
                recipes.append(recipe)
        return recipes



_SPECS = {
    Recipe.STRIP: RecipeSpec("save without optimizer state", needs_data=False, output=".keras"),
    Recipe.PRUNE: RecipeSpec("magnitude pruning with masks on TFMOT's schedule + fine-tune", needs_data=True, output=".keras", trains=True),
    Recipe.CLUSTER: RecipeSpec("TFMOT weight clustering + fine-tune + strip_clustering", needs_data=True,
                               output=".keras", trains=True),
    Recipe.QAT: RecipeSpec("TFMOT quantization-aware training, converted to int8 TFLite", needs_data=True,
                           output=".tflite", trains=True),
    Recipe.PRUNE_INT8: RecipeSpec("prune, then post-training full-integer quantization", needs_data=True,
                                  output=".tflite", trains=True),
    Recipe.PRUNE_QAT: RecipeSpec("prune, then pruning-preserving QAT, int8 TFLite", needs_data=True,
                                 output=".tflite", trains=True),
    Recipe.CLUSTER_QAT: RecipeSpec("cluster, then cluster-preserving QAT, int8 TFLite", needs_data=True,
                                   output=".tflite", trains=True),
    Recipe.TFLITE: RecipeSpec("float32 TFLite, the baseline for TFLite sizes", needs_data=False, output=".tflite"),
    Recipe.PTQ_DYNAMIC: RecipeSpec("post-training dynamic-range quantization (int8 weights)", needs_data=False,
                                   output=".tflite"),
    Recipe.PTQ_FLOAT16: RecipeSpec("post-training float16 quantization", needs_data=False, output=".tflite"),
    Recipe.PTQ_INT8: RecipeSpec("post-training full-integer quantization, calibrated on --data", needs_data=True,
                                output=".tflite"),
}
