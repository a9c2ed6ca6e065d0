"""``tfdeploy bench`` and ``tfdeploy check determinism|parity``: measuring artifacts."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from tfdeploy.cli import options as opt
from tfdeploy.cli.context import echo_report, library_command, progress
from tfdeploy.cli.options import Loading, config_option
from tfdeploy.measure import BenchConfig, check_determinism, check_parity
from tfdeploy.measure.hot_swap import ABLATION, MIN_SWAPS, config_name

PATH = click.Path(path_type=Path)
INPUTS_HELP = "Inputs: .npz or image directory (default: synthetic)."


@click.command("bench")
@click.argument("artifacts", nargs=-1, required=True)  # paths or grpc:// and http:// URLs (a Path drops the //)
@opt.batch_sizes(BenchConfig, "batch_sizes", "--batch-sizes", help="e.g. 1,8,32.")
@config_option(BenchConfig, "requests", "--requests", type=click.IntRange(min=1), callback=opt.excludes("duration_s"),
               help="Timed requests per artifact and batch size.")
@config_option(BenchConfig, "duration_s", "--duration", type=click.FloatRange(min=0, min_open=True),
               callback=opt.excludes("requests"), help="Seconds per artifact and batch size.")
@config_option(BenchConfig, "concurrency", "--concurrency", type=click.IntRange(min=1), help="Client threads.")
@config_option(BenchConfig, "warmup_requests", "--warmup-requests", type=click.IntRange(min=0),
               help="Untimed requests per client before timing.")
@config_option(BenchConfig, "threads", "--threads", type=click.IntRange(min=1), help="TFLite interpreter threads.")
@opt.no_cold_start(BenchConfig)
@config_option(BenchConfig, "hot_swap", "--hot-swap", is_flag=True,
               help="ARTIFACTS are versions N and N+1: rehearse hot updates as TF Serving loads them.")
@config_option(BenchConfig, "ablation", "--ablation", is_flag=True,
               help="With --hot-swap: each configuration in a fresh process, one fix more each time: "
                    + "; ".join(config_name(fixes) for fixes in ABLATION) + ".")
@config_option(BenchConfig, "serving_config", "--serving-config", type=PATH,
               help="With --hot-swap: the serving-config directory (or platform_config.txt) to load with.")
@config_option(BenchConfig, "swaps", "--swaps", type=click.IntRange(min=MIN_SWAPS),
               help="With --hot-swap: version swaps per configuration.")
@config_option(BenchConfig, ("hot_swap_steady_s", "hot_swap_after_s"), "--hot-swap-seconds", "hot_swap_seconds",
               to_cli=opt.comma_list("{:g}".format), callback=opt.seconds_pair,
               help="Seconds of traffic before the first swap and after each swap.")
@opt.as_json_or_legacy_path
@opt.json_out(BenchConfig)
@config_option(BenchConfig, "plot_path", "--plot", type=PATH,
               help="Write a PNG (with --hot-swap: one timeline per configuration, NAME-CONFIG.png).")
@opt.data(BenchConfig, help="Real request inputs: .npz or image directory (default: synthesized from each "
          "artifact's inputs).")
@opt.overwrite(BenchConfig, help="Replace existing --json-out/--plot files.")
@opt.signature(BenchConfig)
@config_option(BenchConfig, "publish", "--publish", type=PATH, metavar="MODEL",
               help="With --hot-swap and one grpc:// or http:// target: export MODEL as the next version into "
                    "--base-dir under traffic and measure the server's load and switch.")
@config_option(BenchConfig, "base_dir", "--base-dir", type=PATH, metavar="DIR",
               help="With --publish: the model's base directory that the server watches.")
@config_option(BenchConfig, "publish_timeout_s", "--publish-timeout", type=click.FloatRange(min=0, min_open=True),
               help="With --publish: seconds to wait for the new version to answer.")
@library_command
@opt.model_loading(BenchConfig)
def bench_command(as_json: bool | Path, hot_swap_seconds: tuple[float, float], loading: Loading,
                  **values: Any) -> None:
    """Latency percentiles, throughput, cold start (and hot swap) of ARTIFACTS, side by side.

    ARTIFACTS: Keras files, SavedModel version directories (served through their signature),
    .tflite files, and models on a running TF Serving: grpc://HOST:PORT/MODEL[/VERSION|@LABEL]
    (gRPC, port 8500) or http://HOST:PORT/v1/models/MODEL[/versions/N|/labels/LABEL] (REST, 8501).
    """
    from tfdeploy.measure import bench

    as_json, values["json_path"] = opt.split_legacy_json(as_json, values["json_path"])
    values["hot_swap_steady_s"], values["hot_swap_after_s"] = hot_swap_seconds
    if values["duration_s"] is not None:
        values["requests"] = None
    echo_report(bench(BenchConfig(**values, progress=progress(), **loading.kwargs())), as_json)


@click.group("check")
def check_group() -> None:
    """Determinism and parity checks."""


@check_group.command("determinism")
@click.argument("artifact", type=PATH)
@config_option(check_determinism, "runs", "--runs", type=click.IntRange(min=1), help="Calls per load.")
@config_option(check_determinism, "reloads", "--reloads", type=click.IntRange(min=0), help="Extra fresh loads.")
@opt.data(check_determinism, help=INPUTS_HELP)
@config_option(check_determinism, "samples", "--samples", type=click.IntRange(min=1))
@opt.as_json
@library_command
@opt.model_loading(check_determinism)
def check_determinism_command(as_json: bool, loading: Loading, **values: Any) -> None:
    """Same inputs, N runs and K fresh loads: exit 0 if bit-identical, 1 if not (with the causes)."""
    from tfdeploy.measure import check_determinism

    report = check_determinism(**values, **loading.kwargs())
    echo_report(report, as_json)
    sys.exit(0 if report.identical else 1)


@check_group.command("parity")
@click.argument("source", type=PATH)
@click.argument("artifacts", nargs=-1, required=True, type=PATH)
@opt.data(check_parity, help=INPUTS_HELP)
@config_option(check_parity, "samples", "--samples", type=click.IntRange(min=1))
@config_option(check_parity, "atol", "--atol", type=float, help="Max abs difference to pass.")
@config_option(check_parity, "min_agreement", "--min-agreement", type=click.FloatRange(0, 1),
               help="Top-1 agreement that passes a classifier whose values differ more than atol.")
@config_option(check_parity, "rtol", "--rtol", type=click.FloatRange(min=0),
               help="Also allowed: this fraction of the output's largest magnitude (for quantized regression outputs).")
@opt.metrics(check_parity)
@opt.as_json
@library_command
@opt.model_loading(check_parity)
def check_parity_command(as_json: bool, loading: Loading, **values: Any) -> None:
    """Compare every output of ARTIFACTS with SOURCE on the same inputs; exit 1 if any fails."""
    from tfdeploy.measure import check_parity

    report = check_parity(**values, **loading.kwargs())
    echo_report(report, as_json)
    sys.exit(0 if report.passed else 1)
