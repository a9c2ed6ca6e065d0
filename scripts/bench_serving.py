"""Serving benchmarks on the built-in MobileNetV2 example: cold start and hot swap, warm vs cold.

Exports the example twice (versions 1 and 2, warmup included), then runs ``tfdeploy bench``'s
library call: latency percentiles per batch size, cold start in fresh processes with and without
replaying the warmup file, and the hot swap 1 -> 2 with version 2 warmed and cold (each in a
fresh process). Writes ``bench.json``, ``latency.png`` and ``hot_swap.png``.

Targets (issue #5): first request after load with warmup ≤ 1.5× steady p50; hot-swap p999 with
warmup ≤ 2× steady p999; the same without warmup, to show the difference.

Usage:
    python scripts/bench_serving.py [--out bench-out/serving] [--model example/model.keras]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
from pathlib import Path

from tfdeploy import runtime
from tfdeploy.model import examples
from tfdeploy.measure.benchmark import BenchConfig, bench
from tfdeploy.serving.export import ExportConfig, export


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=Path("bench-out/serving"))
    parser.add_argument("--model", type=Path, help="a trained example model (default: build and fine-tune one)")
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--swap-seconds", default="5,8")
    args = parser.parse_args()
    if args.out.exists():
        shutil.rmtree(args.out)
    runtime.seed_everything(0)
    model = args.model
    if model is None:
        model = Path(examples.prepare_example(args.out / "example", progress=print).model_path)
    data = examples.example_dataset()
    warmup = examples.Dataset(x=data.x_val[:64])
    base = args.out / "models" / "fashion"
    for _ in range(2):
        print(export(ExportConfig(model, base, warmup_data=warmup, warmup_batch_sizes=(1, 8, 32))))
    steady_s, after_s = (float(v) for v in args.swap_seconds.split(","))
    report = bench(BenchConfig(
        artifacts=[str(base / "1"), str(base / "2")], batch_sizes=(1, 8, 32), requests=args.requests,
        concurrency=args.concurrency, hot_swap=True, hot_swap_steady_s=steady_s, hot_swap_after_s=after_s,
        plot_path=args.out / "hot_swap.png", progress=print,
    ))
    print(report)
    cold = report.cold_starts[str(base / "1")]
    cold_swap, warm_swap = report.hot_swaps
    targets = {
        "first_request_with_warmup_over_steady_p50": cold["with_warmup"]["first_over_steady"],
        "first_request_without_warmup_over_steady_p50": cold["without_warmup"]["first_over_steady"],
        "hot_swap_warm_after_switch_p999_over_steady_p999": warm_swap.after_switch.p999_ms / warm_swap.steady.p999_ms,
        "hot_swap_cold_after_switch_p999_over_steady_p999": cold_swap.after_switch.p999_ms / cold_swap.steady.p999_ms,
        "hot_swap_warm_swap_window_p999_over_steady_p999": warm_swap.swap_window.p999_ms / warm_swap.steady.p999_ms,
        "hot_swap_cold_swap_window_p999_over_steady_p999": cold_swap.swap_window.p999_ms / cold_swap.steady.p999_ms,
    }
    payload = {
        "machine": {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count()},
        "model": str(model), "targets": targets,
        "target_limits": {"first_request_with_warmup_over_steady_p50": 1.5,
                          "hot_swap_warm_after_switch_p999_over_steady_p999": 2.0},
        "report": report.to_dict(),
    }
    (args.out / "bench.json").write_text(json.dumps(payload, indent=2))
    from tfdeploy.measure.benchmark import plot_latencies

    plot_latencies(report.results, args.out / "latency.png")
    print(json.dumps(targets, indent=2))


if __name__ == "__main__":
    main()
