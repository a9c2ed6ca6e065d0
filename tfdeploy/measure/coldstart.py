"""Cold start of an artifact (SavedModel version, Keras file, .tflite), measured in a fresh process.

A fresh process is the only honest cold start: TF's lazy initialisation (graph optimisation,
kernel selection, allocator growth) has happened in any process that already ran the model.
``python -m tfdeploy.measure.coldstart ARTIFACT [--replay-warmup]`` loads the artifact, optionally
replays its warmup file the way TF Serving does, then times the first real request and a
steady-state series, and prints JSON.

Example:
    >>> result = measure_cold_start("models/fashion/1", replay_warmup=True)   # doctest: +SKIP
    >>> result["first_ms"] / result["steady_p50_ms"]
    1.1
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tfdeploy.errors import TfdeployError


def _measure_here(artifact: str, replay: bool, steady_calls: int, signature_name: str) -> dict[str, Any]:
    import numpy as np

    from tfdeploy.io_spec import synthesize
    from tfdeploy.measure.predictors import is_plain_saved_model, predictor_for_file, saved_model_predictor
    from tfdeploy.serving.warmup import WARMUP_FILE, read_warmup, replay_warmup

    path = Path(artifact)
    start = time.perf_counter()
    if is_plain_saved_model(path):
        predictor = saved_model_predictor(path, signature_name)
    else:
        predictor = predictor_for_file(path)
    load_ms = (time.perf_counter() - start) * 1000
    warmup_ms, warmup_calls = None, 0
    if replay:
        if predictor.loaded is None or not (path / WARMUP_FILE).is_file():
            raise TfdeployError(f"Only a SavedModel version with {WARMUP_FILE} has warmup to replay. "
                                f"Received: path={artifact!r}")
        start = time.perf_counter()
        warmup_calls = replay_warmup(predictor.loaded.signatures, read_warmup(path / WARMUP_FILE))
        warmup_ms = (time.perf_counter() - start) * 1000
    x = synthesize(predictor.io, 1, np.random.default_rng(12345))
    start = time.perf_counter()
    predictor.predict_batch(x)
    first_ms = (time.perf_counter() - start) * 1000
    steady = []
    for _ in range(steady_calls):
        start = time.perf_counter()
        predictor.predict_batch(x)
        steady.append((time.perf_counter() - start) * 1000)
    p50 = statistics.median(steady)
    return {"artifact": artifact, "runtime": predictor.runtime, "replay_warmup": replay, "load_ms": load_ms,
            "warmup_ms": warmup_ms, "warmup_calls": warmup_calls, "first_ms": first_ms, "steady_p50_ms": p50,
            "first_over_steady": first_ms / p50 if p50 > 0 else None}


def measure_cold_start(artifact: str | os.PathLike, replay_warmup: bool, steady_calls: int = 30,
                       signature_name: str = "serving_default", timeout: float = 300) -> dict[str, Any]:
    """Runs the measurement in a fresh process and returns its JSON result.

    Raises:
        TfdeployError: If the child process fails (its last error line is included).
    """
    command = [sys.executable, "-m", "tfdeploy.measure.coldstart", str(artifact), "--steady-calls", str(steady_calls),
               "--signature", signature_name] + (["--replay-warmup"] if replay_warmup else [])
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise TfdeployError(f"Cold-start measurement failed: {last}. Received: path={str(artifact)!r}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:  # pragma: no cover - exercised through measure_cold_start in a subprocess
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("artifact")
    parser.add_argument("--replay-warmup", action="store_true")
    parser.add_argument("--steady-calls", type=int, default=30)
    parser.add_argument("--signature", default="serving_default")
    args = parser.parse_args()
    try:
        print(json.dumps(_measure_here(args.artifact, args.replay_warmup, args.steady_calls, args.signature)))
    except TfdeployError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
