"""``bench`` through TF Serving's APIs vs. in-process, and a hot update under traffic, on the tests' stand-in server.

The TF Serving binary cannot be installed here, so this runs ``tests/serving_stub.py`` (a Python
PredictionService and REST API over the same SavedModel, in a separate process) and measures, for the
example MobileNetV2 and a tiny two-input model: p50/p99 per batch size over gRPC, over REST and
in-process (the SavedModel signature, as ``bench`` runs a version directory); then one hot update per
protocol (``--hot-swap --publish``: the example exported as the next version into the base directory the
stand-in polls every 0.2 s, its warmup replayed before it answers). The figures show the client's and the
protocols' cost; the server's own latency is the stand-in's, not TF Serving's. Writes
``OUT/remote.json`` and ``OUT/update-{grpc,rest}.png``.

Usage:
    python scripts/bench_remote.py [--out bench-out/remote] [--requests 300]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from tfdeploy import backend  # noqa: E402
from tfdeploy.measure.benchmark import BenchConfig, bench  # noqa: E402
from tfdeploy.serving.export import ExportConfig, export  # noqa: E402

EXAMPLE = ROOT / "tfdeploy" / "example_data" / "mobilenetv2_fashion.keras"
SERVER = """
import json, sys, time
from pathlib import Path
from serving_stub import StubServing
server = StubServing({k: Path(v) for k, v in json.loads(sys.argv[1]).items()}, poll_s=0.2).start()
print(json.dumps({"grpc": server.grpc_port, "rest": server.rest_port}), flush=True)
while True:
    time.sleep(60)
"""


def tiny_model(keras):
    """The tests' two-input model: float32 features and int32 ids in, two outputs."""
    keras.utils.set_random_seed(0)
    features, ids = keras.Input((3,), name="features"), keras.Input((4,), dtype="int32", name="ids")
    pooled = keras.layers.GlobalAveragePooling1D()(keras.layers.Embedding(10, 4)(ids))
    hidden = keras.layers.Concatenate()([features, pooled])
    return keras.Model({"features": features, "ids": ids},
                       {"probabilities": keras.layers.Dense(3, activation="softmax", name="probabilities")(hidden),
                        "score": keras.layers.Dense(1, name="score")(hidden)})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=Path("bench-out/remote"))
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()
    shutil.rmtree(args.out, ignore_errors=True)
    args.out.mkdir(parents=True)
    tiny_model(backend.keras3()).save(args.out / "tiny.keras")
    bases = {"fashion": args.out / "models" / "fashion", "tiny": args.out / "models" / "tiny"}
    for name, model in (("fashion", EXAMPLE), ("tiny", args.out / "tiny.keras")):
        export(ExportConfig(model, bases[name], warmup_batch_sizes=(1, 8), progress=None))
    server = subprocess.Popen([sys.executable, "-c", SERVER, json.dumps({k: str(v) for k, v in bases.items()})],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT / "tests",
                              env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(ROOT / "tests")})
    ports = json.loads(server.stdout.readline())
    results = {}
    try:
        for name in ("tiny", "fashion"):
            targets = [f"grpc://127.0.0.1:{ports['grpc']}/{name}", f"http://127.0.0.1:{ports['rest']}/v1/models/{name}",
                       str(bases[name] / "1")]
            report = bench(BenchConfig(targets, batch_sizes=(1, 8), requests=args.requests, concurrency=1,
                                       cold_start=False, progress=print))
            print(report)
            results[name] = [{"artifact": r.artifact, "runtime": r.runtime, "batch": r.batch_size,
                              "p50_ms": r.stats.p50_ms, "p99_ms": r.stats.p99_ms, "req_s": r.throughput_rps}
                             for r in report.results]
        for protocol, target in (("grpc", f"grpc://127.0.0.1:{ports['grpc']}/fashion"),
                                 ("rest", f"http://127.0.0.1:{ports['rest']}/v1/models/fashion")):
            report = bench(BenchConfig([target], hot_swap=True, publish=EXAMPLE, base_dir=bases["fashion"],
                                       requests=20, concurrency=2, cold_start=False, hot_swap_steady_s=3,
                                       hot_swap_after_s=3, plot_path=args.out / f"update-{protocol}.png",
                                       progress=print))
            print(report)
            results[f"update_{protocol}"] = report.remote_swap.to_dict()
    finally:
        server.kill()
    (args.out / "remote.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
