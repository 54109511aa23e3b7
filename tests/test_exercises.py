"""rqvae_lib.course.exercises: every exercise against the answer key; the notebooks' solution cells
follow the conventions and pass their checks.

Generic over ``EXERCISES``: an exercise added later is covered as soon as it is registered with a
solution and a wrong answer in the answer key (``exercise_answers.py``). Then: an answer that is,
or calls, the library's own function fails (``library=``), no check takes a letter for an answer,
and the notebooks follow the cell conventions of ``site/CONVENTIONS.md``, their setup cells
importing no function that an exercise of theirs asks to write.
"""

from __future__ import annotations

import ast
import functools
import importlib
import json
import re

import pytest
import torch
from exercise_answers import LIBRARY_HINT, SOLUTIONS, WRONG_ANSWERS, my_item_text

import rqvae_lib.data
from rqvae_lib.config import REPO_ROOT
from rqvae_lib.course.exercises import (
    CORRECT,
    EXERCISES,
    NOT_DONE,
    WRONG,
    check,
    feedback,
    library_use,
)
from rqvae_lib.data.amazon import item_text

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


# -- an answer that is the library's own function ---------------------------------------------

WITH_LIBRARY = [ex_id for ex_id in IDS if EXERCISES[ex_id].library]


def _library_object(path):
    module, _, qualname = path.partition(":")
    obj = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def test_the_function_exercises_declare_their_library_functions():
    for ex_id in ("01-item-text", "02-nearest-code", "02-residual-loop", "04-perplexity"):
        assert EXERCISES[ex_id].library, ex_id
    for ex_id in ("05-collision-suffix", "06-ndcg", "06-leave-one-out"):
        assert EXERCISES[ex_id].library, ex_id
    for ex_id in WITH_LIBRARY:
        for path in EXERCISES[ex_id].library:
            assert re.fullmatch(r"rqvae_lib[\w.]*:[\w.]+", path), f"{ex_id}: {path}"
            assert callable(_library_object(path)), f"{ex_id}: {path} is not a function"


@pytest.mark.parametrize("ex_id", WITH_LIBRARY)
def test_the_library_function_itself_is_wrong_with_its_hint(ex_id):
    for path in EXERCISES[ex_id].library:
        result = feedback(ex_id, _library_object(path))
        assert result.status == WRONG, (path, result)
        assert LIBRARY_HINT in result.message and path.replace(":", ".") in result.message
        assert "write it yourself" in result.message


@pytest.mark.parametrize("ex_id", WITH_LIBRARY)
def test_the_committed_solution_does_not_count_as_the_library(ex_id):
    assert library_use(SOLUTIONS[ex_id], EXERCISES[ex_id].library) is None
    assert feedback(ex_id, SOLUTIONS[ex_id]).status == CORRECT


def _calls_it_by_its_global(row):
    return item_text(row)


def _calls_it_through_its_module(row):
    return rqvae_lib.data.item_text(row)


def _imports_it_inside(row):
    from rqvae_lib.data import item_text as text

    return text(row)


def _calls_it_in_an_inner_function(row):
    def inner(r):
        return [item_text(x) for x in [r]][0]

    return inner(row)


def _closure_over(fn):
    return lambda row: fn(row)


def _helper_of_mine(row):
    return item_text(row)


def _calls_a_helper_of_mine(row):
    return _helper_of_mine(row).strip()


@pytest.mark.parametrize(
    "answer",
    [
        _calls_it_by_its_global,
        _calls_it_through_its_module,
        _imports_it_inside,
        _calls_it_in_an_inner_function,
        _closure_over(item_text),
        lambda row: item_text(row),
        functools.partial(item_text),
        _calls_a_helper_of_mine,
    ],
    ids=["global", "module-attribute", "import-inside", "nested", "closure", "lambda",
         "partial", "own-helper"],
)  # fmt: skip
def test_a_function_that_calls_the_library_is_wrong(answer):
    result = feedback("01-item-text", answer)
    assert result.status == WRONG, result
    assert LIBRARY_HINT in result.message and "rqvae_lib.data.amazon.item_text" in result.message


def _own_text_with_a_local_of_that_name(row):
    """Like rqvae_lib.data.item_text, written by hand; a local variable named item_text."""
    item_text = my_item_text(row)  # noqa: F811  (a local, not the library's function)
    return item_text


def test_no_false_positive_for_names_that_are_not_the_library():
    assert feedback("01-item-text", _own_text_with_a_local_of_that_name).status == CORRECT
    assert feedback("01-item-text", my_item_text).status == CORRECT
    for odd in (len, torch.argmin, str.upper, object(), type):  # not Python functions
        assert library_use(odd, EXERCISES["01-item-text"].library) is None


# -- no check takes a guess between a few options ------------------------------------------------


@pytest.mark.parametrize("ex_id", [i for i in IDS if not callable(SOLUTIONS[i])])
def test_no_value_exercise_takes_a_letter_or_a_yes_no(ex_id):
    for guess in ("A", "B", "C", "yes", "no", True, False):
        assert feedback(ex_id, guess).status != CORRECT, (ex_id, guess)


def test_higher_perplexity_needs_both_numbers_not_a_letter():
    ex_id = "04-higher-perplexity"
    assert feedback(ex_id, (4.0, 1.2970)).status == CORRECT
    assert feedback(ex_id, [4, 1.30]).status == CORRECT  # two decimals are enough
    assert feedback(ex_id, torch.tensor([4.0, 1.297])).status == CORRECT
    for guess in ("A", "a", " 'A' ", '"A"', "B"):  # the former answer, alone, is not accepted
        result = feedback(ex_id, guess)
        assert result.status == WRONG and "could be a guess" in result.message, result
    for almost in ((4.0, 1.0), (4.0, 256), (1.297, 4.0), (4.0, 1.4), (3.0, 1.297), ("A", 4.0)):
        assert feedback(ex_id, almost).status == WRONG, almost
    assert "(perplexity of A, perplexity of B)" in EXERCISES[ex_id].question


def test_two_code_perplexity_needs_the_computation_not_a_bound():
    """Exercise 02-two-code-perplexity: exp(H) of the shares (3/4, 1/4), about 1.755. Neither
    bound that the definition gives away (1: one code takes every item; 2: two codes used
    equally) passes, nor anything more than 0.005 off."""
    ex_id = "02-two-code-perplexity"
    for right in (1.7548, 1.75, 1.755, torch.tensor(1.7548), 2**0.8113):
        assert feedback(ex_id, right).status == CORRECT, right
    for wrong in (1, 2, 1.0, 2.0, 1.74, 1.76, 1.8, 1.7, 256, 0.5623, torch.ones(2)):
        assert feedback(ex_id, wrong).status == WRONG, wrong
    assert "256" in EXERCISES[ex_id].question and "Three quarters" in EXERCISES[ex_id].question


def test_notebook_02_asks_for_the_two_code_perplexity():
    path = next(p for p in NOTEBOOKS if p.name.startswith("02_"))
    checked = _checked_ids(_cells(path))
    assert "02-two-code-perplexity" in checked


def _cells(path):
    return json.loads(path.read_text(encoding="utf-8"))["cells"]


def _checked_ids(cells):
    return {
        ex_id
        for cell in cells
        if cell["cell_type"] == "code"
        for ex_id in re.findall(r"""check\(\s*["']([^"']+)["']""", "".join(cell["source"]))
    }


#: Declared library functions that compute more than an exercise's answer (a table of texts, a
#: bundle of statistics): a setup cell may import them for the lesson; an answer that calls one
#: still fails its check.
BROADER_THAN_THE_EXERCISE = {
    "rqvae_lib.data.amazon:build_item_texts",
    "rqvae_lib.evaluate:codebook_stats",
}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_setup_cell_imports_no_function_an_exercise_asks_to_write(path):
    """The first code cell imports none of the library functions of the notebook's exercises:
    the student would find the answer ready to call. Later cells may import it after the
    exercise, or use it through its module (``semantic_ids.add_collision_suffix``)."""
    cells = _cells(path)
    setup = next(c for c in cells if c["cell_type"] == "code")
    forbidden = {}
    for ex_id in _checked_ids(cells) & set(EXERCISES):
        for lib_path in set(EXERCISES[ex_id].library) - BROADER_THAN_THE_EXERCISE:
            forbidden[id(_library_object(lib_path))] = (ex_id, lib_path)
    source = "\n".join(
        line for line in "".join(setup["source"]).splitlines() if not line.startswith(("%", "!"))
    )
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("rqvae_lib"):
            module = importlib.import_module(node.module)
            for alias in node.names:
                obj = getattr(module, alias.name, None)
                assert id(obj) not in forbidden, (
                    f"{path.name}: the setup cell imports {node.module}.{alias.name}, the "
                    f"library's own answer to exercise {forbidden[id(obj)][0]}; import it after "
                    "the exercise's solution cell, or use it through its module"
                )


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


def _is_solution(cell):
    return "solution" in cell.get("metadata", {}).get("tags", [])


def _calls_check(cell):
    return bool(re.search(r"\bcheck\(", "".join(cell["source"])))


SOLUTION_CELLS = [
    pytest.param(path, index, id=f"{path.stem[:2]}-cell{index}")
    for path in NOTEBOOKS
    for index, cell in enumerate(_cells(path))
    if _is_solution(cell) and _calls_check(cell)
]
#: The model answers of open exercises: solution cells with no check to call.
OPEN_SOLUTION_CELLS = [
    pytest.param(path, index, id=f"{path.stem[:2]}-cell{index}")
    for path in NOTEBOOKS
    for index, cell in enumerate(_cells(path))
    if _is_solution(cell) and not _calls_check(cell)
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


@pytest.mark.parametrize(("path", "index"), OPEN_SOLUTION_CELLS)
def test_an_open_exercise_solution_follows_its_question_and_code_cell(path, index):
    """A solution cell without a check is the model answer of an open exercise: it follows the
    exercise's code cell, which follows the question ``**Exercise N (open).**``."""
    cells = _cells(path)
    code, question = cells[index - 1], cells[index - 2]
    assert code["cell_type"] == "code" and not _is_solution(code), f"{path.name}, cell {index}"
    assert question["cell_type"] == "markdown", f"{path.name}, cell {index}"
    assert re.match(r"\*\*Exercise \d+ \(open\)\.\*\*", "".join(question["source"])), (
        f"{path.name}, cell {index}: a solution cell without a check must answer an open exercise"
    )


def test_every_open_exercise_has_a_solution_cell():
    for path in NOTEBOOKS:
        cells = _cells(path)
        for index, cell in enumerate(cells):
            text = "".join(cell["source"])
            if cell["cell_type"] == "markdown" and re.match(r"\*\*Exercise \d+ \(open\)", text):
                after = cells[index + 2] if index + 2 < len(cells) else {}
                assert after and _is_solution(after), (
                    f"{path.name}, cell {index}: the open exercise has no solution cell after its "
                    "code cell"
                )


def test_the_most_popular_model_answer_holds_on_a_toy_split(capsys):
    """Notebook 06's open exercise: its solution computes the share of held-out items among the
    10 most popular training items and asserts that it is most-popular's Recall@10. Run it on
    the toy task of the retrieval tests, with ``data`` and ``popular`` as the notebook has them."""
    from retrieval_helpers import shared_task, task_data

    from rqvae_lib.retrieval.experiment import run_most_popular

    path = next(p for p in NOTEBOOKS if p.name.startswith("06_"))
    cells = _cells(path)
    index = next(
        i
        for i, c in enumerate(cells)
        if _is_solution(c) and "item_popularity" in "".join(c["source"])
    )
    data = task_data(shared_task(0))
    popular = run_most_popular(data, (10,))
    scope = {"data": data, "popular": popular}
    exec(compile("".join(cells[index]["source"]), f"{path.name}, cell {index}", "exec"), scope)
    assert scope["popular_share"] == pytest.approx(popular["test"]["recall@10"][0], abs=1e-12)
    assert 0 < scope["popular_share"] < 1
    assert "Recall@10" in capsys.readouterr().out
