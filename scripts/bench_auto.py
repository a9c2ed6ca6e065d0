"""Accuracy-aware compression on the built-in example: writes the trial table as JSON.

Usage:
    python scripts/bench_auto.py [--out bench-out/auto] [--model example/model.keras] [--budget 1.0]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import time
from pathlib import Path

from tfdeploy import runtime
from tfdeploy.model import examples
from tfdeploy.compression.auto import AutoConfig, auto_compress
from tfdeploy.compression import CompressConfig
from tfdeploy.compression.auto import Objective
from tfdeploy.compression.tflite import Int8Granularity


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=Path("bench-out/auto"))
    parser.add_argument("--model", type=Path, help="a trained example model (default: build and fine-tune one)")
    parser.add_argument("--data", type=Path, help="its data.npz (default: the example's)")
    parser.add_argument("--budget", type=float, default=1.0, help="max accuracy drop in points")
    parser.add_argument("--objective", default="size", choices=[o.value for o in Objective])
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    if args.out.exists():
        shutil.rmtree(args.out)
    runtime.seed_everything(0)
    model, data = args.model, args.data
    if model is None:
        example = examples.prepare_example(args.out / "example", progress=print)
        model, data = Path(example.model_path), Path(example.data_path)
    start = time.perf_counter()
    report = auto_compress(AutoConfig(
        CompressConfig(model, args.out / "result", data=data, epochs=args.epochs,
                       int8_granularity=Int8Granularity.PER_TENSOR, progress=print),
        max_accuracy_drop=args.budget, objective=Objective(args.objective)))
    print(report)
    payload = {"machine": {"python": platform.python_version(), "platform": platform.platform(),
                           "cpus": os.cpu_count()},
               "wall_seconds": time.perf_counter() - start, "report": report.to_dict()}
    (args.out / "auto.json").write_text(json.dumps(payload, indent=2))


if __name__ == "__main__":
    main()
