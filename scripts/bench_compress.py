"""Runs every compression recipe on the built-in MobileNetV2 / Fashion-MNIST example.

Writes ``<out>/report.json`` (the compress report plus the targets below), ``report.md`` and
``report.png``. Targets (issue #3): int8 variants ≤ 30% of the float32 TFLite size; prune-0.5 +
int8 gzip ≤ 22% of the float TFLite gzip; int8 accuracy drop ≤ 1.5 points.

Usage:
    python scripts/bench_compress.py [--out bench-out/compress] [--epochs 2] [--train-example --example-epochs 5]
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import time
from pathlib import Path

from tfdeploy import runtime
from tfdeploy.model import examples
from tfdeploy.compression import CompressConfig, compress
from tfdeploy.compression.recipes import Recipe
from tfdeploy.compression.tflite import Int8Granularity

INT8 = ("qat", "prune-qat", "cluster-qat", "ptq-int8", "prune-int8")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=Path("bench-out/compress"))
    parser.add_argument("--epochs", type=int, default=2, help="fine-tune epochs of each TFMOT recipe")
    parser.add_argument("--train-example", action="store_true", help="train the example here (default: shipped)")
    parser.add_argument("--example-epochs", type=int, default=5)
    parser.add_argument("--recipes", default="all")
    parser.add_argument("--int8-granularity", default="per-tensor", choices=[g.value for g in Int8Granularity],
                        help="post-training int8 weight scales (per-tensor: MobileNetV2 0.35 is narrow, per-channel "
                             "scales and zero points are a quarter of its int8 file)")
    args = parser.parse_args()
    if args.out.exists():
        shutil.rmtree(args.out)
    runtime.seed_everything(0)
    start = time.perf_counter()
    example = examples.prepare_example(args.out / "example", train=args.train_example,
                                       epochs=args.example_epochs, progress=print)
    print(example)
    report = compress(CompressConfig(
        model=example.model_path, out_dir=args.out, recipes=Recipe.parse_list(args.recipes), data=example.data_path,
        epochs=args.epochs, int8_granularity=Int8Granularity(args.int8_granularity), progress=print,
    ))
    print(report)
    variants = {v.name: v for v in report.variants}
    targets = {}
    if "tflite" in variants:
        f32 = variants["tflite"]
        for name in INT8:
            if name in variants:
                targets[f"{name}_raw_vs_float_tflite"] = variants[name].raw_bytes / f32.raw_bytes
                targets[f"{name}_accuracy_drop_points"] = 100 * variants[name].accuracy_drop
        for name in ("prune-int8", "prune-qat"):
            if name in variants:
                targets[f"{name}_gzip_vs_float_tflite_gzip"] = variants[name].gzip_bytes / f32.gzip_bytes
    payload = {
        "machine": {"python": platform.python_version(), "platform": platform.platform(), "cpus": __import__("os").cpu_count()},
        "example": example.to_dict(), "targets": targets,
        "target_limits": {"int8_raw_vs_float_tflite": 0.30, "prune_int8_gzip_vs_float_tflite_gzip": 0.22,
                          "int8_accuracy_drop_points": 1.5},
        "wall_seconds": time.perf_counter() - start, "report": report.to_dict(),
    }
    (args.out / "report.json").write_text(json.dumps(payload, indent=2))
    print(json.dumps(targets, indent=2))


if __name__ == "__main__":
    main()
