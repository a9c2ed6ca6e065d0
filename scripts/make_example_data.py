"""Builds tfdeploy/example_data/fashion_mnist_subset.npz from the real Fashion-MNIST IDX files.

Deterministic: a class-balanced subset drawn with a fixed seed. Source files come from Debian's
``dataset-fashion-mnist`` package (``apt-get install dataset-fashion-mnist``), the Keras cache,
or ``--source DIR``.

Usage:
    python scripts/make_example_data.py [--source DIR] [--train-per-class 400] [--test-per-class 100]
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import numpy as np

from tfdeploy.model.examples import EXAMPLE_DATA_PATH, read_fashion_mnist


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=None, help="directory with the four IDX .gz files")
    parser.add_argument("--train-per-class", type=int, default=400)
    parser.add_argument("--test-per-class", type=int, default=100)
    parser.add_argument("--seed", type=int, default=20261122)
    parser.add_argument("--out", type=Path, default=EXAMPLE_DATA_PATH)
    args = parser.parse_args()

    (x_train, y_train), (x_test, y_test), source = read_fashion_mnist(args.source)
    rng = np.random.default_rng(args.seed)

    def balanced(y: np.ndarray, per_class: int) -> np.ndarray:
        picks = [rng.choice(np.flatnonzero(y == c), per_class, replace=False) for c in range(10)]
        return rng.permutation(np.concatenate(picks))

    train_idx = balanced(y_train, args.train_per_class)
    test_idx = balanced(y_test, args.test_per_class)
    arrays = {
        "x": x_train[train_idx], "y": y_train[train_idx].astype("uint8"),
        "x_val": x_test[test_idx], "y_val": y_test[test_idx].astype("uint8"),
        "train_index": train_idx.astype("int32"), "test_index": test_idx.astype("int32"),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, **arrays)
    digest = hashlib.sha256(args.out.read_bytes()).hexdigest()
    print(json.dumps({"out": str(args.out), "source": str(source), "train": len(train_idx),
                      "test": len(test_idx), "sha256": digest}, indent=2))


if __name__ == "__main__":
    main()
