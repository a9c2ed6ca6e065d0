"""Runs big ``keras.applications`` models through tfdeploy's steps and writes what worked as JSON.

The corpus in ``tests/corpus.py`` keeps the test suite fast; this script checks the full-size
architectures users deploy (ResNet50, DenseNet121, EfficientNetB0, NASNetMobile, InceptionV3,
MobileNetV3Small, and tf_keras MobileNetV2 as ``.h5`` and SavedModel): every post-training recipe,
export, verify and parity, plus prune and QAT where asked. Models are built with ``weights=None``
(no downloads here) and trained for one epoch on synthetic data, which is enough to check the
mechanics, not accuracy.

Usage:
    python scripts/check_applications.py [--out bench-out/applications] [--only ResNet50,...]
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import time
import traceback
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

POST_TRAINING = ["ptq-dynamic", "ptq-float16", "ptq-int8"]
# name -> (keras module, input size, recipes beyond post-training)
APPLICATIONS = {
    "ResNet50": ("keras3", 32, []),
    "DenseNet121": ("keras3", 32, ["qat"]),
    "EfficientNetB0": ("keras3", 32, ["prune", "qat"]),
    "NASNetMobile": ("keras3", 32, []),
    "InceptionV3": ("keras3", 75, []),
    "MobileNetV3Small": ("keras3", 32, []),
    "MobileNetV2-tf_keras-h5": ("tf_keras", 32, ["prune", "qat"]),
    "MobileNetV2-tf_keras-savedmodel": ("tf_keras", 32, ["prune", "qat"]),
}


def build(name: str, flavour: str, size: int, root: Path) -> tuple[Path, Path]:
    from tfdeploy import backend

    keras = backend.keras3() if flavour == "keras3" else backend.tf_keras()
    keras.utils.set_random_seed(0)
    application = getattr(keras.applications, name.split("-")[0])
    model = application(input_shape=(size, size, 3), weights=None, classes=4)
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 96)
    x = rng.normal(0, 1, (96, size, size, 3)).astype("float32") + y[:, None, None, None] * 0.5
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(x[:64], y[:64], epochs=1, batch_size=16, verbose=0)
    path = root / (f"{name}.h5" if name.endswith("h5") else name if name.endswith("savedmodel") else f"{name}.keras")
    if name.endswith("savedmodel"):
        model.save(str(path), save_format="tf")
    else:
        model.save(path)
    np.savez(root / f"{name}.npz", x=x[:64], y=y[:64], x_val=x[64:], y_val=y[64:])
    return path, root / f"{name}.npz"


def check(name: str, out: Path) -> dict:
    from tfdeploy.measure.checks import check_parity
    from tfdeploy.compression import CompressConfig, compress
    from tfdeploy.compression.recipes import Recipe
    from tfdeploy.serving.export import ExportConfig, export
    from tfdeploy.serving.verification import verify

    flavour, size, extra = APPLICATIONS[name]
    start = time.perf_counter()
    model_path, data_path = build(name, flavour, size, out)
    result: dict = {"model": name, "flavour": flavour, "input": size, "build_s": round(time.perf_counter() - start, 1)}
    report = compress(CompressConfig(model_path, out / f"{name}-compressed", recipes=[Recipe(r) for r in
                                                                                    POST_TRAINING + extra],
                                     data=data_path, epochs=1, latency_repeats=5))
    result["recipes"] = {v.name: ({"ok": True, "gzip_bytes": v.gzip_bytes, "agreement": v.agreement,
                                   "seconds": round(v.seconds or 0, 1), "notes": v.notes}
                                  if not v.failed else {"ok": False, "error": v.error})
                         for v in report.variants[1:]}
    exported = export(ExportConfig(model_path, out / "models" / name.lower(), warmup_data=data_path))
    verified = verify(exported.version_dir, source_model=model_path, cold_start=False)
    result["verify"] = {"passed": verified.passed, "failed": [c.name for c in verified.failed()]}
    tflite = [v.path for v in report.variants[1:] if not v.failed and v.format == ".tflite"]
    parity = check_parity(model_path, [exported.version_dir, *tflite], data=data_path, samples=32,
                          min_agreement=0.8, rtol=0.05)
    result["parity"] = {f"{Path(r.artifact).name}/{r.output}": {"passed": r.passed, "reason": r.reason}
                        for r in parity.results}
    result["seconds"] = round(time.perf_counter() - start, 1)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench-out/applications"))
    parser.add_argument("--only", default=",".join(APPLICATIONS))
    args = parser.parse_args()
    shutil.rmtree(args.out, ignore_errors=True)
    args.out.mkdir(parents=True)
    results = []
    for name in args.only.split(","):
        print(f"== {name}", flush=True)
        try:
            results.append(check(name, args.out))
        except Exception as exc:  # one architecture failing must not hide the others
            results.append({"model": name, "crash": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()})
        print(json.dumps(results[-1], default=str)[:2000], flush=True)
        (args.out / "applications.json").write_text(json.dumps(
            {"machine": platform.platform(), "results": results}, indent=2, default=str))


if __name__ == "__main__":
    main()
