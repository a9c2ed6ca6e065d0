"""Writes notebooks/*.ipynb from the cell sources below (outputs stripped; run them to see results).

Edit the cells here, not the .ipynb files, then run ``python scripts/make_notebooks.py``.
``TFDEPLOY_NOTEBOOK_FAST=1`` (set by the tests) shrinks data, epochs and durations for CI.
"""

from __future__ import annotations

from pathlib import Path

import nbformat

SETUP = '''import os
from pathlib import Path

import numpy as np
import tfdeploy
from tfdeploy.model import examples

FAST = os.environ.get("TFDEPLOY_NOTEBOOK_FAST") == "1"  # CI: smaller data, fewer epochs, shorter runs
WORK = Path(os.environ.get("TFDEPLOY_NOTEBOOK_DIR", "notebook-out")) / "{name}"
WORK.mkdir(parents=True, exist_ok=True)
print("fast mode" if FAST else "full mode", "- writing to", WORK)'''

SMALL_DATA = '''data = tfdeploy.load_data(example.data_path)
if FAST:  # a class-balanced slice keeps fine-tuning to seconds
    data = tfdeploy.Dataset(x=data.x[:512], y=data.y[:512], x_val=data.x_val[:300], y_val=data.y_val[:300],
                            source=data.source + " (first 512/300)")
print(data.x.shape, data.x_val.shape, data.source)'''

NOTEBOOKS = {
    "01_quickstart": [
        ("markdown", "# Quickstart: from a trained Keras model to a verified TF Serving version\n\n"
                     "The seeds' path on the built-in example (MobileNetV2 on Fashion-MNIST, offline): configure "
                     "GPUs, seed, fine-tune, compress (strip, prune, QAT, int8), export for TF Serving with warmup, "
                     "verify, and read the report."),
        ("code", SETUP.format(name="01_quickstart")),
        ("markdown", "## 1. Configure TensorFlow before any model exists\n"
                     "Memory growth on every GPU (a message, not a crash, on a CPU machine), seeds everywhere."),
        ("code", "print(tfdeploy.configure_gpus(memory_growth=True))\n"
                 "print(tfdeploy.seed_everything(0))"),
        ("markdown", "## 2. The example model: MobileNetV2 trained to convergence on Fashion-MNIST, shipped with "
                     "tfdeploy (`train=True` trains it here instead). A report ending a cell shows as a table."),
        ("code", "example = examples.prepare_example(WORK / 'example', overwrite=True)\nexample"),
        ("code", SMALL_DATA),
        ("markdown", "## 3. Compress: what each step buys"),
        ("code", "compression = tfdeploy.compress(tfdeploy.CompressConfig(\n"
                 "    model=example.model_path, out_dir=WORK / 'compressed', data=data, epochs=1 if FAST else 2,\n"
                 "    recipes=[tfdeploy.Recipe.STRIP, tfdeploy.Recipe.PRUNE, tfdeploy.Recipe.QAT, tfdeploy.Recipe.PTQ_INT8],\n"
                 "    int8_granularity=tfdeploy.Int8Granularity.PER_TENSOR, overwrite=True))\n"
                 "compression"),
        ("markdown", "## 4. Export for TF Serving: a numbered version, written atomically, with warmup"),
        ("code", "exported = tfdeploy.export(tfdeploy.ExportConfig(\n"
                 "    model=WORK / 'compressed' / 'strip.keras', base_dir=WORK / 'models' / 'fashion',\n"
                 "    warmup_data=tfdeploy.Dataset(x=data.x_val[:64]), warmup_batch_sizes=(1, 8, 32)))\n"
                 "print(exported)"),
        ("markdown", "## 5. Verify it the way TF Serving would load it"),
        ("code", "verification = tfdeploy.verify(exported.version_dir, source_model=example.model_path)\n"
                 "print(verification)\nassert verification.passed"),
    ],
    "02_compression_tradeoffs": [
        ("markdown", "# Compression trade-offs: every recipe side by side\n\n"
                     "Size (raw and gzip), accuracy, agreement with the original and latency for each recipe, "
                     "on a Keras 3 model — which TFMOT cannot take directly, so tfdeploy bridges it to tf_keras "
                     "and checks the bridge numerically."),
        ("code", SETUP.format(name="02_compression_tradeoffs")),
        ("code", "tfdeploy.seed_everything(0)\n"
                 "example = examples.prepare_example(WORK / 'example', overwrite=True)\n"
                 "example"),
        ("code", SMALL_DATA),
        ("markdown", "In fast mode (CI) the QAT family is left out (notebook 01 runs `qat`; `cluster-qat`'s TFLite "
                     "conversion alone takes minutes on 2 cores). Run without `TFDEPLOY_NOTEBOOK_FAST` to see all."),
        ("code", "QAT_FAMILY = {tfdeploy.Recipe.QAT, tfdeploy.Recipe.PRUNE_QAT, tfdeploy.Recipe.CLUSTER_QAT}\n"
                 "recipes = [r for r in tfdeploy.Recipe if not (FAST and r in QAT_FAMILY)]\n"
                 "report = tfdeploy.compress(tfdeploy.CompressConfig(\n"
                 "    model=example.model_path, out_dir=WORK / 'all', data=data, recipes=recipes,\n"
                 "    epochs=1 if FAST else 2, int8_granularity=tfdeploy.Int8Granularity.PER_TENSOR,\n"
                 "    latency_repeats=10 if FAST else 50, overwrite=True))\n"
                 "report"),
        ("markdown", "## Size vs accuracy"),
        ("code", "from IPython.display import Image, display\n"
                 "display(Image(filename=str(WORK / 'all' / 'report.png')))"),
        ("markdown", "## What pruning buys, and what it does not\n"
                     "Pruning sets weights to zero but keeps them: the raw file stays the same size, the gzip "
                     "size shrinks, and dense kernels run no faster. Combined with int8 it compounds."),
        ("code", "v = {x.name: x for x in report.variants}\n"
                 "for name in ('strip', 'prune', 'tflite', 'ptq-int8', 'prune-int8'):\n"
                 "    print(f\"{name:11} raw {v[name].raw_bytes:>9,} B  gzip {v[name].gzip_bytes:>9,} B  \"\n"
                 "          f\"sparsity {v[name].sparsity or 0:.2f}  latency {v[name].latency_ms:.3f} ms\")\n"
                 "print('Keras 3 -> tf_keras bridge, max abs output difference:', report.bridge_max_abs_diff)"),
    ],
    "03_reproducibility": [
        ("markdown", "# Why results change run to run — and how to stop it\n\n"
                     "Dropout (or noise, or BatchNormalization) called with `training=True` inside a model, "
                     "unseeded initialisation, and op determinism (on GPUs: cuDNN autotuning and atomics pick "
                     "different kernels run to run). `check_determinism` measures it and names the cause."),
        ("code", SETUP.format(name="03_reproducibility")),
        ("code", "import keras\n\n"
                 "def build(mc_dropout):\n"
                 "    inputs = keras.Input((32, 32, 3), name='image')\n"
                 "    x = keras.layers.Conv2D(8, 3, activation='relu', name='conv')(inputs)\n"
                 "    x = keras.layers.GlobalAveragePooling2D(name='pool')(x)\n"
                 "    x = keras.layers.Dropout(0.5, name='dropout')(x, training=True if mc_dropout else None)\n"
                 "    return keras.Model(inputs, keras.layers.Dense(10, activation='softmax', name='out')(x))"),
        ("markdown", "## Seeds: the same initialisation twice"),
        ("code", "tfdeploy.seed_everything(42)\na = build(False).get_weights()[0]\n"
                 "tfdeploy.seed_everything(42)\nb = build(False).get_weights()[0]\n"
                 "print('identical initial weights:', np.array_equal(a, b))"),
        ("markdown", "## Before: dropout left in training mode"),
        ("code", "build(True).save(WORK / 'mc_dropout.keras')\n"
                 "before = tfdeploy.check_determinism(WORK / 'mc_dropout.keras', runs=3, reloads=1)\nprint(before)\n"
                 "assert not before.identical"),
        ("markdown", "## After: `training` left to the caller, seeds and op determinism on"),
        ("code", "tfdeploy.seed_everything(42, deterministic_ops=True)\n"
                 "build(False).save(WORK / 'fixed.keras')\n"
                 "after = tfdeploy.check_determinism(WORK / 'fixed.keras', runs=3, reloads=1)\nprint(after)\n"
                 "assert after.identical"),
    ],
    "04_serving_hot_update": [
        ("markdown", "# Serving hot updates without latency spikes\n\n"
                     "TF Serving loads a new version beside the old one and switches traffic when it is ready. "
                     "Without warmup, the first requests on the new version pay TensorFlow's lazy "
                     "initialisation: p999 jumps. This notebook shows the warmup file, cold start with and "
                     "without it, a hot-swap timeline, and the generated server configuration."),
        ("code", SETUP.format(name="04_serving_hot_update")),
        ("code", "tfdeploy.seed_everything(0)\n"
                 "example = examples.prepare_example(WORK / 'example', overwrite=True)\n"
                 "data = tfdeploy.load_data(example.data_path)\n"
                 "base = WORK / 'models' / 'fashion'\n"
                 "for _ in range(2):\n"
                 "    print(tfdeploy.export(tfdeploy.ExportConfig(example.model_path, base, warmup_batch_sizes=(1, 8, 32),\n"
                 "                                                warmup_data=tfdeploy.Dataset(x=data.x_val[:64]))))"),
        ("markdown", "## Anatomy of `assets.extra/tf_serving_warmup_requests`\n"
                     "An uncompressed TFRecord of `PredictionLog` protos, one Predict request per batch size."),
        ("code", "logs = tfdeploy.read_warmup(base / '1' / 'assets.extra' / 'tf_serving_warmup_requests')\n"
                 "request = logs[0].predict_log.request\n"
                 "print(len(logs), 'records; first:', request.model_spec, 'inputs', {k: [d.size for d in v.tensor_shape.dim]\n"
                 "      for k, v in request.inputs.items()})"),
        ("markdown", "## Cold start, with and without replaying the warmup (fresh processes)"),
        ("code", "report = tfdeploy.bench(tfdeploy.BenchConfig([str(base / '1')], requests=50))\nprint(report)"),
        ("markdown", "## The server configuration, and why each fix is there\n"
                     "- `enable_model_warmup: true` replays the warmup file before the version is marked available;\n"
                     "- a second inter-op thread pool with `session_run_load_threadpool_index: 1` keeps restore ops "
                     "off the request pool;\n- `--num_load_threads`/`--num_unload_threads` take loading off the "
                     "manager thread;\n- jemalloc (`LD_PRELOAD` in the Dockerfile) avoids allocator contention "
                     "when a version loads or unloads under traffic."),
        ("code", "config = tfdeploy.write_serving_config(tfdeploy.ServingConfig(\n"
                 "    [tfdeploy.ServedModel('fashion', str(base))], WORK / 'serving', overwrite=True))\n"
                 "print(config)\nprint((WORK / 'serving' / 'platform_config.txt').read_text())\n"
                 "print((WORK / 'serving' / 'run.sh').read_text())"),
        ("markdown", "## Hot updates rehearsed the way TF Serving loads them\n"
                     "Versions 1 and 2 are swapped under traffic three times, each loaded into a session built from "
                     "the platform config above. The ablation adds the fixes one at a time, each configuration in a "
                     "fresh process: no fixes, warmup, + the load thread pool, + jemalloc."),
        ("code", "rehearsal = tfdeploy.rehearse_hot_swap(tfdeploy.HotSwapConfig(\n"
                 "    base / '1', base / '2', serving_config=WORK / 'serving', ablation=not FAST,\n"
                 "    steady_s=1.5 if FAST else 3.0, gap_s=1.5 if FAST else 3.0, plot_path=WORK / 'hot_swap.png'))\n"
                 "print(rehearsal)\n"
                 "from IPython.display import Image, display\n"
                 "for path in rehearsal.files:\n    display(Image(filename=path))"),
    ],
}


def main() -> None:
    out = Path(__file__).resolve().parent.parent / "notebooks"
    out.mkdir(exist_ok=True)
    for name, cells in NOTEBOOKS.items():
        notebook = nbformat.v4.new_notebook()
        notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        notebook.cells = [nbformat.v4.new_markdown_cell(src) if kind == "markdown" else nbformat.v4.new_code_cell(src)
                          for kind, src in cells]
        for index, cell in enumerate(notebook.cells):
            cell["id"] = f"{name}-{index}"
        nbformat.write(notebook, out / f"{name}.ipynb")
        print("wrote", out / f"{name}.ipynb")


if __name__ == "__main__":
    main()
