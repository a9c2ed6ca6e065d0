"""Bad data, full disks and other faults: each ends in one clear line (exit 2) and leaves the disk as it was.

Table-driven: a case builds the command line from the shared fixtures, runs the CLI, and checks the exit
code, the key words of the message, that no traceback was printed, and the state of the disk afterwards
(no numeric version directory, no temporary files, old files intact). Disk-full and read-only cases mount
a small tmpfs (root only: CI runs as root); elsewhere they are skipped with the reason.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from click.testing import CliRunner

from tfdeploy import files
from tfdeploy.cli import main
from tfdeploy.serving.export import ExportConfig, export

SHAPE = (16, 16, 3)


def hidden_leftovers(root: Path) -> list[str]:
    """tfdeploy's temporary names (``.NAME.tmp-PID-...``, ``.NAME.old-...``) under ``root``."""
    return [str(p) for p in root.rglob(".*") if files._TEMP_NAME.match(p.name)]


def snapshot(root: Path) -> list[tuple[str, bytes | None]]:
    return sorted((str(p.relative_to(root)), p.read_bytes() if p.is_file() else None) for p in root.rglob("*"))


@pytest.fixture(scope="module")
def bad_data(tmp_path_factory, compress_inputs):
    """One .npz per data fault, next to a good one, for the 16x16x3 4-class model of ``compress_inputs``."""
    root = tmp_path_factory.mktemp("bad")
    good = dict(np.load(compress_inputs["data"]))
    x, y = good["x"], good["y"]

    def save(name: str, **arrays) -> Path:
        np.savez(root / f"{name}.npz", **{**good, **arrays})
        return root / f"{name}.npz"

    with_nan, with_inf = x.copy(), x.copy()
    with_nan[12, 3, 4, 0] = np.nan
    with_inf[5, 0, 0, 1] = np.inf
    (root / "text.npz").write_text("x,y\n1,2\n")
    np.savez(root / "empty.npz", x=np.zeros((0, *SHAPE), "float32"))
    one_class = root / "one_class" / "shoes"
    one_class.mkdir(parents=True)
    from tfdeploy import backend

    png = backend.tf().io.encode_png(np.full((16, 16, 3), 200, np.uint8)).numpy()
    for i in range(6):
        (one_class / f"{i}.png").write_bytes(png)
    return {
        "nan": save("nan", x=with_nan), "inf": save("inf", x=with_inf),
        "huge_ints": save("huge_ints", x=np.full(x.shape, 2 ** 62, dtype=np.int64)),
        "strings": save("strings", x=np.full(x.shape, "pixel")),
        "label_out_of_range": save("range", y=np.where(np.arange(len(y)) == 7, 7, y)),
        "negative_label": save("negative", y=np.where(np.arange(len(y)) == 3, -1, y)),
        "float_labels": save("float_labels", y=y.astype("float32") + 0.5),
        "short_y": save("short_y", y=y[:-5]),
        "bad_one_hot": save("one_hot", y=np.full((len(y), 4), 0.5, "float32")),
        "shape": save("shape", x=np.zeros((len(x), 8, 8, 3), "float32"), x_val=np.zeros((10, 8, 8, 3), "float32")),
        "text": root / "text.npz", "empty": root / "empty.npz", "one_class": root / "one_class",
    }


@dataclasses.dataclass
class Case:
    """One fault: how to provoke it and what must come out."""

    name: str
    args: Callable[[dict, Path], list[str]]
    words: tuple[str, ...]
    exit_code: int = 2


def _compress(data_key: str, recipe: str = "prune") -> Callable[[dict, Path], list[str]]:
    return lambda f, out: ["compress", str(f["model"]), "--out", str(out / "c"), "--data", str(f[data_key]),
                           "--recipe", recipe, "--epochs", "1"]


DATA_FAULTS = [
    Case("nan in x", _compress("nan"), ("'x' holds nan at index (12, 3, 4, 0)", "impute")),
    Case("inf in x", _compress("inf"), ("'x' holds inf at index (5, 0, 0, 1)",)),
    Case("int64 around 2^62", _compress("huge_ints"), ("beyond the float32 input's exact range",)),
    Case("strings in x", _compress("strings"), ("takes float32, but 'x' holds strings",)),
    Case("label out of range", _compress("label_out_of_range"), ("class 7 at index 7", "4 classes (0..3)")),
    Case("negative label", _compress("negative_label"), ("class -1 at index 3",)),
    Case("float labels", _compress("float_labels"), ("fractional floats", "integer class ids")),
    Case("y shorter than x", _compress("short_y"), ("Labels y:probabilities have 295 samples but the inputs have 300",)),
    Case("one-hot rows that are not distributions", _compress("bad_one_hot"), ("not a distribution",)),
    Case("one class in an image directory", _compress("one_class"), ("hold only class [0]", "at least two classes")),
    Case("empty arrays", _compress("empty"), ("'x' is empty",)),
    Case("text file named .npz", _compress("text"), ("not a NumPy .npz archive",)),
    Case("sample shape in check parity", lambda f, out: ["check", "parity", str(f["model"]), str(f["model"]), "--data",
                                                         str(f["shape"])],
         ("has samples of shape (8, 8, 3)", "takes (16, 16, 3)")),
]
# Every command that reads data refuses the same bad file before any model work.
READERS = [
    Case("compress --auto", lambda f, out: ["compress", str(f["model"]), "--out", str(out / "a"), "--auto", "--data",
                                            str(f["nan"])], ("holds nan",)),
    Case("export --warmup-data", lambda f, out: ["export", str(f["model"]), "--base-dir", str(out / "m"),
                                                 "--warmup-data", str(f["nan"])], ("holds nan",)),
    Case("warmup write", lambda f, out: ["warmup", "write", str(f["version"]), "--warmup-data", str(f["nan"]),
                                         "--overwrite"], ("holds nan",)),
    Case("check determinism", lambda f, out: ["check", "determinism", str(f["model"]), "--data", str(f["nan"])],
         ("holds nan",)),
    Case("bench --data", lambda f, out: ["bench", str(f["model"]), "--data", str(f["nan"]), "--no-cold-start"],
         ("holds nan",)),
    Case("deploy", lambda f, out: ["deploy", str(f["model"]), "--out", str(out / "d"), "--data", str(f["nan"]),
                                   "--recipe", "ptq-int8", "--serve-variant", "original"], ("holds nan",)),
]
OTHER_FAULTS = [
    Case("extra signature named like the default",
         lambda f, out: ["export", str(f["model"]), "--base-dir", str(out / "m"), "--extra-signature",
                         "serving_default:8"], ("cannot be named 'serving_default'", "--signature-batch-size")),
    Case("serving-config --out is a file",
         lambda f, out: ["serving-config", "--model", f"m={f['version'].parent}", "--out", str(f["a_file"])],
         ("--out must be a directory",)),
    Case("bench on a file that is not TFLite",
         lambda f, out: ["bench", str(f["fake_tflite"]), "--no-cold-start"], ("Not a TFLite flatbuffer",)),
    Case("a subclassed model saved before it was called",
         lambda f, out: ["compress", str(f["subclassed"]), "--out", str(out / "s"), "--recipe", "ptq-dynamic",
                         "--custom-objects", "custom_layers:Subclassed"],
         ("subclassed Subclassed whose inputs and outputs are not known", "saved before it was called",
          "functional API")),
    Case("missing model", lambda f, out: ["compress", str(out / "nope.keras"), "--out", str(out / "c")],
         ("No model at this path",)),
    Case("truncated model", lambda f, out: ["export", str(f["truncated"]), "--base-dir", str(out / "m")],
         ("truncated or corrupt",)),
    Case("unknown recipe", lambda f, out: ["compress", str(f["model"]), "--out", str(out / "c"), "--recipe", "zip"],
         ("Unknown recipe 'zip'",)),
    Case("bad version", lambda f, out: ["export", str(f["model"]), "--base-dir", str(out / "m"), "--version", "x1"],
         ("a version is a non-negative integer",)),
    Case("zero batch size", lambda f, out: ["export", str(f["model"]), "--base-dir", str(out / "m"),
                                            "--warmup-batch-sizes", "0"], ("batch sizes must be positive",)),
]


@pytest.fixture(scope="module")
def fault_files(tmp_path_factory, compress_inputs, bad_data, keras3):
    import custom_layers

    root = tmp_path_factory.mktemp("fault_files")
    version = export(ExportConfig(compress_inputs["keras3"], root / "models" / "m")).version_dir
    (root / "a_file").write_text("not a directory")
    (root / "fake.tflite").write_bytes(b"\x00" * 64)
    raw = Path(compress_inputs["keras3"]).read_bytes()
    (root / "truncated.keras").write_bytes(raw[: len(raw) // 2])
    custom_layers.Subclassed().save(root / "subclassed.keras")  # never called: its file records no input shape
    return {**bad_data, "model": compress_inputs["keras3"], "version": Path(version), "a_file": root / "a_file",
            "fake_tflite": root / "fake.tflite", "truncated": root / "truncated.keras",
            "subclassed": root / "subclassed.keras"}


@pytest.mark.parametrize("case", DATA_FAULTS + READERS + OTHER_FAULTS, ids=lambda c: c.name)
def test_fault_is_one_line_and_leaves_nothing(case, fault_files, tmp_path):
    before = snapshot(fault_files["version"].parent)
    result = CliRunner().invoke(main, case.args(fault_files, tmp_path))
    assert result.exit_code == case.exit_code, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1 and "Traceback" not in result.output, result.output
    for words in case.words:
        assert words in errors[0], errors[0]
    assert not hidden_leftovers(tmp_path)
    assert not [p for p in tmp_path.rglob("*") if p.is_dir() and p.name.isdigit()], "no version was published"
    assert snapshot(fault_files["version"].parent) == before, "existing versions are untouched"


# --------------------------------------------------------------------------------------------------
# what is published is readable, durable, and replaced in one step
# --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("umask, dirs, regular", [(0o022, "755", "644"), (0o027, "750", "640")])
def test_published_version_has_the_modes_the_umask_gives(compress_inputs, tmp_path, umask, dirs, regular):
    previous = os.umask(umask)
    try:
        report = export(ExportConfig(compress_inputs["keras3"], tmp_path / "m", warmup_batch_sizes=(1, 2)))
    finally:
        os.umask(previous)
    version = Path(report.version_dir)
    modes = {oct(p.stat().st_mode & 0o777)[2:] for p in [version, *version.rglob("*")] if p.is_dir()}
    assert modes == {dirs}
    assert {oct(p.stat().st_mode & 0o777)[2:] for p in version.rglob("*") if p.is_file()} == {regular}
    assert report.modes.startswith(f"directories {dirs}, files {regular}")


def test_every_published_file_and_directory_is_synced(compress_inputs, tmp_path, monkeypatch):
    synced: list[str] = []
    real = files.fsync_path
    monkeypatch.setattr(files, "fsync_path", lambda path: (synced.append(str(path)), real(path))[1])
    report = export(ExportConfig(compress_inputs["keras3"], tmp_path / "m"))
    version = Path(report.version_dir)
    staged = {s.replace(s.split("/m/")[1].split("/")[0], "1", 1) for s in synced if "/m/." in s}
    published = {str(p) for p in [version, *version.rglob("*")]}
    assert published <= staged, sorted(published - staged)[:3]
    assert str(tmp_path / "m") in synced[-1:], "the parent directory is synced after the rename"


POLLER = """
import os, sys, time
base, seconds = sys.argv[1], float(sys.argv[2])
end, polls, misses = time.time() + seconds, 0, 0
print("ready", flush=True)
while time.time() < end:
    polls += 1
    misses += "1" not in os.listdir(base)
print(polls, misses)
"""


def test_overwrite_swaps_the_version_in_one_step_under_a_concurrent_poller(compress_inputs, tmp_path, monkeypatch):
    base = tmp_path / "m"
    export(ExportConfig(compress_inputs["keras3"], base))
    swaps = []
    real = files.exchange
    monkeypatch.setattr(files, "exchange", lambda a, b: (swaps.append(Path(b).name), real(a, b))[1])
    poller = subprocess.Popen([sys.executable, "-c", POLLER, str(base), "12"], stdout=subprocess.PIPE, text=True)
    assert poller.stdout.readline().strip() == "ready"
    for _ in range(3):
        export(ExportConfig(compress_inputs["keras3"], base, version=1, overwrite=True))
    polls, misses = (int(v) for v in poller.communicate()[0].split())
    assert swaps == ["1", "1", "1"], "every overwrite swapped directories with renameat2(RENAME_EXCHANGE)"
    assert misses == 0 and polls > 1000, (polls, misses)
    assert sorted(p.name for p in base.iterdir()) == ["1"], "the old version is gone, no staging left"


def test_stale_staging_of_a_killed_export_is_removed_by_the_next_one(compress_inputs, tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / "m" / f".3.tmp-{dead.stdout.strip()}-deadbeef"
    (stale / "variables").mkdir(parents=True)
    (stale / "variables" / "variables.data-00000-of-00001").write_bytes(b"\0" * 300_000)
    alive = tmp_path / "m" / f".4.tmp-{os.getppid()}-cafe0000"  # a live process's staging stays
    alive.mkdir()
    report = export(ExportConfig(compress_inputs["keras3"], tmp_path / "m"))
    assert not stale.exists() and alive.exists()
    assert any(f".3.tmp-{dead.stdout.strip()}-deadbeef (0.3 MB)" in note for note in report.notes), report.notes


# --------------------------------------------------------------------------------------------------
# nothing is replaced without --overwrite
# --------------------------------------------------------------------------------------------------

def test_no_command_replaces_a_file_without_overwrite(fault_files, compress_inputs, tmp_path):
    out = tmp_path / "c"
    args = ["compress", str(compress_inputs["keras3"]), "--out", str(out), "--recipe", "ptq-dynamic"]
    assert CliRunner().invoke(main, args).exit_code == 0
    before = snapshot(out)
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 2 and "already exist" in again.stderr and "--overwrite" in again.stderr
    assert snapshot(out) == before
    (tmp_path / "bench.json").write_text("{}")
    bench = CliRunner().invoke(main, ["bench", str(out / "ptq-dynamic.tflite"), "--no-cold-start", "--requests", "3",
                                      "--json-out", str(tmp_path / "bench.json")])
    assert bench.exit_code == 2 and (tmp_path / "bench.json").read_text() == "{}"
    warmup = fault_files["version"] / "assets.extra" / "tf_serving_warmup_requests"
    content = warmup.read_bytes()
    rewrite = CliRunner().invoke(main, ["warmup", "write", str(fault_files["version"])])
    assert rewrite.exit_code == 2 and "--overwrite" in rewrite.stderr and warmup.read_bytes() == content
    (tmp_path / "a" / "auto_report.json").parent.mkdir()
    (tmp_path / "a" / "auto_report.json").write_text("{}")
    auto = CliRunner().invoke(main, ["compress", str(compress_inputs["keras3"]), "--out", str(tmp_path / "a"),
                                     "--auto", "--data", str(compress_inputs["data"])])
    assert auto.exit_code == 2 and (tmp_path / "a" / "auto_report.json").read_text() == "{}"


# --------------------------------------------------------------------------------------------------
# full and read-only disks, for real (a small tmpfs)
# --------------------------------------------------------------------------------------------------

@contextlib.contextmanager
def mounted_tmpfs(where: Path, size: str, read_only: bool = False):
    """Mounts a tmpfs of ``size`` at ``where`` (root only), optionally read-only; unmounts after."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs for disk-full/read-only faults needs root (CI runs as root)")
    where.mkdir(parents=True, exist_ok=True)
    options = f"size={size}" + (",ro" if read_only else "")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True,
                             text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.strip()}): disk-full/read-only faults not run")
    try:
        yield where
    finally:
        for _ in range(5):
            if subprocess.run(["umount", str(where)], capture_output=True).returncode == 0:
                break
            time.sleep(0.5)


def test_export_onto_a_read_only_file_system(compress_inputs, tmp_path):
    with mounted_tmpfs(tmp_path / "ro", "1m", read_only=True) as base:
        result = CliRunner().invoke(main, ["export", str(compress_inputs["keras3"]), "--base-dir", str(base / "m")])
        assert result.exit_code == 2, result.output
        assert "Read-only file system while running export" in result.stderr and "Traceback" not in result.output
        assert list(base.iterdir()) == []


def test_export_onto_a_full_disk_leaves_no_version_and_no_staging(compress_inputs, tmp_path):
    with mounted_tmpfs(tmp_path / "full", "48k") as base:
        (base / "m").mkdir()
        result = CliRunner().invoke(main, ["export", str(compress_inputs["keras3"]), "--base-dir", str(base / "m")])
        assert result.exit_code == 2, result.output
        assert "No space left on device while running export" in result.stderr, result.stderr
        assert list((base / "m").iterdir()) == [], "no numeric directory, no staging directory"


def test_compress_onto_a_full_disk_keeps_the_old_files(compress_inputs, tmp_path):
    with mounted_tmpfs(tmp_path / "full", "32k") as out:
        (out / "report.md").write_text("previous run")
        result = CliRunner().invoke(main, ["compress", str(compress_inputs["keras3"]), "--out", str(out),
                                           "--recipe", "strip,ptq-dynamic,ptq-float16", "--overwrite"])
        assert result.exit_code == 2, result.output
        assert "No space left on device while running compress" in result.stderr, result.stderr
        assert (out / "report.md").read_text() == "previous run"
        assert not hidden_leftovers(out)

