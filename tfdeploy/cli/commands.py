"""The ``tfdeploy`` command line: thin wrappers around the library.

Each command parses options, builds a config, makes one library call and prints the report
(:mod:`tfdeploy.cli.context`). Options are declared in :mod:`tfdeploy.cli.options`, their defaults
taken from the config each one feeds. TensorFlow is imported only when a command runs, never for
``--help``/``--version``. The commands live by step: :mod:`~tfdeploy.cli.compress`,
:mod:`~tfdeploy.cli.serving`, :mod:`~tfdeploy.cli.measure` and :mod:`~tfdeploy.cli.deploy`; this
module holds the group, ``env`` and ``example``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from tfdeploy import __version__
from tfdeploy.cli import options as opt
from tfdeploy.cli.compress import compress_command
from tfdeploy.cli.context import GlobalOptions, echo_report, library_command, progress
from tfdeploy.cli.deploy import deploy_command
from tfdeploy.cli.measure import bench_command, check_group
from tfdeploy.cli.options import config_option
from tfdeploy.cli.serving import export_command, serving_config_command, verify_command, warmup_group
from tfdeploy.model import examples

__all__ = ["GlobalOptions", "main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="tfdeploy")
@config_option(GlobalOptions, "debug", "--debug", is_flag=True)
@config_option(GlobalOptions, "quiet", "--quiet", "-q", is_flag=True)
@config_option(GlobalOptions, "gpu_memory_growth", "--gpu-memory-growth/--no-gpu-memory-growth", show_default=True)
@config_option(GlobalOptions, "gpu_memory_limit", "--gpu-memory-limit", type=click.IntRange(min=1), metavar="MB")
@config_option(GlobalOptions, "seed", "--seed", type=click.IntRange(0, 2**32 - 1))
@config_option(GlobalOptions, "deterministic", "--deterministic", is_flag=True)
@opt.negated_flag(GlobalOptions, "onednn", "--no-onednn",
                  help="TF_ENABLE_ONEDNN_OPTS=0 for this run and every process it starts: TensorFlow without its "
                  "oneDNN CPU kernels (the usual fix when it crashes natively on a model).")
@click.pass_context
def main(ctx: click.Context, **options: Any) -> None:
    """tfdeploy: compress a Keras/TensorFlow model, export it for TF Serving, verify and benchmark it."""
    ctx.obj = GlobalOptions(**options)


@main.command("env")
@opt.as_json
@library_command
def env_command(as_json: bool) -> None:
    """Versions, GPUs and determinism settings (paste this into bug reports)."""
    from tfdeploy.runtime import environment_report

    echo_report(environment_report(), as_json)


@main.command("example")
@click.option("--out", "out_dir", default="example", show_default=True, type=click.Path(path_type=Path),
              help="Directory for model.keras and data.npz.")
@config_option(examples.prepare_example, "kind", "--kind", show_default=True,
               help="mobilenet: the shipped MobileNetV2 on Fashion-MNIST. ranker: a synthetic click-through ranker "
                    "of any size (named int and string features, ~4 % clicks, unseen ids).")
@config_option(examples.prepare_example, "embedding_rows", "--embedding-rows", type=click.IntRange(min=1000),
               show_default=True, help="ranker: rows of the user_id table (x32 float32; 8000000 gives 1.3 GB).")
@config_option(examples.prepare_example, "features", "--features", type=click.IntRange(min=4), show_default=True,
               help="ranker: named categorical features (a third of them strings), plus four dense floats.")
@config_option(examples.prepare_example, "train", "--train", is_flag=True,
               help="Train MobileNetV2 from scratch here instead of using the shipped, converged model (watch it "
                    "learn; the options below apply).")
@config_option(examples.prepare_example, "epochs", "--epochs", type=click.IntRange(min=1),
               help="--train and ranker: epochs.")
@config_option(examples.prepare_example, "alpha", "--alpha", type=float, help="--train: MobileNetV2 width multiplier.")
@config_option(examples.prepare_example, "image_size", "--image-size", type=click.IntRange(min=32),
               help="--train: input size.")
@config_option(examples.prepare_example, "full_data", "--full-data", is_flag=True,
               help="Use the full Fashion-MNIST (Debian package or Keras cache).")
@opt.overwrite(examples.prepare_example, help="Replace existing files.")
@opt.as_json
@library_command
def example_command(as_json: bool, **values: Any) -> None:
    """Write a built-in example, model.keras and data.npz (offline): MobileNetV2 / Fashion-MNIST or a ranker."""
    echo_report(examples.prepare_example(**values, progress=progress()), as_json)


for _command in (compress_command, export_command, warmup_group, verify_command, serving_config_command,
                 deploy_command, bench_command, check_group):
    main.add_command(_command)


if __name__ == "__main__":  # pragma: no cover
    main()
