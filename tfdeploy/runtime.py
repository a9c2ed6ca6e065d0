"""Configure TensorFlow for deployment: GPU memory, seeds, op determinism, environment facts.

Call these before any model is built or loaded: TensorFlow fixes GPU settings the moment it
initialises its devices.

Example:
    >>> import tfdeploy
    >>> print(tfdeploy.configure_gpus(memory_growth=True))     # doctest: +SKIP
    gpus            0
    ...
    >>> tfdeploy.seed_everything(42, deterministic_ops=True)   # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import os
import platform
import random
from typing import Any, Iterable, Sequence

from tfdeploy import backend
from tfdeploy.errors import TfdeployError
from tfdeploy.report import Report


@dataclasses.dataclass
class GpuReport(Report):
    """What :func:`configure_gpus` found and did."""

    gpus: list[str]
    memory_growth: bool | None
    memory_limit_mb: int | None
    already_configured: bool
    message: str

    def rows(self) -> Iterable[Sequence[Any]]:
        return [
            ("gpus", len(self.gpus)),
            ("devices", self.gpus),
            ("memory growth", self.memory_growth),
            ("memory limit (MB)", self.memory_limit_mb),
            ("", self.message),
        ]


def _current_gpu_settings(tf: Any, gpu: Any) -> tuple[bool, int | None]:
    growth = bool(tf.config.experimental.get_memory_growth(gpu))
    logical = tf.config.get_logical_device_configuration(gpu) or []
    limit = getattr(logical[0], "memory_limit", None) if len(logical) == 1 else None
    return growth, limit


def configure_gpus(memory_growth: bool = True, memory_limit_mb: int | None = None) -> GpuReport:
    """Sets memory growth (or a hard memory limit) on every GPU TensorFlow sees.

    TensorFlow requires the same memory-growth setting on all GPUs, so the setting is applied
    to each of them. A memory limit replaces memory growth: TensorFlow cannot combine them.
    On a machine without a GPU nothing is changed and the report says so.

    Calling it again with the same settings after TensorFlow has initialised (a re-run notebook
    cell) is a no-op.

    Args:
        memory_growth: Allocate GPU memory as needed instead of all at start-up.
        memory_limit_mb: Cap each GPU at this many MB (a virtual device per GPU).

    Returns:
        A :class:`GpuReport`.

    Raises:
        TfdeployError: If the limit is not positive, or TensorFlow has already initialised
            the GPUs with different settings.

    Example:
        >>> report = configure_gpus(memory_growth=True)   # doctest: +SKIP
        >>> report.gpus
        []
    """
    if memory_limit_mb is not None and memory_limit_mb <= 0:
        raise TfdeployError(
            f"The GPU memory limit must be a positive number of MB. Received: memory_limit_mb={memory_limit_mb}"
        )
    tf = backend.tf()
    gpus = tf.config.list_physical_devices("GPU")
    names = [gpu.name for gpu in gpus]
    growth = None if memory_limit_mb is not None else memory_growth
    if not gpus:
        return GpuReport(
            gpus=[], memory_growth=None, memory_limit_mb=None, already_configured=False,
            message="No GPU visible to TensorFlow: running on CPU, nothing to configure.",
        )
    try:
        for gpu in gpus:
            if memory_limit_mb is not None:
                tf.config.set_logical_device_configuration(
                    gpu, [tf.config.LogicalDeviceConfiguration(memory_limit=memory_limit_mb)]
                )
            else:
                tf.config.experimental.set_memory_growth(gpu, memory_growth)
    except RuntimeError as exc:
        current = [_current_gpu_settings(tf, gpu) for gpu in gpus]
        wanted_limit = memory_limit_mb
        if all(limit == wanted_limit and (growth is None or g == growth) for g, limit in current):
            return GpuReport(
                gpus=names, memory_growth=growth, memory_limit_mb=memory_limit_mb,
                already_configured=True,
                message="TensorFlow had already initialised the GPUs with these settings: nothing changed.",
            )
        raise TfdeployError(
            "TensorFlow has already initialised the GPUs, so their memory settings can no longer "
            f"change (current: {[{'memory_growth': g, 'memory_limit_mb': l} for g, l in current]}). "
            "Call tfdeploy.configure_gpus() before building or loading any model or running any "
            "TensorFlow op, or restart the Python process / notebook kernel. "
            f"Received: memory_growth={memory_growth}, memory_limit_mb={memory_limit_mb} "
            f"(TensorFlow said: {exc})"
        ) from exc
    what = f"memory_limit_mb={memory_limit_mb}" if memory_limit_mb is not None else f"memory_growth={memory_growth}"
    return GpuReport(
        gpus=names, memory_growth=growth, memory_limit_mb=memory_limit_mb, already_configured=False,
        message=f"Set {what} on {len(gpus)} GPU(s).",
    )


@dataclasses.dataclass
class SeedReport(Report):
    """What :func:`seed_everything` seeded."""

    seed: int
    seeded: list[str]
    op_determinism: bool
    note: str = (
        "PYTHONHASHSEED only affects Python processes started after this call "
        "(hash randomisation is fixed when an interpreter starts)."
    )


def seed_everything(seed: int, deterministic_ops: bool = False) -> SeedReport:
    """Seeds every random generator a Keras/TF run draws from.

    Seeds Python's ``random``, NumPy, TensorFlow's global seed, Keras 3 and tf_keras
    (``set_random_seed``), and sets ``PYTHONHASHSEED`` — which only affects subprocesses
    started afterwards. With ``deterministic_ops`` it also enables TensorFlow op determinism
    (slower on GPU; ops without a deterministic kernel then raise instead of varying).

    Args:
        seed: A non-negative integer.
        deterministic_ops: Also call ``tf.config.experimental.enable_op_determinism()``.

    Returns:
        A :class:`SeedReport` listing what was seeded.

    Raises:
        TfdeployError: If ``seed`` is negative or too large for NumPy.

    Example:
        >>> seed_everything(42).seeded      # doctest: +SKIP
        ['random', 'PYTHONHASHSEED', 'numpy', 'tensorflow', 'keras', 'tf_keras']
    """
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**32:
        raise TfdeployError(f"The seed must be an integer in [0, 2**32). Received: seed={seed!r}")
    import numpy as np

    random.seed(seed)
    os.environ["PYTHONHASHSEED"] = str(seed)
    np.random.seed(seed)
    tf = backend.tf()
    tf.random.set_seed(seed)
    backend.keras3().utils.set_random_seed(seed)
    backend.tf_keras().utils.set_random_seed(seed)
    if deterministic_ops:
        tf.config.experimental.enable_op_determinism()
    return SeedReport(
        seed=seed,
        seeded=["random", "PYTHONHASHSEED", "numpy", "tensorflow", "keras", "tf_keras"],
        op_determinism=op_determinism_enabled(),
    )


def op_determinism_enabled() -> bool:
    """Whether TensorFlow op determinism is on in this process."""
    return bool(backend.tf_internal("framework_config").is_op_determinism_enabled())


@dataclasses.dataclass
class EnvironmentReport(Report):
    """Versions and device facts, the block users paste into bug reports."""

    tfdeploy: str
    python: str
    platform: str
    tensorflow: str | None
    keras: str | None
    tf_keras: str | None
    tensorflow_model_optimization: str | None
    tensorflow_serving_api: str | None
    gpus: list[dict[str, Any]]
    op_determinism: bool
    tf_use_legacy_keras: str | None
    cuda_build: bool
    onednn: bool = True
    onednn_setting: str = ""


def environment_report() -> EnvironmentReport:
    """Collects versions of the stack, the GPUs TF sees with memory growth, op determinism.

    Example:
        >>> print(environment_report())     # doctest: +SKIP
    """
    import tfdeploy

    tf = backend.tf()
    gpus = [
        {"name": gpu.name, "memory_growth": bool(tf.config.experimental.get_memory_growth(gpu))}
        for gpu in tf.config.list_physical_devices("GPU")
    ]
    return EnvironmentReport(
        tfdeploy=tfdeploy.__version__,
        python=platform.python_version(),
        platform=platform.platform(),
        tensorflow=tf.__version__,
        keras=backend.version_of("keras"),
        tf_keras=backend.version_of("tf-keras"),
        tensorflow_model_optimization=backend.version_of("tensorflow-model-optimization"),
        tensorflow_serving_api=backend.version_of("tensorflow-serving-api"),
        gpus=gpus,
        op_determinism=op_determinism_enabled(),
        tf_use_legacy_keras=os.environ.get("TF_USE_LEGACY_KERAS"),
        cuda_build=bool(tf.test.is_built_with_cuda()),
        onednn=bool(backend.tf_internal("util_port").IsMklEnabled()),
        onednn_setting=f"TF_ENABLE_ONEDNN_OPTS={os.environ.get('TF_ENABLE_ONEDNN_OPTS', '(unset: on by default)')}",
    )
