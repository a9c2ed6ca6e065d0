"""The models users bring, in tiny versions: the corpus every step is tested against.

Each entry builds a small Keras 3 model of one kind people deploy, trains it briefly on learnable
synthetic data and returns the model with its ``.npz`` data in tfdeploy's layout (``x``/``y`` for
one input and one output, ``x:NAME``/``y:NAME`` per input and output otherwise). Used by the tests
(``tests/integration/test_corpus.py``) and by ``scripts/make_models_matrix.py`` (``docs/models.md``).

Example:
    >>> entry = build("two_inputs", keras)        # doctest: +SKIP
    >>> entry.model.input_names, sorted(entry.arrays)
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import numpy as np

N_TRAIN, N_VAL = 192, 64
CLASSES = 4


@dataclasses.dataclass
class Entry:
    """A corpus model: the Keras model, its data arrays and how to load it back."""

    name: str
    model: Any
    arrays: dict[str, np.ndarray]
    custom_objects: dict[str, Any] = dataclasses.field(default_factory=dict)
    unsafe: bool = False  # needs safe_mode=False (Lambda)
    note: str = ""


def _labels(rng: np.random.Generator, n: int, classes: int = CLASSES) -> np.ndarray:
    return rng.integers(0, classes, size=n).astype("int64")


def _images(rng: np.random.Generator, y: np.ndarray, size: int, channels: int = 3) -> np.ndarray:
    """The class decides which quadrant is bright."""
    x = rng.normal(0, 0.3, size=(len(y), size, size, channels)).astype("float32")
    half = size // 2
    for i, label in enumerate(y):
        r, c = divmod(int(label) % 4, 2)
        x[i, r * half:(r + 1) * half, c * half:(c + 1) * half, :] += 1.0
    return x


def _tokens(rng: np.random.Generator, y: np.ndarray, length: int, vocab: int) -> np.ndarray:
    """Token ids where the class decides which band of the vocabulary most tokens come from."""
    band = vocab // CLASSES
    x = rng.integers(1, vocab, size=(len(y), length))
    for i, label in enumerate(y):
        keep = rng.random(length) < 0.6
        x[i, keep] = rng.integers(1 + band * int(label), band * (int(label) + 1), size=int(keep.sum()))
    return x.astype("int32")


WORDS = ("red", "green", "blue", "gold")


def _sentences(rng: np.random.Generator, y: np.ndarray) -> np.ndarray:
    """Short texts; the class's colour word appears in most of them."""
    filler = ("the", "a", "movie", "plot", "was", "quite", "very", "long", "short", "fine")
    texts = []
    for label in y:
        words = list(rng.choice(filler, size=5))
        words.insert(int(rng.integers(0, 5)), WORDS[int(label)])
        texts.append(" ".join(words))
    return np.asarray(texts)[:, None]


def _split(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``{"x": a}`` -> ``{"x": a[:N_TRAIN], "x_val": a[N_TRAIN:]}`` (``x:NAME`` -> ``x:NAME``/``x_val:NAME``)."""
    out = {}
    for key, value in arrays.items():
        kind, sep, name = key.partition(":")
        out[key] = value[:N_TRAIN]
        out[f"{kind}_val{sep}{name}"] = value[N_TRAIN:]
    return out


def _fit(model: Any, keras: Any, x: Any, y: Any, loss: Any, epochs: int = 3, lr: float = 1e-2) -> None:
    if isinstance(x, np.ndarray) and x.dtype.kind == "U":  # Keras 3 fit() takes strings only as tensors
        import tensorflow as tf

        x = tf.constant(x)
    model.compile(optimizer=keras.optimizers.Adam(lr), loss=loss)
    model.fit(x, y, epochs=epochs, batch_size=32, verbose=0)


def _fast_batch_norm(model: Any, keras: Any) -> None:
    """Moving statistics that settle in a few dozen steps (the applications' 0.999 needs thousands)."""
    for _, layer in _leaves(model):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.8


def _leaves(model: Any) -> list[tuple[str, Any]]:
    found = []
    for layer in model.layers:
        found.extend(_leaves(layer) if hasattr(layer, "layers") else [(layer.name, layer)])
    return found


def nested_mobilenetv2(keras: Any, rng: np.random.Generator) -> Entry:
    """Transfer learning: ``MobileNetV2(include_top=False)`` called as a layer (a nested model)."""
    y = _labels(rng, N_TRAIN + N_VAL)
    x = _images(rng, y, 32)
    base = keras.applications.MobileNetV2(input_shape=(32, 32, 3), alpha=0.35, include_top=False, weights=None,
                                          pooling="avg")
    inputs = keras.Input((32, 32, 3), name="image")
    features = base(inputs)
    features = keras.layers.Dropout(0.1, name="head_dropout")(features)
    outputs = keras.layers.Dense(CLASSES, activation="softmax", name="probabilities")(features)
    model = keras.Model(inputs, outputs, name="transfer_mobilenetv2")
    _fast_batch_norm(model, keras)
    _fit(model, keras, x[:N_TRAIN], y[:N_TRAIN], "sparse_categorical_crossentropy", epochs=4, lr=2e-3)
    return Entry("nested_mobilenetv2", model, _split({"x": x, "y": y}))


def two_inputs(keras: Any, rng: np.random.Generator) -> Entry:
    """An image, float features and int32 ids: three named inputs of three dtypes."""
    y = _labels(rng, N_TRAIN + N_VAL)
    image = _images(rng, y, 16)
    meta = (rng.normal(0, 1, size=(len(y), 4)) + y[:, None] * 0.5).astype("float32")
    ids = _tokens(rng, y, 5, 40)
    inputs = {"image": keras.Input((16, 16, 3), name="image"), "meta": keras.Input((4,), name="meta"),
              "ids": keras.Input((5,), dtype="int32", name="ids")}
    a = keras.layers.Conv2D(8, 3, activation="relu", name="conv")(inputs["image"])
    a = keras.layers.GlobalAveragePooling2D(name="pool")(a)
    b = keras.layers.Dense(8, activation="relu", name="meta_dense")(inputs["meta"])
    c = keras.layers.Embedding(40, 8, name="id_embedding")(inputs["ids"])
    c = keras.layers.GlobalAveragePooling1D(name="id_pool")(c)
    h = keras.layers.Concatenate(name="concat")([a, b, c])
    h = keras.layers.Dense(16, activation="relu", name="hidden")(h)
    outputs = keras.layers.Dense(CLASSES, activation="softmax", name="probabilities")(h)
    model = keras.Model(inputs, outputs, name="two_inputs")
    _fit(model, keras, {"image": image[:N_TRAIN], "meta": meta[:N_TRAIN], "ids": ids[:N_TRAIN]}, y[:N_TRAIN],
         "sparse_categorical_crossentropy")
    return Entry("two_inputs", model, _split({"x:image": image, "x:meta": meta, "x:ids": ids, "y": y}))


def two_outputs_tabular(keras: Any, rng: np.random.Generator) -> Entry:
    """Tabular features through ``Normalization``, a class head and a regression head."""
    n = N_TRAIN + N_VAL
    features = rng.normal(5, 3, size=(n, 8)).astype("float32")
    y_class = (np.argmax(features[:, :CLASSES], axis=1)).astype("int64")
    y_value = (features[:, 4:6].sum(axis=1, keepdims=True) * 0.1).astype("float32")
    inputs = keras.Input((8,), name="features")
    norm = keras.layers.Normalization(name="normalize")
    norm.adapt(features[:N_TRAIN])
    h = keras.layers.Dense(32, activation="relu", name="hidden")(norm(inputs))
    cls = keras.layers.Dense(CLASSES, activation="softmax", name="class")(h)
    value = keras.layers.Dense(1, name="value")(h)
    model = keras.Model(inputs, {"class": cls, "value": value}, name="tabular")
    _fit(model, keras, features[:N_TRAIN], {"class": y_class[:N_TRAIN], "value": y_value[:N_TRAIN]},
         {"class": "sparse_categorical_crossentropy", "value": "mse"}, epochs=5)
    return Entry("two_outputs_tabular", model, _split({"x": features, "y:class": y_class, "y:value": y_value}))


def mobilenetv3small(keras: Any, rng: np.random.Generator) -> Entry:
    """``MobileNetV3Small``: ``hard_silu``/``hard_sigmoid`` activations, Rescaling, squeeze-excite."""
    y = _labels(rng, N_TRAIN + N_VAL)
    x = _images(rng, y, 32) * 60 + 127  # this model rescales 0-255 inputs itself
    model = keras.applications.MobileNetV3Small(input_shape=(32, 32, 3), alpha=0.75, weights=None,
                                                classes=CLASSES, include_preprocessing=True, dropout_rate=0.0)
    _fast_batch_norm(model, keras)
    _fit(model, keras, x[:N_TRAIN], y[:N_TRAIN], "sparse_categorical_crossentropy", epochs=4, lr=2e-3)
    return Entry("mobilenetv3small", model, _split({"x": x.astype("float32"), "y": y}))


def _text_classifier(keras: Any, rng: np.random.Generator, name: str, recurrent: Callable[[], Any]) -> Entry:
    y = _labels(rng, N_TRAIN + N_VAL)
    tokens = _tokens(rng, y, 20, 80)
    inputs = keras.Input((20,), dtype="int32", name="tokens")
    h = keras.layers.Embedding(80, 16, name="embedding")(inputs)
    h = recurrent()(h)
    outputs = keras.layers.Dense(CLASSES, activation="softmax", name="label")(h)
    model = keras.Model(inputs, outputs, name=name)
    _fit(model, keras, tokens[:N_TRAIN], y[:N_TRAIN], "sparse_categorical_crossentropy", epochs=3)
    return Entry(name, model, _split({"x": tokens, "y": y}))


def bilstm_text(keras: Any, rng: np.random.Generator) -> Entry:
    """Embedding + Bidirectional(LSTM) text classifier on token ids."""
    return _text_classifier(keras, rng, "bilstm_text",
                            lambda: keras.layers.Bidirectional(keras.layers.LSTM(16), name="bilstm"))


def gru_text(keras: Any, rng: np.random.Generator) -> Entry:
    """Embedding + GRU text classifier on token ids."""
    return _text_classifier(keras, rng, "gru_text", lambda: keras.layers.GRU(16, name="gru"))


def text_vectorization(keras: Any, rng: np.random.Generator) -> Entry:
    """Raw strings in: ``TextVectorization`` inside the model."""
    y = _labels(rng, N_TRAIN + N_VAL)
    texts = _sentences(rng, y)
    vectorize = keras.layers.TextVectorization(max_tokens=40, output_sequence_length=8, name="vectorize")
    vectorize.adapt(texts[:N_TRAIN, 0])
    inputs = keras.Input((1,), dtype="string", name="text")
    h = keras.layers.Embedding(40, 16, name="embedding")(vectorize(inputs))
    h = keras.layers.GlobalAveragePooling1D(name="pool")(h)
    outputs = keras.layers.Dense(CLASSES, activation="softmax", name="label")(h)
    model = keras.Model(inputs, outputs, name="text_vectorization")
    _fit(model, keras, texts[:N_TRAIN], y[:N_TRAIN], "sparse_categorical_crossentropy", epochs=5)
    return Entry("text_vectorization", model, _split({"x": texts, "y": y}))


def custom_layer(keras: Any, rng: np.random.Generator) -> Entry:
    """A registered custom layer (``@keras.saving.register_keras_serializable``) with a weight."""
    from custom_layers import LearnedScale as scale

    y = _labels(rng, N_TRAIN + N_VAL)
    x = _images(rng, y, 16)
    inputs = keras.Input((16, 16, 3), name="image")
    h = keras.layers.Conv2D(8, 3, activation="relu", name="conv")(inputs)
    h = scale(name="learned_scale")(h)
    h = keras.layers.GlobalAveragePooling2D(name="pool")(h)
    outputs = keras.layers.Dense(CLASSES, activation="softmax", name="probabilities")(h)
    model = keras.Model(inputs, outputs, name="custom_layer")
    _fit(model, keras, x[:N_TRAIN], y[:N_TRAIN], "sparse_categorical_crossentropy", epochs=10)
    return Entry("custom_layer", model, _split({"x": x, "y": y}), custom_objects={"LearnedScale": scale})


def lambda_layer(keras: Any, rng: np.random.Generator) -> Entry:
    """A ``Lambda`` layer: loading it runs code from the file, so it needs an explicit opt-in."""
    y = _labels(rng, N_TRAIN + N_VAL)
    x = (rng.normal(0, 1, size=(len(y), 8)) + np.eye(8)[y * 2] * 2).astype("float32")
    inputs = keras.Input((8,), name="features")
    h = keras.layers.Lambda(lambda t: t * 2.0 - 1.0, name="affine")(inputs)
    h = keras.layers.Dense(16, activation="relu", name="hidden")(h)
    outputs = keras.layers.Dense(CLASSES, activation="softmax", name="probabilities")(h)
    model = keras.Model(inputs, outputs, name="lambda_layer")
    _fit(model, keras, x[:N_TRAIN], y[:N_TRAIN], "sparse_categorical_crossentropy", epochs=5)
    return Entry("lambda_layer", model, _split({"x": x, "y": y}), unsafe=True)


COUNTRIES = ("us", "de", "fr", "br", "in", "jp", "ng", "mx")


def ranker_arrays(rng: np.random.Generator, n: int, positive_rate: float = 0.05) -> dict[str, np.ndarray]:
    """Click-through data: Zipf-distributed user and item ids, a category, an hour, a country string (some
    unseen), six dense floats; ``click`` is 1 for about ``positive_rate`` of the rows."""
    users = np.minimum(rng.zipf(1.3, n), 499).astype("int64")
    items = np.minimum(rng.zipf(1.2, n), 299).astype("int64")
    category, hour = rng.integers(0, 20, n), rng.integers(0, 24, n)
    country = np.asarray(COUNTRIES + ("zz",))[np.minimum(rng.geometric(0.35, n) - 1, len(COUNTRIES))]
    dense = rng.normal(0, 1, (n, 6)).astype("float32")
    affinity = np.sin(users * 0.7) + np.cos(items * 1.3) + 0.8 * dense[:, 0] - 0.5 * dense[:, 1] + (category % 3 == 0)
    logit = 1.4 * affinity + np.log(positive_rate / (1 - positive_rate)) - 2.3  # the mean affinity is positive
    click = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype("int64")
    return {"x:user_id": users[:, None], "x:item_id": items[:, None], "x:category": category[:, None].astype("int64"),
            "x:hour": hour[:, None].astype("int64"), "x:country": country[:, None], "x:dense": dense, "y": click}


def ranker(keras: Any, rng: np.random.Generator, n_train: int = 1200, n_val: int = 800) -> Entry:
    """A click-through ranker: named int64 ids and a string feature through Embedding+Flatten, one sigmoid."""
    arrays = ranker_arrays(rng, n_train + n_val)
    layers = keras.layers
    inputs = {name: keras.Input((1,), dtype="int64", name=name) for name in ("user_id", "item_id", "category", "hour")}
    inputs["country"] = keras.Input((1,), dtype="string", name="country")
    inputs["dense"] = keras.Input((6,), name="dense")
    widths = {"user_id": (500, 8), "item_id": (300, 16), "category": (20, 4), "hour": (24, 4)}
    parts = [layers.Flatten(name=f"{name}_flat")(layers.Embedding(*widths[name], name=f"{name}_embedding")(inputs[name]))
             for name in widths]
    country = layers.StringLookup(vocabulary=list(COUNTRIES), name="country_lookup")(inputs["country"])
    parts.append(layers.Flatten(name="country_flat")(layers.Embedding(len(COUNTRIES) + 1, 4,
                                                                     name="country_embedding")(country)))
    parts.append(layers.Dense(8, activation="relu", name="dense_features")(inputs["dense"]))
    hidden = layers.Dense(32, activation="relu", name="hidden")(layers.Concatenate(name="concat")(parts))
    model = keras.Model(inputs, layers.Dense(1, activation="sigmoid", name="click")(hidden), name="ranker")
    import tensorflow as tf  # Keras 3 fit() takes strings only as tensors (a Dataset of the dict)

    x = {key.partition(":")[2]: value[:n_train] for key, value in arrays.items() if key.startswith("x:")}
    model.compile(optimizer=keras.optimizers.Adam(5e-3), loss="binary_crossentropy", metrics=["accuracy"])
    model.fit(tf.data.Dataset.from_tensor_slices((x, arrays["y"][:n_train])).batch(64), epochs=6, verbose=0)
    split = {}
    for key, value in arrays.items():
        kind, sep, name = key.partition(":")
        split[key], split[f"{kind}_val{sep}{name}"] = value[:n_train], value[n_train:]
    return Entry("ranker", model, split, note="compiled with accuracy and binary cross-entropy, as rankers often are")


BUILDERS: dict[str, Callable[[Any, np.random.Generator], Entry]] = {
    "nested_mobilenetv2": nested_mobilenetv2,
    "two_inputs": two_inputs,
    "two_outputs_tabular": two_outputs_tabular,
    "mobilenetv3small": mobilenetv3small,
    "bilstm_text": bilstm_text,
    "gru_text": gru_text,
    "text_vectorization": text_vectorization,
    "custom_layer": custom_layer,
    "lambda_layer": lambda_layer,
    "ranker": ranker,
}


def build(name: str, keras: Any, seed: int = 0) -> Entry:
    """Builds and trains corpus model ``name`` with ``keras`` (Keras 3)."""
    keras.utils.set_random_seed(seed)
    return BUILDERS[name](keras, np.random.default_rng(seed))


def save(entry: Entry, directory: Any) -> tuple[Any, Any]:
    """Writes ``NAME.keras`` and ``NAME.npz`` into ``directory``; returns both paths."""
    from pathlib import Path

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    model_path, data_path = directory / f"{entry.name}.keras", directory / f"{entry.name}.npz"
    entry.model.save(model_path)
    np.savez(data_path, **entry.arrays)
    return model_path, data_path


# ------------------------------------------------------------------------------------------------
# every step on one corpus model (shared by tests/integration/test_corpus.py and
# scripts/make_models_matrix.py)
# ------------------------------------------------------------------------------------------------

RECIPES = ("strip", "ptq-dynamic", "ptq-float16", "ptq-int8", "prune", "qat")
STEPS = (*RECIPES, "export", "verify", "parity")


@dataclasses.dataclass
class Cell:
    """The outcome of one step on one model: made (with what) or refused (with the reason)."""

    ok: bool
    detail: str = ""
    path: str | None = None
    gzip_bytes: int | None = None
    accuracy: float | None = None


@dataclasses.dataclass
class Run:
    """Every step's cell for one model, and the objects the tests inspect further."""

    entry: Entry
    model_path: Any
    data_path: Any
    cells: dict[str, Cell]
    compress_report: Any
    export_report: Any = None
    verify_report: Any = None
    parity_report: Any = None


def loading(entry: Entry) -> dict[str, Any]:
    """How tfdeploy must load the entry's model."""
    return {"custom_objects": entry.custom_objects, "safe_mode": not entry.unsafe}


def run_steps(entry: Entry, model_path: Any, data_path: Any, out: Any, epochs: int = 1) -> Run:
    """Compresses with every recipe of :data:`RECIPES`, exports, verifies and checks parity."""
    from pathlib import Path

    from tfdeploy.measure.checks import check_parity
    from tfdeploy.compression import CompressConfig, compress
    from tfdeploy.errors import TfdeployError
    from tfdeploy.compression.recipes import Recipe
    from tfdeploy.serving.export import ExportConfig, export
    from tfdeploy.serving.verification import verify

    out = Path(out)
    report = compress(CompressConfig(model_path, out / "compressed", recipes=[Recipe(r) for r in RECIPES],
                                     data=data_path, epochs=epochs, latency_repeats=3, **loading(entry)))
    cells = {v.name: Cell(not v.failed, v.error or "", v.path, v.gzip_bytes, v.accuracy) for v in report.variants}
    run = Run(entry, model_path, data_path, cells, report)
    try:
        run.export_report = export(ExportConfig(model_path, out / "models" / entry.name, warmup_data=data_path,
                                                warmup_batch_sizes=(1, 4), **loading(entry)))
        cells["export"] = Cell(True, f"{len(run.export_report.signatures['serving_default']['inputs'])} input(s)",
                               run.export_report.version_dir)
    except TfdeployError as exc:
        cells["export"] = Cell(False, str(exc))
        return run
    run.verify_report = verify(run.export_report.version_dir, source_model=model_path, cold_start=False,
                               **loading(entry))
    failed = [check.name for check in run.verify_report.failed()]
    cells["verify"] = Cell(run.verify_report.passed, "; ".join(failed))
    artifacts = [run.export_report.version_dir] + [c.path for n, c in cells.items()
                                                   if n == "ptq-dynamic" and c.ok and c.accuracy is not None]
    run.parity_report = check_parity(model_path, artifacts, data=data_path, samples=32, rtol=0.05,
                                     min_agreement=0.9, **loading(entry))
    failed = [f"{r.artifact} {r.output}: {r.reason}" for r in run.parity_report.results if not r.passed]
    cells["parity"] = Cell(run.parity_report.passed, "; ".join(failed))
    return run
