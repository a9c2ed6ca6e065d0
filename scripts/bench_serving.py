"""Serving benchmarks: latency, cold start, and the hot-update ablation, loaded the way TF Serving loads.

For the built-in example (MobileNetV2 0.35@32, fine-tuned) and, with ``--large``, MobileNetV2 alpha
1.0 at 224×224 (random weights: only latency and memory are measured), exports versions 1 and 2
with warmup files, writes the ``tfdeploy serving-config`` directory, then runs ``tfdeploy bench``'s
library call: latency percentiles per batch size, cold start in fresh processes with and without
the warmup file (example only), and the hot-swap rehearsal with ``ablation`` (no fixes → warmup →
+ load pool → + jemalloc, each in a fresh process, the same traffic and swaps).
Writes ``bench.json`` (``models.NAME.ablation`` rows), ``latency.png`` and ``hot_swap-NAME-CONFIG.png``.

Target (issue #15): with all fixes, the swap window's p999 ≤ 2× steady p999.

Usage:
    python scripts/bench_serving.py [--out bench-out/serving] [--large] [--swaps 3] [--seconds 4,4]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
from pathlib import Path

from tfdeploy import backend, runtime
from tfdeploy.measure.benchmark import BenchConfig, bench, plot_latencies
from tfdeploy.model import examples
from tfdeploy.serving import ServedModel, ServingConfig, write_serving_config
from tfdeploy.serving.export import ExportConfig, export


def _large_model(out: Path) -> Path:
    keras = backend.keras3()
    model = keras.applications.MobileNetV2(weights=None, input_shape=(224, 224, 3), classes=10, alpha=1.0)
    path = out / "mobilenetv2_224.keras"
    path.parent.mkdir(parents=True, exist_ok=True)
    model.save(path)
    return path


def _versions(model: Path, base: Path, warmup: examples.Dataset | None) -> tuple[str, str]:
    for _ in range(2):
        print(export(ExportConfig(model, base, warmup_data=warmup, warmup_batch_sizes=(1, 8))))
    return str(base / "1"), str(base / "2")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=Path("bench-out/serving"))
    parser.add_argument("--model", type=Path, help="a trained example model (default: build and fine-tune one)")
    parser.add_argument("--large", action="store_true", help="also MobileNetV2 1.0 at 224x224")
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--swaps", type=int, default=3)
    parser.add_argument("--seconds", default="4,4", help="steady seconds before the first swap, after each swap")
    args = parser.parse_args()
    if args.out.exists():
        shutil.rmtree(args.out)
    runtime.seed_everything(0)
    example = args.model or Path(examples.prepare_example(args.out / "example", progress=print).model_path)
    data = examples.example_dataset()
    models = {"example": (example, examples.Dataset(x=data.x_val[:64]))}
    if args.large:
        models["mobilenetv2_224"] = (_large_model(args.out / "large"), None)
    steady_s, gap_s = (float(v) for v in args.seconds.split(","))
    payload: dict = {"machine": {"python": platform.python_version(), "platform": platform.platform(),
                                 "cpus": os.cpu_count()}, "models": {}}
    for name, (model, warmup) in models.items():
        base = args.out / "models" / name
        versions = _versions(model, base, warmup)
        serving = args.out / f"serving-{name}"
        write_serving_config(ServingConfig([ServedModel(name, str(base))], serving))
        report = bench(BenchConfig(
            artifacts=list(versions), batch_sizes=(1, 8), requests=args.requests, concurrency=args.concurrency,
            cold_start=name == "example", hot_swap=True, ablation=True, serving_config=serving, swaps=args.swaps,
            hot_swap_steady_s=steady_s, hot_swap_after_s=gap_s, plot_path=args.out / f"hot_swap-{name}.png",
            progress=print))
        print(report)
        plot_latencies(report.results, args.out / f"latency-{name}.png")
        payload["models"][name] = {"model": str(model), **report.to_dict()}
        with_all = report.hot_swap.ablation[-1]
        payload["models"][name]["target_all_fixes_swap_p999_over_steady_p999"] = {
            "value": with_all["ratio"], "limit": 2.0, "config": with_all["config"]}
    (args.out / "bench.json").write_text(json.dumps(payload, indent=2))
    print(json.dumps({name: [(row["config"], round(row["ratio"], 2), row["spike_seconds"])
                             for row in entry["ablation"]] for name, entry in payload["models"].items()}, indent=1))


if __name__ == "__main__":
    main()
