"""Progress (lines, tqdm bars, silence), report rendering (text, Markdown, notebook) and plot labels."""

import base64
import dataclasses
import io
import itertools

import pytest

from tfdeploy.progress import LineProgress, Progress, TqdmProgress, as_progress
from tfdeploy.report import Heading, Image, Report, Table, Text


def test_line_progress_prints_count_elapsed_and_estimate_at_the_end():
    lines = []
    progress = LineProgress(lines.append, every_s=3600)
    with progress.task("fine-tune", total=4, unit="batch") as task:
        for _ in range(4):
            task.advance(loss=0.25)
    assert len(lines) == 1  # throttled: only the final meter
    assert lines[0].startswith("fine-tune: 100%|4/4 [00:00<00:00,")
    assert "batch/s" in lines[0] and "loss=0.25" in lines[0]


def test_line_progress_of_unknown_length_reports_elapsed_when_done():
    lines = []
    with LineProgress(lines.append).task("  converting to TFLite (int8)"):
        pass
    assert lines == ["  converting to TFLite (int8): done in 00:00"]


def test_tqdm_progress_draws_a_bar_on_its_stream():
    stream = io.StringIO()
    progress = TqdmProgress(stream)
    progress.say("Loading model.keras")
    with progress.task("bench", total=3, unit="request") as task:
        for _ in range(3):
            task.advance()
    text = stream.getvalue()
    assert "Loading model.keras" in text
    assert "bench: 100%" in text and "3/3" in text and "request" in text


def test_as_progress_accepts_every_documented_value():
    assert type(as_progress(None)) is Progress and type(as_progress(False)) is Progress
    lines = []
    as_progress(lines.append)("hello")
    assert lines == ["hello"]
    quiet = Progress()
    assert as_progress(quiet) is quiet
    with pytest.raises(TypeError, match="Received: progress=3"):
        as_progress(3)


@dataclasses.dataclass
class _Demo(Report):
    plot: str

    def blocks(self):
        return [Heading("Demo", level=1, in_text=False), Text("first line", terse="short"),
                Table([("a|b", 1.5)], header=("name", "value")), Text("only in markdown", in_text=False),
                Heading("section"), Table([("k", None)]), Image(self.plot, "the plot")]


@pytest.fixture
def demo(tmp_path):
    png = tmp_path / "plots" / "p.png"
    png.parent.mkdir()
    png.write_bytes(b"\x89PNG\r\n\x1a\nfake")
    return _Demo(str(png))


def test_text_rendering_uses_terse_text_and_skips_markdown_only_blocks(demo):
    text = demo.to_table()
    assert str(demo) == text
    assert text.splitlines() == ["short", "name  value", "----  -----", "a|b   1.5", "", "== section ==", "k  -",
                                 f"plot: {demo.plot}"]


def test_markdown_rendering_has_tables_headings_and_relative_images(demo, tmp_path):
    markdown = demo.to_markdown(relative_to=tmp_path)
    assert markdown.startswith("# Demo\n\nfirst line\n\n| name | value |\n|---|---|\n| a\\|b | 1.5 |")
    assert "only in markdown" in markdown and "## section" in markdown
    assert "![the plot](plots/p.png)" in markdown


def test_notebook_repr_is_markdown_with_the_plot_inlined(demo):
    markdown = demo._repr_markdown_()
    encoded = base64.b64encode(b"\x89PNG\r\n\x1a\nfake").decode()
    assert f"![the plot](data:image/png;base64,{encoded})" in markdown
    assert "| name | value |" in markdown


def test_size_vs_accuracy_labels_do_not_overlap(tmp_path):
    """Eight variants crowded into one corner, as int8 variants of a converged model are."""
    from tfdeploy import plots

    plt = plots.pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    names = ["original", "strip", "ptq-dynamic", "ptq-float16", "ptq-int8", "prune-int8", "qat", "cluster-qat"]
    kib = [1450, 1450, 420, 760, 415, 300, 418, 290]
    acc = [91.2, 91.2, 91.0, 91.2, 90.9, 90.4, 91.0, 90.1]
    ax.scatter(kib, acc)
    ax.set_xlim(0, 1800)
    ax.set_ylim(89.5, 91.8)
    boxes = plots.label_points(ax, list(zip(kib, acc)), names)
    assert len(boxes) == len(names)
    for first, second in itertools.combinations(boxes, 2):
        assert not first.overlaps(second)
    plots.save(fig, tmp_path / "labels.png")
    assert (tmp_path / "labels.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_variants_at_the_same_point_share_one_label():
    from tfdeploy.plots import merge_coincident

    names, xs, ys = merge_coincident(["original", "tflite", "strip", "ptq-int8"], [1570.0, 1466.0, 1569.9, 327.0],
                                     [92.4, 92.4, 92.4, 92.1])
    assert names == ["original, strip", "tflite", "ptq-int8"]
    assert xs == [1570.0, 1466.0, 327.0] and ys == [92.4, 92.4, 92.1]
