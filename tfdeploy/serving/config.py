"""TF Serving configuration that avoids latency spikes when a new version is hot-loaded.

Generates a directory to mount into the official ``tensorflow/serving`` image:

* ``models.config`` — ``ModelServerConfig``: name, base path, platform, version policy, labels;
* ``platform_config.txt`` — ``PlatformConfigMap`` for the ``tensorflow`` platform with the
  spike fixes: ``enable_model_warmup: true`` (it defaults to false inside a platform config),
  ``model_warmup_options``, a dedicated load thread pool (``session_inter_op_thread_pool`` +
  ``session_run_load_threadpool_index``) so restore ops don't compete with requests, optional
  GPU ``allow_growth``, and the batching parameters (TF Serving ignores ``--enable_batching``
  when a platform config is given);
* ``batching_parameters.txt`` — ``BatchingParameters`` for ``--batching_parameters_file``;
* ``monitoring.config`` — Prometheus metrics (served on the REST port);
* ``run.sh`` (server flags), ``Dockerfile`` (jemalloc via ``LD_PRELOAD``), ``docker-compose.yml``,
  ``kserve.yaml`` (KServe ``InferenceService``), ``README.md``.

Every ``.config``/``.txt`` file is produced from protobuf messages and parsed back before it is
written (:mod:`tfdeploy.serving.schemas`).

Example:
    >>> from tfdeploy.serving.config import ServedModel, ServingConfig, write_serving_config
    >>> report = write_serving_config(ServingConfig([ServedModel("fashion", "models/fashion")], "serving"))  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import enum
import os
from pathlib import Path
from typing import Any, Sequence

from tfdeploy import backend, faults
from tfdeploy.errors import TfdeployError
from tfdeploy.files import staged_directory
from tfdeploy.report import Report

CONTAINER_MODELS = "/models"
CONTAINER_CONFIG = "/config"
JEMALLOC = "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"


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
        storage_uri: Where KServe finds the base dir (default: ``base_dir``).
    """

    name: str
    base_dir: str
    policy: VersionPolicy = VersionPolicy.LATEST
    versions: list[int] = dataclasses.field(default_factory=list)
    labels: dict[str, int] = dataclasses.field(default_factory=dict)
    storage_uri: str | None = None

    @property
    def container_path(self) -> str:
        return f"{CONTAINER_MODELS}/{self.name}"


@dataclasses.dataclass
class ServingConfig:
    """Options of :func:`write_serving_config`."""

    models: Sequence[ServedModel]
    out_dir: str | os.PathLike
    image: str = "tensorflow/serving:2.21.0"
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
    monitoring_path: str = "/monitoring/prometheus/metrics"
    overwrite: bool = False

    def validate(self) -> None:
        """Raises TfdeployError naming the first invalid field."""
        if not self.models:
            raise TfdeployError("Give at least one model (NAME=BASE_DIR). Received: models=[]")
        names = [m.name for m in self.models]
        if len(set(names)) != len(names):
            raise TfdeployError(f"Model names must be unique. Received: models={names}")
        for model in self.models:
            _validate_model(model)
        if self.enable_batching:
            sizes = list(self.allowed_batch_sizes)
            if sizes and (sizes != sorted(set(sizes)) or sizes[-1] != self.max_batch_size or sizes[0] < 1):
                raise TfdeployError(
                    "allowed_batch_sizes must be strictly increasing, positive and end at max_batch_size "
                    f"({self.max_batch_size}), as TF Serving requires. Received: allowed_batch_sizes={sizes}"
                )
        if self.rest_port == self.grpc_port:
            raise TfdeployError(f"The REST and gRPC ports must differ. Received: rest_port={self.rest_port}")
        for name in ("warmup_iterations", "warmup_threads", "num_load_threads", "num_unload_threads",
                     "load_pool_threads", "file_system_poll_wait_seconds"):
            if getattr(self, name) < 1:
                raise TfdeployError(f"{name} must be at least 1. Received: {name}={getattr(self, name)}")


def _validate_model(model: ServedModel) -> None:
    from tfdeploy.serving.export import existing_versions

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
    served = _served_versions(model, found)
    for label, version in model.labels.items():
        if version not in served:
            raise TfdeployError(
                f"Model {model.name!r}: label {label!r} points at version {version}, which the {model.policy.value} "
                f"policy does not load (serves {served}); TF Serving rejects labels of unavailable versions. "
                f"Received: labels={model.labels}"
            )


def _served_versions(model: ServedModel, found: list[int]) -> list[int]:
    if model.policy is VersionPolicy.SPECIFIC:
        return sorted(model.versions)
    if model.policy is VersionPolicy.ALL:
        return found
    return found[-(model.versions[0] if model.versions else 1):]


def model_server_config(config: ServingConfig) -> Any:
    """The ``ModelServerConfig`` proto for ``models.config``."""
    model_server_config_pb2 = backend.tf_proto("model_server_config_pb2")

    server = model_server_config_pb2.ModelServerConfig()
    for model in config.models:
        entry = server.model_config_list.config.add(name=model.name, base_path=model.container_path,
                                                     model_platform="tensorflow")
        policy = entry.model_version_policy
        if model.policy is VersionPolicy.LATEST:
            policy.latest.num_versions = model.versions[0] if model.versions else 1
        elif model.policy is VersionPolicy.SPECIFIC:
            policy.specific.versions.extend(sorted(model.versions))
        else:
            policy.all.SetInParent()
        for label, version in model.labels.items():
            entry.version_labels[label] = version
    return server


def batching_parameters(config: ServingConfig) -> Any:
    """The ``BatchingParameters`` proto."""
    from tfdeploy.serving.schemas import load_schemas

    params = load_schemas().BatchingParameters()
    params.max_batch_size.value = config.max_batch_size
    params.batch_timeout_micros.value = config.batch_timeout_micros
    params.max_enqueued_batches.value = config.max_enqueued_batches
    params.num_batch_threads.value = config.num_batch_threads
    params.allowed_batch_sizes.extend(config.allowed_batch_sizes)
    return params


def platform_config(config: ServingConfig) -> Any:
    """The ``PlatformConfigMap`` proto carrying the hot-update latency-spike fixes."""
    platform_config_pb2 = backend.tf_proto("platform_config_pb2")

    from tfdeploy.serving.schemas import load_schemas

    adapter = load_schemas().SavedModelBundleSourceAdapterConfig()
    legacy = adapter.legacy_config
    # Pool 0 serves requests (0 threads = sized by TF); pool 1 runs restore/init ops of loading versions.
    legacy.session_config.session_inter_op_thread_pool.add().num_threads = 0
    legacy.session_config.session_inter_op_thread_pool.add(num_threads=config.load_pool_threads,
                                                            global_name="tfdeploy_model_load")
    legacy.session_run_load_threadpool_index.value = 1
    if config.gpu_allow_growth:
        legacy.session_config.gpu_options.allow_growth = True
    legacy.enable_model_warmup = True
    legacy.model_warmup_options.num_request_iterations.value = config.warmup_iterations
    legacy.model_warmup_options.num_model_warmup_threads.value = config.warmup_threads
    if config.enable_batching:
        legacy.batching_parameters.CopyFrom(batching_parameters(config))
    platform = platform_config_pb2.PlatformConfigMap()
    platform.platform_configs["tensorflow"].source_adapter_config.Pack(adapter)
    return platform


def monitoring_config(config: ServingConfig) -> Any:
    """The ``MonitoringConfig`` proto (Prometheus on the REST port)."""
    from tfdeploy.serving.schemas import load_schemas

    monitoring = load_schemas().MonitoringConfig()
    monitoring.prometheus_config.enable = True
    monitoring.prometheus_config.path = config.monitoring_path
    return monitoring


def _text(message: Any) -> str:
    """Text format of ``message``, parsed back with the same schema to prove it round-trips."""
    from google.protobuf import text_format

    from tfdeploy.serving.schemas import load_schemas

    pool = load_schemas().pool
    text = text_format.MessageToString(message, descriptor_pool=pool)
    parsed = text_format.Parse(text, type(message)(), descriptor_pool=pool)
    if parsed != message:  # pragma: no cover - protobuf guarantees this
        raise TfdeployError(f"Generated {type(message).__name__} text does not round-trip.")
    return text


def server_flags(config: ServingConfig) -> list[str]:
    """``tensorflow_model_server`` flags for the generated files (paths inside the container)."""
    flags = [
        f"--port={config.grpc_port}",
        f"--rest_api_port={config.rest_port}",
        f"--model_config_file={CONTAINER_CONFIG}/models.config",
        f"--platform_config_file={CONTAINER_CONFIG}/platform_config.txt",
        f"--monitoring_config_file={CONTAINER_CONFIG}/monitoring.config",
        f"--num_load_threads={config.num_load_threads}",
        f"--num_unload_threads={config.num_unload_threads}",
        f"--file_system_poll_wait_seconds={config.file_system_poll_wait_seconds}",
    ]
    if config.enable_batching:
        # Read only without a platform config; kept so run.sh also works if that flag is removed.
        flags += ["--enable_batching=true", f"--batching_parameters_file={CONTAINER_CONFIG}/batching_parameters.txt"]
    return flags


def _run_sh(config: ServingConfig) -> str:
    flags = " \\\n  ".join(server_flags(config))
    return f"""#!/bin/sh
# Generated by tfdeploy. Starts TF Serving with the hot-update latency-spike fixes.
# jemalloc is preloaded by the Dockerfile (LD_PRELOAD); extra arguments are passed through.
set -e
exec tensorflow_model_server \\
  {flags} \\
  "$@"
"""


def _dockerfile(config: ServingConfig) -> str:
    return f"""# Generated by tfdeploy: the official TF Serving image plus jemalloc.
FROM {config.image}
# jemalloc: glibc malloc fragments and contends when versions load/unload under traffic.
RUN apt-get update \\
 && apt-get install -y --no-install-recommends libjemalloc2 \\
 && rm -rf /var/lib/apt/lists/*
ENV LD_PRELOAD={JEMALLOC}
COPY models.config platform_config.txt monitoring.config batching_parameters.txt run.sh {CONTAINER_CONFIG}/
EXPOSE {config.grpc_port} {config.rest_port}
ENTRYPOINT ["/bin/sh", "{CONTAINER_CONFIG}/run.sh"]
"""


def _compose(config: ServingConfig, out_dir: Path) -> str:
    volumes = "\n".join(
        f"      - {os.path.relpath(Path(m.base_dir).resolve(), out_dir.resolve())}:{m.container_path}:ro"
        for m in config.models)
    return f"""# Generated by tfdeploy. `docker compose up --build` from this directory.
services:
  tfserving:
    build: .
    ports:
      - "{config.grpc_port}:{config.grpc_port}"
      - "{config.rest_port}:{config.rest_port}"
    volumes:
{volumes}
    restart: unless-stopped
"""


def _kserve(config: ServingConfig) -> str:
    documents = []
    for model in config.models:
        documents.append(f"""apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata:
  name: {model.name.replace('_', '-').lower()}
spec:
  predictor:
    model:
      modelFormat:
        name: tensorflow
      # The model base dir with its numbered versions (upload it to object storage or a PVC).
      storageUri: {model.storage_uri or model.base_dir}
""")
    return "---\n".join(documents)


_README = """# TF Serving configuration (generated by tfdeploy)

Run: `docker compose up --build` (or build the Dockerfile and mount each model base dir at `/models/NAME`).

| file | read by | what it does |
|---|---|---|
| `models.config` | `--model_config_file` | ModelServerConfig: models, base paths, version policy, labels |
| `platform_config.txt` | `--platform_config_file` | SessionBundleConfig for the `tensorflow` platform: warmup on, load thread pool, batching |
| `batching_parameters.txt` | `--batching_parameters_file` (with `--enable_batching`) | BatchingParameters; ignored when a platform config is given, so they are also inside `platform_config.txt` |
| `monitoring.config` | `--monitoring_config_file` | Prometheus metrics at the REST port |
| `run.sh` | the container entrypoint | server flags: load/unload threads, poll interval, ports |
| `Dockerfile` | docker | official image + jemalloc (`LD_PRELOAD`) |
| `kserve.yaml` | kubectl | KServe InferenceService per model |

Why each fix is there (latency spikes when a new version is hot-loaded):
- **Warmup** (`enable_model_warmup: true`, the `assets.extra/tf_serving_warmup_requests` file): TF initialises
  lazily (graph optimisation, kernel selection, memory pools) on the first requests; replaying warmup records
  before the version is marked available moves that cost off the request path. Inside a platform config
  `enable_model_warmup` defaults to false, so it is set explicitly.
- **Load thread pool** (`session_inter_op_thread_pool` #1 + `session_run_load_threadpool_index: 1`): restoring
  variables and running init ops of the new version otherwise uses the same inter-op pool as live requests.
- **`--num_load_threads` / `--num_unload_threads`**: loading and unloading run in their own threads instead of the
  manager thread, so a slow load does not block unloading or other models.
- **jemalloc**: loads and unloads allocate and free large buffers while requests allocate small ones; glibc
  malloc contends and fragments, jemalloc keeps per-thread arenas.
"""


@dataclasses.dataclass
class ServingConfigReport(Report):
    """Files written by :func:`write_serving_config`."""

    out_dir: str
    files: list[str]
    models: list[str]
    flags: list[str]


@faults.boundary("serving-config", where="out_dir")
def write_serving_config(config: ServingConfig) -> ServingConfigReport:
    """Writes the TF Serving configuration directory (atomically).

    Args:
        config: A :class:`ServingConfig`.

    Returns:
        A :class:`ServingConfigReport`.

    Raises:
        TfdeployError: For invalid options (names the field) or an existing ``out_dir``
            without ``overwrite``.

    Example:
        >>> write_serving_config(ServingConfig([ServedModel("m", "models/m")], "serving")).files  # doctest: +SKIP
        ['models.config', 'platform_config.txt', ...]
    """
    config.validate()
    out = Path(config.out_dir)
    if out.exists() and not out.is_dir():
        raise TfdeployError(f"--out must be a directory, but a file is there; choose another path or remove the file. "
                            f"Received: out_dir={str(out)!r}")
    if out.exists() and any(out.iterdir()) and not config.overwrite:
        raise TfdeployError(f"The output directory is not empty; pass --overwrite. Received: out_dir={str(out)!r}")
    contents = {
        "models.config": _text(model_server_config(config)),
        "platform_config.txt": _text(platform_config(config)),
        "batching_parameters.txt": _text(batching_parameters(config)),
        "monitoring.config": _text(monitoring_config(config)),
        "run.sh": _run_sh(config),
        "Dockerfile": _dockerfile(config),
        "docker-compose.yml": _compose(config, out),
        "kserve.yaml": _kserve(config),
        "README.md": _README,
    }
    with staged_directory(out, overwrite=True) as publication:
        for name, text in contents.items():
            (publication.staging / name).write_text(text)
        (publication.staging / "run.sh").chmod(0o755)
    return ServingConfigReport(out_dir=str(out), files=sorted(contents), models=[m.name for m in config.models],
                               flags=server_flags(config))
