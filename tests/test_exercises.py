"""rqvae_lib.course.exercises: every exercise against the answer key; the notebooks' solution cells
follow the conventions and pass their checks.

Generic over ``EXERCISES``: an exercise added later is covered as soon as it is registered with a
solution and a wrong answer in the answer key (``exercise_answers.py``). The last test holds the
notebooks to the cell conventions of ``site/CONVENTIONS.md``.
"""

from __future__ import annotations

import json
import re

import pytest
from exercise_answers import SOLUTIONS, WRONG_ANSWERS

from rqvae_lib.config import REPO_ROOT
from rqvae_lib.course.exercises import CORRECT, EXERCISES, NOT_DONE, WRONG, check, feedback

IDS = sorted(EXERCISES)
WRONG_CASES = [
    pytest.param(ex_id, answer, hint, id=f"{ex_id}-{i}")
    for ex_id in IDS
    for i, (answer, hint) in enumerate(WRONG_ANSWERS.get(ex_id, []))
]
NOTEBOOKS = sorted((REPO_ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def test_registry_is_complete():
    assert IDS, "no exercise registered"
    for ex_id in IDS:
        assert re.fullmatch(r"\d\d-[a-z0-9-]+", ex_id), f"{ex_id}: ids look like 02-short-name"
        assert ex_id in SOLUTIONS, f"{ex_id}: no reference solution in exercise_answers.py"
        assert WRONG_ANSWERS.get(ex_id), f"{ex_id}: list at least one wrong answer"
        assert EXERCISES[ex_id].question, f"{ex_id}: no question"
    assert set(SOLUTIONS) <= set(IDS), "solutions for exercises that are not registered"


@pytest.mark.parametrize("ex_id", IDS)
def test_reference_solution_passes(ex_id, capsys):
    result = feedback(ex_id, SOLUTIONS[ex_id])
    assert result.status == CORRECT, result
    check(ex_id, SOLUTIONS[ex_id])
    assert capsys.readouterr().out.startswith(f"[{ex_id}] Correct.")


@pytest.mark.parametrize(("ex_id", "answer", "hint"), WRONG_CASES)
def test_wrong_answer_fails_with_its_hint(ex_id, answer, hint):
    result = feedback(ex_id, answer)
    assert result.status == WRONG, result
    assert hint in result.message, result


@pytest.mark.parametrize("ex_id", IDS)
def test_placeholder_is_not_done_and_does_not_raise(ex_id, capsys):
    for placeholder in (EXERCISES[ex_id].placeholder, ..., None):
        result = feedback(ex_id, placeholder)
        assert result.status == NOT_DONE, result
        check(ex_id, placeholder)  # prints, never raises
        assert "Not done yet" in capsys.readouterr().out


@pytest.mark.parametrize("ex_id", IDS)
def test_an_error_in_the_answer_is_a_hint_not_an_exception(ex_id):
    def broken(*args):
        raise ZeroDivisionError("division by zero")

    result = feedback(ex_id, broken)
    assert result.status == WRONG, result


def test_unknown_exercise_is_an_error():
    with pytest.raises(KeyError, match="registered: "):
        check("99-no-such-exercise", 1)


def _cells(path):
    return json.loads(path.read_text(encoding="utf-8"))["cells"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_solution_cells_follow_the_convention(path):
    """A ``solution`` cell is a code cell with its source collapsed whose first line gives
    nothing away, and every exercise the notebook checks is registered."""
    for index, cell in enumerate(_cells(path)):
        meta = cell.get("metadata", {})
        tags = meta.get("tags", [])
        source = "".join(cell["source"])
        where = f"{path.name}, cell {index}"
        if "solution" in tags:
            assert cell["cell_type"] == "code", f"{where}: tag solution on a {cell['cell_type']}"
            assert meta.get("jupyter", {}).get("source_hidden") is True, (
                f'{where}: a solution cell needs "jupyter": {{"source_hidden": true}}'
            )
            assert source.startswith("# Solution"), (
                f"{where}: start a solution cell with the line '# Solution' (JupyterLab shows "
                "the first line of a collapsed cell)"
            )
            assert not cell.get("outputs") and "NBVAL_CHECK_OUTPUT" not in source, (
                f"{where}: a solution cell is committed without outputs (they give the answer "
                "away) and so without # NBVAL_CHECK_OUTPUT; run make tutorial, which strips them"
            )
        if cell["cell_type"] == "code":
            for ex_id in re.findall(r"""check\(\s*["']([^"']+)["']""", source):
                assert ex_id in EXERCISES, f"{where}: check({ex_id!r}) is not registered"


SOLUTION_CELLS = [
    pytest.param(path, index, id=f"{path.stem[:2]}-cell{index}")
    for path in NOTEBOOKS
    for index, cell in enumerate(_cells(path))
    if "solution" in cell.get("metadata", {}).get("tags", [])
]


@pytest.mark.parametrize(("path", "index"), SOLUTION_CELLS)
def test_each_notebook_solution_cell_passes_its_check(path, index):
    """The solution cells are committed without output, so nbval does not see their verdict:
    run each one here, with the helpers it may use from earlier cells (the answer key's) and a
    ``check`` that records the feedback, and require *correct* for every check it calls."""
    import math

    import exercise_answers
    import torch

    source = "".join(_cells(path)[index]["source"])
    results = []
    scope = {**vars(exercise_answers), "math": math, "torch": torch}
    scope["check"] = lambda ex_id, answer: results.append(feedback(ex_id, answer))
    exec(compile(source, f"{path.name}, cell {index}", "exec"), scope)
    assert results, f"{path.name}, cell {index}: the solution calls no check"
    assert all(r.status == CORRECT for r in results), results
