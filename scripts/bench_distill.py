"""Knowledge distillation on the converged built-in example: the teacher and students of two widths.

For the shipped MobileNetV2 (alpha 0.35, 32×32, 91.8 % on Fashion-MNIST's test set) it runs
``compress`` with ``tflite,ptq-int8`` (the teacher's own TFLite versions) and, per student width,
``distill,distill+tflite,distill+ptq-int8``, and writes every variant's accuracy, drop, agreement
with the teacher, LiteRT latency and size, the distillation time and the scores by epoch to
``bench-out/distill/distill.json``.

By default the students learn on the full 60,000 training images (Debian's
``dataset-fashion-mnist``) and are measured on the 10,000 test images; ``--subset`` uses the
packaged 4,000/1,000 images instead (a quick check, not the benchmark).

Example:
    .venv/bin/python scripts/bench_distill.py --widths 0.5,0.25 --epochs 10
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

FIELDS = ("name", "format", "raw_bytes", "gzip_bytes", "gzip_ratio", "params", "accuracy", "accuracy_drop", "agreement",
          "latency_ms", "runtime", "seconds", "training", "notes")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--widths", default="0.5,0.25", help="student widths (fractions of the teacher's)")
    parser.add_argument("--epochs", type=int, default=10, help="distillation epochs")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--temperature", type=float, default=None, help="distill's temperature (default: the library's)")
    parser.add_argument("--subset", action="store_true", help="the packaged 4,000/1,000 images (quick check)")
    parser.add_argument("--latency-repeats", type=int, default=300)
    parser.add_argument("--out", type=Path, default=Path("bench-out/distill"))
    args = parser.parse_args()

    from tfdeploy import backend
    from tfdeploy.compression import CompressConfig, compress
    from tfdeploy.model.examples import example_dataset, prepare_example

    work = Path(tempfile.mkdtemp(prefix="bench-distill-"))
    prepare_example(work / "example", progress=print)
    data = example_dataset(full=not args.subset)
    print(f"data: {data.source}: {len(data.x)} training, {len(data.x_val)} test images")
    temperature = {} if args.temperature is None else {"temperature": args.temperature}
    common = dict(data=data, batch_size=args.batch_size, distill_epochs=args.epochs, **temperature,
                  latency_repeats=args.latency_repeats, overwrite=True, progress=print)
    runs = []
    recipes = "tflite,ptq-int8,"
    for width in (float(w) for w in args.widths.split(",")):
        began = time.perf_counter()
        report = compress(CompressConfig(work / "example" / "model.keras", work / f"w{width:g}",
                                         recipes=recipes + "distill,distill+tflite,distill+ptq-int8",
                                         student_width=width, **common))
        runs.append({"student_width": width, "wall_seconds": round(time.perf_counter() - began, 1),
                     "variants": [{k: getattr(v, k) for k in FIELDS} for v in report.variants]})
        print(report)
        recipes = ""  # the teacher's TFLite versions are measured once
    result = {"benchmark": "distill", "machine": f"{platform.machine()}, {platform.python_version()}",
              "cores": __import__("os").cpu_count(), "tensorflow": backend.version_of("tensorflow"),
              "data": data.source, "train_images": len(data.x), "test_images": len(data.x_val),
              "epochs": args.epochs, "batch_size": args.batch_size,
              "temperature": args.temperature or CompressConfig.temperature, "runs": runs}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "distill.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out / 'distill.json'}")


if __name__ == "__main__":
    main()
