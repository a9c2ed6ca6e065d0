"""The recipe contract: what a recipe declares, what it returns, and the registry that checks both.

A recipe is one :class:`RecipeSpec` registered in :mod:`tfdeploy.compression.recipes`. Everything
else is derived from the registry: the :class:`~tfdeploy.compression.recipes.Recipe` enum and the
CLI's ``--recipe`` choices, the "needs data" error, ``all``'s order, the ``--auto`` candidates
and the recipe table of ``docs/compress.md`` (``scripts/make_doc_tables.py``).

Example:
    >>> spec = RecipeSpec("noop", "a recipe that does nothing", OutputKind.KERAS, run=lambda s, r: None)
    >>> RecipeRegistry([spec]).names()
    ['noop']
"""

from __future__ import annotations

import dataclasses
import enum
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

from tfdeploy.errors import TfdeployError

if TYPE_CHECKING:
    from tfdeploy.compression.session import CompressionSession
    from tfdeploy.measure.predictors import Predictor

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")


class OutputKind(str, enum.Enum):
    """What a recipe writes: a Keras model in the user's format, or a ``.tflite`` flatbuffer."""

    KERAS = ".keras"
    TFLITE = ".tflite"

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)


@dataclasses.dataclass(frozen=True)
class AutoHint:
    """How a recipe takes part in ``compress --auto``.

    Attributes:
        priority: Candidates are tried in increasing priority (most promising first).
        expected_size: Expected gzip size as a fraction of the original's (for early stopping).
        expected_latency: Expected latency as a fraction of the original's.
    """

    priority: int
    expected_size: float
    expected_latency: float


@dataclasses.dataclass
class Artifact:
    """What a recipe produced: the file, how to run it, the Keras model for sparsity, notes, per-layer precisions
    and, for a recipe that trains a new model, its scores by epoch. A recipe made in a worker process
    brings its ``sparsity`` (overall, by layer type) and ``params`` instead of the model."""

    path: Path
    predictor: Predictor | None
    sparsity_model: Any = None
    notes: list[str] = dataclasses.field(default_factory=list)
    layers: dict[str, str] = dataclasses.field(default_factory=dict)
    training: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    sparsity: tuple[float | None, dict[str, float]] | None = None
    params: int | None = None


RecipeFunction = Callable[["CompressionSession", Any], Artifact]


@dataclasses.dataclass(frozen=True)
class RecipeSpec:
    """Everything tfdeploy needs to know about one recipe.

    Attributes:
        name: The ``--recipe`` name (lowercase words joined by ``-``).
        summary: One line for ``--help``, progress and the docs table.
        output: The kind of artifact (``.keras`` is written in the user's own Keras format).
        run: ``(session, recipe) -> Artifact``: makes and writes the artifact.
        needs_data: Fine-tuning or calibration data is required (``--data``).
        needs_labels: Labels are required (not only inputs).
        trains: Fine-tunes the model (the labels need at least two classes).
        tf_keras: Runs TFMOT on the flat tf_keras copy of the model (:mod:`tfdeploy.compression.bridge`).
        auto: How ``--auto`` uses it (``None``: not a candidate).
    """

    name: str
    summary: str
    output: OutputKind
    run: RecipeFunction
    needs_data: bool = False
    needs_labels: bool = False
    trains: bool = False
    tf_keras: bool = False
    auto: AutoHint | None = None

    def check(self) -> None:
        """Raises TfdeployError naming the first field that breaks the contract."""
        if not isinstance(self.name, str) or not NAME_PATTERN.match(self.name) or self.name == "all":
            raise TfdeployError(f"A recipe name is lowercase words joined by '-' and not 'all'. Received: name={self.name!r}")
        if not isinstance(self.summary, str) or not self.summary.strip():
            raise TfdeployError(f"Recipe {self.name!r} needs a one-line summary. Received: summary={self.summary!r}")
        if not isinstance(self.output, OutputKind):
            raise TfdeployError(f"Recipe {self.name!r}: output must be an OutputKind. Received: output={self.output!r}")
        if not callable(self.run):
            raise TfdeployError(f"Recipe {self.name!r}: run must be callable. Received: run={self.run!r}")
        if (self.trains or self.needs_labels) and not self.needs_data:
            raise TfdeployError(f"Recipe {self.name!r} trains or needs labels, so it needs data. "
                                f"Received: needs_data={self.needs_data}")
        if self.auto is not None and not (0 < self.auto.expected_size <= 2 and 0 < self.auto.expected_latency <= 2):
            raise TfdeployError(f"Recipe {self.name!r}: expected size/latency are fractions of the original's. "
                                f"Received: auto={self.auto}")


class RecipeRegistry:
    """The registered recipes in ``all``'s order; checked when built.

    Args:
        specs: The recipes; names must be unique.

    Raises:
        TfdeployError: For a repeated name or a spec that breaks the contract.
    """

    def __init__(self, specs: Sequence[RecipeSpec]) -> None:
        self._specs: dict[str, RecipeSpec] = {}
        for spec in specs:
            if not isinstance(spec, RecipeSpec):
                raise TfdeployError(f"Only RecipeSpec can be registered. Received: {spec!r}")
            spec.check()
            if spec.name in self._specs:
                raise TfdeployError(f"Recipe names must be unique. Received: name={spec.name!r} twice")
            self._specs[spec.name] = spec

    def __iter__(self) -> Iterator[RecipeSpec]:
        return iter(self._specs.values())

    def __getitem__(self, name: str) -> RecipeSpec:
        return self._specs[name]

    def names(self) -> list[str]:
        return list(self._specs)

    def candidates(self) -> list[RecipeSpec]:
        """The ``--auto`` candidates, most promising first."""
        return sorted((s for s in self if s.auto is not None), key=lambda s: s.auto.priority)  # type: ignore[union-attr]

    def without_data(self) -> list[str]:
        return [s.name for s in self if not s.needs_data]

    def markdown_table(self) -> str:
        """The recipe table of ``docs/compress.md`` (``scripts/make_doc_tables.py`` writes it there)."""
        yes = {True: "yes", False: "no"}
        rows = ["| recipe | what it does | needs data | fine-tunes | TFMOT on tf_keras | artifact | `--auto` (expected gzip) |",
                "|---|---|---|---|---|---|---|"]
        for s in self:
            artifact = "`.keras`/`.h5`" if s.output is OutputKind.KERAS else f"`{s.output.value}`"
            auto = f"#{s.auto.priority} (~{100 * s.auto.expected_size:.0f} %)" if s.auto else "–"
            rows.append(f"| `{s.name}` | {s.summary} | {yes[s.needs_data]} | {yes[s.trains]} | {yes[s.tf_keras]} | "
                        f"{artifact} | {auto} |")
        return "\n".join(rows) + "\n"


CHAIN = "+"


@dataclasses.dataclass(frozen=True)
class RecipeChain:
    """Recipes applied in turn, each to the model the previous one made: ``distill+ptq-int8``.

    Every step but the last makes a Keras model; the chain's artifact is the last step's, named
    after the whole chain (``distill+ptq-int8.tflite``) and measured against the original model.
    A step made for one chain is reused by the others of the same run.

    Example:
        >>> from tfdeploy.compression.recipes import Recipe
        >>> chain = Recipe.parse_list("distill+ptq-int8")[0]
        >>> chain.value, chain.spec.output.value, chain.spec.needs_data
        ('distill+ptq-int8', '.tflite', True)
    """

    steps: tuple[Any, ...]

    @property
    def value(self) -> str:
        return CHAIN.join(step.value for step in self.steps)

    def __str__(self) -> str:
        return self.value

    @property
    def spec(self) -> RecipeSpec:
        specs = [step.spec for step in self.steps]
        return RecipeSpec(self.value, ", then ".join(s.summary for s in specs), specs[-1].output, run=_run_chain,
                          needs_data=any(s.needs_data for s in specs), needs_labels=any(s.needs_labels for s in specs),
                          trains=any(s.trains for s in specs), tf_keras=any(s.tf_keras for s in specs))

    @classmethod
    def parse(cls, text: str, step: Callable[[str], Any]) -> RecipeChain:
        """``"distill+ptq-int8"`` with each name parsed by ``step``; only Keras-making steps can be followed."""
        steps = tuple(step(name.strip()) for name in text.split(CHAIN))
        for made in steps[:-1]:
            if made.spec.output is not OutputKind.KERAS:
                keras_makers = ", ".join(s.name for s in _keras_makers(made))
                raise TfdeployError(f"Recipe {made.value!r} makes a {made.spec.output.value} file, and only a recipe "
                                    f"that makes a Keras model ({keras_makers}) can be followed by another. "
                                    f"Received: recipe={text!r}")
        return cls(steps)


def _keras_makers(recipe: Any) -> list[RecipeSpec]:
    return [member.spec for member in type(recipe) if member.spec.output is OutputKind.KERAS]


def _run_chain(session: CompressionSession, chain: RecipeChain) -> Artifact:
    head, rest = chain.steps[0], chain.steps[1:]
    made = session.artifact_of(head)
    following = rest[0] if len(rest) == 1 else RecipeChain(rest)
    return following.spec.run(session.derive(made.path, head.value), following)


class RecipeEnum(str, enum.Enum):
    """Base of :class:`~tfdeploy.compression.recipes.Recipe`, whose members come from the registry."""

    def __str__(self) -> str:
        return self.value

    @property
    def spec(self) -> RecipeSpec:
        return self._spec  # type: ignore[attr-defined]  (set by recipe_enum)

    @classmethod
    def choices(cls) -> list[str]:
        """Names accepted by ``--recipe`` (plus ``all``; chains such as ``distill+ptq-int8`` too)."""
        return [r.value for r in cls] + ["all"]

    @classmethod
    def parse_list(cls, text: str) -> list[Any]:
        """Parses ``"prune,qat"``, ``"all"`` or chains (``"distill+ptq-int8"``), keeping order and dropping repeats.

        Example:
            >>> from tfdeploy.compression.recipes import Recipe
            >>> Recipe.parse_list("strip,strip")
            [<Recipe.STRIP: 'strip'>]
        """
        names = [part.strip() for part in text.split(",") if part.strip()]
        if not names:
            raise TfdeployError(f"No recipe given; choose from {', '.join(cls.choices())}. Received: recipe={text!r}")
        if "all" in names:
            return list(cls)
        def one(name: str) -> Any:
            try:
                return cls(name)
            except ValueError:
                raise TfdeployError(f"Unknown recipe {name!r}; choose from {', '.join(cls.choices())} (or chain them "
                                    f"with {CHAIN}, e.g. distill{CHAIN}ptq-int8). Received: recipe={text!r}") from None

        recipes: list[Any] = []
        for name in names:
            recipe = RecipeChain.parse(name, one) if CHAIN in name else one(name)
            if recipe not in recipes:
                recipes.append(recipe)
        return recipes


def recipe_enum(registry: RecipeRegistry) -> type[RecipeEnum]:
    """The ``Recipe`` enum of ``registry``: ``Recipe.PTQ_INT8 == "ptq-int8"``, in registry order."""
    recipe = RecipeEnum("Recipe", [(name.upper().replace("-", "_"), name) for name in registry.names()],
                        module="tfdeploy.compression.recipes")
    for member in recipe:
        member._spec = registry[member.value]  # type: ignore[attr-defined]
    return recipe  # type: ignore[return-value]
