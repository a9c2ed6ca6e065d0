"""Knowledge distillation (``distill``): students learn the teacher, chains quantize them, bad students are refused."""

from __future__ import annotations

import corpus
import numpy as np
import pytest
from click.testing import CliRunner

from tfdeploy import backend
from tfdeploy.cli import main
from tfdeploy.compression import CompressConfig, compress
from tfdeploy.compression import students
from tfdeploy.compression.distillation import DistillOptions, distillation_targets
from tfdeploy.compression.recipes import distill as distill_recipe
from tfdeploy.errors import TfdeployError
from tfdeploy.model.loading import load_model


def _compress(model, out, data, recipes="distill", **options):
    lines: list[str] = []
    options.setdefault("distill_epochs", 8)
    report = compress(CompressConfig(model, out, recipes=recipes, data=data, latency_repeats=3, progress=lines.append,
                                     **options))
    return report, lines


def _layer(model, name):
    return dict(backend.leaf_layers(model))[name]


@pytest.mark.parametrize("flavour,data", [("keras3", "data"), ("tf_keras", "unlabelled")])
def test_the_student_learns_the_teacher_and_chains_quantize_it(compress_inputs, tmp_path, flavour, data):
    # a tiny model learns from scratch in 10 epochs of 19 steps at a higher rate than the default
    report, lines = _compress(compress_inputs[flavour], tmp_path, compress_inputs[data],
                              recipes="distill,distill+ptq-int8", distill_epochs=10, batch_size=16,
                              distill_learning_rate=1e-2, temperature=2.0)
    original, student, int8 = report.variants
    assert [v.name for v in report.variants] == ["original", "distill", "distill+ptq-int8"]
    assert not student.failed and not int8.failed, (student.error, int8.error)
    # scored before training and after each of the 10 epochs, on the validation inputs
    scores = student.training
    assert [s["epoch"] for s in scores] == list(range(11))
    assert scores[0]["agreement"] <= 0.5 and scores[-1]["agreement"] >= 0.6
    assert scores[-1]["agreement"] >= scores[0]["agreement"] + 0.25
    assert scores[-1]["mean_abs_diff"] < scores[0]["mean_abs_diff"]
    assert student.agreement == pytest.approx(scores[-1]["agreement"])
    assert (student.accuracy is None) == (data == "unlabelled")
    # half the channels of every hidden layer; the output layer keeps the teacher's classes
    model = load_model(tmp_path / "distill.keras").model
    assert backend.flavour_of(model).value == flavour
    assert (_layer(model, "conv1").filters, _layer(model, "dense1").units, _layer(model, "probabilities").units) == (4, 8, 4)
    assert student.params < original.params / 2
    assert backend.model_io(model).input_names == ["image"]
    # the chain quantizes the student and is measured against the teacher
    assert (tmp_path / "distill+ptq-int8.tflite").is_file()
    counts = backend.tensor_type_counts((tmp_path / "distill+ptq-int8.tflite").read_bytes())
    assert counts.get("int8", 0) > 0
    assert int8.agreement >= student.agreement - 0.1
    assert int8.gzip_bytes < student.gzip_bytes
    assert any("untrained student: agreement with the teacher" in line for line in lines)
    assert any(line.startswith("  distill epoch 10/10: loss") for line in lines)
    markdown = (tmp_path / "report.md").read_text()
    assert "distill: the student by epoch" in markdown


# A teacher trained on real images, and the student a user would write: the learning must match plain training.
STUDENT_EPOCHS, STUDENT_RATE = 10, 2e-3


@pytest.fixture(scope="module")
def fashion(keras3, tmp_path_factory):
    """A CNN trained on Fashion-MNIST (the packaged 4,000 images; ~85 % on the 1,000 held out), the 1,400 images a
    student learns from, and a user's own 1,562-parameter student (issue 22's)."""
    from tfdeploy.model.examples import EXAMPLE_DATA_PATH

    root, layers = tmp_path_factory.mktemp("fashion"), keras3.layers
    with np.load(EXAMPLE_DATA_PATH) as arrays:
        x, y, x_val, y_val = (arrays[k] for k in ("x", "y", "x_val", "y_val"))
    x, x_val, y, y_val = x[..., None], x_val[..., None], y.astype("int64"), y_val.astype("int64")
    keras3.utils.set_random_seed(0)
    inputs = keras3.Input((28, 28, 1), name="image")
    hidden = layers.Rescaling(1 / 255)(inputs)
    for filters in (32, 64, 96):
        hidden = layers.MaxPooling2D()(layers.Conv2D(filters, 3, padding="same", activation="relu")(hidden))
    hidden = layers.Dense(64, activation="relu")(layers.GlobalAveragePooling2D()(hidden))
    teacher = keras3.Model(inputs, layers.Dense(10, activation="softmax", name="probs")(hidden))
    teacher.compile(keras3.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    teacher.fit(x, y, epochs=12, batch_size=32, verbose=0)
    assert teacher.evaluate(x_val, y_val, verbose=0)[1] > 0.8
    teacher.save(root / "teacher.keras")
    np.savez(root / "data.npz", x=x[:1400], y=y[:1400], x_val=x_val, y_val=y_val)
    inputs = keras3.Input((28, 28, 1), name="image")
    hidden = layers.Rescaling(1 / 255)(inputs)
    hidden = layers.Conv2D(16, 3, strides=2, activation="relu")(layers.Conv2D(8, 3, strides=2, activation="relu")(hidden))
    student = keras3.Model(inputs, layers.Dense(10, activation="softmax", name="probs")(
        layers.GlobalAveragePooling2D()(hidden)))
    student.save(root / "student.keras")
    return {"root": root, "teacher": teacher, "x": x[:1400], "y": y[:1400], "x_val": x_val, "y_val": y_val}


def _plain_accuracy(keras, model, fashion):
    """What the student reaches trained on the labels alone, as a user would: Adam, same rate, epochs and batch."""
    keras.utils.set_random_seed(0)
    model.compile(keras.optimizers.Adam(STUDENT_RATE), "sparse_categorical_crossentropy")
    model.fit(fashion["x"], fashion["y"], epochs=STUDENT_EPOCHS, batch_size=32, verbose=0)
    return float(np.mean(np.argmax(model.predict(fashion["x_val"], verbose=0), 1) == fashion["y_val"]))


@pytest.mark.slow
@pytest.mark.parametrize("student", ["file", "width 0.5"])
def test_a_real_student_learns_the_teacher_at_least_as_well_as_plain_training(fashion, keras3, tmp_path, student):
    root, teacher = fashion["root"], fashion["teacher"]
    options = {"student": root / "student.keras"} if student == "file" else {"student_width": 0.5}
    report, _ = _compress(root / "teacher.keras", tmp_path, root / "data.npz", distill_epochs=STUDENT_EPOCHS,
                          distill_learning_rate=STUDENT_RATE, **options)  # the default temperature and schedule
    assert not report.variants[1].failed, report.variants[1].error
    made = keras3.models.load_model(tmp_path / "distill.keras")
    wanted = np.argmax(teacher.predict(fashion["x_val"], verbose=0), 1)
    agreement = float(np.mean(np.argmax(made.predict(fashion["x_val"], verbose=0), 1) == wanted))
    assert agreement == pytest.approx(report.variants[1].agreement, abs=1e-9)
    untrained = (keras3.models.load_model(root / "student.keras") if student == "file"
                 else students.narrower(teacher, 0.5, seed=0).model)
    # the student given is the model trained: every one of its weights moved
    assert [w.path for w in made.weights] == [w.path for w in untrained.weights]
    assert all(not np.allclose(np.asarray(a), np.asarray(b)) for a, b in zip(made.weights, untrained.weights))
    plain = _plain_accuracy(keras3, untrained, fashion)
    assert agreement >= plain - 0.05, (agreement, plain)


def test_soft_targets_come_from_the_teacher_in_inference_mode(keras3, tmp_path, monkeypatch):
    from conftest import tiny_data

    keras3.utils.set_random_seed(3)
    inputs = keras3.Input((16, 16, 3), name="image")
    x = keras3.layers.Conv2D(8, 3, name="conv")(inputs)
    x = keras3.layers.BatchNormalization(name="bn")(x)   # untrained: moving statistics 0/1, batch statistics not
    x = keras3.layers.GlobalAveragePooling2D()(x)
    x = keras3.layers.Dropout(0.5, name="drop")(x)
    outputs = keras3.layers.Dense(4, activation="softmax", name="probabilities")(x)
    keras3.Model(inputs, outputs).save(tmp_path / "teacher.keras")
    x_all, y_all = tiny_data(n=96, input_shape=(16, 16, 3), seed=2)
    np.savez(tmp_path / "data.npz", x=x_all[:64], y=y_all[:64], x_val=x_all[64:], y_val=y_all[64:])
    seen = {}
    real = distill_recipe.distill

    def spy(student, teacher_io, teacher_outputs, x, labels, options, score, progress=None):
        seen.update(io=teacher_io, teacher=teacher_outputs, x=x, labels=labels, options=options)
        return real(student, teacher_io, teacher_outputs, x, labels, options, score, progress)

    monkeypatch.setattr(distill_recipe, "distill", spy)
    _compress(tmp_path / "teacher.keras", tmp_path / "out", tmp_path / "data.npz", distill_epochs=1, temperature=2.0,
              isolate=False)  # the spy is in this process
    teacher = keras3.models.load_model(tmp_path / "teacher.keras")
    inference = np.asarray(teacher(x_all[:64], training=False))
    training = np.asarray(teacher(x_all[:64], training=True))
    np.testing.assert_allclose(seen["teacher"]["probabilities"], inference, atol=1e-5)
    assert np.abs(seen["teacher"]["probabilities"] - training).max() > 1e-2
    # the soft targets are the teacher's inference outputs at T=2, the labels in the last column
    (target,) = distillation_targets(seen["io"], seen["io"], seen["teacher"], seen["labels"], {"probabilities": True},
                                     seen["options"])
    softened = np.exp(np.log(inference) / 2.0)
    np.testing.assert_allclose(target.values[:, :4], softened / softened.sum(1, keepdims=True), atol=1e-5)
    np.testing.assert_array_equal(target.values[:, 4], y_all[:64])
    assert seen["options"] == DistillOptions(2.0, 0.1, 1, 32, 2e-3, 0)


def _student(keras, path, input_shape=(16, 16, 3), classes=4, inputs=("image",), names=("probabilities",)):
    tensors = [keras.Input(input_shape, name=name) for name in inputs]
    x = tensors[0] if len(tensors) == 1 else keras.layers.Concatenate()(tensors)
    x = keras.layers.Conv2D(4, 3, name="c")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    keras.Model(tensors, keras.layers.Dense(classes, activation="softmax", name=names[0])(x)).save(path)
    return path


@pytest.mark.parametrize("kind,expected", [
    ("shape", "its input 'image' is image float32[?, 8, 8, 3] where the teacher's input 'image' is image "
              "float32[?, 16, 16, 3]"),
    ("classes", "its output 'probabilities' is probabilities float32[?, 3] where the teacher's output "
                "'probabilities' is probabilities float32[?, 4]"),
    ("inputs", "has inputs ['a', 'b'] but the teacher has ['image']"),
])
def test_a_student_that_does_not_fit_is_refused_before_any_work(compress_inputs, keras3, tmp_path, kind, expected):
    path = tmp_path / "student.keras"
    _student(keras3, path, **{"shape": {"input_shape": (8, 8, 3)}, "classes": {"classes": 3},
                              "inputs": {"inputs": ("a", "b")}}[kind])
    out = tmp_path / "out"
    with pytest.raises(TfdeployError) as caught:
        _compress(compress_inputs["keras3"], out, compress_inputs["data"], recipes="strip,distill", student=path)
    assert expected in str(caught.value)
    assert f"Received: student={str(path)!r}" in str(caught.value)
    assert not (out / "distill.keras").exists() and not (out / "strip.keras").exists()
    assert not (out / "report.json").exists()


def test_the_cli_refuses_an_incompatible_student_with_exit_2(compress_inputs, keras3, tmp_path):
    path = _student(keras3, tmp_path / "student.keras", classes=3)
    result = CliRunner().invoke(main, ["compress", str(compress_inputs["keras3"]), "--out", str(tmp_path / "out"),
                                       "--recipe", "distill", "--data", str(compress_inputs["data"]),
                                       "--student", str(path)])
    assert result.exit_code == 2, result.output
    assert "does not fit the teacher: its output 'probabilities'" in result.output


def test_a_student_with_other_names_is_matched_by_position_and_serves_under_the_teachers(compress_inputs, keras3,
                                                                                           tmp_path):
    path = _student(keras3, tmp_path / "student.keras", inputs=("pixels",), names=("scores",))
    report, _ = _compress(compress_inputs["keras3"], tmp_path / "out", compress_inputs["data"], student=path,
                          distill_epochs=8, batch_size=16, distill_learning_rate=1e-2, temperature=2.0)
    student = report.variants[1]
    assert not student.failed, student.error
    assert any("matched to the teacher by position and renamed: pixels→image, scores→probabilities" in n
               for n in student.notes)
    io = backend.model_io(load_model(tmp_path / "out" / "distill.keras").model)
    assert (io.input_names, io.output_names) == (["image"], ["probabilities"])
    assert student.training[-1]["agreement"] > student.training[0]["agreement"]


def test_a_plain_savedmodel_student_and_bad_options_are_refused(compress_inputs, tmp_path):
    tf = backend.tf()

    class Plain(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 16, 16, 3], tf.float32, name="image")])
        def serve(self, image):
            return {"probabilities": tf.nn.softmax(tf.reduce_mean(image, axis=[1, 2]))[:, :3]}

    saved, plain = tmp_path / "plain", Plain()
    tf.saved_model.save(plain, str(saved), signatures={"serving_default": plain.serve})
    teacher_io = backend.model_io(load_model(compress_inputs["keras3"]).model)
    with pytest.raises(TfdeployError, match="must be a Keras model to train"):
        students.from_file(saved, teacher_io)
    with pytest.raises(TfdeployError, match=r"in \(0, 1\]. Received: student_width=1.5"):
        CompressConfig(compress_inputs["keras3"], tmp_path, recipes="distill", student_width=1.5).validate()
    with pytest.raises(TfdeployError, match="makes a .tflite file, and only a recipe that makes a Keras model"):
        CompressConfig(compress_inputs["keras3"], tmp_path, recipes="ptq-int8+distill")


def test_narrowing_keeps_what_sets_the_outputs_and_names_the_layer_that_cannot_follow(keras3):
    inputs = keras3.Input((6,), name="x")
    hidden = keras3.layers.Dense(32, name="hidden")(inputs)
    logits = keras3.layers.Dense(5, name="logits")(hidden)
    outputs = keras3.layers.Softmax(name="probabilities")(keras3.layers.Dropout(0.1)(logits))
    model = keras3.Model(inputs, outputs)
    assert {id(_layer(model, "logits"))} == students.output_layers(model)
    student = students.narrower(model, 0.25)
    assert (_layer(student.model, "hidden").units, _layer(student.model, "logits").units) == (8, 5)
    assert students.scaled(1280, 0.35) == 448 and students.scaled(3, 0.5) == 2
    fixed = keras3.layers.Reshape((4, 8), name="fixed")(keras3.layers.Dense(32, name="d")(inputs))
    head = keras3.layers.Dense(3, name="head")(keras3.layers.Flatten()(fixed))
    with pytest.raises(TfdeployError, match=r"Cannot build a student at width 0.5 .*pass a student model with "
                                            r"--student FILE"):
        students.narrower(keras3.Model(inputs, head), 0.5)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["nested_mobilenetv2", "two_outputs_tabular", "gru_text", "text_vectorization",
                                  "custom_layer", "two_inputs"])
def test_distill_on_the_corpus(name, keras3, tmp_path):
    entry = corpus.build(name, keras3)
    model_path, data_path = corpus.save(entry, tmp_path)
    report, _ = _compress(model_path, tmp_path / "out", data_path, distill_epochs=1, **corpus.loading(entry))
    original, student = report.variants
    assert not student.failed, student.error
    teacher = load_model(model_path, **corpus.loading(entry)).model
    made = load_model(tmp_path / "out" / f"distill{model_path.suffix}", **corpus.loading(entry)).model
    assert backend.model_io(made) == backend.model_io(teacher)
    assert student.params < original.params
    assert len(student.training) == 2 and student.agreement is not None  # learning itself: the tiny-teacher tests
    leaves = dict(backend.leaf_layers(made))
    if name == "nested_mobilenetv2":
        inner = next(path for path in leaves if path.endswith("/Conv1"))
        assert leaves[inner].filters == dict(backend.leaf_layers(teacher))[inner].filters // 2
    if name == "gru_text":
        (gru,) = [layer for layer in leaves.values() if type(layer).__name__ == "GRU"]
        assert gru.units == next(l for l in dict(backend.leaf_layers(teacher)).values()
                                 if type(l).__name__ == "GRU").units // 2
    if name == "two_outputs_tabular":
        chosen = backend.model_io(teacher).output_names[0]
        report, _ = _compress(model_path, tmp_path / "one", data_path, distill_epochs=1, output=chosen)
        assert backend.model_io(load_model(tmp_path / "one" / "distill.keras").model).output_names == [chosen]
        assert any(f"only output {chosen!r} distilled" in note for note in report.variants[1].notes)


def test_auto_tries_distilled_students_for_latency_and_says_why(compress_inputs, tmp_path):
    from tfdeploy.compression.auto import AutoConfig, Candidate, Objective, auto_compress
    from tfdeploy.compression.recipes import Recipe

    config = CompressConfig(compress_inputs["keras3"], tmp_path, data=compress_inputs["data"], latency_repeats=3,
                            distill_epochs=6)
    report = auto_compress(AutoConfig(config, max_accuracy_drop=100.0, objective=Objective.LATENCY,
                                      candidates=(Candidate(Recipe.PTQ_DYNAMIC, 0.3, 0.9),), student_widths=(0.5,)))
    names = [t.name for t in report.trials]
    assert names == ["ptq-dynamic", "w0.5-distill", "w0.5-distill+tflite", "w0.5-distill+ptq-int8"]
    assert all(t.error is None and t.quality is not None for t in report.trials), [t.error for t in report.trials]
    assert all(t.peak_rss_bytes for t in report.trials)  # each trial ran in its own process
    fastest = min(report.trials, key=lambda t: t.latency_ms)
    assert report.chosen == fastest.name and report.verdicts[fastest.name].startswith("chosen: the lowest latency")
    others = [name for name in names if name != fastest.name]
    assert all(report.verdicts[name].startswith("rejected: within the budget, but latency") for name in others)
    assert (tmp_path / f"auto-{fastest.name}{'.keras' if fastest.name.endswith('distill') else '.tflite'}").is_file()
    # a budget the student misses rejects it with its drop; the size objective does not try students
    tight = auto_compress(AutoConfig(CompressConfig(compress_inputs["keras3"], tmp_path / "size",
                                                    data=compress_inputs["data"], latency_repeats=3),
                                     candidates=(Candidate(Recipe.PTQ_DYNAMIC, 0.3, 0.9),)))
    assert [t.name for t in tight.trials] == ["ptq-dynamic"]
    assert "distilled students were not tried" in tight.notes[0] and "--objective latency" in tight.notes[0]
