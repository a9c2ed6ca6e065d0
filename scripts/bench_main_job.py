"""Times the README's main job and records what it shows: wall time, peak memory, the compression table.

Runs ``tfdeploy --seed 0 deploy --example --out DIR`` (plus any extra arguments) as a user would, in a
fresh process, and writes JSON: wall seconds, each step's seconds (from the run's report), the peak
resident memory of the largest process (``ru_maxrss`` of the children), the machine, and per variant
size, accuracy, drop and agreement.

Usage:
    python scripts/bench_main_job.py [--out bench-out/main-job] [--json bench-out/main_job.json] [-- EXTRA ARGS]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench-out/main-job"))
    parser.add_argument("--json", type=Path, default=Path("bench-out/main_job.json"))
    parser.add_argument("extra", nargs="*", help="extra deploy arguments (after --)")
    args = parser.parse_args()
    if args.out.exists():
        shutil.rmtree(args.out)
    script = Path(sys.executable).with_name("tfdeploy")
    command = [str(script), "--seed", "0", "deploy", "--example", "--out", str(args.out), *args.extra]
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if result.returncode != 0:
        sys.exit(f"main job failed ({result.returncode}):\n{result.stderr[-3000:]}")
    report = json.loads((args.out / "report.json").read_text())
    variants = [{key: v.get(key) for key in ("name", "format", "raw_bytes", "gzip_bytes", "accuracy", "accuracy_drop",
                                             "agreement", "latency_ms", "seconds")}
                for v in report["steps"]["compress"]["variants"]]
    payload = {
        "command": " ".join(["tfdeploy", *command[1:]]), "wall_seconds": round(wall, 1),
        "step_seconds": report["seconds"], "peak_rss_mib": round(peak_kib / 1024, 1),
        "machine": {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count(),
                    "load_average_at_end": os.getloadavg()},
        "example": {k: report["steps"]["example"][k] for k in ("origin", "val_accuracy")},
        "variants": variants, "stderr_lines": len(result.stderr.splitlines()),
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(payload, indent=2) + "\n")
    print(json.dumps(payload, indent=2))


if __name__ == "__main__":
    main()
