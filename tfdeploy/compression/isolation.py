"""Recipes in a child process: a native crash or an out-of-memory kill costs one FAILED row, never the run.

TensorFlow sometimes dies natively: TF 2.21's oneDNN kernels segfault while fitting some common
architectures on AVX-512/AMX CPUs, its calibrator on WHILE loops. A Python ``try`` cannot catch a
SIGSEGV, so the recipes of a ``compress`` run are made in a **worker process**
(``python -m tfdeploy.compression.worker``): it loads the model and data once and makes the
recipes it is sent, one at a time, writing each artifact; the parent keeps the original's
reference outputs and measures every artifact from its file.

When the worker dies:

* the recipe it was making is made once more in a new worker with oneDNN off
  (``TF_ENABLE_ONEDNN_OPTS=0``, the usual fix for TF's CPU crashes), and that worker makes the
  rest of the run; the row says "rerun without oneDNN after SIGSEGV in fine-tune";
* if it dies again (or oneDNN was already off), the recipe is a FAILED row naming the signal, the
  stage it was in (fine-tune, calibrate, convert, ...), TensorFlow's last log lines and what to do.

A recipe still running after ``recipe_timeout_s`` is killed and reported the same way. Custom
objects reach the worker by module path; a notebook's in-memory data or a class defined in
``__main__`` cannot, and the run stays in this process (the report says why).

Example:
    >>> runner = IsolatedRecipes(session, [Recipe.PRUNE_INT8])   # doctest: +SKIP
    >>> runner.run(Recipe.PRUNE_INT8).failed         # doctest: +SKIP
    False
"""

from __future__ import annotations

import collections
import dataclasses
import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from tfdeploy.compression.config import CompressConfig
from tfdeploy.compression.litert_quantization import LayerPlan
from tfdeploy.compression.recipes import Recipe
from tfdeploy.compression.registry import Artifact
from tfdeploy.compression.report import VariantReport
from tfdeploy.measure.predictors import predictor_for_file
from tfdeploy.measure.processes import (ONEDNN_ENV, PROGRESS_PREFIX, STAGE_PREFIX, child_environment,
                                        describe_signal, onednn_enabled)
from tfdeploy.model.loading import import_spec

if TYPE_CHECKING:
    from tfdeploy.compression.session import CompressionSession

RESULT_PREFIX = "@@tfdeploy-result "  # marks the worker's answer among whatever else reaches its stdout
LOG_TAIL = 6  # TensorFlow log lines kept for a failed row


# --- what a config looks like on the way to a child ----------------------------------------------


def isolation_blocker(config: CompressConfig) -> str | None:
    """Why ``config`` cannot be sent to a child process (``None``: it can)."""
    if config.data is not None and not isinstance(config.data, (str, Path)):
        return "the data is an in-memory Dataset, not a path"
    unimportable = [name for name, obj in config.custom_objects.items() if _module_path(obj) is None]
    if unimportable:
        return (f"custom object(s) {', '.join(unimportable)} are defined in __main__ (a notebook or script), not in "
                "a module a fresh process can import")
    return None


def _module_path(obj: Any) -> str | None:
    module, name = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
    return None if not module or not name or module == "__main__" or "<" in name else f"{module}:{name}"


def config_to_json(config: CompressConfig) -> dict[str, Any]:
    """The fields of a :class:`CompressConfig` as JSON values; custom objects by module path (see
    :func:`isolation_blocker`)."""
    values: dict[str, Any] = {}
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if field.name == "progress":
            continue
        if field.name == "custom_objects":
            value = {name: _module_path(obj) for name, obj in value.items()}
        elif field.name == "recipes":
            value = [str(r) for r in value]
        elif isinstance(value, LayerPlan):
            value = value.to_dict()
        elif hasattr(value, "value"):
            value = value.value
        elif isinstance(value, Path):
            value = str(value)
        values[field.name] = value
    return values


def config_from_json(values: dict[str, Any], progress: Any) -> CompressConfig:
    """The inverse of :func:`config_to_json` (enum fields restored from their defaults' types)."""
    defaults = {f.name: f.default for f in dataclasses.fields(CompressConfig)}
    fields = {k: type(defaults[k])(v) if hasattr(defaults.get(k), "value") else v for k, v in values.items()}
    fields["custom_objects"] = {name: import_spec(spec, "custom object", "mypkg.layers:MyLayer")
                                for name, spec in (values.get("custom_objects") or {}).items()}
    return CompressConfig(**fields, progress=progress)


# --- the worker, seen from the parent --------------------------------------------------------------


class WorkerDied(Exception):
    """The worker process ended while making a recipe: killed by a signal, or timed out."""

    def __init__(self, how: str, stage: str, log: list[str], native: bool) -> None:
        super().__init__(how)
        self.how, self.stage, self.log, self.native = how, stage, log, native


class RecipeWorker:
    """One worker process: it loads the model once and makes the recipes it is sent, one at a time.

    Args:
        config: The run's options (their ``progress`` is not sent).
        recipes: Every recipe of the run (the worker checks their needs when it starts).
        env: Extra environment (``TF_ENABLE_ONEDNN_OPTS=0`` for a worker without oneDNN).
        on_line: Called with each progress line the worker writes.
        deterministic: Enable op determinism in the worker (it is seeded with ``config.seed`` either way).
    """

    def __init__(self, config: CompressConfig, recipes: list[str], env: dict[str, str],
                 on_line: Callable[[str], None], deterministic: bool = False) -> None:
        self.env, self.on_line, self.stage = env, on_line, "load the model and data"
        self.log: collections.deque[str] = collections.deque(maxlen=LOG_TAIL)
        self._answers: queue.Queue[str | None] = queue.Queue()
        payload = {"config": config_to_json(dataclasses.replace(config, latency_repeats=1, isolate=False)),
                   "recipes": recipes, "deterministic": deterministic}
        self._request = tempfile.NamedTemporaryFile("w", suffix=".json", prefix="tfdeploy-worker-", delete=False)
        with self._request:
            json.dump(payload, self._request)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tfdeploy.compression.worker", self._request.name], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=child_environment(env))
        for target, stream in ((self._read_answers, self.process.stdout), (self._read_stderr, self.process.stderr)):
            threading.Thread(target=target, args=(stream,), daemon=True).start()

    @property
    def onednn(self) -> bool:
        return onednn_enabled({**os.environ, **self.env})

    def _read_answers(self, stream: Any) -> None:
        with stream:
            for line in stream:
                if line.startswith(RESULT_PREFIX):
                    self._answers.put(line[len(RESULT_PREFIX):])
        self._answers.put(None)  # the worker's stdout closed: it ended

    def _read_stderr(self, stream: Any) -> None:
        with stream:
            for raw in stream:
                line = raw.rstrip("\n")
                if line.startswith(PROGRESS_PREFIX):
                    self.on_line(line[len(PROGRESS_PREFIX):])
                elif line.startswith(STAGE_PREFIX):
                    self.stage = line[len(STAGE_PREFIX):]
                elif line.strip():
                    self.log.append(line.strip()[:300])

    def make(self, recipe: str, timeout: float) -> dict[str, Any]:
        """Sends ``recipe`` and waits for what the worker made (or its error).

        Raises:
            WorkerDied: If the worker ends or exceeds ``timeout`` seconds first.
        """
        self.stage = "start"
        try:
            assert self.process.stdin is not None
            self.process.stdin.write(json.dumps({"recipe": recipe}) + "\n")
            self.process.stdin.flush()
        except (BrokenPipeError, OSError):
            pass  # it is gone: the answer queue says how
        try:
            answer = self._answers.get(timeout=timeout)
        except queue.Empty:
            self.close()
            raise WorkerDied(f"still running after {timeout:g} s (--recipe-timeout)", self.stage, list(self.log),
                             native=False) from None
        if answer is None:
            code = self.process.wait()
            how = f"killed by {describe_signal(-code)}" if code < 0 else f"ended with exit status {code}"
            raise WorkerDied(how, self.stage, list(self.log), native=code < 0)
        return json.loads(answer)

    def close(self) -> None:
        """Ends the worker (killing it if it does not end within 10 s)."""
        if self.process.poll() is None:
            try:
                assert self.process.stdin is not None
                self.process.stdin.close()
                self.process.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait()
        Path(self._request.name).unlink(missing_ok=True)


def start_worker(config: CompressConfig, recipes: list[str], env: dict[str, str] | None = None) -> RecipeWorker:
    """A worker for ``config``'s recipes, seeded like this process (started before this process loads the model,
    it loads in parallel)."""
    from tfdeploy.progress import as_progress
    from tfdeploy.runtime import op_determinism_enabled

    deterministic = "tensorflow" in sys.modules and op_determinism_enabled()
    return RecipeWorker(config, recipes, env or {}, as_progress(config.progress), deterministic)


class IsolatedRecipes:
    """Makes a session's recipes in worker processes and measures their artifacts in this one.

    A worker is started when the first recipe needs one and kept for the rest of the run; after a
    native crash it is replaced by one without oneDNN, and the recipe is made once more.
    """

    def __init__(self, session: CompressionSession, recipes: list[Recipe], worker: RecipeWorker | None = None) -> None:
        self.session, self.recipes = session, [str(r) for r in recipes]
        self.env: dict[str, str] = {}
        self.worker = worker
        self.notes: list[str] = []

    def _worker(self) -> RecipeWorker:
        if self.worker is None or self.worker.process.poll() is not None:
            self.worker = start_worker(self.session.config, self.recipes, self.env)
        return self.worker

    def run(self, recipe: Recipe, label: str = "") -> VariantReport:
        """Makes ``recipe`` in a worker (once more without oneDNN after a native crash) and measures it here."""
        name, session = self.session.name_of(recipe), self.session
        session.progress(f"{label}{name}: {recipe.spec.summary}")
        began, retried = time.perf_counter(), None
        while True:
            try:
                made = self._worker().make(str(recipe), session.config.recipe_timeout_s)
                break
            except WorkerDied as died:
                self.worker = None
                if not (died.native and onednn_enabled({**os.environ, **self.env})) or retried:
                    return self._failed(recipe, died, retried, time.perf_counter() - began)
                retried = died
                self.env = {ONEDNN_ENV: "0"}
                session.progress(f"  {name}: the worker was {died.how} in {died.stage}; making it again without "
                                 "oneDNN (TF_ENABLE_ONEDNN_OPTS=0)")
                self.notes.append(f"recipes from {name} on ran without oneDNN: the worker was {died.how} in "
                                  f"{died.stage} with it")
        if made.get("os_error"):
            raise OSError(*made["os_error"])
        if retried is not None:
            made.setdefault("notes", []).insert(0, _retry_note(retried))
        bridge_diff, bridge_notes = made.get("bridge") or (None, [])
        if bridge_diff is not None or bridge_notes:  # the worker made the tf_keras copy (or noted why not)
            session.made_elsewhere = (bridge_diff, bridge_notes)
        if made.get("error"):
            session.progress(f"  {name} FAILED: {made['error']}")
            return VariantReport(name=name, path=None, format=recipe.spec.output.value, status="failed",
                                 error=made["error"], seconds=time.perf_counter() - began,
                                 notes=[n for n in (made.get("detail"),) if n] + made.get("notes", []))
        return session.measure(name, self._artifact(made), time.perf_counter() - began)

    def _artifact(self, made: dict[str, Any]) -> Artifact:
        """What the worker made, with a predictor of its file made here (``None`` for a Flex model)."""
        config = self.session.config
        predictor = None if made["flex"] else predictor_for_file(
            made["path"], custom_objects=config.custom_objects, safe_mode=config.safe_mode)
        return Artifact(Path(made["path"]), predictor, None, made["notes"], made["layers"], made["training"],
                        sparsity=made["sparsity"], params=made["params"])

    def _failed(self, recipe: Recipe, died: WorkerDied, retried: WorkerDied | None, seconds: float) -> VariantReport:
        name = self.session.name_of(recipe)
        first = f"{_retry_note(retried)}, and then " if retried else ""
        error = (f"{first}the recipe's process was {died.how} in {died.stage}. {_advice(died)} "
                 f"TensorFlow's last lines: {' | '.join(died.log[-3:]) or 'none'}")
        self.session.progress(f"  {name} FAILED: {error}")
        return VariantReport(name=name, path=None, format=recipe.spec.output.value, status="failed", error=error,
                             seconds=seconds, notes=list(died.log))

    def close(self) -> None:
        if self.worker is not None:
            self.worker.close()


def _retry_note(died: WorkerDied) -> str:
    return (f"rerun without oneDNN after {died.how.removeprefix('killed by ').split(' (')[0]} in {died.stage} "
            "(TensorFlow's oneDNN CPU kernels crash on some models; TF_ENABLE_ONEDNN_OPTS=0 avoids them, and "
            "tfdeploy --no-onednn sets it from the start)")


def _advice(died: WorkerDied) -> str:
    if "SIGKILL" in died.how:
        return ("It was most likely out of memory: free memory, lower --batch-size or --calibration-samples, or run "
                "the recipe alone.")
    if not died.native:
        return "Raise --recipe-timeout, or run the recipe alone to see where it spends its time."
    return ("This is a crash inside TensorFlow (not a Python error): try another recipe for this model "
            "(ptq-dynamic and ptq-float16 do not train or calibrate), and report it with OUT/logs/tfdeploy.log.")
