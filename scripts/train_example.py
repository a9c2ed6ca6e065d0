"""Trains the shipped example model on the full Fashion-MNIST and writes it into the package.

The model is the example's MobileNetV2 (:func:`tfdeploy.model.examples.build_example_model`, alpha 0.35 at
32×32, random init — ImageNet weights cannot be downloaded offline) trained on all 60,000 training
images from Debian's ``dataset-fashion-mnist`` (or ``--source DIR``) with light augmentation
(horizontal flip, ±2-pixel shifts), label smoothing and a cosine learning-rate schedule. It is saved
without optimizer state as ``tfdeploy/example_data/mobilenetv2_fashion.keras`` with
``training_record.json`` beside it: data, epochs, seed, accuracy on the full 10,000-image test set
and on the packaged 1,000-image subset, time.

Usage:
    python scripts/train_example.py [--epochs 15] [--seed 0] [--source DIR] [--out-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

from tfdeploy import backend
from tfdeploy.model import examples
from tfdeploy.model.loading import save_model


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--learning-rate", type=float, default=3e-3)
    parser.add_argument("--alpha", type=float, default=examples.EXAMPLE_ALPHA)
    parser.add_argument("--image-size", type=int, default=examples.EXAMPLE_IMAGE_SIZE)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--source", type=Path, default=None, help="directory with the four IDX .gz files")
    parser.add_argument("--out-dir", type=Path, default=examples.SHIPPED_MODEL_PATH.parent)
    return parser.parse_args()


def augmented(x: np.ndarray, y: np.ndarray, batch_size: int, seed: int):
    """A shuffled tf.data pipeline with random horizontal flips and ±2-pixel shifts."""
    tf = backend.tf()
    size = x.shape[1]

    def augment(image, label):
        image = tf.image.random_flip_left_right(image)
        image = tf.pad(image, [[2, 2], [2, 2], [0, 0]], constant_values=-1.0)
        return tf.image.random_crop(image, (size, size, 3)), label

    return (tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(x), seed=seed)
            .map(augment, num_parallel_calls=tf.data.AUTOTUNE).batch(batch_size).prefetch(tf.data.AUTOTUNE))


def accuracy(model, x: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(np.argmax(model.predict(x, batch_size=500, verbose=0), -1) == y))


def main() -> None:
    args = parse_args()
    keras = backend.keras3()
    keras.utils.set_random_seed(args.seed)
    full = examples.example_dataset(image_size=args.image_size, full=True, source=args.source)
    subset = examples.example_dataset(image_size=args.image_size)
    model = examples.build_example_model(alpha=args.alpha, image_size=args.image_size)
    steps = -(-len(full.x) // args.batch_size) * args.epochs
    schedule = keras.optimizers.schedules.CosineDecay(args.learning_rate, decay_steps=steps, alpha=0.01)
    model.compile(optimizer=keras.optimizers.Adam(schedule),
                  loss=keras.losses.CategoricalCrossentropy(label_smoothing=0.1), metrics=["accuracy"])
    onehot = np.eye(10, dtype="float32")
    history: list[dict] = []

    class Log(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            row = {"epoch": epoch + 1, "train_accuracy": round(float(logs["accuracy"]), 4),
                   "test_accuracy": round(accuracy(self.model, full.x_val, full.y_val), 4),
                   "elapsed_s": round(time.perf_counter() - start, 1)}
            history.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)

    start = time.perf_counter()
    model.fit(augmented(full.x, onehot[full.y], args.batch_size, args.seed), epochs=args.epochs, verbose=0, shuffle=False,
              callbacks=[Log()])
    seconds = time.perf_counter() - start
    # A fresh, uncompiled copy: the shipped file holds weights and architecture, no optimizer state.
    shipped = examples.build_example_model(alpha=args.alpha, image_size=args.image_size)
    shipped.set_weights(model.get_weights())
    args.out_dir.mkdir(parents=True, exist_ok=True)
    model_path = args.out_dir / examples.SHIPPED_MODEL_PATH.name
    save_model(shipped, model_path, overwrite=True)
    record = {
        "model": model_path.name, "architecture": f"MobileNetV2 alpha={args.alpha} {args.image_size}x{args.image_size}x3",
        "parameters": int(shipped.count_params()), "init": "random (weights=None)",
        "data": f"Fashion-MNIST, all {len(full.x)} training images ({full.source.split(', ', 1)[-1].rstrip(')')})",
        "augmentation": "random horizontal flip, random ±2-pixel shift",
        "epochs": args.epochs, "batch_size": args.batch_size, "seed": args.seed,
        "optimizer": f"Adam, cosine decay from {args.learning_rate}, label smoothing 0.1",
        "test_accuracy_full": accuracy(shipped, full.x_val, full.y_val), "test_images_full": len(full.x_val),
        "test_accuracy_subset": accuracy(shipped, subset.x_val, subset.y_val), "test_images_subset": len(subset.x_val),
        "training_seconds": round(seconds, 1), "machine": f"{platform.machine()}, {platform.python_version()}",
        "tensorflow": backend.tf().__version__, "keras": keras.__version__, "history": history,
    }
    (args.out_dir / examples.TRAINING_RECORD_PATH.name).write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps({k: v for k, v in record.items() if k != "history"}, indent=2))


if __name__ == "__main__":
    main()
