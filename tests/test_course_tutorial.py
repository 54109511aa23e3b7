"""rqvae_lib.course.tutorial: strip_notebook, as ``make tutorial`` applies it to the notebooks."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from rqvae_lib.config import REPO_ROOT, fast_mode
from rqvae_lib.course.tutorial import strip_notebook

REPO = Path(__file__).resolve().parent.parent


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


def test_every_header_states_its_reading_time_as_counted():
    """The reading time is a word count at a stated rate, so it is checked, not estimated."""
    from rqvae_lib.course.tutorial import READING_TIME, reading_time

    for path in sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        words, minutes = reading_time(nb)
        stated = READING_TIME.search(nb.cells[0].source)
        assert stated, f"{path.name}: the header has no '<N> min to read its <W> words of prose'"
        assert stated.group(0) == f"{minutes} min to read its {words:,} words", (
            f"{path.name} says '{stated.group(0)}'; run "
            "`python -m rqvae_lib.course.tutorial --reading-times` to refresh it"
        )


def test_the_readme_table_gives_each_notebook_its_header_reading_time():
    from rqvae_lib.course.tutorial import reading_time

    readme = (REPO / "README.md").read_text()
    for path in sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        row = next(line for line in readme.splitlines() if line.startswith(f"| [`{path.stem}`]"))
        _, minutes = reading_time(nbformat.read(path, as_version=4))
        assert f"| {minutes} min |" in row, f"README's row for {path.stem}: {row}"


def test_stamp_times_rewrites_the_reading_and_run_time_phrases():
    from rqvae_lib.course.tutorial import stamp_times

    nb = nbformat.v4.new_notebook()
    header = (
        "# Title\n\n*Time:* 9 min to read its 1 words of prose at 200 words a minute; "
        "the last full-mode run took 99 s (2020-01-01, 1 CPU cores, old), with a cache."
    )
    nb.cells = [nbformat.v4.new_markdown_cell(header), nbformat.v4.new_code_cell("x = 1")]
    assert stamp_times(nb, seconds=1234.4, when="2026-12-02")
    text = nb.cells[0].source
    words = len(text.split())  # the code cell's words do not count
    assert f"1 min to read its {words:,} words of prose" in text
    mode = "fast" if fast_mode() else "full"
    assert f"the last {mode}-mode run took 1,234 s (2026-12-02, " in text
    assert text.endswith("), with a cache.") and "old" not in text
    assert not stamp_times(nb)  # reading time already true: nothing changes without a run


def test_a_headless_run_prints_no_kernel_warning_and_keeps_its_timeout(tmp_path, capfd):
    """make tutorial's runner: the kernel's start-up warning about unencrypted TCP is gone, the
    outputs are written, and a cell past the time limit still stops the run."""
    import nbformat
    from nbclient.exceptions import CellTimeoutError
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

    from rqvae_lib.course.tutorial import run_notebook

    header = new_markdown_cell("# 99 · Test\n\n*Time:* 0 min to read its 0 words")
    path = tmp_path / "99_test.ipynb"
    nbformat.write(new_notebook(cells=[header, new_code_cell("print(6 * 7)")]), str(path))
    run_notebook(path, timeout=60)
    assert nbformat.read(str(path), 4).cells[1].outputs[0]["text"] == "42\n"
    captured = capfd.readouterr()
    assert "without encryption" not in captured.out + captured.err
    slow = new_notebook(cells=[header, new_code_cell("import time; time.sleep(30)")])
    nbformat.write(slow, str(path))
    with pytest.raises(CellTimeoutError):
        run_notebook(path, timeout=2)


@pytest.mark.parametrize(
    "path", sorted(REPO_ROOT.glob("notebooks/[0-9][0-9]_*.ipynb")), ids=lambda p: p.name
)
def test_committed_outputs_show_no_path_of_the_machine_that_ran_them(path) -> None:
    """Outputs print paths relative to the repository (display_path): an absolute path names
    the machine that ran the notebook, not the learner's."""
    root = str(REPO_ROOT.resolve())
    for number, cell in enumerate(json.loads(path.read_text())["cells"]):
        text = json.dumps(cell.get("outputs", []))
        assert root not in text and "PosixPath(" not in text, (path.name, number)
