"""The compression recipes: one enum, the single source of truth for names and CLI choices.

Example:
    >>> Recipe.parse_list("strip")
    [<Recipe.STRIP: 'strip'>]
    >>> Recipe.STRIP.spec.needs_data
    False
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
    """

    summary: str
    needs_data: bool
    output: str


class Recipe(str, enum.Enum):
    """Compression recipes, in the order ``all`` runs them."""

    STRIP = "strip"

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
}
