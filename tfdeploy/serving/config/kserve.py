"""``kserve.yaml``: a KServe ``ServingRuntime`` running tfdeploy's TF Serving, and an ``InferenceService`` per model.

KServe's stock ``kserve-tensorflow-serving`` runtime starts ``tensorflow_model_server`` with fixed
arguments (``--model_name``, ``--port=9000``, ``--rest_api_port=8080``, ``--model_base_path=/mnt/models``),
so none of the platform config (warmup, load thread pool, batching), the monitoring config, the
load/unload threads or jemalloc would apply there. The generated ``ServingRuntime`` mirrors the
stock one (``config/runtimes/kserve-tensorflow-serving.yaml`` in KServe's repository) but runs the
image built from the generated Dockerfile (jemalloc preloaded, the config files in ``/config``)
with the server flags of ``run.sh``; only the port and model flags differ, because KServe routes
HTTP to port 8080 and copies one model's ``storageUri`` to ``/mnt/models``. Each
``InferenceService`` selects the runtime by name (``spec.predictor.model.runtime``).

The flags themselves come from the registry (:func:`tfdeploy.serving.config.registry.server_flags`),
which passes them to :func:`kserve_yaml`.

Example:
    >>> is_local_uri("models/fashion"), is_local_uri("gs://bucket/fashion")
    (True, False)
"""

from __future__ import annotations

import json
import re
import textwrap
from typing import Sequence

from tfdeploy.errors import TfdeployError
from tfdeploy.serving.config.memory import serving_need
from tfdeploy.serving.memory import kubernetes_quantity, size_text
from tfdeploy.serving.config.options import CONTAINER_CONFIG, NO_ONEDNN_WHY, ServedModel, ServingConfig, VersionPolicy

KSERVE_RUNTIME = "tfdeploy-tensorflow-serving"  # metadata.name of the ServingRuntime
KSERVE_MODEL_DIR = "/mnt/models"  # where KServe's storage initializer puts the storageUri's contents
KSERVE_HTTP_PORT = 8080  # the container port KServe routes HTTP (and scrapes metrics) to by default
KSERVE_GRPC_PORT = 9000  # the stock runtime's gRPC port
# Replace models.config's flag: the runtime serves one model, named after its InferenceService ({{.Name}}).
MODEL_FLAGS = ("--model_name={{.Name}}", f"--model_base_path={KSERVE_MODEL_DIR}")
# Schemes KServe's storage initializer copies (SupportedStorageURIPrefixList in KServe's
# pkg/controller/v1beta1/inferenceservice/utils/utils.go); file:// is a path inside the pod, not on this machine.
REMOTE_SCHEMES = ("gs", "s3", "pvc", "https", "http", "hdfs", "webhdfs", "oci", "oci+native", "oci+fetch", "hf")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


def storage_uri(model: ServedModel) -> str:
    """The model's ``storageUri``: ``--storage-uri``, or else its base dir.

    Example:
        >>> storage_uri(ServedModel("m", "models/m", storage_uri="s3://b/m"))
        's3://b/m'
    """
    return model.storage_uri or model.base_dir


def is_local_uri(uri: str) -> bool:
    """Whether ``uri`` is a path (no scheme, or ``file://``) that KServe cannot copy from this machine.

    Example:
        >>> is_local_uri("/data/models/m"), is_local_uri("file:///data/m"), is_local_uri("pvc://claim/m")
        (True, True, False)
    """
    match = _SCHEME.match(uri)
    return match is None or match.group(1).lower() == "file"


def kserve_name(name: str) -> str:
    """The Kubernetes name (lowercase letters, digits, '-', starting with a letter, ≤ 63) for a model name.

    Example:
        >>> kserve_name("Fashion_MNIST"), kserve_name("2025.model")
        ('fashion-mnist', 'model-2025-model')
    """
    cleaned = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")
    if not cleaned[:1].isalpha():
        cleaned = f"model-{cleaned}".rstrip("-")
    return cleaned[:63].rstrip("-")


def model_warnings(model: ServedModel) -> list[str]:
    """What does not carry over to KServe as given for ``model``: its storage, name or version policy.

    Example:
        >>> model_warnings(ServedModel("m", "gs://b/m"))
        []
    """
    warnings = []
    uri = storage_uri(model)
    if is_local_uri(uri):
        warnings.append(
            f"model {model.name!r} has a local storageUri ({uri}), which KServe's storage initializer cannot copy: "
            f"upload the base dir with its numbered versions first (object storage or a PVC) and pass "
            f"--storage-uri {model.name}=gs://BUCKET/{model.name} (or s3://, pvc://, https://, ...).")
    elif uri.split("://", 1)[0].lower() not in REMOTE_SCHEMES:
        warnings.append(f"model {model.name!r} has storageUri {uri}, whose scheme KServe's storage initializer does "
                        f"not copy (it takes {', '.join(s + '://' for s in REMOTE_SCHEMES)}); KServe refuses it "
                        f"unless a ClusterStorageContainer handles it.")
    if kserve_name(model.name) != model.name:
        warnings.append(f"model {model.name!r} is the InferenceService {kserve_name(model.name)!r} (a Kubernetes "
                        f"name); on KServe clients call it by that name.")
    if model.policy is not VersionPolicy.LATEST or model.versions or model.labels:
        warnings.append(f"the version policy and labels of model {model.name!r} are in models.config, which the "
                        f"KServe runtime does not read (it passes --model_base_path={KSERVE_MODEL_DIR}): there TF "
                        f"Serving serves the latest version.")
    return warnings


def kserve_warnings(config: ServingConfig) -> list[str]:
    """Every model's :func:`model_warnings`, prefixed ``kserve.yaml:``, for the report.

    Example:
        >>> kserve_warnings(ServingConfig([ServedModel("m", "models/m")], "serving"))[0][:48]
        "kserve.yaml: model 'm' has a local storageUri (m"
    """
    return [f"kserve.yaml: {warning}" for model in config.models for warning in model_warnings(model)]


def _comment(text: str, indent: str = "") -> str:
    lines = textwrap.wrap(text, 110 - len(indent), break_long_words=False, break_on_hyphens=False)
    return "\n".join(f"{indent}# {line}" for line in lines)


def _serving_runtime(config: ServingConfig, flags: Sequence[str]) -> str:
    args = "\n".join(f"        - {json.dumps(flag)}" for flag in flags)
    return f"""apiVersion: serving.kserve.io/v1alpha1
kind: ServingRuntime
metadata:
  name: {KSERVE_RUNTIME}
  annotations:
    serving.kserve.io/server-type: tensorflow-serving
spec:
  annotations:
    prometheus.kserve.io/port: "{KSERVE_HTTP_PORT}"
    prometheus.kserve.io/path: {json.dumps(config.monitoring_path)}
  supportedModelFormats:
    - name: tensorflow
      version: "2"
      autoSelect: false  # used by the InferenceServices below, which name it; never picked for others
  protocolVersions:
    - v1
    - grpc-v1
  containers:
    - name: kserve-container
      # The image built from ./Dockerfile (jemalloc preloaded, the config files in {CONTAINER_CONFIG}). It must be
      # pushed to a registry the cluster can pull from (`docker build -t IMAGE . && docker push IMAGE`, or
      # `docker compose build && docker compose push`); set its name with --built-image.
      image: {json.dumps(config.built_image)}
      command: ["/usr/bin/tensorflow_model_server"]  # not run.sh: these are its flags, with KServe's port and model
      args:
{args}
{_environment(config)}      ports:
        - containerPort: {KSERVE_HTTP_PORT}
          protocol: TCP
      securityContext:
        runAsUser: 1000
        allowPrivilegeEscalation: false
        privileged: false
        runAsNonRoot: true
        capabilities:
          drop:
            - ALL
      resources:  # cpu: KServe's stock TF Serving runtime's. {_memory_comment(config)}
        requests:
          cpu: "1"
          memory: {_memory(config)}
        limits:
          cpu: "1"
          memory: {_memory(config)}
"""


def _memory(config: ServingConfig) -> str:
    if config.memory_limit is not None:
        return config.memory_limit
    return kubernetes_quantity(max(serving_need(config).total_bytes, 2 * 2**30))


def _memory_comment(config: ServingConfig) -> str:
    need = serving_need(config)
    return (f"memory: serving takes {size_text(need.serving_bytes)}, a hot update {size_text(need.swap_bytes)} more "
            f"(old and new version resident together){'' if config.memory_limit else '; at least 2Gi'}")


def _environment(config: ServingConfig) -> str:
    if config.onednn:
        return ""
    return f"""      env:  # {NO_ONEDNN_WHY}
        - name: TF_ENABLE_ONEDNN_OPTS
          value: "0"
"""


def _inference_service(model: ServedModel) -> str:
    notes = [_comment(f"WARNING: {warning}") for warning in model_warnings(model)]
    header = "\n".join([f"# Model {model.name!r}.", *notes])
    return f"""{header}
apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata:
  name: {kserve_name(model.name)}
spec:
  predictor:
    model:
      modelFormat:
        name: tensorflow
      runtime: {KSERVE_RUNTIME}
      # The base dir with its numbered versions; KServe copies it to {KSERVE_MODEL_DIR}.
      storageUri: {json.dumps(storage_uri(model))}
"""


def _check_names(config: ServingConfig) -> None:
    names = [kserve_name(model.name) for model in config.models]
    clashes = sorted({name for name in names if names.count(name) > 1})
    if clashes:
        raise TfdeployError(f"Models {[m.name for m in config.models if kserve_name(m.name) in clashes]} get the "
                            f"same KServe InferenceService name {clashes}; rename one. "
                            f"Received: models={[m.name for m in config.models]}")


def kserve_yaml(config: ServingConfig, flags: Sequence[str]) -> str:
    """The text of ``kserve.yaml``: the ``ServingRuntime``, then an ``InferenceService`` per model.

    Args:
        config: The serving options.
        flags: ``tensorflow_model_server`` flags for the runtime: the registry's, with KServe's
            ports and :data:`MODEL_FLAGS` (:func:`~tfdeploy.serving.config.registry.server_flags`).

    Returns:
        The YAML text, documents separated by ``---``, with what to do first in comments.

    Raises:
        TfdeployError: If two models map to the same InferenceService name.

    Example:
        >>> text = kserve_yaml(ServingConfig([ServedModel("m", "gs://b/m")], "serving"), ["--port=9000"])
        >>> text.count("kind: InferenceService")
        1
    """
    _check_names(config)
    intro = _comment(
        "Generated by tfdeploy for KServe. KServe's stock TF Serving runtime fixes the server's arguments, so this "
        "ServingRuntime runs the image built from ./Dockerfile with the flags of run.sh (platform config: warmup, "
        "load thread pool, batching; monitoring; load/unload threads; jemalloc) and KServe's port and model flags. "
        "First build and push the image, e.g. `docker compose build && docker compose push` (it is tagged "
        f"{config.built_image}, --built-image), and upload each model base dir; then `kubectl apply -f kserve.yaml`.")
    documents = [_serving_runtime(config, flags), *(_inference_service(model) for model in config.models)]
    return f"{intro}\n" + "---\n".join(documents)
