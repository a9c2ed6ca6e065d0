"""The protobuf messages of the generated ``.config``/``.txt`` files, and their checked text format.

Each builder returns a message of TF Serving's own schema (or tfdeploy's mirror of it,
:mod:`tfdeploy.serving.schemas`); :func:`proto_text` renders it and parses the text back with the
same schema before anything is written.

Example:
    >>> config = ServingConfig([ServedModel("fashion", "models/fashion")], "serving")
    >>> print(proto_text(monitoring_config(config)))     # doctest: +SKIP
    prometheus_config {
      enable: true
      path: "/monitoring/prometheus/metrics"
    }
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from tfdeploy import backend
from tfdeploy.errors import TfdeployError
from tfdeploy.serving.config.options import ServingConfig, VersionPolicy
from tfdeploy.serving.schemas import load_schemas


def model_server_config(config: ServingConfig) -> Any:
    """The ``ModelServerConfig`` proto for ``models.config``.

    Example:
        >>> model_server_config(config).model_config_list.config[0].base_path   # doctest: +SKIP
        '/models/fashion'
    """
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
    """The ``BatchingParameters`` proto (``batching_parameters.txt``, and inside the platform config).

    Example:
        >>> batching_parameters(config).max_batch_size.value     # doctest: +SKIP
        32
    """
    params = load_schemas().BatchingParameters()
    params.max_batch_size.value = config.max_batch_size
    params.batch_timeout_micros.value = config.batch_timeout_micros
    params.max_enqueued_batches.value = config.max_enqueued_batches
    params.num_batch_threads.value = config.num_batch_threads
    params.allowed_batch_sizes.extend(config.allowed_batch_sizes)
    return params


def platform_config(config: ServingConfig) -> Any:
    """The ``PlatformConfigMap`` proto carrying the hot-update latency-spike fixes.

    Example:
        >>> "tensorflow" in platform_config(config).platform_configs    # doctest: +SKIP
        True
    """
    platform_config_pb2 = backend.tf_proto("platform_config_pb2")

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
    """The ``MonitoringConfig`` proto (Prometheus on the REST port).

    Example:
        >>> monitoring_config(config).prometheus_config.enable     # doctest: +SKIP
        True
    """
    monitoring = load_schemas().MonitoringConfig()
    monitoring.prometheus_config.enable = True
    monitoring.prometheus_config.path = config.monitoring_path
    return monitoring


def proto_text(message: Any) -> str:
    """Text format of ``message``, parsed back with the same schema to prove it round-trips.

    Args:
        message: A protobuf message.

    Returns:
        Its text format.

    Raises:
        TfdeployError: If the text does not parse back to an equal message.

    Example:
        >>> proto_text(monitoring_config(config)).startswith("prometheus_config {")   # doctest: +SKIP
        True
    """
    from google.protobuf import text_format

    pool = load_schemas().pool
    text = text_format.MessageToString(message, descriptor_pool=pool)
    parsed = text_format.Parse(text, type(message)(), descriptor_pool=pool)
    if parsed != message:  # pragma: no cover - protobuf guarantees this
        raise TfdeployError(f"Generated {type(message).__name__} text does not round-trip. "
                            f"Received: message={type(message).__name__}")
    return text


PLATFORM_CONFIG_FILE = "platform_config.txt"


def read_session_bundle_config(path: str | os.PathLike) -> Any:
    """The ``SessionBundleConfig`` of the ``tensorflow`` platform in a generated ``platform_config.txt``.

    Args:
        path: The file, or the ``tfdeploy serving-config`` directory holding it.

    Returns:
        The ``SessionBundleConfig`` message TF Serving would load versions with.

    Raises:
        TfdeployError: If the file is missing, does not parse as a ``PlatformConfigMap``, or has
            no ``tensorflow`` platform.

    Example:
        >>> read_session_bundle_config("serving").session_run_load_threadpool_index.value   # doctest: +SKIP
        1
    """
    from google.protobuf import text_format

    file = Path(path) / PLATFORM_CONFIG_FILE if Path(path).is_dir() else Path(path)
    if not file.is_file():
        raise TfdeployError(f"No platform config here; write one with `tfdeploy serving-config`. "
                            f"Received: path={str(file)!r}")
    platform = backend.tf_proto("platform_config_pb2").PlatformConfigMap()
    try:
        text_format.Parse(file.read_text(), platform, descriptor_pool=load_schemas().pool)
    except text_format.ParseError as exc:
        raise TfdeployError(f"The platform config does not parse as a PlatformConfigMap ({exc}). "
                            f"Received: path={str(file)!r}") from None
    if "tensorflow" not in platform.platform_configs:
        raise TfdeployError(f"The platform config has no 'tensorflow' platform (it has "
                            f"{sorted(platform.platform_configs)}). Received: path={str(file)!r}")
    return session_bundle_config_of(platform)


def session_bundle_config_of(platform: Any) -> Any:
    """The ``SessionBundleConfig`` packed in a ``PlatformConfigMap``'s ``tensorflow`` platform.

    Example:
        >>> session_bundle_config_of(platform_config(config)).enable_model_warmup     # doctest: +SKIP
        True
    """
    adapter = load_schemas().SavedModelBundleSourceAdapterConfig()
    platform.platform_configs["tensorflow"].source_adapter_config.Unpack(adapter)
    return adapter.legacy_config
