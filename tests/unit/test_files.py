"""Atomic, durable publishing of files and directories (no TensorFlow)."""

import errno
import os

import pytest

from tfdeploy import files
from tfdeploy.errors import TfdeployError
from tfdeploy.faults import convert_fault


def test_write_atomic_syncs_and_leaves_no_temporary(tmp_path, monkeypatch):
    synced = []
    monkeypatch.setattr(files, "fsync_path", lambda path: synced.append(path.name))
    files.write_atomic(tmp_path / "r.json", "{}")
    assert (tmp_path / "r.json").read_text() == "{}" and os.listdir(tmp_path) == ["r.json"]
    assert synced[0].startswith(".r.json.tmp-") and synced[-1] == tmp_path.name


def test_a_failed_write_keeps_the_old_file(tmp_path):
    (tmp_path / "m.bin").write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with files.atomic_path(tmp_path / "m.bin") as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("disk went away")
    assert (tmp_path / "m.bin").read_bytes() == b"old" and os.listdir(tmp_path) == ["m.bin"]


def test_replace_falls_back_to_two_renames_and_says_so(tmp_path, monkeypatch):
    target = tmp_path / "1"
    target.mkdir()
    (target / "old").write_text("v1")

    def no_exchange(first, second):
        raise OSError(errno.EINVAL, "Invalid argument")

    monkeypatch.setattr(files, "exchange", no_exchange)
    with files.staged_directory(target, overwrite=True) as publication:
        (publication.staging / "new").write_text("v2")
    assert os.listdir(target) == ["new"] and os.listdir(tmp_path) == ["1"]
    assert publication.replaced and not publication.atomic_replace
    assert "cannot swap directories atomically" in publication.notes()[0]


def test_exchange_swaps_two_directories(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "from_a").touch()
    files.exchange(tmp_path / "a", tmp_path / "b")
    assert os.listdir(tmp_path / "b") == ["from_a"] and os.listdir(tmp_path / "a") == []


def test_existing_target_is_refused_without_overwrite(tmp_path):
    (tmp_path / "1").mkdir()
    with pytest.raises(TfdeployError, match="appeared meanwhile; not replacing it"):
        with files.staged_directory(tmp_path / "1", overwrite=False) as publication:
            (publication.staging / "x").touch()
    assert os.listdir(tmp_path) == ["1"], "the staging directory is removed"


def test_only_tfdeploy_temporaries_of_dead_processes_are_removed(tmp_path):
    mine = tmp_path / f".2.tmp-{os.getpid()}-ab12"
    other = tmp_path / ".cache"
    for path in (mine, other):
        path.mkdir()
    (tmp_path / ".model.keras.tmp-999999999-ab12cd34.keras").write_bytes(b"x" * 1000)
    removed = files.remove_stale_staging(tmp_path)
    assert removed == [".model.keras.tmp-999999999-ab12cd34.keras (0.0 MB)"]
    assert sorted(os.listdir(tmp_path)) == [".2.tmp-" + mine.name.split(".tmp-")[1], ".cache"]


@pytest.mark.parametrize("code, words", [
    (errno.ENOSPC, "No space left on device while running export; free space"),
    (errno.EROFS, "Read-only file system while running export"),
    (errno.EACCES, "Permission denied while running export; give this user write access"),
    (errno.ENOTDIR, "A file is where a directory should be"),
])
def test_os_errors_become_one_line_naming_the_path(code, words):
    error = convert_fault(OSError(code, os.strerror(code), "/models/m/1/saved_model.pb"), "export")
    assert isinstance(error, TfdeployError) and words in str(error)
    assert str(error).endswith("Received: path='/models/m/1/saved_model.pb'")


def test_a_tfdeploy_bug_keeps_its_traceback():
    bug = KeyError("oops")
    assert convert_fault(bug, "export") is bug
