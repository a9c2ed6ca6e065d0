"""Protobuf schemas of TF Serving config files that ``tensorflow-serving-api`` does not ship.

The wheel has ``tensorflow_serving.config.{model_server_config, platform_config, ...}_pb2`` but
not ``session_bundle_config`` (``SessionBundleConfig``, ``BatchingParameters``,
``ModelWarmupOptions``), ``saved_model_bundle_source_adapter`` or ``monitoring_config``. This
module declares the fields tfdeploy writes, with the names, types and numbers of TF Serving's
``.proto`` files (``tensorflow_serving/servables/tensorflow/session_bundle_config.proto``,
``saved_model_bundle_source_adapter.proto``, ``tensorflow_serving/config/monitoring_config.proto``),
in the ``tensorflow.serving`` package, so that the generated text is produced and parsed by a
real protobuf schema. If TF Serving's own generated modules are importable, they are used instead.

Example:
    >>> schemas = load_schemas()
    >>> params = schemas.BatchingParameters()
    >>> params.max_batch_size.value = 32
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

_FILE_NAME = "tfdeploy/tensorflow_serving_mirror.proto"

# message -> [(field name, number, type, label, type_name)]
_WRAPPER_I32 = ".google.protobuf.Int32Value"
_WRAPPER_I64 = ".google.protobuf.Int64Value"
_FIELDS: dict[str, list[tuple[str, int, str, str, str | None]]] = {
    "BatchingParameters": [
        ("max_batch_size", 1, "message", "optional", _WRAPPER_I64),
        ("batch_timeout_micros", 2, "message", "optional", _WRAPPER_I64),
        ("max_enqueued_batches", 3, "message", "optional", _WRAPPER_I64),
        ("num_batch_threads", 4, "message", "optional", _WRAPPER_I64),
        ("thread_pool_name", 5, "message", "optional", ".google.protobuf.StringValue"),
        ("allowed_batch_sizes", 6, "int64", "repeated", None),
        ("pad_variable_length_inputs", 7, "bool", "optional", None),
    ],
    "ModelWarmupOptions": [
        ("num_request_iterations", 1, "message", "optional", _WRAPPER_I32),
        ("num_model_warmup_threads", 2, "message", "optional", _WRAPPER_I32),
        ("model_name", 3, "string", "optional", None),
        ("model_version", 4, "int64", "optional", None),
    ],
    "SessionBundleConfig": [
        ("session_target", 1, "string", "optional", None),
        ("session_config", 2, "message", "optional", ".tensorflow.ConfigProto"),
        ("batching_parameters", 3, "message", "optional", ".tensorflow.serving.BatchingParameters"),
        ("session_run_load_threadpool_index", 4, "message", "optional", _WRAPPER_I32),
        ("experimental_transient_ram_bytes_during_load", 5, "uint64", "optional", None),
        ("saved_model_tags", 6, "string", "repeated", None),
        ("enable_model_warmup", 779, "bool", "optional", None),
        ("model_warmup_options", 780, "message", "optional", ".tensorflow.serving.ModelWarmupOptions"),
    ],
    "SavedModelBundleSourceAdapterConfig": [
        ("legacy_config", 1000, "message", "optional", ".tensorflow.serving.SessionBundleConfig"),
    ],
    "PrometheusConfig": [
        ("enable", 1, "bool", "optional", None),
        ("path", 2, "string", "optional", None),
    ],
    "MonitoringConfig": [
        ("prometheus_config", 1, "message", "optional", ".tensorflow.serving.PrometheusConfig"),
    ],
}


@dataclasses.dataclass(frozen=True)
class Schemas:
    """Message classes for the TF Serving config files, plus the descriptor pool holding them."""

    BatchingParameters: Any
    ModelWarmupOptions: Any
    SessionBundleConfig: Any
    SavedModelBundleSourceAdapterConfig: Any
    MonitoringConfig: Any
    pool: Any


def _build_file() -> Any:
    from google.protobuf import descriptor_pb2

    file_proto = descriptor_pb2.FileDescriptorProto(
        name=_FILE_NAME, package="tensorflow.serving", syntax="proto3",
        dependency=["google/protobuf/wrappers.proto", "tensorflow/core/protobuf/config.proto"],
    )
    field = descriptor_pb2.FieldDescriptorProto
    for message, fields in _FIELDS.items():
        proto = file_proto.message_type.add(name=message)
        for name, number, kind, label, type_name in fields:
            entry = proto.field.add(name=name, number=number, json_name=name,
                                    type=getattr(field, f"TYPE_{kind.upper()}"),
                                    label=getattr(field, f"LABEL_{label.upper()}"))
            if type_name:
                entry.type_name = type_name
    return file_proto


@functools.lru_cache(maxsize=None)
def load_schemas() -> Schemas:
    """Returns the message classes (TF Serving's own if importable, else the mirror).

    Example:
        >>> load_schemas().MonitoringConfig().prometheus_config.enable     # doctest: +SKIP
        False
    """
    from tfdeploy import backend

    backend.tf_proto("config_pb2")  # registers tensorflow/core/protobuf/config.proto in the default pool
    from google.protobuf import descriptor_pool, message_factory, wrappers_pb2  # noqa: F401

    pool = descriptor_pool.Default()
    try:
        pool.FindMessageTypeByName("tensorflow.serving.SessionBundleConfig")
    except KeyError:
        pool.Add(_build_file())
    classes = {name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"tensorflow.serving.{name}"))
               for name in ("BatchingParameters", "ModelWarmupOptions", "SessionBundleConfig",
                            "SavedModelBundleSourceAdapterConfig", "MonitoringConfig")}
    return Schemas(pool=pool, **classes)
