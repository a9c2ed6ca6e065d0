"""A click-through ranker's AUC and logloss per compression recipe, and what accuracy would have said.

Builds the test corpus's ranker (tests/corpus.py: Zipf user and item ids, a category, an hour, a country
string with unseen values, six dense floats, about 5 % positives) at a benchmark size, trains it, runs
``compress`` with the recipes below and writes every variant's AUC, logloss, calibration, accuracy, their
drops, size, latency and evaluation time to ``<out>/ranker.json`` (plus the compress report beside it).

Usage:
    python scripts/bench_ranker_metrics.py [--train 40000 --val 20000] [--out bench-out/ranker]
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import corpus  # noqa: E402  (tests/ is on the path only now)

RECIPES = "strip,tflite,ptq-dynamic,ptq-float16,ptq-int8,ptq-int4-weights,prune,prune-int8,qat,distill+ptq-int8"
METRICS = ("auc", "logloss", "pr_auc", "calibration", "ece", "accuracy")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=40000, help="training rows")
    parser.add_argument("--val", type=int, default=20000, help="evaluation rows")
    parser.add_argument("--recipes", default=RECIPES)
    parser.add_argument("--out", type=Path, default=Path("bench-out/ranker"))
    args = parser.parse_args()

    import numpy as np
    from tfdeploy import backend
    from tfdeploy.compression import CompressConfig, compress

    shutil.rmtree(args.out, ignore_errors=True)
    args.out.mkdir(parents=True)
    keras = backend.keras3()
    keras.utils.set_random_seed(0)
    began = time.perf_counter()
    entry = corpus.ranker(keras, np.random.default_rng(0), n_train=args.train, n_val=args.val)
    model_path, data_path = corpus.save(entry, args.out / "model")
    trained = time.perf_counter() - began
    report = compress(CompressConfig(model_path, args.out / "compressed", recipes=args.recipes, data=data_path,
                                     metrics=METRICS, latency_repeats=200, progress=print))
    print(report)
    rows = []
    for v in report.variants:
        row = {"name": v.name, "format": v.format, "failed": v.failed, "error": v.error, "gzip_bytes": v.gzip_bytes,
               "raw_bytes": v.raw_bytes, "latency_ms": v.latency_ms, "eval_seconds": v.eval_seconds,
               "seconds": v.seconds}
        row.update({m: v.summary.get(m) for m in METRICS})
        row.update({f"{m}_drop": v.summary_drops.get(m) for m in METRICS})
        rows.append(row)
    y_val = np.load(data_path)["y_val"]
    result = {"benchmark": "ranker metrics", "machine": f"{platform.machine()}, {platform.python_version()}",
              "cores": __import__("os").cpu_count(), "tensorflow": backend.version_of("tensorflow"),
              "train_rows": args.train, "val_rows": args.val, "positive_rate": float(y_val.mean()),
              "majority_accuracy": float(max(y_val.mean(), 1 - y_val.mean())), "train_seconds": round(trained, 1),
              "driving_metric": report.driving_metric, "metric_notes": report.metric_notes, "variants": rows}
    (args.out / "ranker.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out / 'ranker.json'}")


if __name__ == "__main__":
    main()
