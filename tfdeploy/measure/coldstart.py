"""Cold start of an artifact (SavedModel version, Keras file, .tflite), measured in a fresh process.

A fresh process is the only honest cold start: TF's lazy initialisation (graph optimisation,
kernel selection, allocator growth) has happened in any process that already ran the model.
``python -m tfdeploy.measure.coldstart ARTIFACT [--replay-warmup]`` loads the artifact, optionally
replays its warmup file the way TF Serving does (:func:`tfdeploy.serving.warmup.replay_version_warmup`),
then times the first real request and a steady-state series, and prints JSON
(:mod:`tfdeploy.measure.processes`).

Example:
    >>> result = measure_cold_start("models/fashion/1", replay_warmup=True)   # doctest: +SKIP
    >>> result["first_ms"] / result["steady_p50_ms"]
    1.1
"""

from __future__ import annotations

import argparse
import os
import statistics
from pathlib import Path
from typing import Any, Mapping

from tfdeploy.errors import TfdeployError
from tfdeploy.measure.predictors import Predictor, predictor_for_file, request_batch, saved_model_predictor
from tfdeploy.measure.processes import child_main, run_child
from tfdeploy.measure.timing import time_call, time_calls
from tfdeploy.model.loading import is_plain_saved_model
from tfdeploy.serving.warmup import WARMUP_FILE, has_warmup, replay_version_warmup

INPUT_SEED = 12345  # the first request's synthesized inputs
CHILD_MODULE = "tfdeploy.measure.coldstart"  # what measure_cold_start runs (this module, by its import name)


def _load(path: Path, signature_name: str) -> Predictor:
    if is_plain_saved_model(path):
        return saved_model_predictor(path, signature_name)
    return predictor_for_file(path)


def measure_here(artifact: str | os.PathLike, replay: bool, steady_calls: int = 30,
                 signature_name: str = "serving_default") -> dict[str, Any]:
    """Cold start in this process: load, optional warmup replay, first request, steady series.

    Only meaningful in a process that has not run the model yet; :func:`measure_cold_start`
    runs it in a fresh one.

    Args:
        artifact: SavedModel version directory, Keras file or ``.tflite`` file.
        replay: Replay the version's warmup file before the first request.
        steady_calls: Timed calls after the first one (their median is the steady latency).
        signature_name: Signature of a SavedModel version.

    Returns:
        ``artifact, runtime, replay_warmup, load_ms, warmup_ms, warmup_calls, first_ms,
        steady_p50_ms, first_over_steady``.

    Raises:
        TfdeployError: If ``replay`` is asked of an artifact without a warmup file.

    Example:
        >>> measure_here("models/m/1", replay=False)["first_ms"]    # doctest: +SKIP
        41.5
    """
    path = Path(artifact)
    predictor, load_ms = time_call(lambda: _load(path, signature_name))
    warmup_ms, warmup_calls = None, 0
    if replay:
        if predictor.loaded is None or not has_warmup(path):
            raise TfdeployError(f"Only a SavedModel version with {WARMUP_FILE} has warmup to replay. "
                                f"Received: path={str(artifact)!r}")
        warmup_calls, warmup_ms = time_call(lambda: replay_version_warmup(path, predictor.loaded.signatures))
    x = request_batch(predictor.io, 1, None, INPUT_SEED)
    _, first_ms = time_call(lambda: predictor.predict_batch(x))
    p50 = statistics.median(time_calls(lambda: predictor.predict_batch(x), steady_calls, warmup=0))
    return {"artifact": str(artifact), "runtime": predictor.runtime, "replay_warmup": replay, "load_ms": load_ms,
            "warmup_ms": warmup_ms, "warmup_calls": warmup_calls, "first_ms": first_ms, "steady_p50_ms": p50,
            "first_over_steady": first_ms / p50 if p50 > 0 else None}


def measure_cold_start(artifact: str | os.PathLike, replay_warmup: bool, steady_calls: int = 30,
                       signature_name: str = "serving_default", timeout: float = 300,
                       env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Runs :func:`measure_here` in a fresh process and returns its result.

    Args:
        artifact: SavedModel version directory, Keras file or ``.tflite`` file.
        replay_warmup: Replay the version's warmup file before the first request.
        steady_calls: Timed calls after the first one.
        signature_name: Signature of a SavedModel version.
        timeout: Seconds before the child process is killed.
        env: Extra environment of the child (``TF_ENABLE_ONEDNN_OPTS=0``).

    Returns:
        The measurement (see :func:`measure_here`).

    Raises:
        ChildCrashed: If the child process dies by a signal.
        TfdeployError: If the child process fails (its last error line is included).

    Example:
        >>> measure_cold_start("models/m/1", replay_warmup=True)["warmup_calls"]    # doctest: +SKIP
        3
    """
    args = [str(artifact), "--steady-calls", str(steady_calls), "--signature", signature_name]
    return run_child(CHILD_MODULE, args + (["--replay-warmup"] if replay_warmup else []), "Cold-start measurement",
                     f"path={str(artifact)!r}", timeout, env=env)


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("artifact")
    parser.add_argument("--replay-warmup", action="store_true")
    parser.add_argument("--steady-calls", type=int, default=30)
    parser.add_argument("--signature", default="serving_default")


def main() -> None:  # pragma: no cover - exercised through measure_cold_start in a subprocess
    """``python -m tfdeploy.measure.coldstart``: one measurement, printed as JSON.

    Example:
        >>> main()   # python -m tfdeploy.measure.coldstart models/m/1 --replay-warmup   # doctest: +SKIP
    """
    child_main(__doc__.splitlines()[0], _arguments,
               lambda args: measure_here(args.artifact, args.replay_warmup, args.steady_calls, args.signature))


if __name__ == "__main__":
    main()
