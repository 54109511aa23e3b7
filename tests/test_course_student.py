"""rqvae_lib.course.student: the student edition (``make student``) of the committed notebooks.

Built from the real notebooks (nothing executed): no solution survives, every answer cell does,
unchanged, with no output but *not done yet*, and ``notebooks/`` is left byte for byte as it was.
Then every answer cell of the edition runs on its own and reports *not done yet*: in a kernel
for one notebook, and with ``exec`` for every notebook.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import math
import re
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch

from rqvae_lib.config import REPO_ROOT
from rqvae_lib.course.exercises import check
from rqvae_lib.course.student import (
    EXERCISE_TAG,
    SOLUTION_TAG,
    cell_tags,
    is_solution,
    main,
    student_edition,
    student_notebook,
)

NOTEBOOK_DIR = REPO_ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))
#: The notebook whose answer cells run in a real kernel: every answer cell of the course needs
#: only ``check`` (the exec test below shows it), and 06's first one imports it itself.
KERNEL_NOTEBOOK = "06_"
#: Answer cells that cannot run without the notebook's earlier cells, "NN_name.ipynb, cell i":
#: reason. Empty today: every answer cell needs only ``check``. Keep it short and named.
NEEDS_NOTEBOOK_STATE: dict[str, str] = {}
NOT_DONE = "Not done yet"


def _digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def _output_text(cell) -> str:
    parts = []
    for output in cell.get("outputs", []):
        parts.append(output.get("text", "") if output.output_type == "stream" else "")
        parts.append(str(output.get("data", {}).get("text/plain", "")))
        parts.append(" ".join(output.get("traceback", [])))
    return "".join(parts)


@pytest.fixture(scope="module")
def edition(tmp_path_factory: pytest.TempPathFactory):
    """The edition of the committed notebooks in a temp folder, and the bytes of notebooks/
    before and after building it."""
    before = _digests(NOTEBOOK_DIR)
    out = tmp_path_factory.mktemp("student")
    lines: list[str] = []
    written = student_edition(NOTEBOOK_DIR, out, report=lines.append)
    return {"out": out, "written": written, "lines": lines, "before": before}


def test_the_edition_has_every_notebook_and_leaves_the_course_as_it_was(edition):
    assert NOTEBOOKS, "no notebooks found"
    assert [p.name for p in edition["written"]] == [p.name for p in NOTEBOOKS]
    assert all(p.parent == edition["out"] / "notebooks" for p in edition["written"])
    assert len(edition["lines"]) == len(NOTEBOOKS)  # one line per notebook
    assert all("solution cell(s) removed" in line for line in edition["lines"])
    assert _digests(NOTEBOOK_DIR) == edition["before"], "building the edition changed notebooks/"
    leftovers = [p.name for p in (edition["out"] / "notebooks").iterdir() if p.suffix != ".ipynb"]
    assert not leftovers, f"temporary files left behind: {leftovers}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name[:2])
def test_no_solution_survives_and_every_answer_cell_does(edition, path):
    original = nbformat.read(path, as_version=4)
    student = nbformat.read(edition["out"] / "notebooks" / path.name, as_version=4)
    nbformat.validate(student)
    solutions = [c for c in original.cells if is_solution(c)]
    assert solutions, f"{path.name}: no solution cell to remove (is the test reading the course?)"
    assert len(student.cells) == len(original.cells) - len(solutions)
    for cell in student.cells:
        assert SOLUTION_TAG not in cell_tags(cell), f"{path.name}: a solution cell survived"
        assert not cell.source.lstrip().startswith("# Solution"), (path.name, cell.source[:80])
    want = [c.source for c in original.cells if EXERCISE_TAG in cell_tags(c)]
    got = [c.source for c in student.cells if EXERCISE_TAG in cell_tags(c)]
    assert want and got == want, f"{path.name}: the answer cells changed"
    for cell in student.cells:
        if EXERCISE_TAG in cell_tags(cell):
            text = _output_text(cell)
            assert "Correct" not in text, f"{path.name}: an answer cell's output shows a verdict"
            assert not text or NOT_DONE in text, (path.name, text)
    # every other cell is the course's own, outputs included (figures, tables)
    others = [c for c in original.cells if not is_solution(c)]
    for kept, cell in zip(student.cells, others, strict=True):
        assert kept.source == cell.source
        if EXERCISE_TAG not in cell_tags(cell) and cell.cell_type == "code":
            assert kept.outputs == cell.outputs and kept.execution_count == cell.execution_count


def test_only_not_done_outputs_survive_in_answer_cells():
    """A synthetic notebook: an answer cell run with the right answer (its output says
    *correct*) is cleared, one that says *not done yet* keeps it, an untagged ``# Solution``
    cell goes too, and the notebook passed in is not changed."""
    nb = nbformat.v4.new_notebook()
    ex = {"tags": [EXERCISE_TAG]}
    stream = nbformat.v4.new_output
    done = nbformat.v4.new_code_cell('check("03-x", 1100)', metadata=ex, execution_count=4)
    done.outputs = [stream("stream", name="stdout", text="[03-x] Correct. 11 x 100 = 1,100.\n")]
    wrong = nbformat.v4.new_code_cell('check("03-x", 7)', metadata=ex, execution_count=5)
    wrong.outputs = [stream("stream", name="stdout", text="[03-x] Not right yet. ...\n")]
    todo = nbformat.v4.new_code_cell('check("03-x", ...)', metadata=ex, execution_count=6)
    not_done = "[03-x] Not done yet. Replace the `...` with your answer, then run the cell again.\n"
    todo.outputs = [stream("stream", name="stdout", text=not_done)]
    mixed = nbformat.v4.new_code_cell("print(1100)\ncheck('03-x', ...)", metadata=ex)
    mixed.outputs = [stream("stream", name="stdout", text="1100\n" + not_done)]
    tagged = nbformat.v4.new_code_cell("answer = 1100", metadata={"tags": [SOLUTION_TAG]})
    untagged = nbformat.v4.new_code_cell("# Solution\nanswer = 1100")
    figure = nbformat.v4.new_code_cell("plot()", execution_count=9)
    figure.outputs = [stream("display_data", data={"image/png": "iVBOR"})]
    nb.cells = [done, tagged, wrong, untagged, todo, mixed, figure]
    before = nbformat.writes(nb)
    student, removed, cleared = student_notebook(nb)
    assert nbformat.writes(nb) == before
    assert (removed, cleared) == (2, 3)
    assert [c.source for c in student.cells] == [
        c.source for c in (done, wrong, todo, mixed, figure)
    ]
    assert [c.outputs for c in student.cells[:2]] == [[], []]
    assert [c.execution_count for c in student.cells[:2]] == [None, None]
    assert student.cells[2].outputs == todo.outputs and student.cells[2].execution_count == 6
    assert student.cells[3].outputs == []  # "1100" beside the not-done line goes too
    assert student.cells[4].outputs == figure.outputs and student.cells[4].execution_count == 9


def test_it_refuses_to_write_into_the_course_notebooks(tmp_path):
    before = _digests(NOTEBOOK_DIR)
    for out in (REPO_ROOT, NOTEBOOK_DIR, NOTEBOOK_DIR / "sub"):
        with pytest.raises(ValueError, match="course's own notebooks"):
            student_edition(NOTEBOOK_DIR, out, report=None)
    assert _digests(NOTEBOOK_DIR) == before
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no notebooks"):
        student_edition(tmp_path / "empty", tmp_path / "out", report=None)


def test_the_command_line(tmp_path, capsys):
    course = tmp_path / "course" / "notebooks"
    course.mkdir(parents=True)
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("**Exercise 1.** ..."),
        nbformat.v4.new_code_cell('check("01-x", ...)', metadata={"tags": [EXERCISE_TAG]}),
        nbformat.v4.new_code_cell("# Solution\n...", metadata={"tags": [SOLUTION_TAG]}),
    ]
    nbformat.write(nb, str(course / "01_first.ipynb"))
    nbformat.write(nb, str(course / "scratch.ipynb"))  # not a numbered notebook: left out
    out = tmp_path / "handout"
    assert main(["--notebooks", str(course), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "01_first.ipynb: 1 solution cell(s) removed (3 -> 2 cells)" in printed
    assert [p.name for p in (out / "notebooks").iterdir()] == ["01_first.ipynb"]
    assert main(["--notebooks", str(course), "--out", str(course.parent)]) == 2
    assert "course's own notebooks" in capsys.readouterr().err


# -- every answer cell of the edition runs on its own and reports "not done yet" --------------


def _answer_cells(path: Path) -> list[tuple[int, str]]:
    nb = nbformat.read(path, as_version=4)
    return [(i, c.source) for i, c in enumerate(nb.cells) if EXERCISE_TAG in cell_tags(c)]


def test_every_answer_cell_reports_not_done_on_its_own(edition):
    """Without a kernel: each answer cell of every notebook, exec'd in a fresh namespace that
    holds only ``check`` (and torch, math, np), prints *not done yet* once per check it calls.
    A cell that needs the notebook's earlier cells must be named in ``NEEDS_NOTEBOOK_STATE``."""
    skipped: dict[str, str] = {}
    ran = 0
    for path in edition["written"]:
        for index, source in _answer_cells(path):
            where = f"{path.name}, cell {index}"
            scope = {"check": check, "torch": torch, "math": math, "np": np}
            printed = io.StringIO()
            try:
                with contextlib.redirect_stdout(printed):
                    exec(compile(source, where, "exec"), scope)
            except NameError as error:
                skipped[where] = f"needs the notebook's state: {error}"
                continue
            checks = len(re.findall(r"\bcheck\(", source))
            assert checks, f"{where}: an answer cell ends with check(...)"
            assert printed.getvalue().count(NOT_DONE) == checks, (where, printed.getvalue())
            assert "Correct" not in printed.getvalue(), where
            ran += 1
    assert ran >= len(NOTEBOOKS), "too few answer cells ran"
    unexpected = {k: v for k, v in skipped.items() if k not in NEEDS_NOTEBOOK_STATE}
    assert not unexpected, f"answer cells that need more than check (name them): {unexpected}"
    assert len(NEEDS_NOTEBOOK_STATE) <= 2, "keep answer cells runnable on their own"


@pytest.mark.slow
def test_one_notebooks_answer_cells_report_not_done_in_a_kernel(edition):
    """A real kernel, as a student runs it, for one notebook (the cheapest): its answer cells
    alone, after the setup line every notebook's answer cells rely on."""
    from nbclient import NotebookClient

    path = next(p for p in edition["written"] if p.name.startswith(KERNEL_NOTEBOOK))
    cells = _answer_cells(path)
    assert cells, f"{path.name} has no answer cell"
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("from rqvae_lib.course.exercises import check")]
    nb.cells += [nbformat.v4.new_code_cell(source) for _, source in cells]
    NotebookClient(nb, timeout=120, kernel_name="python3", resources={
        "metadata": {"path": str(path.parent)}}).execute()  # fmt: skip
    for (index, _), cell in zip(cells, nb.cells[1:], strict=True):
        text = _output_text(cell)
        assert NOT_DONE in text and "Correct" not in text, (f"{path.name}, cell {index}", text)
