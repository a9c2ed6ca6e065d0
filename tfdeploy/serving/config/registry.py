"""The registry of generated TF Serving files: one builder and one :class:`ServingFile` entry per file.

:data:`SERVING_FILES` declares every file of the serving directory once: its name, what it is for,
what reads it, the function building it from a :class:`ServingConfig`, whether the container
reads it (the Dockerfile copies it to ``/config``), whether it is protobuf text (written only after
parsing back against its schema), and the server flags it implies. Everything that lists files is
derived from the registry: the Dockerfile's ``COPY`` line, ``run.sh``'s flags
(:func:`server_flags`), the KServe runtime's arguments (the same flags with KServe's ports and
model flags), the generated README's file table and the report's file list.

Adding a file is one builder plus one entry, e.g. an SSL config the server reads::

    def _ssl_config(config: ServingConfig) -> Any:
        ...  # return the SSLConfig message

    ServingFile("ssl.config", "TLS certificate and key of the gRPC port", "`--ssl_config_file`",
                _ssl_config, in_container=True, proto=True, flags=("--ssl_config_file={path}",)),

The registry is checked when this module is imported (:func:`validate_registry`).

Example:
    >>> [f.name for f in SERVING_FILES if f.in_container]
    ['models.config', 'platform_config.txt', 'monitoring.config', 'batching_parameters.txt', 'run.sh']
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Callable, Sequence

from tfdeploy.errors import TfdeployError
from tfdeploy.serving.config import kserve
from tfdeploy.serving.memory import parse_memory
from tfdeploy.serving.config.options import (CONTAINER_CONFIG, CONTAINER_MODELS, JEMALLOC, NO_ONEDNN_WHY, SERVER_MALLOC_CONF,
                                             ServingConfig)
from tfdeploy.serving.config.protos import (batching_parameters, model_server_config, monitoring_config,
                                            platform_config, proto_text)

RUN_SCRIPT = "run.sh"  # the container's entrypoint
MODELS_FILE = "models.config"  # its flags name the served models; KServe's runtime replaces them


@dataclasses.dataclass(frozen=True)
class ServingFile:
    """One generated file of the serving directory.

    Attributes:
        name: File name in the output directory.
        purpose: What it does, in one line (the generated README's table).
        read_by: What reads it (the generated README's table), e.g. ``` `--model_config_file` ```.
        build: ``ServingConfig -> str`` (the file's text), or the protobuf message when ``proto``.
        in_container: The server reads it: the Dockerfile copies it to ``/config``.
        proto: ``build`` returns a protobuf message, written in text format after parsing it back
            against the same schema.
        flags: ``tensorflow_model_server`` flags it implies; ``{path}`` stands for its path in the
            container (needs ``in_container``).
        flags_when: When the flags apply (``None``: always); the file is written either way.
        executable: Written with mode 0755.
    """

    name: str
    purpose: str
    read_by: str
    build: Callable[[ServingConfig], Any]
    in_container: bool
    proto: bool
    flags: tuple[str, ...] = ()
    flags_when: Callable[[ServingConfig], bool] | None = None
    executable: bool = False

    @property
    def container_path(self) -> str:
        """Where the container reads it (``/config/NAME``)."""
        return f"{CONTAINER_CONFIG}/{self.name}"

    def server_flags(self, config: ServingConfig) -> list[str]:
        """The flags this file implies for ``config`` (none if ``flags_when`` says no).

        Example:
            >>> SERVING_FILES[0].server_flags(config)      # doctest: +SKIP
            ['--model_config_file=/config/models.config']
        """
        if self.flags_when is not None and not self.flags_when(config):
            return []
        return [flag.format(path=self.container_path) for flag in self.flags]

    def render(self, config: ServingConfig) -> str:
        """The file's text for ``config`` (protobuf text checked by parsing it back).

        Raises:
            TfdeployError: If the builder returned the wrong kind of value for the entry.

        Example:
            >>> next(f for f in SERVING_FILES if f.name == "run.sh").render(config).startswith("#!/bin/sh")  # doctest: +SKIP
            True
        """
        built = self.build(config)
        if self.proto:
            if not hasattr(built, "DESCRIPTOR"):
                raise TfdeployError(f"The builder of {self.name} must return a protobuf message (proto=True). "
                                    f"Received: type={type(built).__name__}")
            return proto_text(built)
        if not isinstance(built, str):
            raise TfdeployError(f"The builder of {self.name} must return the file's text. "
                                f"Received: type={type(built).__name__}")
        return built


def server_flags(config: ServingConfig, grpc_port: int | None = None, rest_port: int | None = None,
                 model_flags: Sequence[str] | None = None) -> list[str]:
    """``tensorflow_model_server`` flags (paths inside the container): ports, each file's flags, load threads.

    ``run.sh`` passes them as they are; KServe's runtime passes them with its own ports and, instead
    of ``models.config``'s flag, one model by name (:data:`~tfdeploy.serving.config.kserve.MODEL_FLAGS`).

    Args:
        config: The serving options.
        grpc_port: ``--port`` (default: ``config.grpc_port``).
        rest_port: ``--rest_api_port`` (default: ``config.rest_port``).
        model_flags: Flags replacing those of :data:`MODELS_FILE` (default: keep them).

    Raises:
        TfdeployError: If ``model_flags`` are given but no :data:`MODELS_FILE` is registered.

    Example:
        >>> server_flags(ServingConfig([], "serving"))[:3]
        ['--port=8500', '--rest_api_port=8501', '--model_config_file=/config/models.config']
        >>> server_flags(ServingConfig([], "serving"), 9000, 8080, ["--model_base_path=/mnt/models"])[:3]
        ['--port=9000', '--rest_api_port=8080', '--model_base_path=/mnt/models']
    """
    flags = [f"--port={config.grpc_port if grpc_port is None else grpc_port}",
             f"--rest_api_port={config.rest_port if rest_port is None else rest_port}"]
    for file in SERVING_FILES:
        replaced = model_flags is not None and file.name == MODELS_FILE
        flags += list(model_flags) if replaced else file.server_flags(config)
    if model_flags is not None and MODELS_FILE not in [file.name for file in SERVING_FILES]:
        raise TfdeployError(f"The model flags replace those of {MODELS_FILE}, which is not registered. "
                            f"Received: model_flags={list(model_flags)}")
    return flags + [
        f"--num_load_threads={config.num_load_threads}",
        f"--num_unload_threads={config.num_unload_threads}",
        f"--file_system_poll_wait_seconds={config.file_system_poll_wait_seconds}",
    ]


def container_files() -> list[str]:
    """Names of the files the container reads, in registry order (the Dockerfile copies them).

    Example:
        >>> container_files()[-1]
        'run.sh'
    """
    return [file.name for file in SERVING_FILES if file.in_container]


def _run_sh(config: ServingConfig) -> str:
    flags = " \\\n  ".join(server_flags(config))
    onednn = "" if config.onednn else f"# {NO_ONEDNN_WHY}.\nexport TF_ENABLE_ONEDNN_OPTS=0\n"
    return f"""#!/bin/sh
# Generated by tfdeploy. Starts TF Serving with the hot-update latency-spike fixes.
# jemalloc is preloaded by the Dockerfile (LD_PRELOAD); extra arguments are passed through.
set -e
{onednn}exec tensorflow_model_server \\
  {flags} \\
  "$@"
"""


_MALLOC_CONF_WHY = """# jemalloc's options, measured on a 1.2 GB ranker hot-swapped under traffic (tfdeploy bench --hot-swap --ablation,
# docs/benchmarks.md): a 1 s decay purged by a background thread gives an unloaded version's pages back within about a
# second (jemalloc's default waits 10 s, and only while the process allocates); huge pages (thp:always) make loading a
# GB of variables take 512x fewer page faults, and the requests served meanwhile stalled less."""


def _dockerfile(config: ServingConfig) -> str:
    return f"""# Generated by tfdeploy: the official TF Serving image plus jemalloc.
FROM {config.image}
# jemalloc: glibc malloc fragments and contends when versions load/unload under traffic.
RUN apt-get update \\
 && apt-get install -y --no-install-recommends libjemalloc2 \\
 && rm -rf /var/lib/apt/lists/*
ENV LD_PRELOAD={JEMALLOC}
{_MALLOC_CONF_WHY}
ENV MALLOC_CONF={SERVER_MALLOC_CONF}
{"" if config.onednn else f"# {NO_ONEDNN_WHY}.{chr(10)}ENV TF_ENABLE_ONEDNN_OPTS=0{chr(10)}"}COPY {" ".join(container_files())} {CONTAINER_CONFIG}/
EXPOSE {config.grpc_port} {config.rest_port}
ENTRYPOINT ["/bin/sh", "{CONTAINER_CONFIG}/{RUN_SCRIPT}"]
"""


def _docker_compose(config: ServingConfig) -> str:
    volumes = "\n".join(f"""      - type: bind
        source: {json.dumps(str(Path(m.base_dir).resolve()))}
        target: {m.container_path}
        read_only: true""" for m in config.models)
    return f"""# Generated by tfdeploy. The model base dirs are mounted by their absolute paths (resolved when this file was
# generated), so `docker compose -f /path/to/docker-compose.yml up --build` runs from any directory.
# The build is tagged {config.built_image} (--built-image); `docker compose push` pushes it for kserve.yaml.
services:
  tfserving:
    build: .
    image: {json.dumps(config.built_image)}
    ports:
      - "{config.grpc_port}:{config.grpc_port}"
      - "{config.rest_port}:{config.rest_port}"
    volumes:
{volumes}
{_compose_environment(config)}{_compose_memory(config)}    restart: unless-stopped
"""


def _compose_memory(config: ServingConfig) -> str:
    if config.memory_limit is None:
        return ""
    return f"""    mem_limit: {parse_memory(config.memory_limit)}  # --memory-limit {config.memory_limit}, in bytes
"""


def _compose_environment(config: ServingConfig) -> str:
    if config.onednn:
        return ""
    return f"""    environment:  # {NO_ONEDNN_WHY}
      TF_ENABLE_ONEDNN_OPTS: "0"
"""


def _kserve(config: ServingConfig) -> str:
    flags = server_flags(config, grpc_port=kserve.KSERVE_GRPC_PORT, rest_port=kserve.KSERVE_HTTP_PORT,
                         model_flags=kserve.MODEL_FLAGS)
    return kserve.kserve_yaml(config, flags)


_README_WHY = """Why each fix is there (latency spikes when a new version is hot-loaded):
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
- **`MALLOC_CONF` (1 s decay, background purging, huge pages)**: without it jemalloc keeps an unloaded version's
  pages for 10 s (longer when idle), and loading a GB of variables page-faults a 4 KB page at a time.
- **`TF_ENABLE_ONEDNN_OPTS=0` for GB-scale versions (`--no-onednn`)**: with oneDNN on, tensors come from its pooling
  allocator, which keeps what an unloaded version freed; on a 1.2 GB ranker resident memory grew by about a
  version and stayed there (drift 65-104 % after three swaps, 1-2 % with oneDNN off; docs/benchmarks.md).
  `serving-config` warns when a served version is large enough for this to matter.
"""


def _readme(config: ServingConfig) -> str:
    rows = "\n".join(f"| `{file.name}` | {file.read_by} | {file.purpose} |" for file in SERVING_FILES)
    return f"""# TF Serving configuration (generated by tfdeploy)

Run: `docker compose up --build` (or build the Dockerfile and mount each model base dir at `{CONTAINER_MODELS}/NAME`).

KServe: push the built image (`docker compose build && docker compose push`; it is tagged `{config.built_image}`),
upload each model base dir to the `storageUri` in `kserve.yaml`, then `kubectl apply -f kserve.yaml`.

| file | read by | what it does |
|---|---|---|
{rows}

{_README_WHY}"""



def _batching(config: ServingConfig) -> bool:
    return config.enable_batching


SERVING_FILES: tuple[ServingFile, ...] = (
    ServingFile(MODELS_FILE, "ModelServerConfig: models, base paths, version policy, labels",
                "`--model_config_file`", model_server_config, in_container=True, proto=True,
                flags=("--model_config_file={path}",)),
    ServingFile("platform_config.txt", "SessionBundleConfig for the `tensorflow` platform: warmup on, load thread "
                "pool, batching", "`--platform_config_file`", platform_config, in_container=True, proto=True,
                flags=("--platform_config_file={path}",)),
    ServingFile("monitoring.config", "Prometheus metrics at the REST port", "`--monitoring_config_file`",
                monitoring_config, in_container=True, proto=True, flags=("--monitoring_config_file={path}",)),
    # Read only without a platform config; the flags are kept so run.sh also works if that flag is removed.
    ServingFile("batching_parameters.txt", "BatchingParameters; ignored when a platform config is given, so they "
                "are also inside `platform_config.txt`", "`--batching_parameters_file` (with `--enable_batching`)",
                batching_parameters, in_container=True, proto=True,
                flags=("--enable_batching=true", "--batching_parameters_file={path}"), flags_when=_batching),
    ServingFile(RUN_SCRIPT, "server flags: load/unload threads, poll interval, ports", "the container entrypoint",
                _run_sh, in_container=True, proto=False, executable=True),
    ServingFile("Dockerfile", "official image + jemalloc (`LD_PRELOAD`)", "docker", _dockerfile,
                in_container=False, proto=False),
    ServingFile("docker-compose.yml", "builds and tags the Dockerfile's image, publishes the ports, mounts each "
                "model base dir (absolute path) read-only", "`docker compose`", _docker_compose, in_container=False,
                proto=False),
    ServingFile("kserve.yaml", "KServe ServingRuntime (the built image with these flags and files) and an "
                "InferenceService per model selecting it", "`kubectl apply`", _kserve, in_container=False, proto=False),
    ServingFile("README.md", "this table, and why each fix is there", "you", _readme, in_container=False,
                proto=False),
)


def _entry_problem(file: Any) -> str | None:
    """What is wrong with one registry entry, or ``None``."""
    if not isinstance(file, ServingFile):
        return f"is not a ServingFile ({type(file).__name__})"
    if not isinstance(file.name, str) or not file.name or "/" in file.name or file.name.startswith("."):
        return "needs a plain file name (no '/', no leading dot)"
    for field in ("purpose", "read_by"):
        value = getattr(file, field)
        if not isinstance(value, str) or not value.strip() or "\n" in value:
            return f"needs a one-line {field}"
    if not callable(file.build):
        return "needs a builder function (ServingConfig -> str or message)"
    for field in ("in_container", "proto", "executable"):
        if not isinstance(getattr(file, field), bool):
            return f"needs {field} True or False"
    if not isinstance(file.flags, tuple) or not all(isinstance(f, str) and f.startswith("--") for f in file.flags):
        return "needs flags as a tuple of '--flag' strings"
    if file.flags and not file.in_container:
        return "implies server flags but is not in the container"
    if file.flags_when is not None and (not file.flags or not callable(file.flags_when)):
        return "has flags_when without flags, or flags_when is not callable"
    return None


def validate_registry(files: Sequence[ServingFile]) -> None:
    """Checks the registry: every entry complete and consistent, names unique.

    Args:
        files: The entries (normally :data:`SERVING_FILES`).

    Raises:
        TfdeployError: Naming the first bad entry.

    Example:
        >>> validate_registry(SERVING_FILES)
    """
    for file in files:
        problem = _entry_problem(file)
        if problem:
            raise TfdeployError(f"Serving file entry {getattr(file, 'name', file)!r} {problem}. "
                                f"Received: entry={file!r}")
    names = [file.name for file in files]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise TfdeployError(f"Serving file names must be unique. Received: duplicates={duplicates}")


validate_registry(SERVING_FILES)
