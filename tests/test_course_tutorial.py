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


def test_stripping_keeps_the_solution_markers_and_drops_solution_outputs():
    """``make tutorial`` strips the notebooks; the tag and the collapsed source must survive, and
    a solution cell's output must not."""
    nb = nbformat.v4.new_notebook()
    meta = {"tags": ["solution"], "jupyter": {"source_hidden": True}, "scrolled": True}
    nb.cells.append(nbformat.v4.new_code_cell("answer = 1.0", metadata=meta))
    nb.cells[0].outputs = [nbformat.v4.new_output("stream", text="[02-x] Correct. ...\n")]
    nb.cells[0].execution_count = 7
    nb.cells.append(nbformat.v4.new_code_cell("print(2)", execution_count=8))
    nb.cells[1].outputs = [nbformat.v4.new_output("stream", text="2\n")]
    stripped = strip_notebook(nb).cells
    assert stripped[0].metadata == {"tags": ["solution"], "jupyter": {"source_hidden": True}}
    # a solution's output would give the answer away; other cells keep theirs
    assert (stripped[0].outputs, stripped[0].execution_count) == ([], None)
    assert stripped[1].outputs and stripped[1].execution_count == 8
