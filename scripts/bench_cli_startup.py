"""Measures CLI start-up: wall time of --help/--version and whether TensorFlow gets imported.

Writes JSON (default ``bench-out/cli_startup.json``). Target: ``tfdeploy --help`` ≤ 0.3 s.

Usage:
    python scripts/bench_cli_startup.py [--repeats 7] [--out bench-out/cli_startup.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

COMMANDS = [["--help"], ["--version"], ["compress", "--help"], ["env", "--help"], ["example", "--help"]]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--out", type=Path, default=Path("bench-out/cli_startup.json"))
    args = parser.parse_args()
    results = {}
    for argv in COMMANDS:
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "tfdeploy.cli", *argv], check=True, capture_output=True)
            times.append(time.perf_counter() - start)
        results[" ".join(argv)] = {"median_s": statistics.median(times), "min_s": min(times), "max_s": max(times)}
    importtime = subprocess.run([sys.executable, "-X", "importtime", "-c", "import tfdeploy.cli"],
                                capture_output=True, text=True, check=True).stderr
    heavy = sorted({line.rsplit("|", 1)[-1].strip().split(".")[0] for line in importtime.splitlines()
                    if line.rsplit("|", 1)[-1].strip().split(".")[0] in ("tensorflow", "keras", "tf_keras")})
    report = {"machine": {"python": platform.python_version(), "platform": platform.platform(),
                          "processor": platform.processor()},
              "commands": results, "heavy_modules_imported_by_cli": heavy, "target_help_s": 0.3,
              "help_within_target": results["--help"]["median_s"] <= 0.3}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
