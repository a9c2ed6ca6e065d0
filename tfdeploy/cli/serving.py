"""``tfdeploy export``, ``warmup write``, ``verify`` and ``serving-config``: the TF Serving steps."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from tfdeploy.cli import options as opt
from tfdeploy.cli.context import echo_report, library_command, progress
from tfdeploy.cli.options import Loading, config_option
from tfdeploy.serving import ExportConfig, ServedModel, ServingConfig, VersionPolicy, verify, write_warmup

PATH = click.Path(path_type=Path)


@click.command("export")
@click.argument("model", type=PATH)
@click.option("--base-dir", required=True, type=PATH, help="Model base path: models/NAME.")
@config_option(ExportConfig, "version", "--version", callback=opt.version_number,
               to_cli=lambda version: "auto" if version is None else str(version),
               help="Version number, or auto (highest existing + 1).")
@opt.overwrite(ExportConfig, help="Replace an existing version.")
@config_option(ExportConfig, "source_model", "--source-model", type=PATH,
               help="For a .tflite MODEL: the Keras model it came from (for the SavedModel beside it).")
@config_option(ExportConfig, "batch_size", "--signature-batch-size", type=click.IntRange(min=1),
               help="Fixed batch dimension of serving_default (default: dynamic).")
@config_option(ExportConfig, "extra_signatures", "--extra-signature", multiple=True, callback=opt.extra_signatures,
               to_cli=lambda signatures: tuple(signatures), metavar="NAME[:BATCH]",
               help="Export another Predict signature (repeatable).")
@config_option(ExportConfig, "input_name", "--input-name",
               help="Signature input key (default: the model's input layer name).")
@opt.negated_flag(ExportConfig, "warmup", "--no-warmup", help="Do not write the warmup file.")
@opt.warmup_options(ExportConfig)
@opt.as_json
@library_command
@opt.model_loading(ExportConfig)
def export_command(as_json: bool, loading: Loading, **values: Any) -> None:
    """Export MODEL as a new TF Serving version under --base-dir (atomic, with warmup)."""
    from tfdeploy.serving.export import export  # tfdeploy.serving.export is also the submodule's name

    echo_report(export(ExportConfig(**values, progress=progress(), **loading.kwargs())), as_json)


@click.group("warmup")
def warmup_group() -> None:
    """TF Serving warmup files (assets.extra/tf_serving_warmup_requests)."""


@warmup_group.command("write")
@click.argument("version_dir", type=PATH)
@opt.warmup_options(write_warmup, data_field="data", sizes_field="batch_sizes")
@opt.signature(write_warmup)
@config_option(write_warmup, "seed", "--seed", type=int, help="Seed of synthesized values.")
@opt.overwrite(write_warmup, help="Replace an existing warmup file.")
@opt.as_json
@library_command
def warmup_write_command(as_json: bool, **values: Any) -> None:
    """Write (or replace) the warmup file of an exported VERSION_DIR.

    Server-side replay count is TF Serving's num_request_iterations: set it with
    `tfdeploy serving-config --warmup-iterations N`.
    """
    from tfdeploy.serving import write_warmup

    echo_report(write_warmup(**values), as_json)


@click.command("verify")
@click.argument("version_dir", type=PATH)
@config_option(verify, "source_model", "--model", type=PATH, help="Source model for output parity.")
@opt.signature(verify)
@opt.no_cold_start(verify)
@config_option(verify, "atol", "--atol", type=float, help="Parity tolerance.")
@opt.as_json
@library_command
@opt.model_loading(verify)
def verify_command(as_json: bool, loading: Loading, **values: Any) -> None:
    """Check VERSION_DIR the way TF Serving would load it; exit 1 if any check fails."""
    from tfdeploy.serving import verify

    report = verify(**values, progress=progress(), **loading.kwargs())
    echo_report(report, as_json)
    if not report.passed:
        sys.exit(1)


def _int_option(field: str, flag: str, minimum: int | None = None, help: str | None = None) -> opt.Decorator:
    """A ServingConfig integer option (``minimum``: its IntRange)."""
    return config_option(ServingConfig, field, flag, type=int if minimum is None else click.IntRange(min=minimum),
                         help=help)


@click.command("serving-config")
@click.option("--model", "models", multiple=True, required=True, callback=opt.name_pairs, metavar="NAME=BASE_DIR",
              help="A model to serve (repeatable).")
@opt.out_dir()
@config_option(ServedModel, "policy", "--version-policy", help="Which versions TF Serving keeps loaded.")
@config_option(ServedModel, "versions", "--versions", callback=opt.version_list,
               help="specific: versions to serve (1,2); latest: how many (N).")
@config_option(ServedModel, "labels", "--label", "labels", multiple=True, callback=opt.version_labels,
               to_cli=lambda labels: tuple(labels), metavar="MODEL:LABEL=VERSION", help="Version label (repeatable).")
@config_option(ServedModel, "storage_uri", "--storage-uri", "storage_uris", multiple=True, callback=opt.name_pairs,
               to_cli=lambda uri: (), to_config=lambda pairs: dict(pairs) or None, metavar="NAME=URI",
               help="KServe storageUri of a model: gs://, s3://, pvc://, ... (default: its base dir, which has to be "
                    "uploaded first).")
@config_option(ServingConfig, "image", "--image",
               help="TF Serving image the Dockerfile builds FROM (a published tensorflow/serving release).")
@config_option(ServingConfig, "built_image", "--built-image", metavar="REGISTRY/NAME:TAG",
               help="Name of the image built from the Dockerfile: docker-compose.yml tags it, kserve.yaml runs it "
                    "(push it to a registry the cluster can pull from).")
@_int_option("rest_port", "--rest-port")
@_int_option("grpc_port", "--grpc-port")
@config_option(ServingConfig, "enable_batching", "--enable-batching", is_flag=True, help="Server-side batching.")
@_int_option("max_batch_size", "--max-batch-size", minimum=1)
@opt.batch_sizes(ServingConfig, "allowed_batch_sizes", "--allowed-batch-sizes")
@_int_option("batch_timeout_micros", "--batch-timeout-micros", minimum=0)
@_int_option("num_batch_threads", "--num-batch-threads", minimum=1)
@_int_option("num_load_threads", "--num-load-threads", minimum=1)
@_int_option("num_unload_threads", "--num-unload-threads", minimum=1)
@_int_option("load_pool_threads", "--load-pool-threads", minimum=1, help="Threads of the dedicated model-load pool.")
@_int_option("file_system_poll_wait_seconds", "--file-system-poll-wait-seconds", minimum=1)
@_int_option("warmup_iterations", "--warmup-iterations", minimum=1,
             help="Server-side replays of each warmup record (num_request_iterations).")
@config_option(ServingConfig, "memory_limit", "--memory-limit", metavar="QUANTITY",
               help="Container memory limit, e.g. 8Gi: written to kserve.yaml and docker-compose.yml; warns when it "
                    "cannot hold a hot update (two versions resident).")
@config_option(ServingConfig, "gpu_allow_growth", "--gpu-allow-growth", is_flag=True,
               help="allow_growth in the session config (GPU servers).")
@opt.negated_flag(ServingConfig, "onednn", "--no-onednn",
                  help="Serve with TF_ENABLE_ONEDNN_OPTS=0 (run.sh, Dockerfile, Compose, KServe runtime): for a model "
                  "that `verify` found crashing with TensorFlow's oneDNN CPU kernels.")
@opt.overwrite(ServingConfig, help="Replace a non-empty output directory.")
@opt.as_json
@library_command
def serving_config_command(models: list[tuple[str, str]], policy: VersionPolicy, versions: list[int],
                           labels: dict[str, dict[str, int]], storage_uris: list[tuple[str, str]], as_json: bool,
                           **values: Any) -> None:
    """Generate TF Serving config (models, platform, batching, monitoring, Docker, KServe) for exported models."""
    from tfdeploy.serving import write_serving_config

    uris = dict(storage_uris)
    served = [ServedModel(name=name, base_dir=base, policy=policy, versions=versions, labels=labels.get(name, {}),
                          storage_uri=uris.get(name)) for name, base in models]
    echo_report(write_serving_config(ServingConfig(models=served, **values)), as_json)
