"""``tfdeploy deploy``: the whole pipeline in one command."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from tfdeploy.cli import options as opt
from tfdeploy.cli.context import GlobalOptions, echo_report, global_options, library_command, progress
from tfdeploy.cli.options import Loading, config_option
from tfdeploy.pipeline import DeployConfig


def global_settings(options: GlobalOptions) -> dict[str, Any]:
    """The DeployConfig fields that the group's options set (seed, op determinism, GPU memory).

    Args:
        options: The ``tfdeploy`` group's options.

    Returns:
        Field -> value; without ``--seed`` the seed stays DeployConfig's default.
    """
    settings: dict[str, Any] = {"deterministic": options.deterministic,
                                "gpu_memory_growth": options.gpu_memory_growth,
                                "gpu_memory_limit_mb": options.gpu_memory_limit}
    if options.seed is not None:
        settings["seed"] = options.seed
    return settings


@click.command("deploy")
@click.argument("model", required=False, type=click.Path(path_type=Path))
@opt.out_dir(help="Output directory of the run.")
@config_option(DeployConfig, "example", "--example", is_flag=True,
               help="Use the built-in MobileNetV2 / Fashion-MNIST example (offline).")
@opt.data(DeployConfig, help="Fine-tune/calibration/evaluation data.")
@opt.recipes(DeployConfig)
@config_option(DeployConfig, "serve_variant", "--serve-variant",
               help="Variant exported for TF Serving: original or one of the recipes.")
@config_option(DeployConfig, "model_name", "--model-name",
               help="TF Serving model name (default: the model file's name).")
@config_option(DeployConfig, "epochs", "--epochs", type=click.IntRange(min=1), help="Recipe fine-tune epochs.")
@config_option(DeployConfig, "train_example", "--train", is_flag=True,
               help="With --example: train it from scratch instead of using the shipped, converged model.")
@config_option(DeployConfig, "example_epochs", "--example-epochs", type=click.IntRange(min=1),
               help="--example --train: training epochs.")
@opt.int8_granularity(DeployConfig)
@config_option(DeployConfig, "bench_requests", "--bench-requests", type=click.IntRange(min=1))
@opt.output_name(DeployConfig)
@opt.metrics(DeployConfig)
@opt.select_tf_ops(DeployConfig, help="Let TFLite conversion use TensorFlow select ops (Flex delegate).")
@opt.negated_flag(DeployConfig, "isolate", "--in-process",
                  help="Make the recipes in this process: a native crash in TensorFlow then ends the run.")
@config_option(DeployConfig, "resume", "--resume", is_flag=True,
               help="Keep the recipes an earlier run of --out made; export, configure, verify and bench again.")
@opt.overwrite(DeployConfig, help="Replace a previous run in --out.")
@opt.as_json
@library_command
@opt.model_loading(DeployConfig)
def deploy_command(as_json: bool, loading: Loading, **values: Any) -> None:
    """Whole pipeline: setup, compress, export with warmup, serving config, verify, bench."""
    from tfdeploy.pipeline import deploy

    config = DeployConfig(**values, **global_settings(global_options()), progress=progress(), **loading.kwargs())
    echo_report(deploy(config), as_json)
