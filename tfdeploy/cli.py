"""The ``tfdeploy`` command line: thin wrappers around the library.

Each command parses options, builds a config, makes one library call and prints the report.
A :class:`~tfdeploy.errors.TfdeployError` becomes one line on stderr and exit code 2
(``--debug`` shows the traceback). TensorFlow is imported only when a command runs, never
for ``--help``/``--version``.
"""

from __future__ import annotations

import dataclasses
import functools
import sys
from pathlib import Path
from typing import Any, Callable

import click

from tfdeploy import __version__
from tfdeploy.errors import TfdeployError
from tfdeploy.recipes import IoDtype, Recipe


@dataclasses.dataclass
class GlobalOptions:
    """Options of the ``tfdeploy`` group, applied before any model is touched."""

    debug: bool = False
    gpu_memory_growth: bool = True
    gpu_memory_limit: int | None = None
    seed: int | None = None
    deterministic: bool = False

    def apply(self) -> None:
        """Configures GPUs, seeds and op determinism (imports TensorFlow)."""
        from tfdeploy import runtime

        gpu = runtime.configure_gpus(self.gpu_memory_growth, self.gpu_memory_limit)
        if self.debug:
            click.echo(gpu.message, err=True)
        if self.seed is not None:
            runtime.seed_everything(self.seed, deterministic_ops=self.deterministic)
        elif self.deterministic:
            from tfdeploy import backend

            backend.tf().config.experimental.enable_op_determinism()


def progress(message: str) -> None:
    """Progress lines go to stderr so that stdout stays the report."""
    click.echo(message, err=True)


def library_command(func: Callable[..., Any]) -> Callable[..., Any]:
    """Applies the global options, runs the command, maps TfdeployError to exit code 2."""

    @functools.wraps(func)
    @click.pass_obj
    def wrapper(options: GlobalOptions, *args: Any, **kwargs: Any) -> Any:
        try:
            options.apply()
            return func(*args, **kwargs)
        except TfdeployError as exc:
            if options.debug:
                raise
            click.echo(f"Error: {exc}", err=True)
            sys.exit(2)

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="tfdeploy")
@click.option("--debug", is_flag=True, help="Show tracebacks and setup details.")
@click.option("--gpu-memory-growth/--no-gpu-memory-growth", default=True, show_default=True,
              help="Allocate GPU memory as needed (all GPUs).")
@click.option("--gpu-memory-limit", type=click.IntRange(min=1), metavar="MB",
              help="Cap each GPU at MB megabytes (replaces memory growth).")
@click.option("--seed", type=click.IntRange(0, 2**32 - 1), help="Seed Python, NumPy, TF and both Kerases.")
@click.option("--deterministic", is_flag=True, help="Enable TensorFlow op determinism.")
@click.pass_context
def main(ctx: click.Context, **options: Any) -> None:
    """tfdeploy: compress a Keras/TensorFlow model, export it for TF Serving, verify and benchmark it."""
    ctx.obj = GlobalOptions(**options)


@main.command("env")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for machines.")
@library_command
def env_command(as_json: bool) -> None:
    """Versions, GPUs and determinism settings (paste this into bug reports)."""
    from tfdeploy.runtime import environment_report

    report = environment_report()
    click.echo(report.to_json() if as_json else report.to_table())


@main.command("example")
@click.option("--out", "out_dir", default="example", show_default=True, type=click.Path(path_type=Path),
              help="Directory for model.keras and data.npz.")
@click.option("--epochs", default=5, show_default=True, type=click.IntRange(min=1), help="Fine-tune epochs.")
@click.option("--alpha", default=0.35, show_default=True, type=float, help="MobileNetV2 width multiplier.")
@click.option("--image-size", default=32, show_default=True, type=click.IntRange(min=32), help="Input size.")
@click.option("--full-data", is_flag=True, help="Use the full Fashion-MNIST (Debian package or Keras cache).")
@click.option("--overwrite", is_flag=True, help="Replace existing files.")
@library_command
def example_command(out_dir: Path, epochs: int, alpha: float, image_size: int, full_data: bool,
                    overwrite: bool) -> None:
    """Build and fine-tune the built-in MobileNetV2 / Fashion-MNIST example (offline)."""
    from tfdeploy.examples import prepare_example

    report = prepare_example(out_dir, epochs=epochs, alpha=alpha, image_size=image_size,
                             full_data=full_data, overwrite=overwrite, progress=progress)
    click.echo(report.to_table())


def _recipe_list(ctx: click.Context, param: click.Parameter, value: str) -> list[Recipe]:
    try:
        return Recipe.parse_list(value)
    except TfdeployError as exc:
        raise click.BadParameter(str(exc)) from None


@main.command("compress")
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path), help="Output directory.")
@click.option("--recipe", "recipes", default=Recipe.STRIP.value, show_default=True, callback=_recipe_list,
              help="Comma-separated recipes: " + ", ".join(Recipe.choices()) + ".")
@click.option("--data", type=click.Path(path_type=Path),
              help="Fine-tune/calibration/evaluation data: .npz (x, y, x_val, y_val) or an image directory.")
@click.option("--epochs", default=2, show_default=True, type=click.IntRange(min=1), help="Fine-tune epochs.")
@click.option("--batch-size", default=32, show_default=True, type=click.IntRange(min=1))
@click.option("--learning-rate", default=5e-4, show_default=True, type=click.FloatRange(min=0, min_open=True))
@click.option("--target-sparsity", default=0.5, show_default=True, type=click.FloatRange(0, 1, min_open=True,
              max_open=True), help="Final sparsity of prune.")
@click.option("--prune-structure", type=click.Choice(["2:4"]), help="M-by-N structured sparsity (Conv2D/Dense).")
@click.option("--clusters", default=16, show_default=True, type=click.IntRange(min=2), help="Clusters per layer.")
@click.option("--calibration-samples", default=300, show_default=True, type=click.IntRange(min=1),
              help="Representative samples for full-int8 conversion.")
@click.option("--io-dtype", type=click.Choice([d.value for d in IoDtype]), default=IoDtype.FLOAT32.value,
              show_default=True, help="Input/output type of int8 TFLite models.")
@click.option("--custom-objects", multiple=True, metavar="MODULE:NAME",
              help="Custom layer/function needed to load the model (repeatable).")
@click.option("--overwrite", is_flag=True, help="Replace existing artifacts.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@library_command
def compress_command(model: Path, out_dir: Path, recipes: list[Recipe], data: Path | None, epochs: int,
                     batch_size: int, learning_rate: float, target_sparsity: float, prune_structure: str | None,
                     clusters: int, calibration_samples: int, io_dtype: str, custom_objects: tuple[str, ...],
                     overwrite: bool, as_json: bool) -> None:
    """Compress MODEL with the chosen recipes and report size, accuracy and latency of each.

    Writes one artifact per recipe into --out plus report.json, report.md and report.png.
    """
    from tfdeploy.compress import CompressConfig, compress
    from tfdeploy.model import parse_custom_objects

    config = CompressConfig(
        model=model, out_dir=out_dir, recipes=recipes, data=data, epochs=epochs, batch_size=batch_size,
        learning_rate=learning_rate, target_sparsity=target_sparsity, prune_structure=prune_structure,
        clusters=clusters, calibration_samples=calibration_samples, io_dtype=IoDtype(io_dtype),
        custom_objects=parse_custom_objects(custom_objects), overwrite=overwrite, progress=progress,
    )
    report = compress(config)
    click.echo(report.to_json() if as_json else report.to_table())


if __name__ == "__main__":  # pragma: no cover
    main()
