"""The ``tfdeploy`` command line: thin wrappers around the library.

Each command parses options, builds a config, makes one library call and prints the report.
A :class:`~tfdeploy.errors.TfdeployError` becomes one line on stderr and exit code 2
(``--debug`` shows the traceback). TensorFlow is imported only when a command runs, never
for ``--help``/``--version``. TensorFlow's own C++ output goes to a log file
(:mod:`tfdeploy.console`), kept as ``OUT/logs/tfdeploy.log`` by commands with ``--out``;
``--debug`` shows it instead.
"""

from __future__ import annotations

import dataclasses
import functools
import sys
import traceback
from pathlib import Path
from typing import Any, Callable

import click

from tfdeploy import __version__
from tfdeploy.console import Console, capture_native_output
from tfdeploy.errors import TfdeployError
from tfdeploy.model.examples import EXAMPLE_ALPHA, EXAMPLE_IMAGE_SIZE
from tfdeploy.progress import Progress, auto_progress
from tfdeploy.compression.choices import Int8Granularity, IoDtype, Objective, Recipe
from tfdeploy.pipeline import DEFAULT_DEPLOY_RECIPES
from tfdeploy.serving.config import VersionPolicy


@dataclasses.dataclass
class GlobalOptions:
    """Options of the ``tfdeploy`` group, applied before any model is touched."""

    debug: bool = False
    quiet: bool = False
    gpu_memory_growth: bool = True
    gpu_memory_limit: int | None = None
    seed: int | None = None
    deterministic: bool = False
    console: Console = dataclasses.field(default_factory=lambda: Console(sys.stderr), compare=False, repr=False)

    def progress(self) -> Progress:
        """Where library calls report progress: nothing with --quiet, else tqdm on the user's terminal."""
        return Progress() if self.quiet else auto_progress(self.console.stream)

    def apply(self) -> None:
        """Configures GPUs, seeds and op determinism (imports TensorFlow)."""
        from tfdeploy import runtime

        gpu = runtime.configure_gpus(self.gpu_memory_growth, self.gpu_memory_limit)
        if self.debug:
            self.console.say(gpu.message)
        if self.seed is not None:
            runtime.seed_everything(self.seed, deterministic_ops=self.deterministic)
        elif self.deterministic:
            from tfdeploy import backend

            backend.tf().config.experimental.enable_op_determinism()


def options() -> GlobalOptions:
    """The running command's global options."""
    return click.get_current_context().find_object(GlobalOptions) or GlobalOptions()


def progress() -> Progress:
    """Progress for the running command's library call (stderr, so that stdout stays the report)."""
    return options().progress()


def say(message: str) -> None:
    """A line to the user on stderr (never into the captured TensorFlow log)."""
    options().console.say(message)


def library_command(func: Callable[..., Any]) -> Callable[..., Any]:
    """Applies the global options and runs the command with TensorFlow's output captured.

    A TfdeployError becomes ``Error: ...`` and exit code 2; any other exception one line naming it
    and exit code 1, its traceback in the log. The log is kept in ``--out``'s ``logs/`` when the
    command has one; otherwise it is deleted after success and named after a failure.
    """

    @functools.wraps(func)
    @click.pass_obj
    def wrapper(options: GlobalOptions, *args: Any, **kwargs: Any) -> Any:
        code = 0
        with capture_native_output(enabled=not options.debug) as console:
            options.console = console
            try:
                options.apply()
                return func(*args, **kwargs)
            except TfdeployError as exc:
                if options.debug:
                    raise
                console.say(f"Error: {exc}")
                code = 2
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
            except Exception as exc:
                if options.debug:
                    raise
                traceback.print_exc()  # into the log
                first = (str(exc).strip().splitlines() or [""])[0]
                console.say(f"Error: unexpected {type(exc).__name__}: {first} (a tfdeploy bug: please report it with "
                            "the log below; --debug shows the traceback)")
                code = 1
            finally:
                console.finish(kwargs.get("out_dir"), failed=code != 0 or sys.exc_info()[0] is not None)
        sys.exit(code)

    return wrapper


@dataclasses.dataclass(frozen=True)
class Loading:
    """How commands load user models: custom objects and Keras's ``safe_mode``."""

    custom_objects: dict[str, Any]
    safe_mode: bool

    def kwargs(self) -> dict[str, Any]:
        return {"custom_objects": self.custom_objects, "safe_mode": self.safe_mode}


def model_loading(func: Callable[..., Any]) -> Callable[..., Any]:
    """Adds ``--custom-objects`` and ``--unsafe-deserialization``; the command receives ``loading``."""

    @click.option("--custom-objects", "custom_object_specs", multiple=True, metavar="MODULE:NAME",
                  help="Custom layer/function the model needs (repeatable); importing MODULE also registers "
                       "@register_keras_serializable classes.")
    @click.option("--unsafe-deserialization", is_flag=True,
                  help="Allow Lambda layers: their Python code is stored in the model file and runs when it is "
                       "loaded (Keras safe_mode=False). Only for files you trust.")
    @functools.wraps(func)
    def wrapper(*args: Any, custom_object_specs: tuple[str, ...], unsafe_deserialization: bool, **kwargs: Any) -> Any:
        from tfdeploy.model.loading import parse_custom_objects

        if unsafe_deserialization:
            say("Warning: --unsafe-deserialization: Lambda layers in the model file will run the Python code "
                "stored in it.")
        loading = Loading(parse_custom_objects(custom_object_specs), safe_mode=not unsafe_deserialization)
        return func(*args, loading=loading, **kwargs)

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="tfdeploy")
@click.option("--debug", is_flag=True, help="Show tracebacks, setup details and TensorFlow's own log lines.")
@click.option("--quiet", "-q", is_flag=True, help="No progress; only the report and errors.")
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
@click.option("--train", is_flag=True, help="Train MobileNetV2 from scratch here instead of using the shipped, "
              "converged model (watch it learn; the options below apply).")
@click.option("--epochs", default=5, show_default=True, type=click.IntRange(min=1), help="--train: epochs.")
@click.option("--alpha", default=EXAMPLE_ALPHA, show_default=True, type=float,
              help="--train: MobileNetV2 width multiplier.")
@click.option("--image-size", default=EXAMPLE_IMAGE_SIZE, show_default=True, type=click.IntRange(min=32),
              help="--train: input size.")
@click.option("--full-data", is_flag=True, help="Use the full Fashion-MNIST (Debian package or Keras cache).")
@click.option("--overwrite", is_flag=True, help="Replace existing files.")
@library_command
def example_command(out_dir: Path, train: bool, epochs: int, alpha: float, image_size: int, full_data: bool,
                    overwrite: bool) -> None:
    """Write the built-in MobileNetV2 / Fashion-MNIST example: model.keras and data.npz (offline)."""
    from tfdeploy.model.examples import prepare_example

    report = prepare_example(out_dir, train=train, epochs=epochs, alpha=alpha, image_size=image_size,
                             full_data=full_data, overwrite=overwrite, progress=progress())
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
@click.option("--int8-granularity", type=click.Choice([g.value for g in Int8Granularity]),
              default=Int8Granularity.PER_CHANNEL.value, show_default=True,
              help="Weight scales of post-training int8 (per-tensor: smaller files).")
@click.option("--auto", is_flag=True, help="Search for the best variant within --max-accuracy-drop.")
@click.option("--max-accuracy-drop", default=1.0, show_default=True, type=click.FloatRange(min=0),
              help="--auto budget: accuracy points (or percent with --relative-budget).")
@click.option("--relative-budget", is_flag=True, help="Read --max-accuracy-drop as % of the original accuracy.")
@click.option("--objective", type=click.Choice([o.value for o in Objective]), default=Objective.SIZE.value,
              show_default=True, help="--auto: minimise gzip size or latency.")
@click.option("--max-trials", type=click.IntRange(min=1), help="--auto: at most this many candidates.")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), help="--auto: seconds before stopping.")
@click.option("--keep-all", is_flag=True, help="--auto: keep every trial's artifact.")
@click.option("--output", "output", metavar="NAME", help="Output accuracy is measured on (default: the first "
              "classification head).")
@click.option("--select-tf-ops", is_flag=True, help="Let TFLite conversion use TensorFlow select ops for ops without "
              "a builtin kernel (the runtime then needs the Flex delegate).")
@click.option("--overwrite", is_flag=True, help="Replace existing artifacts.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@library_command
@model_loading
def compress_command(model: Path, out_dir: Path, recipes: list[Recipe], data: Path | None, epochs: int,
                     batch_size: int, learning_rate: float, target_sparsity: float, prune_structure: str | None,
                     clusters: int, calibration_samples: int, io_dtype: str, int8_granularity: str,
                     auto: bool, max_accuracy_drop: float, relative_budget: bool, objective: str,
                     max_trials: int | None, timeout: float | None, keep_all: bool, output: str | None,
                     select_tf_ops: bool, overwrite: bool, as_json: bool, loading: Loading) -> None:
    """Compress MODEL with the chosen recipes and report size, accuracy and latency of each.

    Writes one artifact per recipe into --out plus report.json, report.md and report.png. Exits 1
    when a recipe failed (the report names it and why); the others are still made.
    """
    from tfdeploy.compression.session import CompressConfig, compress

    config = CompressConfig(
        model=model, out_dir=out_dir, recipes=recipes, data=data, output=output, epochs=epochs, batch_size=batch_size,
        learning_rate=learning_rate, target_sparsity=target_sparsity, prune_structure=prune_structure,
        clusters=clusters, calibration_samples=calibration_samples, io_dtype=IoDtype(io_dtype),
        int8_granularity=Int8Granularity(int8_granularity), select_tf_ops=select_tf_ops, overwrite=overwrite,
        progress=progress(), **loading.kwargs(),
    )
    if auto:
        from tfdeploy.compression.auto import AutoConfig, auto_compress

        report = auto_compress(AutoConfig(config, max_accuracy_drop=max_accuracy_drop, relative=relative_budget,
                                          objective=Objective(objective), max_trials=max_trials, timeout_s=timeout,
                                          keep_all=keep_all))
        click.echo(report.to_json() if as_json else report.to_table())
        return
    report = compress(config)
    click.echo(report.to_json() if as_json else report.to_table())
    if report.failed:
        sys.exit(1)


def _batch_sizes(ctx: click.Context, param: click.Parameter, value: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(part) for part in value.split(",") if part.strip())
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers like 1,8,32. Received: {value!r}") from None
    if not sizes or min(sizes) < 1:
        raise click.BadParameter(f"batch sizes must be positive integers. Received: {value!r}")
    return sizes


def _version(ctx: click.Context, param: click.Parameter, value: str) -> int | None:
    if value == "auto":
        return None
    if not value.isdigit():
        raise click.BadParameter(f"a version is a non-negative integer or 'auto'. Received: {value!r}")
    return int(value)


def _extra_signatures(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> dict[str, int | None]:
    signatures: dict[str, int | None] = {}
    for spec in value:
        name, _, batch = spec.partition(":")
        if not name or (batch and not batch.isdigit()):
            raise click.BadParameter(f"expected NAME or NAME:BATCH, e.g. serving_b8:8. Received: {spec!r}")
        signatures[name] = int(batch) if batch else None
    return signatures


warmup_options = [
    click.option("--warmup-data", type=click.Path(path_type=Path),
                 help="Real warmup samples: .npz or image directory (default: synthesized from the signature)."),
    click.option("--warmup-batch-sizes", default="1", show_default=True, callback=_batch_sizes,
                 help="One warmup request per batch size, e.g. 1,8,32."),
]


def with_options(options: list[Callable[[Any], Any]]) -> Callable[[Any], Any]:
    def decorate(func: Any) -> Any:
        for option in reversed(options):
            func = option(func)
        return func

    return decorate


@main.command("export")
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--base-dir", required=True, type=click.Path(path_type=Path), help="Model base path: models/NAME.")
@click.option("--version", "version", default="auto", show_default=True, callback=_version,
              help="Version number, or auto (highest existing + 1).")
@click.option("--overwrite", is_flag=True, help="Replace an existing version.")
@click.option("--source-model", type=click.Path(path_type=Path),
              help="For a .tflite MODEL: the Keras model it came from (for the SavedModel beside it).")
@click.option("--signature-batch-size", type=click.IntRange(min=1),
              help="Fixed batch dimension of serving_default (default: dynamic).")
@click.option("--extra-signature", "extra_signatures", multiple=True, callback=_extra_signatures,
              metavar="NAME[:BATCH]", help="Export another Predict signature (repeatable).")
@click.option("--input-name", help="Signature input key (default: the model's input layer name).")
@click.option("--no-warmup", is_flag=True, help="Do not write the warmup file.")
@with_options(warmup_options)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@library_command
@model_loading
def export_command(model: Path, base_dir: Path, version: int | None, overwrite: bool, source_model: Path | None,
                   signature_batch_size: int | None, extra_signatures: dict[str, int | None], input_name: str | None,
                   no_warmup: bool, warmup_data: Path | None, warmup_batch_sizes: tuple[int, ...],
                   as_json: bool, loading: Loading) -> None:
    """Export MODEL as a new TF Serving version under --base-dir (atomic, with warmup)."""
    from tfdeploy.serving.export import ExportConfig, export

    config = ExportConfig(
        model=model, base_dir=base_dir, version=version, overwrite=overwrite, source_model=source_model,
        batch_size=signature_batch_size, extra_signatures=extra_signatures, input_name=input_name,
        warmup=not no_warmup, warmup_data=warmup_data, warmup_batch_sizes=warmup_batch_sizes,
        progress=progress(), **loading.kwargs(),
    )
    report = export(config)
    click.echo(report.to_json() if as_json else report.to_table())


@main.group("warmup")
def warmup_group() -> None:
    """TF Serving warmup files (assets.extra/tf_serving_warmup_requests)."""


@warmup_group.command("write")
@click.argument("version_dir", type=click.Path(path_type=Path))
@with_options(warmup_options)
@click.option("--signature", "signature_name", default="serving_default", show_default=True)
@click.option("--seed", "seed", default=0, show_default=True, type=int, help="Seed of synthesized values.")
@click.option("--overwrite", is_flag=True, help="Replace an existing warmup file.")
@library_command
def warmup_write_command(version_dir: Path, warmup_data: Path | None, warmup_batch_sizes: tuple[int, ...],
                         signature_name: str, seed: int, overwrite: bool) -> None:
    """Write (or replace) the warmup file of an exported VERSION_DIR.

    Server-side replay count is TF Serving's num_request_iterations: set it with
    `tfdeploy serving-config --warmup-iterations N`.
    """
    from tfdeploy.serving.warmup import write_warmup

    report = write_warmup(version_dir, data=warmup_data, batch_sizes=warmup_batch_sizes,
                          signature_name=signature_name, seed=seed, overwrite=overwrite)
    click.echo(report.to_table())


@main.command("verify")
@click.argument("version_dir", type=click.Path(path_type=Path))
@click.option("--model", "source_model", type=click.Path(path_type=Path), help="Source model for output parity.")
@click.option("--signature", "signature_name", default="serving_default", show_default=True)
@click.option("--no-cold-start", is_flag=True, help="Skip the fresh-process cold-start measurement.")
@click.option("--atol", default=1e-4, show_default=True, type=float, help="Parity tolerance.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@library_command
@model_loading
def verify_command(version_dir: Path, source_model: Path | None, signature_name: str, no_cold_start: bool,
                   atol: float, as_json: bool, loading: Loading) -> None:
    """Check VERSION_DIR the way TF Serving would load it; exit 1 if any check fails."""
    from tfdeploy.serving.verification import verify

    report = verify(version_dir, source_model=source_model, signature_name=signature_name,
                    cold_start=not no_cold_start, atol=atol, progress=progress(), **loading.kwargs())
    click.echo(report.to_json() if as_json else report.to_table())
    if not report.passed:
        sys.exit(1)


def _served_models(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> list[tuple[str, str]]:
    pairs = []
    for spec in value:
        name, sep, base = spec.partition("=")
        if not sep or not name or not base:
            raise click.BadParameter(f"expected NAME=BASE_DIR, e.g. fashion=models/fashion. Received: {spec!r}")
        pairs.append((name, base))
    return pairs


def _labels(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> dict[str, dict[str, int]]:
    labels: dict[str, dict[str, int]] = {}
    for spec in value:
        model, _, rest = spec.partition(":")
        label, _, version = rest.partition("=")
        if not model or not label or not version.isdigit():
            raise click.BadParameter(f"expected MODEL:LABEL=VERSION, e.g. fashion:stable=1. Received: {spec!r}")
        labels.setdefault(model, {})[label] = int(version)
    return labels


@main.command("serving-config")
@click.option("--model", "models", multiple=True, required=True, callback=_served_models, metavar="NAME=BASE_DIR",
              help="A model to serve (repeatable).")
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path), help="Output directory.")
@click.option("--version-policy", type=click.Choice([p.value for p in VersionPolicy]), default="latest",
              show_default=True)
@click.option("--versions", default="", help="specific: versions to serve (1,2); latest: how many (N).")
@click.option("--label", "labels", multiple=True, callback=_labels, metavar="MODEL:LABEL=VERSION",
              help="Version label (repeatable).")
@click.option("--storage-uri", "storage_uris", multiple=True, callback=_served_models, metavar="NAME=URI",
              help="KServe storageUri of a model (default: its base dir).")
@click.option("--image", default="tensorflow/serving:2.21.0", show_default=True, help="Base image.")
@click.option("--rest-port", default=8501, show_default=True, type=int)
@click.option("--grpc-port", default=8500, show_default=True, type=int)
@click.option("--enable-batching", is_flag=True, help="Server-side batching.")
@click.option("--max-batch-size", default=32, show_default=True, type=click.IntRange(min=1))
@click.option("--allowed-batch-sizes", default="1,8,32", show_default=True, callback=_batch_sizes)
@click.option("--batch-timeout-micros", default=2000, show_default=True, type=click.IntRange(min=0))
@click.option("--num-batch-threads", default=2, show_default=True, type=click.IntRange(min=1))
@click.option("--num-load-threads", default=2, show_default=True, type=click.IntRange(min=1))
@click.option("--num-unload-threads", default=2, show_default=True, type=click.IntRange(min=1))
@click.option("--load-pool-threads", default=2, show_default=True, type=click.IntRange(min=1),
              help="Threads of the dedicated model-load pool.")
@click.option("--file-system-poll-wait-seconds", default=30, show_default=True, type=click.IntRange(min=1))
@click.option("--warmup-iterations", default=1, show_default=True, type=click.IntRange(min=1),
              help="Server-side replays of each warmup record (num_request_iterations).")
@click.option("--gpu-allow-growth", is_flag=True, help="allow_growth in the session config (GPU servers).")
@click.option("--overwrite", is_flag=True, help="Replace a non-empty output directory.")
@library_command
def serving_config_command(models: list[tuple[str, str]], out_dir: Path, version_policy: str, versions: str,
                           labels: dict[str, dict[str, int]], storage_uris: list[tuple[str, str]], image: str,
                           rest_port: int, grpc_port: int, enable_batching: bool, max_batch_size: int,
                           allowed_batch_sizes: tuple[int, ...], batch_timeout_micros: int, num_batch_threads: int,
                           num_load_threads: int, num_unload_threads: int, load_pool_threads: int,
                           file_system_poll_wait_seconds: int, warmup_iterations: int, gpu_allow_growth: bool,
                           overwrite: bool) -> None:
    """Generate TF Serving config (models, platform, batching, monitoring, Docker, KServe) for exported models."""
    from tfdeploy.serving.config import ServedModel, ServingConfig, write_serving_config

    version_list = [int(v) for v in versions.split(",") if v.strip().isdigit()]
    uris = dict(storage_uris)
    config = ServingConfig(
        models=[ServedModel(name=name, base_dir=base, policy=VersionPolicy(version_policy), versions=version_list,
                            labels=labels.get(name, {}), storage_uri=uris.get(name)) for name, base in models],
        out_dir=out_dir, image=image, rest_port=rest_port, grpc_port=grpc_port, enable_batching=enable_batching,
        max_batch_size=max_batch_size, allowed_batch_sizes=allowed_batch_sizes,
        batch_timeout_micros=batch_timeout_micros, num_batch_threads=num_batch_threads,
        num_load_threads=num_load_threads, num_unload_threads=num_unload_threads,
        load_pool_threads=load_pool_threads, file_system_poll_wait_seconds=file_system_poll_wait_seconds,
        warmup_iterations=warmup_iterations, gpu_allow_growth=gpu_allow_growth, overwrite=overwrite,
    )
    report = write_serving_config(config)
    click.echo(report.to_table())


@main.command("deploy")
@click.argument("model", required=False, type=click.Path(path_type=Path))
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path), help="Output directory of the run.")
@click.option("--example", is_flag=True, help="Use the built-in MobileNetV2 / Fashion-MNIST example (offline).")
@click.option("--data", type=click.Path(path_type=Path), help="Fine-tune/calibration/evaluation data.")
@click.option("--recipe", "recipes", default=",".join(r.value for r in DEFAULT_DEPLOY_RECIPES), show_default=True,
              callback=_recipe_list, help="Comma-separated recipes: " + ", ".join(Recipe.choices()) + ".")
@click.option("--serve-variant", default=Recipe.STRIP.value, show_default=True,
              help="Variant exported for TF Serving: original or one of the recipes.")
@click.option("--model-name", help="TF Serving model name (default: the model file's name).")
@click.option("--epochs", default=2, show_default=True, type=click.IntRange(min=1), help="Recipe fine-tune epochs.")
@click.option("--train", "train_example", is_flag=True, help="With --example: train it from scratch instead of "
              "using the shipped, converged model.")
@click.option("--example-epochs", default=5, show_default=True, type=click.IntRange(min=1),
              help="--example --train: training epochs.")
@click.option("--int8-granularity", type=click.Choice([g.value for g in Int8Granularity]),
              default=Int8Granularity.PER_TENSOR.value, show_default=True)
@click.option("--bench-requests", default=200, show_default=True, type=click.IntRange(min=1))
@click.option("--output", "output", metavar="NAME", help="Output accuracy is measured on (default: the first "
              "classification head).")
@click.option("--select-tf-ops", is_flag=True, help="Let TFLite conversion use TensorFlow select ops (Flex delegate).")
@click.option("--overwrite", is_flag=True, help="Replace a previous run in --out.")
@library_command
@model_loading
def deploy_command(model: Path | None, out_dir: Path, example: bool, data: Path | None, recipes: list[Recipe],
                   serve_variant: str, model_name: str | None, epochs: int, train_example: bool, example_epochs: int,
                   int8_granularity: str, bench_requests: int, output: str | None, select_tf_ops: bool,
                   overwrite: bool, loading: Loading) -> None:
    """Whole pipeline: setup, compress, export with warmup, serving config, verify, bench."""
    from tfdeploy.pipeline import DeployConfig, deploy

    options: GlobalOptions = click.get_current_context().obj
    config = DeployConfig(
        out_dir=out_dir, model=model, example=example, data=data, recipes=recipes, serve_variant=serve_variant,
        model_name=model_name, epochs=epochs, train_example=train_example, example_epochs=example_epochs,
        int8_granularity=Int8Granularity(int8_granularity), bench_requests=bench_requests,
        seed=0 if options.seed is None else options.seed, deterministic=options.deterministic,
        gpu_memory_growth=options.gpu_memory_growth, gpu_memory_limit_mb=options.gpu_memory_limit,
        output=output, select_tf_ops=select_tf_ops, overwrite=overwrite, progress=progress(), **loading.kwargs(),
    )
    click.echo(deploy(config).to_table())


@main.command("bench")
@click.argument("artifacts", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--batch-sizes", default="1", show_default=True, callback=_batch_sizes, help="e.g. 1,8,32.")
@click.option("--requests", type=click.IntRange(min=1), help="Timed requests per artifact and batch size [default: 200].")
@click.option("--duration", type=click.FloatRange(min=0, min_open=True), help="Seconds per artifact and batch size.")
@click.option("--concurrency", default=1, show_default=True, type=click.IntRange(min=1), help="Client threads.")
@click.option("--warmup-requests", default=10, show_default=True, type=click.IntRange(min=0),
              help="Untimed requests per client before timing.")
@click.option("--threads", type=click.IntRange(min=1), help="TFLite interpreter threads.")
@click.option("--no-cold-start", is_flag=True, help="Skip the fresh-process cold-start measurement.")
@click.option("--hot-swap", is_flag=True, help="ARTIFACTS are version N and N+1: measure the update, warm and cold.")
@click.option("--hot-swap-seconds", default="3,4", show_default=True,
              help="Seconds of traffic before the load and after the switch.")
@click.option("--json", "json_path", type=click.Path(path_type=Path), help="Write the report as JSON.")
@click.option("--plot", "plot_path", type=click.Path(path_type=Path), help="Write a PNG (timeline with --hot-swap).")
@click.option("--data", type=click.Path(path_type=Path), help="Real request inputs: .npz or image directory "
              "(default: synthesized from each artifact's inputs).")
@click.option("--overwrite", is_flag=True, help="Replace existing --json/--plot files.")
@library_command
@model_loading
def bench_command(artifacts: tuple[Path, ...], batch_sizes: tuple[int, ...], requests: int | None,
                  duration: float | None, concurrency: int, warmup_requests: int, threads: int | None,
                  no_cold_start: bool, hot_swap: bool, hot_swap_seconds: str, json_path: Path | None,
                  plot_path: Path | None, data: Path | None, overwrite: bool, loading: Loading) -> None:
    """Latency percentiles, throughput, cold start (and hot swap) of ARTIFACTS, side by side.

    ARTIFACTS: Keras files, SavedModel version directories (served through their signature) and
    .tflite files.
    """
    from tfdeploy.measure.benchmark import BenchConfig, bench

    if requests is not None and duration is not None:
        raise click.BadParameter("give --requests or --duration, not both")
    try:
        steady_s, after_s = (float(v) for v in hot_swap_seconds.split(","))
    except ValueError:
        raise click.BadParameter(f"expected BEFORE,AFTER seconds. Received: {hot_swap_seconds!r}") from None
    config = BenchConfig(
        artifacts=artifacts, batch_sizes=batch_sizes, requests=None if duration else (requests or 200),
        duration_s=duration, concurrency=concurrency, warmup_requests=warmup_requests, threads=threads,
        cold_start=not no_cold_start, hot_swap=hot_swap, hot_swap_steady_s=steady_s, hot_swap_after_s=after_s,
        json_path=json_path, plot_path=plot_path, data=data, overwrite=overwrite, progress=progress(),
        **loading.kwargs(),
    )
    click.echo(bench(config).to_table())


@main.group("check")
def check_group() -> None:
    """Determinism and parity checks."""


@check_group.command("determinism")
@click.argument("artifact", type=click.Path(path_type=Path))
@click.option("--runs", default=5, show_default=True, type=click.IntRange(min=1), help="Calls per load.")
@click.option("--reloads", default=2, show_default=True, type=click.IntRange(min=0), help="Extra fresh loads.")
@click.option("--data", type=click.Path(path_type=Path), help="Inputs: .npz or image directory (default: synthetic).")
@click.option("--samples", default=16, show_default=True, type=click.IntRange(min=1))
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@library_command
@model_loading
def check_determinism_command(artifact: Path, runs: int, reloads: int, data: Path | None, samples: int,
                              as_json: bool, loading: Loading) -> None:
    """Same inputs, N runs and K fresh loads: exit 0 if bit-identical, 1 if not (with the causes)."""
    from tfdeploy.measure.checks import check_determinism

    report = check_determinism(artifact, runs=runs, reloads=reloads, data=data, samples=samples, **loading.kwargs())
    click.echo(report.to_json() if as_json else report.to_table())
    sys.exit(0 if report.identical else 1)


@check_group.command("parity")
@click.argument("source", type=click.Path(path_type=Path))
@click.argument("artifacts", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--data", type=click.Path(path_type=Path), help="Inputs: .npz or image directory (default: synthetic).")
@click.option("--samples", default=256, show_default=True, type=click.IntRange(min=1))
@click.option("--atol", default=1e-3, show_default=True, type=float, help="Max abs difference to pass.")
@click.option("--min-agreement", default=0.99, show_default=True, type=click.FloatRange(0, 1),
              help="Top-1 agreement that passes a classifier whose values differ more than atol.")
@click.option("--rtol", default=0.0, show_default=True, type=click.FloatRange(min=0),
              help="Also allowed: this fraction of the output's largest magnitude (for quantized regression outputs).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@library_command
@model_loading
def check_parity_command(source: Path, artifacts: tuple[Path, ...], data: Path | None, samples: int, atol: float,
                         min_agreement: float, rtol: float, as_json: bool, loading: Loading) -> None:
    """Compare every output of ARTIFACTS with SOURCE on the same inputs; exit 1 if any fails."""
    from tfdeploy.measure.checks import check_parity

    report = check_parity(source, artifacts, data=data, samples=samples, atol=atol, min_agreement=min_agreement,
                          rtol=rtol, **loading.kwargs())
    click.echo(report.to_json() if as_json else report.to_table())
    sys.exit(0 if report.passed else 1)


if __name__ == "__main__":  # pragma: no cover
    main()
