"""What the generated TF Serving configuration serves: the models, their version policy, the server's options.

Example:
    >>> config = ServingConfig([ServedModel("fashion", "models/fashion")], "serving")
    >>> config.validate()       # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import enum
import os
from typing import Sequence

from tfdeploy.errors import TfdeployError
from tfdeploy.serving.versions import existing_versions

CONTAINER_MODELS = "/models"  # where each model's base dir is mounted inside the container
CONTAINER_CONFIG = "/config"  # where the generated files the container reads are copied
JEMALLOC = "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"
# jemalloc returns freed pages to the system after dirty_decay_ms (10 s by default) and only when the process allocates;
# its background thread purges on time, so an unloaded version's memory goes back within about a second.
JEMALLOC_DECAY_CONF = "background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0"
# jemalloc backs its memory with transparent huge pages: loading a GB of variables takes 512x fewer page faults.
JEMALLOC_THP_CONF = "thp:always"
SERVER_MALLOC_CONF = f"{JEMALLOC_DECAY_CONF},{JEMALLOC_THP_CONF}"  # what the generated Dockerfile sets
NO_ONEDNN_WHY = ("TF_ENABLE_ONEDNN_OPTS=0: TensorFlow's oneDNN CPU kernels crash natively on this model on some CPUs "
                 "(tfdeploy verify saw it crash with them and serve without them)")
# The newest tensorflow/serving release with a published server image. The server is released separately from the
# Python wheels: tensorflow-serving-api 2.21.0 (the client protos tfdeploy installs) does not mean a 2.21.0 server
# image exists. Raise this when a newer image is on Docker Hub; `--image` overrides it.
TF_SERVING_IMAGE = "tensorflow/serving:2.20.0"
# Tag given to the image built from the generated Dockerfile (docker-compose.yml, kserve.yaml's ServingRuntime).
BUILT_IMAGE = "tfdeploy-serving:latest"

# Options that TF Serving needs to be at least 1.
_AT_LEAST_ONE = ("warmup_iterations", "warmup_threads", "num_load_threads", "num_unload_threads",
                 "load_pool_threads", "file_system_poll_wait_seconds")


class VersionPolicy(str, enum.Enum):
    """Which versions TF Serving keeps loaded (``model_version_policy`` in ``models.config``)."""

    LATEST = "latest"
    SPECIFIC = "specific"
    ALL = "all"


@dataclasses.dataclass
class ServedModel:
    """One model of ``models.config``.

    Attributes:
        name: Model name clients use.
        base_dir: Host directory with the numbered versions.
        policy: Version policy.
        versions: For ``specific``: the versions to serve; for ``latest``: ``[N]`` keeps N.
        labels: Version labels, e.g. ``{"stable": 1, "canary": 2}``.
        storage_uri: KServe's ``storageUri`` for the base dir (``gs://``, ``s3://``, ``pvc://``, ...);
            default: ``base_dir``, a local path that has to be uploaded first (the report warns).
    """

    name: str
    base_dir: str
    policy: VersionPolicy = VersionPolicy.LATEST
    versions: list[int] = dataclasses.field(default_factory=list)
    labels: dict[str, int] = dataclasses.field(default_factory=dict)
    storage_uri: str | None = None

    @property
    def container_path(self) -> str:
        """Where the container sees this model's base dir (``/models/NAME``)."""
        return f"{CONTAINER_MODELS}/{self.name}"


@dataclasses.dataclass
class ServingConfig:
    """Options of :func:`~tfdeploy.serving.config.write_serving_config`.

    Attributes:
        models: The models to serve.
        out_dir: The directory to write.
        image: TF Serving image the Dockerfile builds FROM (a published ``tensorflow/serving`` release).
        built_image: Name given to the image built from the generated Dockerfile: docker-compose.yml tags
            the build with it and kserve.yaml's ServingRuntime runs it, so push it to a registry the
            cluster can pull from, e.g. ``ghcr.io/ORG/tfdeploy-serving:1``.
        grpc_port: TF Serving's gRPC port (``--port``) under Docker.
        rest_port: TF Serving's REST port (``--rest_api_port``) under Docker; it also serves the metrics.
        enable_batching: Server-side batching.
        max_batch_size: Largest batch the server forms.
        allowed_batch_sizes: Batch sizes batches are padded to; increasing, ending at ``max_batch_size``.
        batch_timeout_micros: How long the server waits to fill a batch.
        max_enqueued_batches: Batches queued before requests are refused.
        num_batch_threads: Threads running batches.
        num_load_threads: Threads loading versions (``--num_load_threads``).
        num_unload_threads: Threads unloading versions (``--num_unload_threads``).
        load_pool_threads: Threads of the dedicated model-load pool.
        file_system_poll_wait_seconds: How often the server looks for new versions.
        warmup_iterations: Server-side replays of each warmup record (``num_request_iterations``).
        warmup_threads: Threads replaying warmup records.
        gpu_allow_growth: ``allow_growth`` in the session config (GPU servers).
        monitoring_path: Where Prometheus metrics are served on the REST port.
        memory_limit: The container's memory limit, a Kubernetes quantity such as ``8Gi``: written to
            kserve.yaml and docker-compose.yml, and checked against what a hot update needs (the
            report warns when it cannot hold one). ``None``: kserve.yaml asks for that need.
        onednn: TensorFlow's oneDNN CPU kernels in the server (``--no-onednn`` sets
            ``TF_ENABLE_ONEDNN_OPTS=0`` in run.sh, the Dockerfile, Compose and the KServe runtime: for a
            model ``verify`` found crashing with them).
        overwrite: Replace a non-empty ``out_dir``.

    Example:
        >>> ServingConfig([ServedModel("fashion", "models/fashion")], "serving").image
        'tensorflow/serving:2.20.0'
    """

    models: Sequence[ServedModel]
    out_dir: str | os.PathLike
    image: str = TF_SERVING_IMAGE
    built_image: str = BUILT_IMAGE
    grpc_port: int = 8500
    rest_port: int = 8501
    enable_batching: bool = False
    max_batch_size: int = 32
    allowed_batch_sizes: Sequence[int] = (1, 8, 32)
    batch_timeout_micros: int = 2000
    max_enqueued_batches: int = 100
    num_batch_threads: int = 2
    num_load_threads: int = 2
    num_unload_threads: int = 2
    load_pool_threads: int = 2
    file_system_poll_wait_seconds: int = 30
    warmup_iterations: int = 1
    warmup_threads: int = 1
    gpu_allow_growth: bool = False
    memory_limit: str | None = None
    onednn: bool = True
    monitoring_path: str = "/monitoring/prometheus/metrics"
    overwrite: bool = False

    def validate(self) -> None:
        """Raises TfdeployError naming the first invalid field.

        Example:
            >>> ServingConfig([ServedModel("fashion", "models/fashion")], "serving", rest_port=8500).validate()  # doctest: +SKIP
            Traceback (most recent call last):
            TfdeployError: The REST and gRPC ports must differ. Received: rest_port=8500
        """
        if not self.models:
            raise TfdeployError("Give at least one model (NAME=BASE_DIR). Received: models=[]")
        names = [m.name for m in self.models]
        if len(set(names)) != len(names):
            raise TfdeployError(f"Model names must be unique. Received: models={names}")
        for model in self.models:
            validate_model(model)
        if self.enable_batching:
            sizes = list(self.allowed_batch_sizes)
            if sizes and (sizes != sorted(set(sizes)) or sizes[-1] != self.max_batch_size or sizes[0] < 1):
                raise TfdeployError(
                    "allowed_batch_sizes must be strictly increasing, positive and end at max_batch_size "
                    f"({self.max_batch_size}), as TF Serving requires. Received: allowed_batch_sizes={sizes}"
                )
        for name in ("image", "built_image"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value or any(c.isspace() for c in value):
                raise TfdeployError(f"{name} must be an image name such as registry.example.com/team/name:tag, "
                                    f"without spaces. Received: {name}={value!r}")
        if self.memory_limit is not None:
            from tfdeploy.serving.memory import parse_memory

            parse_memory(self.memory_limit)
        if self.rest_port == self.grpc_port:
            raise TfdeployError(f"The REST and gRPC ports must differ. Received: rest_port={self.rest_port}")
        for name in _AT_LEAST_ONE:
            if getattr(self, name) < 1:
                raise TfdeployError(f"{name} must be at least 1. Received: {name}={getattr(self, name)}")


def validate_model(model: ServedModel) -> None:
    """Checks a model's name, versions and labels against its base dir, as TF Serving would.

    Args:
        model: The :class:`ServedModel`.

    Raises:
        TfdeployError: For a bad name, no numbered versions, missing specific versions, or a label
            on a version the policy does not load.

    Example:
        >>> validate_model(ServedModel("fashion", "models/fashion", labels={"stable": 1}))   # doctest: +SKIP
    """
    if not model.name or "/" in model.name:
        raise TfdeployError(f"A model name is a non-empty name without '/'. Received: name={model.name!r}")
    found = existing_versions(model.base_dir)
    if not found:
        raise TfdeployError(
            f"No numbered version directory under the base dir of model {model.name!r}; export one first. "
            f"Received: base_dir={model.base_dir!r}"
        )
    if model.policy is VersionPolicy.SPECIFIC:
        if not model.versions:
            raise TfdeployError(f"The specific policy needs versions. Received: model={model.name!r}, versions=[]")
        missing = sorted(set(model.versions) - set(found))
        if missing:
            raise TfdeployError(f"Model {model.name!r}: versions {missing} do not exist (found {found}). "
                                f"Received: versions={model.versions}")
    served = served_versions(model, found)
    for label, version in model.labels.items():
        if version not in served:
            raise TfdeployError(
                f"Model {model.name!r}: label {label!r} points at version {version}, which the {model.policy.value} "
                f"policy does not load (serves {served}); TF Serving rejects labels of unavailable versions. "
                f"Received: labels={model.labels}"
            )


def served_versions(model: ServedModel, found: list[int]) -> list[int]:
    """The versions ``model``'s policy loads, out of the ``found`` ones.

    Example:
        >>> served_versions(ServedModel("m", "models/m"), [1, 2, 3])
        [3]
    """
    if model.policy is VersionPolicy.SPECIFIC:
        return sorted(model.versions)
    if model.policy is VersionPolicy.ALL:
        return found
    return found[-(model.versions[0] if model.versions else 1):]
