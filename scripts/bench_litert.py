"""LiteRT recipes and the --auto search, measured: writes bench-out/litert/litert.json.

For the converged built-in example (MobileNetV2 alpha 0.35, 32×32) and a larger MobileNetV2
(alpha 1.0, 96×96, trained here for ``--epochs`` on the packaged Fashion-MNIST subset; no
downloads), runs ``tflite``, ``ptq-int8``, ``ptq-int4-weights``, ``ptq-int16x8`` and ``ptq-mixed``
and records each variant's size as a fraction of the float32 ``.tflite``, accuracy drop and
single-example LiteRT (XNNPACK) latency with the thread count. Then runs ``compress --auto
--max-accuracy-drop 1.0`` on the example (wall time, peak RSS of the search and of each trial,
chosen vs the best single recipe within budget) and a longer search (``--budget-long``, default
0.0 points, so every candidate and both per-layer searches run) to measure the peak memory of a
~10-trial search with every trial in its own process.

Usage:
    python scripts/bench_litert.py [--out bench-out/litert] [--epochs 3] [--skip-large] [--skip-long]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from tfdeploy import runtime
from tfdeploy.compression import CompressConfig, compress
from tfdeploy.compression.auto import AutoConfig, auto_compress
from tfdeploy.measure.processes import peak_rss_bytes
from tfdeploy.model import examples

RECIPES = ["tflite", "ptq-int8", "ptq-int4-weights", "ptq-int16x8", "ptq-mixed"]


def _large_model(out: Path, epochs: int) -> tuple[Path, Path, dict[str, Any]]:
    from tfdeploy.model.loading import save_model

    data = examples.example_dataset(image_size=96)
    model = examples.build_example_model(alpha=1.0, image_size=96)
    start = time.perf_counter()
    training = examples.fine_tune_example(model, data, epochs=epochs, progress=print).to_dict()
    out.mkdir(parents=True, exist_ok=True)
    save_model(model, out / "model.keras", overwrite=True)
    np.savez(out / "data.npz", x=data.x, y=data.y, x_val=data.x_val, y_val=data.y_val)
    return out / "model.keras", out / "data.npz", {**training, "training_seconds": time.perf_counter() - start,
                                                   "architecture": "MobileNetV2 alpha=1.0 96x96x3",
                                                   "train_images": len(data.x), "epochs": epochs}


def _recipes(model: Path, data: Path, out: Path) -> dict[str, Any]:
    start = time.perf_counter()
    report = compress(CompressConfig(model, out, data=data, recipes=RECIPES, overwrite=True, progress=print))
    float_tflite = next(v for v in report.variants if v.name == "tflite")
    rows = {}
    for v in report.variants:
        rows[v.name] = {
            "raw_bytes": v.raw_bytes, "gzip_bytes": v.gzip_bytes, "status": v.status, "error": v.error,
            "raw_of_float_tflite": None if v.raw_bytes is None else v.raw_bytes / float_tflite.raw_bytes,
            "gzip_of_float_tflite": None if v.gzip_bytes is None else v.gzip_bytes / float_tflite.gzip_bytes,
            "accuracy": v.accuracy, "drop_points": None if v.accuracy_drop is None else 100 * v.accuracy_drop,
            "latency_ms": v.latency_ms, "runtime": v.runtime, "layers": v.layers, "notes": v.notes}
    return {"seconds": time.perf_counter() - start, "eval_samples": report.eval_samples, "variants": rows}


def _auto(model: Path, data: Path, out: Path, budget: float, single: dict[str, Any] | None) -> dict[str, Any]:
    start = time.perf_counter()
    report = auto_compress(AutoConfig(CompressConfig(model, out, data=data, overwrite=True, progress=print),
                                      max_accuracy_drop=budget))
    result = {"budget_points": budget, "wall_seconds": time.perf_counter() - start, "report": report.to_dict(),
              "trials": len(report.trials), "search_peak_rss_bytes": report.peak_rss_bytes,
              "parent_peak_rss_bytes": peak_rss_bytes()}
    if single is not None:
        within = {k: v["gzip_bytes"] for k, v in single["variants"].items()
                  if k != "original" and v["drop_points"] is not None and v["drop_points"] <= budget}
        chosen = next((t for t in report.trials if t.name == report.chosen), None)
        result["best_single_recipe_within_budget"] = min(within, key=within.get) if within else None
        result["best_single_gzip_bytes"] = min(within.values()) if within else None
        result["chosen_gzip_bytes"] = chosen.gzip_bytes if chosen else None
        result["chosen_at_least_as_small"] = bool(chosen and within and chosen.gzip_bytes <= min(within.values()))
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=Path("bench-out/litert"))
    parser.add_argument("--epochs", type=int, default=3, help="training epochs of the larger MobileNetV2")
    parser.add_argument("--budget-long", type=float, default=0.0, help="budget of the long --auto search")
    parser.add_argument("--skip-large", action="store_true")
    parser.add_argument("--skip-long", action="store_true")
    parser.add_argument("--only-long", action="store_true", help="only the long --auto search (fresh process)")
    args = parser.parse_args()
    if args.only_long:
        return _only_long(args)
    if args.out.exists():
        shutil.rmtree(args.out)
    runtime.seed_everything(0)
    example = examples.prepare_example(args.out / "example", progress=print)
    model, data = Path(example.model_path), Path(example.data_path)
    payload: dict[str, Any] = {"machine": {"python": platform.python_version(), "platform": platform.platform(),
                                           "cpus": os.cpu_count()}, "models": {}}
    payload["models"]["example"] = {"architecture": "MobileNetV2 alpha=0.35 32x32x3 (shipped, converged)",
                                    "recipes": _recipes(model, data, args.out / "example-recipes")}
    payload["auto_budget_1"] = _auto(model, data, args.out / "auto-1", 1.0, payload["models"]["example"]["recipes"])
    _write(args.out, payload)
    if not args.skip_large:
        large, large_data, training = _large_model(args.out / "large", args.epochs)
        payload["models"]["mobilenetv2_1.0_96"] = {**training, "recipes": _recipes(large, large_data,
                                                                                    args.out / "large-recipes")}
        _write(args.out, payload)
    if not args.skip_long:
        payload["auto_long"] = _auto(model, data, args.out / "auto-long", args.budget_long, None)
        _write(args.out, payload)


def _only_long(args: argparse.Namespace) -> None:
    """The long search alone, in this fresh process, merged into an existing litert.json."""
    path = args.out / "litert.json"
    payload = json.loads(path.read_text()) if path.exists() else {}
    example = examples.prepare_example(args.out / "example-long", overwrite=True, progress=print)
    payload["auto_long"] = _auto(Path(example.model_path), Path(example.data_path), args.out / "auto-long",
                                 args.budget_long, None)
    args.out.mkdir(parents=True, exist_ok=True)
    _write(args.out, payload)


def _write(out: Path, payload: dict[str, Any]) -> None:
    (out / "litert.json").write_text(json.dumps(payload, indent=2, default=str))
    print(f"wrote {out / 'litert.json'}")


if __name__ == "__main__":
    main()
