"""The ranker example: a synthetic click-through model at any size, with data shaped like production.

``tfdeploy example --kind ranker`` writes a Keras 3 model with dozens of named features, the way
click-through rankers arrive at a serving team:

* ``user_id`` and ``item_id``: int64 ids into the big tables (``embedding_rows`` and a quarter of
  it, 32 wide). They are the gigabytes: ``embedding_rows=8_000_000`` makes a 1.3 GB model.
* more categorical features, every third one a string (``country``, ``device``...) through a
  ``StringLookup`` with one out-of-vocabulary bucket, the others small int64 tables;
* four dense floats, each a named input;
* one sigmoid output ``click`` with about 4 % positives, compiled with AUC and binary
  cross-entropy (the metrics a ranker is judged by).

Ids follow a power law (a few head ids carry most traffic), mapped onto the table by a fixed
permutation. The validation split holds ids and strings never seen in training (about
5 % of the rows each), because lookups of cold ids are what a served ranker meets every hour.
Training uses plain SGD, whose updates touch only the looked-up rows: an optimizer with slots
(Adam) would update every row of a GB table at each step.

Example:
    >>> from tfdeploy.model import examples
    >>> report = examples.prepare_example("ranker", kind="ranker", embedding_rows=20_000)   # doctest: +SKIP
    >>> report.tables["user_id_embedding"]["bytes"]                                         # doctest: +SKIP
    2560000
"""

from __future__ import annotations

import dataclasses
import io
import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from tfdeploy.progress import ProgressLike, as_progress
from tfdeploy.report import Report

DEFAULT_ROWS = 20_000
DEFAULT_FEATURES = 24
MIN_FEATURES = 4
BIG_DIM = 32
DENSE_FEATURES = ("price", "position", "ctr_7d", "dwell_seconds")
STRING_NAMES = ("country", "device", "os", "language", "channel", "publisher", "city", "browser")
INT_NAMES = ("hour", "weekday", "category", "brand_id", "ad_slot", "campaign_id", "creative_id", "age_bucket",
             "gender", "network", "page_type", "query_class")
POSITIVE_RATE = 0.04
UNSEEN_FRACTION = 0.05
ZIPF_EXPONENT = 1.1


@dataclasses.dataclass(frozen=True)
class Feature:
    """One categorical feature: its input name, dtype, vocabulary (table rows) and embedding width."""

    name: str
    dtype: str
    vocabulary: int
    dim: int

    @property
    def table_rows(self) -> int:
        return self.vocabulary + (1 if self.dtype == "string" else 0)  # StringLookup's OOV bucket is row 0


def ranker_features(embedding_rows: int = DEFAULT_ROWS, features: int = DEFAULT_FEATURES) -> list[Feature]:
    """The categorical features of a ranker with ``features`` of them and a ``user_id`` table of ``embedding_rows``.

    Example:
        >>> [f.name for f in ranker_features(1000, 5)]
        ['user_id', 'item_id', 'country', 'hour', 'weekday']
    """
    result = [Feature("user_id", "int64", embedding_rows, BIG_DIM),
              Feature("item_id", "int64", max(embedding_rows // 4, 16), BIG_DIM)]
    strings, ints = 0, 0
    while len(result) < features:
        index = len(result) - 2
        if index % 3 == 0:
            base, strings = STRING_NAMES[strings % len(STRING_NAMES)], strings + 1
            lap = (strings - 1) // len(STRING_NAMES)
            result.append(Feature(base if lap == 0 else f"{base}_{lap + 1}", "string", 8 + 23 * (index % 7), 8))
        else:
            base, ints = INT_NAMES[ints % len(INT_NAMES)], ints + 1
            lap = (ints - 1) // len(INT_NAMES)
            vocabulary = (24, 7, 200, 1000, 12, 500, 3000, 10, 3, 6, 20, 50)[(ints - 1) % len(INT_NAMES)]
            result.append(Feature(base if lap == 0 else f"{base}_{lap + 1}", "int64", vocabulary,
                                  4 if vocabulary < 100 else 16))
    return result


def vocabulary_of(feature: Feature) -> list[str]:
    """The known values of a string feature: ``country_000``, ``country_001``, ..."""
    return [f"{feature.name}_{i:03d}" for i in range(feature.vocabulary)]


def _power_law_ranks(rng: np.random.Generator, n: int, size: int) -> np.ndarray:
    """Ranks in ``[0, size)`` with P(rank) ∝ (rank + 1)^-s, by inverting the continuous power law."""
    s = ZIPF_EXPONENT
    top = (size + 1) ** (1 - s)
    ranks = ((top - 1) * rng.random(n) + 1) ** (1 / (1 - s)) - 1
    return np.clip(ranks.astype("int64"), 0, size - 1)


def _permute(ranks: np.ndarray, size: int) -> np.ndarray:
    """Spreads ranks over the table with a fixed multiplicative permutation (the head ids are not 0, 1, 2...)."""
    step = 2_654_435_761 % size or 1
    while math.gcd(step, size) != 1:
        step += 1
    return (ranks * step + 7) % size


def _affinity(ids: np.ndarray, salt: float) -> np.ndarray:
    """A fixed per-id effect in [-1, 1] that the embeddings can learn."""
    return np.sin((ids.astype("float64") + 1) * (0.6180339887 + salt))


def ranker_arrays(features: list[Feature], n: int, rng: np.random.Generator, unseen: float = 0.0) -> dict[str, np.ndarray]:
    """``n`` rows of click-through data: every feature as a ``(n, 1)`` array, ``click`` labels under ``"y"``.

    Args:
        features: From :func:`ranker_features`.
        n: Rows.
        rng: Random source.
        unseen: Share of rows whose ids come from the cold half of each big table (never drawn by the
            power law's head) and whose strings are outside the vocabulary.
    """
    arrays: dict[str, np.ndarray] = {}
    logit = np.zeros(n)
    cold = rng.random(n) < unseen
    for k, feature in enumerate(features):
        ranks = _power_law_ranks(rng, n, feature.vocabulary)
        if feature.vocabulary > 1000:  # cold ids: uniform over the table's long tail
            ranks = np.where(cold, rng.integers(feature.vocabulary // 2, feature.vocabulary, n), ranks)
        ids = _permute(ranks, feature.vocabulary)
        weight = 1.2 if feature.vocabulary > 1000 else 0.35
        logit += weight * _affinity(ids, 0.01 * k)
        if feature.dtype == "string":
            values = np.asarray(vocabulary_of(feature))[ids]
            arrays[feature.name] = np.where(cold, np.char.add(f"{feature.name}_new_", ids.astype(str)), values)[:, None]
        else:
            arrays[feature.name] = ids.astype("int64")[:, None]
    for j, name in enumerate(DENSE_FEATURES):
        value = rng.normal(0, 1, n).astype("float32")
        logit += (0.6, -0.4, 0.8, 0.3)[j] * value
        arrays[name] = value[:, None]
    logit = 3.2 * logit / math.sqrt(len(features) + len(DENSE_FEATURES))  # a learnable signal at any feature count
    logit += _intercept(logit, POSITIVE_RATE)
    arrays["y"] = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype("int64")
    return arrays


def _intercept(logit: np.ndarray, rate: float) -> float:
    """The shift that makes the mean click probability ``rate`` (bisection on a monotone function)."""
    low, high = -20.0, 20.0
    for _ in range(50):
        middle = (low + high) / 2
        if np.mean(1 / (1 + np.exp(-(logit + middle)))) > rate:
            high = middle
        else:
            low = middle
    return (low + high) / 2


def build_ranker(features: list[Feature], keras: Any) -> Any:
    """The Keras 3 ranker: an embedding per feature, the dense floats, two ReLU layers and a sigmoid ``click``."""
    layers = keras.layers
    inputs, parts = {}, []
    for feature in features:
        inputs[feature.name] = keras.Input((1,), dtype=feature.dtype, name=feature.name)
        ids = inputs[feature.name]
        if feature.dtype == "string":
            ids = layers.StringLookup(vocabulary=vocabulary_of(feature), name=f"{feature.name}_lookup")(ids)
        table = layers.Embedding(feature.table_rows, feature.dim, name=f"{feature.name}_embedding")
        parts.append(layers.Flatten(name=f"{feature.name}_flat")(table(ids)))
    for name in DENSE_FEATURES:
        inputs[name] = keras.Input((1,), dtype="float32", name=name)
    parts.append(layers.Dense(8, activation="relu", name="dense_features")(
        layers.Concatenate(name="dense_concat")([inputs[name] for name in DENSE_FEATURES])))
    hidden = layers.Dense(64, activation="relu", name="hidden_1")(layers.Concatenate(name="concat")(parts))
    hidden = layers.Dense(32, activation="relu", name="hidden_2")(hidden)
    return keras.Model(inputs, layers.Dense(1, activation="sigmoid", name="click")(hidden), name="ranker")


@dataclasses.dataclass
class RankerExampleReport(Report):
    """What ``prepare_example(kind="ranker")`` wrote.

    Attributes:
        tables: Per embedding table: ``rows``, ``dim`` and ``bytes`` (float32).
        auc, logloss: Measured by this call on the validation split (which holds unseen ids).
        positive_rate: Share of clicks in the training data.
    """

    model_path: str
    data_path: str
    params: int
    model_bytes: int
    features: dict[str, str]
    tables: dict[str, dict[str, int]]
    train_rows: int
    val_rows: int
    positive_rate: float
    unseen_val_rows: float
    auc: float
    logloss: float
    seconds: float

    def rows(self) -> list[tuple[str, Any]]:
        kinds = {kind: sum(1 for k in self.features.values() if k == kind) for kind in sorted(set(self.features.values()))}
        big = max(self.tables.items(), key=lambda item: item[1]["bytes"])
        return [("model", f"{self.model_path} ({self.model_bytes / 2**20:,.1f} MiB, {self.params:,} parameters)"),
                ("data", f"{self.data_path} ({self.train_rows:,} training / {self.val_rows:,} validation rows)"),
                ("features", ", ".join(f"{n} {kind}" for kind, n in kinds.items())),
                ("largest table", f"{big[0]}: {big[1]['rows']:,} x {big[1]['dim']} ({big[1]['bytes'] / 2**20:,.1f} MiB)"),
                ("embedding tables", f"{len(self.tables)}, {sum(t['bytes'] for t in self.tables.values()) / 2**20:,.1f} MiB"),
                ("positive rate (training)", f"{100 * self.positive_rate:.2f} %"),
                ("validation rows with unseen ids/strings", f"{100 * self.unseen_val_rows:.1f} %"),
                ("validation AUC / logloss", f"{self.auc:.4f} / {self.logloss:.4f}"),
                ("seconds", round(self.seconds, 1))]


def prepare_ranker(out_dir: str | os.PathLike, embedding_rows: int = DEFAULT_ROWS, features: int = DEFAULT_FEATURES,
                   train_rows: int = 20_000, val_rows: int = 5_000, epochs: int = 2, seed: int = 0,
                   overwrite: bool = False, progress: ProgressLike = "auto") -> RankerExampleReport:
    """Writes the ranker's ``model.keras`` and ``data.npz`` (``x:NAME``/``x_val:NAME``, ``y``, ``y_val``).

    Use :func:`tfdeploy.model.examples.prepare_example` with ``kind="ranker"``; it checks the arguments.
    """
    from tfdeploy import backend
    from tfdeploy.files import ensure_writable, write_atomic
    from tfdeploy.model.loading import save_model

    say = as_progress(progress)
    out = Path(out_dir)
    model_path, data_path = out / "model.keras", out / "data.npz"
    for target in (model_path, data_path):
        ensure_writable(target, overwrite)
    began = time.perf_counter()
    specs = ranker_features(embedding_rows, features)
    rng = np.random.default_rng(seed)
    train, val = ranker_arrays(specs, train_rows, rng), ranker_arrays(specs, val_rows, rng, unseen=UNSEEN_FRACTION)
    keras = backend.keras3()
    keras.utils.set_random_seed(seed)
    say(f"Building a ranker with {len(specs)} categorical and {len(DENSE_FEATURES)} dense features; user table "
        f"{embedding_rows:,} x {BIG_DIM}")
    model = build_ranker(specs, keras)
    model.compile(optimizer=keras.optimizers.SGD(0.5), loss="binary_crossentropy",
                  metrics=[keras.metrics.AUC(name="auc")])
    say(f"Training on {train_rows:,} rows for {epochs} epoch(s)")
    tf = backend.tf()
    x = {k: v for k, v in train.items() if k != "y"}
    dataset = tf.data.Dataset.from_tensor_slices((x, train["y"])).shuffle(train_rows, seed=seed).batch(128)
    model.fit(dataset, epochs=epochs, verbose=0,
              callbacks=[backend.progress_callback(keras, say, epochs)])
    say(f"Saving {model_path}")
    save_model(model, model_path, overwrite=overwrite)
    buffer = io.BytesIO()
    np.savez(buffer, **{f"x:{k}": v for k, v in x.items()}, y=train["y"],
             **{f"x_val:{k}": v for k, v in val.items() if k != "y"}, y_val=val["y"])
    write_atomic(data_path, buffer.getvalue())
    auc, logloss = _auc_logloss(model, tf, val)
    return RankerExampleReport(
        model_path=str(model_path), data_path=str(data_path), params=int(model.count_params()),
        model_bytes=model_path.stat().st_size, features={f.name: f.dtype for f in specs} | {n: "float32" for n in DENSE_FEATURES},
        tables={f"{f.name}_embedding": {"rows": f.table_rows, "dim": f.dim, "bytes": 4 * f.table_rows * f.dim} for f in specs},
        train_rows=train_rows, val_rows=val_rows, positive_rate=float(train["y"].mean()),
        unseen_val_rows=_unseen_share(specs, train, val),
        auc=auc, logloss=logloss, seconds=time.perf_counter() - began)


def _unseen_share(specs: list[Feature], train: dict[str, np.ndarray], val: dict[str, np.ndarray]) -> float:
    """Share of validation rows with at least one id or string that the training rows never had."""
    unseen = np.zeros(len(val["y"]), dtype=bool)
    for feature in specs:
        unseen |= ~np.isin(val[feature.name][:, 0], train[feature.name][:, 0])
    return float(unseen.mean())


def _auc_logloss(model: Any, tf: Any, val: dict[str, np.ndarray]) -> tuple[float, float]:
    from tfdeploy import backend

    metrics = backend.sklearn_metrics()
    x = tf.data.Dataset.from_tensor_slices({k: v for k, v in val.items() if k != "y"}).batch(1024)
    p = np.asarray(model.predict(x, verbose=0)).reshape(-1).astype("float64")
    return float(metrics.roc_auc_score(val["y"], p)), float(metrics.log_loss(val["y"], np.clip(p, 1e-7, 1 - 1e-7)))
