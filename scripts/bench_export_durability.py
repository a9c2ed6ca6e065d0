"""What fsync costs an export: the same model exported with and without syncing files and directories.

``tfdeploy export`` fsyncs every file and directory of the staged version before renaming it into
place and syncs the parent after (so a power loss cannot leave a renamed-but-empty version). This
script exports the example MobileNetV2 (alpha 0.35, 32×32, not trained: size is what matters) and
a larger MobileNetV2 (alpha 1.0, 96×96) ``--repeats`` times each way, into a directory on the disk
being measured, and writes the medians as JSON.

Usage:
    python scripts/bench_export_durability.py [--out bench-out/export_durability.json] [--dir bench-out/durability]
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import time
from pathlib import Path


def timed_exports(model_path: Path, base: Path, repeats: int) -> list[float]:
    from tfdeploy.serving.export import ExportConfig, export

    times = []
    for _ in range(repeats):
        shutil.rmtree(base, ignore_errors=True)
        start = time.perf_counter()
        export(ExportConfig(model_path, base, warmup_batch_sizes=(1, 8)))
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench-out/export_durability.json"))
    parser.add_argument("--dir", type=Path, default=Path("bench-out/durability"))
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    from tfdeploy import files
    from tfdeploy.model import examples

    args.dir.mkdir(parents=True, exist_ok=True)
    results = []
    for alpha, size in ((0.35, 32), (1.0, 96)):
        model_path = args.dir / f"mobilenetv2_{alpha}_{size}.keras"
        examples.build_example_model(alpha=alpha, image_size=size).save(model_path)
        synced = timed_exports(model_path, args.dir / "synced", args.repeats)
        real = files.fsync_path
        files.fsync_path = lambda path: None
        try:
            unsynced = timed_exports(model_path, args.dir / "unsynced", args.repeats)
        finally:
            files.fsync_path = real
        version = args.dir / "synced" / "1"
        count = sum(1 for _ in version.rglob("*")) + 2
        mb = sum(p.stat().st_size for p in version.rglob("*") if p.is_file()) / 1e6
        results.append({"model": f"MobileNetV2 alpha {alpha}, {size}x{size}", "version_mb": round(mb, 2),
                        "fsync_calls": count, "median_s_with_fsync": round(statistics.median(synced), 3),
                        "median_s_without_fsync": round(statistics.median(unsynced), 3),
                        "fsync_cost_s": round(statistics.median(synced) - statistics.median(unsynced), 3),
                        "runs_with": [round(t, 3) for t in synced], "runs_without": [round(t, 3) for t in unsynced]})
        print(json.dumps(results[-1]), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"machine": platform.platform(), "disk": str(args.dir.resolve()),
                                    "results": results}, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
