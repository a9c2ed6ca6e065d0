"""TF Serving configuration that avoids latency spikes when a new version is hot-loaded.

Generates a directory to mount into the official ``tensorflow/serving`` image:

* ``models.config`` — ``ModelServerConfig``: name, base path, platform, version policy, labels;
* ``platform_config.txt`` — ``PlatformConfigMap`` for the ``tensorflow`` platform with the
  spike fixes: ``enable_model_warmup: true`` (it defaults to false inside a platform config),
  ``model_warmup_options``, a dedicated load thread pool (``session_inter_op_thread_pool`` +
  ``session_run_load_threadpool_index``) so restore ops don't compete with requests, optional
  GPU ``allow_growth``, and the batching parameters (TF Serving ignores ``--enable_batching``
  when a platform config is given);
* ``monitoring.config`` — Prometheus metrics (served on the REST port);
* ``batching_parameters.txt`` — ``BatchingParameters`` for ``--batching_parameters_file``;
* ``run.sh`` (server flags), ``Dockerfile`` (jemalloc via ``LD_PRELOAD``), ``docker-compose.yml`` (model
  dirs mounted by absolute path), ``kserve.yaml`` (a KServe ``ServingRuntime`` running the built image with
  the same flags and files, and an ``InferenceService`` per model selecting it), ``README.md``.

Each file is one builder and one entry of :data:`SERVING_FILES`
(:mod:`~tfdeploy.serving.config.registry`); the Dockerfile's ``COPY`` line, ``run.sh``'s flags, the
README's table and the report's file list are derived from it. Every ``.config``/``.txt`` file is
produced from protobuf messages and parsed back before it is written
(:mod:`~tfdeploy.serving.config.protos`, :mod:`tfdeploy.serving.schemas`).

Modules: :mod:`~tfdeploy.serving.config.options` (``ServingConfig``, ``ServedModel``,
``VersionPolicy``), :mod:`~tfdeploy.serving.config.protos`, :mod:`~tfdeploy.serving.config.registry`,
:mod:`~tfdeploy.serving.config.kserve`, :mod:`~tfdeploy.serving.config.write` (``write_serving_config``).

Example:
    >>> from tfdeploy.serving.config import ServedModel, ServingConfig, write_serving_config
    >>> report = write_serving_config(ServingConfig([ServedModel("fashion", "models/fashion")], "serving"))  # doctest: +SKIP
"""

from tfdeploy.serving.config.kserve import KSERVE_RUNTIME, kserve_warnings
from tfdeploy.serving.config.options import (BUILT_IMAGE, CONTAINER_CONFIG, CONTAINER_MODELS, JEMALLOC, TF_SERVING_IMAGE,
                                             ServedModel, ServingConfig, VersionPolicy, served_versions,
                                             validate_model)
from tfdeploy.serving.config.protos import (batching_parameters, model_server_config, monitoring_config,
                                            platform_config, proto_text)
from tfdeploy.serving.config.registry import (MODELS_FILE, RUN_SCRIPT, SERVING_FILES, ServingFile, container_files,
                                              server_flags, validate_registry)
from tfdeploy.serving.config.write import ServingConfigReport, write_serving_config

__all__ = ["BUILT_IMAGE", "CONTAINER_CONFIG", "CONTAINER_MODELS", "JEMALLOC", "KSERVE_RUNTIME", "MODELS_FILE",
           "RUN_SCRIPT", "SERVING_FILES", "TF_SERVING_IMAGE", "ServedModel", "ServingConfig", "ServingConfigReport",
           "ServingFile", "VersionPolicy", "batching_parameters", "container_files", "kserve_warnings",
           "model_server_config", "monitoring_config", "platform_config", "proto_text", "served_versions",
           "server_flags", "validate_model", "validate_registry", "write_serving_config"]
