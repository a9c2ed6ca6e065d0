"""Post-training quantization with the TFLite converter: ``tflite`` (float32 baseline),
``ptq-dynamic`` (int8 weights), ``ptq-float16`` and ``ptq-int8`` (full integer, calibrated).

:func:`quantize_post_training` is shared with recipes that quantize a model they made first
(``prune-int8``, ``cluster-int8``).

Example:
    >>> from tfdeploy.compression.recipes import Recipe
    >>> Recipe.PTQ_INT8.spec.auto.priority
    1
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

from tfdeploy.compression.registry import Artifact, AutoHint, OutputKind, RecipeSpec
from tfdeploy.compression.tflite import TfliteMode
from tfdeploy.io_spec import Arrays

if TYPE_CHECKING:
    from tfdeploy.compression.session import CompressionSession


def quantize_post_training(session: CompressionSession, recipe: Any, mode: TfliteMode,
                           representative: Arrays | None = None, model: Any = None,
                           notes: Sequence[str] = ()) -> Artifact:
    """Converts ``model`` (default: the original) in ``mode`` and writes the ``.tflite``."""
    if model is None and mode is TfliteMode.FLOAT32:
        conversion = session.float_conversion()
    else:
        conversion = session.converter.convert(session.loaded.model if model is None else model, mode, representative)
    model = session.loaded.model if model is None else model
    notes = list(notes)
    if representative is not None:
        count = len(next(iter(representative.values())))
        notes.append(f"calibrated on {count} samples, {session.config.int8_granularity.value} scales")
    return session.write_tflite(recipe, conversion, model if session.is_keras else None, notes)


def _in_mode(mode: TfliteMode, calibrated: bool = False) -> Any:
    def run(session: CompressionSession, recipe: Any) -> Artifact:
        return quantize_post_training(session, recipe, mode, session.representative() if calibrated else None)

    return run


TFLITE = RecipeSpec("tflite", "float32 TFLite, the baseline for TFLite sizes", OutputKind.TFLITE,
                    run=_in_mode(TfliteMode.FLOAT32))
PTQ_DYNAMIC = RecipeSpec("ptq-dynamic", "post-training dynamic-range quantization (int8 weights)", OutputKind.TFLITE,
                         run=_in_mode(TfliteMode.DYNAMIC),
                         auto=AutoHint(priority=6, expected_size=0.30, expected_latency=0.012))
PTQ_FLOAT16 = RecipeSpec("ptq-float16", "post-training float16 quantization", OutputKind.TFLITE,
                         run=_in_mode(TfliteMode.FLOAT16),
                         auto=AutoHint(priority=5, expected_size=0.47, expected_latency=0.010))
PTQ_INT8 = RecipeSpec("ptq-int8", "post-training full-integer quantization, calibrated on --data", OutputKind.TFLITE,
                      run=_in_mode(TfliteMode.INT8, calibrated=True), needs_data=True,
                      auto=AutoHint(priority=1, expected_size=0.25, expected_latency=0.010))
