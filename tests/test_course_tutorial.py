"""rqvae_lib.course.tutorial: strip_notebook, as ``make tutorial`` applies it to the notebooks."""

from __future__ import annotations

import json

import nbformat

from rqvae_lib.course.tutorial import strip_notebook


def test_strip_notebook_keeps_outputs_and_counts():
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("print(1)", execution_count=3)
    cell.outputs = [nbformat.v4.new_output("stream", text="1\n")]
    cell.metadata["execution"] = {"iopub.status.busy": "now"}
    nb.cells = [cell]
    nb.metadata["widgets"] = {}
    nb = strip_notebook(nb)
    assert nb.cells[0].execution_count == 3 and nb.cells[0].outputs
    assert "execution" not in nb.cells[0].metadata and "widgets" not in nb.metadata
    assert nb.metadata["kernelspec"]["name"] == "python3"
    json.dumps(nb)  # still plain JSON


def test_stripping_keeps_the_solution_markers():
    """``make tutorial`` strips the notebooks; the tag and the collapsed source must survive."""
    nb = nbformat.v4.new_notebook()
    meta = {"tags": ["solution"], "jupyter": {"source_hidden": True}, "scrolled": True}
    nb.cells.append(nbformat.v4.new_code_cell("answer = 1.0", metadata=meta))
    stripped = strip_notebook(nb).cells[0].metadata
    assert stripped == {"tags": ["solution"], "jupyter": {"source_hidden": True}}
