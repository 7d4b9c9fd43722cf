"""The quick-start notebook executes top to bottom (tiny settings) and matches its generator."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = Path(__file__).resolve().parents[2] / "docs" / "notebooks"


def test_notebook_is_generated_from_its_source() -> None:
    sys.path.insert(0, str(NOTEBOOKS))
    try:
        from make_quickstart import build
    finally:
        sys.path.pop(0)
    stored = nbformat.read(NOTEBOOKS / "quickstart.ipynb", as_version=4)
    assert [c.source for c in stored.cells] == [c.source for c in build().cells]


def test_notebook_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    nbclient = pytest.importorskip("nbclient")
    monkeypatch.setenv("RADIOSSL_NOTEBOOK_OUT", str(tmp_path / "out"))
    monkeypatch.setenv("OMP_NUM_THREADS", os.environ.get("OMP_NUM_THREADS", "2"))
    notebook = nbformat.read(NOTEBOOKS / "quickstart.ipynb", as_version=4)
    client = nbclient.NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": tmp_path}}
    )
    client.execute()
    outputs = "".join(
        output.get("text", "") for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs
    )
    assert "Dice" in outputs
    images = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 2
