"""The worker process of :mod:`tfdeploy.compression.isolation`: makes the recipes it is sent, one at a time.

``python -m tfdeploy.compression.worker REQUEST.json`` loads the model and data of the run described
in the file once, then reads one recipe per line of its standard input, makes it (writing the
artifact) and answers with one line on its standard output: the artifact's path, notes, per-layer
precisions, training history, sparsity and parameter count, or the recipe's error. It names each
stage it starts on standard error, so that the parent can say where a native crash happened.

Example:
    >>> # python -m tfdeploy.compression.worker /tmp/tfdeploy-worker-1.json  (started by RecipeWorker)
"""

from __future__ import annotations

import json
import sys
import traceback
from typing import Any

from tfdeploy.compression.isolation import RESULT_PREFIX, config_from_json
from tfdeploy.compression.pruning import kernel_sparsity
from tfdeploy.compression.recipes import Recipe
from tfdeploy.compression.session import CompressionSession
from tfdeploy.errors import TfdeployError
from tfdeploy.faults import environment_fault
from tfdeploy.measure.processes import child_progress
from tfdeploy.model.loading import count_params
from tfdeploy.progress import LineProgress
from tfdeploy.runtime import seed_everything


def made(session: CompressionSession, recipe: Recipe) -> dict[str, Any]:
    """One recipe made in this worker, as the parent needs it (the artifact's file is written)."""
    try:
        artifact = session.artifact_of(recipe)
    except TfdeployError as exc:
        return {"error": str(exc)}
    except Exception as exc:  # TF/Keras/TFMOT errors fail this recipe only
        fault = environment_fault(exc)
        if fault is not None:  # a full or read-only disk stops the run: the parent raises it
            return {"os_error": [fault.errno, fault.strerror, fault.filename]}
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        return {"error": f"{type(exc).__name__}: {first}", "detail": traceback.format_exc()}
    model = artifact.sparsity_model
    bridge_diff, bridge_notes = session.bridge_summary()
    return {"path": str(artifact.path), "flex": artifact.predictor is None, "notes": artifact.notes,
            "layers": artifact.layers, "training": artifact.training,
            "sparsity": None if model is None else kernel_sparsity(model),
            "params": count_params(model if model is not None else session.loaded.model),
            "bridge": [bridge_diff, bridge_notes]}


def main() -> None:
    """Reads the run's config from the file named on the command line, then one recipe per stdin line."""
    with open(sys.argv[1]) as handle:
        request = json.load(handle)
    seed_everything(request["config"]["seed"], deterministic_ops=request["deterministic"])
    recipes = [Recipe.parse_list(name)[0] for name in request["recipes"]]
    loading = [True]  # the parent showed loading and measuring the original already: only the recipes' lines
    progress = LineProgress(lambda line: None if loading[0] else child_progress(line))
    session = CompressionSession(config_from_json(request["config"], progress), recipes)
    loading[0] = False
    for line in sys.stdin:
        if line.strip():
            answer = made(session, Recipe.parse_list(json.loads(line)["recipe"])[0])
            print(RESULT_PREFIX + json.dumps(answer), flush=True)


if __name__ == "__main__":
    main()
