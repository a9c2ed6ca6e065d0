"""GB-scale rankers: export memory and time at three sizes, and 24 hot updates of the largest, per fix.

Each step runs the ``tfdeploy`` command a user would, in its own process, and reads that process's
peak RSS (``getrusage``) and wall time:

1. ``tfdeploy example --kind ranker --embedding-rows N`` at three sizes (the largest ≥ 1 GB);
2. ``tfdeploy export`` of each (warmup from the example's data), twice for the largest (versions 1
   and 2). Two baselines: the peak RSS of a process that only imports TensorFlow and Keras, and of
   the same export of a 1.6 MB ranker (TensorFlow's working memory while exporting: tracing,
   warmup, the data file), so the ratio to the variables is reported both ways;
3. ``tfdeploy compress --recipe embedding-int8`` on the largest, exported as versions 1 and 2 of
   a second model: version bytes, load time and RSS against the float32 version, AUC and logloss;
4. ``tfdeploy bench v1 v2 --hot-swap --ablation --swaps 24``: per configuration, per swap p999
   in 1 s windows, seconds above 2× steady, load time, RSS 1 s after the unload, and the drift;
   then the int8 versions with the configuration ``serving-config`` writes.

Writes ``<out>/ranker_scale.json`` and the timeline PNGs. Targets (issue #25): with all fixes,
swap p999 ≤ 2× steady p999 and ``rss_drift_pct`` ≤ 10; export peak RSS ≤ 1.5× variables + baseline.

Usage:
    python scripts/bench_ranker_scale.py [--rows 2000000,4000000,8000000] [--swaps 24] [--out bench-out/ranker_scale]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

BASELINE_CODE = "from tfdeploy import backend; backend.tf(); backend.keras3()"


def run(args: list[str], log: Path) -> dict[str, float]:
    """Runs a command; returns its wall seconds and its own peak RSS in MiB (``wait4``'s rusage of that child)."""
    began = time.perf_counter()
    with log.open("w") as out:
        child = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(child.pid, 0)
    if status != 0:
        raise SystemExit(f"{' '.join(args[:4])} failed ({status}); see {log}")
    return {"seconds": round(time.perf_counter() - began, 1), "peak_rss_mb": round(usage.ru_maxrss / 1024, 1)}


def tfdeploy(*args: str) -> list[str]:
    return [sys.executable, "-m", "tfdeploy.cli", *args]


def variables_mb(version: Path) -> float:
    return sum(p.stat().st_size for p in (version / "variables").glob("variables.data-*")) / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="2000000,4000000,8000000", help="user_id rows of the three rankers")
    parser.add_argument("--swaps", type=int, default=24)
    parser.add_argument("--out", type=Path, default=Path("bench-out/ranker_scale"))
    parser.add_argument("--swaps-only", action="store_true",
                        help="Rerun only the hot-swap steps on the versions an earlier run of this script wrote.")
    args = parser.parse_args()
    rows = sorted(int(r) for r in args.rows.split(","))
    if args.swaps_only:
        result = json.loads((args.out / "ranker_scale.json").read_text())
        if "export_baseline_rss_mb" not in result:  # written by an earlier version of this script
            result["export_baseline_rss_mb"] = tiny_export(args.out, args.out / "logs")["peak_rss_mb"]
            for size in result["sizes"]:
                size["export_rss_over_variables_plus_export_baseline"] = round(
                    (size["export_peak_rss_mb"] - result["export_baseline_rss_mb"]) / size["version_variables_mb"], 3)
        swaps(args, args.out / "logs", args.out / "models" / f"ranker_{rows[-1]}", args.out / "models" / "ranker_int8",
              result)
        return
    shutil.rmtree(args.out, ignore_errors=True)
    args.out.mkdir(parents=True)
    logs = args.out / "logs"
    logs.mkdir()
    baseline = run([sys.executable, "-c", BASELINE_CODE], logs / "baseline.log")
    export_baseline = tiny_export(args.out, logs)
    result: dict = {"benchmark": "ranker scale", "machine": f"{platform.machine()}, {platform.python_version()}",
                    "cores": os.cpu_count(), "baseline_rss_mb": baseline["peak_rss_mb"],
                    "export_baseline_rss_mb": export_baseline["peak_rss_mb"], "sizes": []}
    for n in rows:
        example = args.out / f"ranker_{n}"
        made = run(tfdeploy("example", "--kind", "ranker", "--embedding-rows", str(n), "--out", str(example),
                            "--json"), logs / f"example_{n}.log")
        report = _last_json(logs / f"example_{n}.log")
        base = args.out / "models" / f"ranker_{n}"
        exported = run(tfdeploy("export", str(example / "model.keras"), "--base-dir", str(base), "--warmup-data",
                                str(example / "data.npz"), "--warmup-batch-sizes", "1,8"), logs / f"export_{n}.log")
        mb = variables_mb(base / "1")
        size = {"embedding_rows": n, "model_mb": round(report["model_bytes"] / 2**20, 1), "params": report["params"],
                "auc": report["auc"], "logloss": report["logloss"], "example_seconds": made["seconds"],
                "version_variables_mb": round(mb, 1), "export_seconds": exported["seconds"],
                "export_peak_rss_mb": exported["peak_rss_mb"],
                "export_rss_over_variables_plus_baseline": round(
                    (exported["peak_rss_mb"] - baseline["peak_rss_mb"]) / mb, 3),
                "export_rss_over_variables_plus_export_baseline": round(
                    (exported["peak_rss_mb"] - export_baseline["peak_rss_mb"]) / mb, 3)}
        result["sizes"].append(size)
        print(size, flush=True)
    largest = args.out / f"ranker_{rows[-1]}"
    base = args.out / "models" / f"ranker_{rows[-1]}"
    run(tfdeploy("export", str(largest / "model.keras"), "--base-dir", str(base), "--warmup-data",
                 str(largest / "data.npz"), "--warmup-batch-sizes", "1,8"), logs / "export_v2.log")
    compressed = args.out / "compressed"
    run(tfdeploy("compress", str(largest / "model.keras"), "--out", str(compressed), "--recipe", "embedding-int8",
                 "--data", str(largest / "data.npz"), "--json"), logs / "compress.log")
    compress_report = json.loads((compressed / "report.json").read_text())
    int8_base = args.out / "models" / "ranker_int8"
    for _ in range(2):
        run(tfdeploy("export", str(compressed / "embedding-int8.keras"), "--base-dir", str(int8_base),
                     "--warmup-data", str(largest / "data.npz"), "--warmup-batch-sizes", "1,8"), logs / "export_int8.log")
    result["embedding_int8"] = {
        "variants": [{k: v.get(k) for k in ("name", "raw_bytes", "summary", "summary_drops", "max_abs_diff")}
                     for v in compress_report["variants"]],
        "version_variables_mb": round(variables_mb(int8_base / "1"), 1)}
    swaps(args, logs, base, int8_base, result)


def tiny_export(out: Path, logs: Path) -> dict[str, float]:
    """The same export of a ranker of 1.6 MB: TensorFlow's working memory while exporting (the second baseline)."""
    tiny = out / "ranker_tiny"
    shutil.rmtree(tiny, ignore_errors=True)
    shutil.rmtree(out / "models" / "tiny", ignore_errors=True)
    run(tfdeploy("example", "--kind", "ranker", "--embedding-rows", "1000", "--out", str(tiny)), logs / "tiny.log")
    return run(tfdeploy("export", str(tiny / "model.keras"), "--base-dir", str(out / "models" / "tiny"),
                        "--warmup-data", str(tiny / "data.npz"), "--warmup-batch-sizes", "1,8"), logs / "export_tiny.log")


def swaps(args: argparse.Namespace, logs: Path, base: Path, int8_base: Path, result: dict) -> None:
    """The ablation on the float32 versions, then the int8 versions as serving-config writes them; saves the JSON."""
    ablation_json = args.out / "ablation.json"
    run(tfdeploy("bench", str(base / "1"), str(base / "2"), "--hot-swap", "--ablation", "--swaps", str(args.swaps),
                 "--no-cold-start", "--requests", "10", "--json-out", str(ablation_json), "--plot",
                 str(args.out / "hot_swap.png"), "--overwrite"), logs / "ablation.log")
    result["ablation"] = json.loads(ablation_json.read_text())["ablation"]
    serving = args.out / "serving"
    run(tfdeploy("serving-config", "--model", f"ranker={int8_base}", "--out", str(serving), "--no-onednn",
                 "--overwrite"),
        logs / "serving_config.log")
    int8_json = args.out / "int8_swap.json"
    run(tfdeploy("--no-onednn", "bench", str(int8_base / "1"), str(int8_base / "2"), "--hot-swap", "--serving-config",
                 str(serving), "--swaps", str(args.swaps), "--no-cold-start", "--requests", "10", "--json-out",
                 str(int8_json), "--overwrite"), logs / "int8_swap.log")
    result["embedding_int8"]["hot_swap"] = json.loads(int8_json.read_text())["ablation"]
    (args.out / "ranker_scale.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out / 'ranker_scale.json'}")


def _last_json(log: Path) -> dict:
    """The JSON object a ``--json`` command printed last (its progress lines come before it)."""
    text = log.read_text()
    return json.loads(text[text.rindex("\n{") + 1:] if "\n{" in text else text[text.index("{"):])


if __name__ == "__main__":
    main()
