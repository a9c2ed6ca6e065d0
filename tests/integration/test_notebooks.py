"""Every notebook runs top to bottom (fast mode) through a real Jupyter kernel."""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("*.ipynb"))


def test_there_are_four_notebooks_without_outputs():
    assert [p.stem for p in NOTEBOOKS] == ["01_quickstart", "02_compression_tradeoffs", "03_reproducibility",
                                           "04_serving_hot_update"]
    for path in NOTEBOOKS:
        notebook = nbformat.read(path, as_version=4)
        assert all(not cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code"), path.name


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path, tmp_path, monkeypatch):
    monkeypatch.setenv("TFDEPLOY_NOTEBOOK_FAST", "1")
    monkeypatch.setenv("TFDEPLOY_NOTEBOOK_DIR", str(tmp_path))
    notebook = nbformat.read(path, as_version=4)
    NotebookClient(notebook, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    errors = [out for cell in notebook.cells for out in cell.get("outputs", []) if out.get("output_type") == "error"]
    assert not errors
    assert any(cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code")
    if path.stem in ("01_quickstart", "02_compression_tradeoffs"):  # reports ending a cell render as tables
        markdown = [out["data"]["text/markdown"] for cell in notebook.cells for out in cell.get("outputs", [])
                    if "text/markdown" in out.get("data", {})]
        assert any("| variant | format |" in text for text in markdown), "the compression report as a table"
        assert any("data:image/png;base64," in text for text in markdown), "its size-vs-accuracy plot inline"
