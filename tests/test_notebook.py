"""The example notebook executes top to bottom (nbclient and a local kernel; no network). Without
nbclient its code cells run in order with `exec`, so the notebook's code is still checked."""

from __future__ import annotations

import json
import os

import pytest
from _app_server import ROOT

NOTEBOOK = ROOT / "notebooks" / "researcher_bench.ipynb"

pytestmark = pytest.mark.slow


def test_example_notebook_executes(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("OMP_NUM_THREADS", os.environ.get("OMP_NUM_THREADS", "1"))
    try:
        import nbformat
        from nbclient import NotebookClient
    except ImportError:
        nbformat = None
    if nbformat is None:
        notebook = json.loads(NOTEBOOK.read_text())
        namespace: dict[str, object] = {}
        monkeypatch.chdir(ROOT)
        for cell in notebook["cells"]:
            if cell["cell_type"] == "code":
                exec(compile("".join(cell["source"]), str(NOTEBOOK), "exec"), namespace)  # noqa: S102
        return
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}})
    client.execute()
    outputs = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "through the reason tokens" in text and "nearest to example 0" in text
    # the figures came back as plotly outputs
    assert sum("application/vnd.plotly.v1+json" in o.get("data", {}) for o in outputs) >= 4
