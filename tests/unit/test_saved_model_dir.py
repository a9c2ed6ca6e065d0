"""The one test of "is this directory a SavedModel" (tfdeploy.model.loading), used by bench, hot swap and checks."""

from tfdeploy.model.loading import is_plain_saved_model, is_saved_model_dir


def test_saved_model_directories_are_recognised(tmp_path):
    plain, text, keras, empty = (tmp_path / name for name in ("plain", "text", "keras", "empty"))
    for directory in (plain, text, keras, empty):
        directory.mkdir()
    (plain / "saved_model.pb").write_bytes(b"")
    (text / "saved_model.pbtxt").write_text("")
    (keras / "saved_model.pb").write_bytes(b"")
    (keras / "keras_metadata.pb").write_bytes(b"")
    (tmp_path / "model.keras").write_bytes(b"")
    assert [is_saved_model_dir(p) for p in (plain, text, keras, empty, tmp_path / "model.keras")] == [
        True, True, True, False, False]
    assert [is_plain_saved_model(p) for p in (plain, text, keras, empty)] == [True, True, False, False]
    assert is_saved_model_dir(str(plain)), "paths may be strings"
