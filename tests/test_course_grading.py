"""rqvae_lib.course.grading: synthetic submissions graded end to end, and check's grade log.

Three students answer two real exercises of notebook 06 (06-ndcg, 06-leave-one-out): alice gets
both right; bob gets one wrong, leaves the other as committed, and keeps a solution cell that
would make his wrong answer correct if it ran; carol's notebook raises before her second check.
A fourth submission, in a student folder, sleeps past a 2 s limit through the command line.
Each submission is one kernel; they import the library, so the graded tests are marked slow.
"""

from __future__ import annotations

import json

import nbformat
import pandas as pd
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from rqvae_lib.course import grading
from rqvae_lib.course.exercises import (
    CORRECT,
    EXERCISES,
    GRADE_LOG,
    NOT_DONE,
    WRONG,
    check,
    feedback,
)
from rqvae_lib.course.grading import NOT_RUN, find_submissions, grade, main, summary

SETUP = "from rqvae_lib.course.exercises import check"
NDCG_RIGHT = """\
import math


def ndcg_at_k(rank, k):
    return 1.0 / math.log2(rank + 1) if 0 < rank <= k else 0.0


check("06-ndcg", ndcg_at_k)"""
NDCG_WRONG = NDCG_RIGHT.replace("log2(rank + 1)", "log2(rank)")
SPLIT_RIGHT = """\
def split_sequence(items):
    return items[:-2], items[-2], items[-1]


check("06-leave-one-out", split_sequence)"""
SPLIT_PLACEHOLDER = """\
def split_sequence(items):
    ...  # your code


check("06-leave-one-out", split_sequence)"""


def exercise(source: str):
    return new_code_cell(source, metadata={"tags": ["exercise"]})


def solution(source: str):
    return new_code_cell(
        "# Solution\n" + source, metadata={"tags": ["solution"], "jupyter": {"source_hidden": True}}
    )


def write(path, *cells) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    nb = new_notebook(cells=[new_markdown_cell("# 06 · Evaluation"), *cells])
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(nb, str(path))


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """The three students' submissions graded: (table, progress lines)."""
    root = tmp_path_factory.mktemp("submissions")
    write(
        root / "alice.ipynb",
        new_code_cell(SETUP),
        exercise(NDCG_RIGHT),
        exercise(SPLIT_RIGHT),
    )
    write(
        root / "bob.ipynb",
        new_code_cell(SETUP),
        exercise(NDCG_WRONG),
        solution(NDCG_RIGHT),  # removed before the run: bob's own answer is graded
        exercise(SPLIT_PLACEHOLDER),
    )
    write(
        root / "carol.ipynb",
        new_code_cell(SETUP),
        exercise(NDCG_RIGHT),
        new_code_cell("items = [1, 2]\nitems[5]"),  # cell 4, counting the markdown header
        exercise(SPLIT_RIGHT),
    )
    lines: list[str] = []
    return grade(root, timeout=300, progress=lines.append), lines


@pytest.mark.slow
def test_table_has_each_students_outcome(graded):
    table, _ = graded
    assert list(table.columns) == ["student", "notebook", "exercise", "status", "message"]
    got = [tuple(row) for row in table[["student", "notebook", "exercise", "status"]].values]
    assert got == [
        ("alice", "alice.ipynb", "06-leave-one-out", CORRECT),
        ("alice", "alice.ipynb", "06-ndcg", CORRECT),
        ("bob", "bob.ipynb", "06-leave-one-out", NOT_DONE),
        ("bob", "bob.ipynb", "06-ndcg", WRONG),
        ("carol", "carol.ipynb", "06-leave-one-out", NOT_RUN),
        ("carol", "carol.ipynb", "06-ndcg", CORRECT),
    ]
    message = table.set_index(["student", "exercise"])["message"]
    assert message["alice", "06-ndcg"] == EXERCISES["06-ndcg"].explanation
    assert message["carol", "06-ndcg"] == EXERCISES["06-ndcg"].explanation
    namespace = {"check": lambda *args: None}
    exec(NDCG_WRONG, namespace)  # bob's answer, checked here: his notebook showed him this hint
    hint = feedback("06-ndcg", namespace["ndcg_at_k"]).message
    assert "log2(rank + 1)" in hint and message["bob", "06-ndcg"] == hint
    assert message["bob", "06-leave-one-out"].startswith("Your function returns None")
    assert message["carol", "06-leave-one-out"] == "IndexError: list index out of range (cell 4)"


@pytest.mark.slow
def test_progress_and_grid(graded):
    table, lines = graded
    assert [line.split(",")[0] for line in lines] == [
        "[1/3] alice.ipynb (alice): 2 of 2 correct",
        "[2/3] bob.ipynb (bob): 0 of 2 correct",
        "[3/3] carol.ipynb (carol): 1 of 2 correct",
    ]
    assert lines[2].endswith("; stopped: IndexError: list index out of range (cell 4)")
    text = summary(table)
    rows = [line.split() for line in text.splitlines()]
    assert rows[0] == ["06-leave-one-out", "06-ndcg", "correct"]
    assert ["alice", "ok", "ok", "2/2"] in rows
    assert ["bob", "todo", "wrong", "0/2"] in rows
    assert ["carol", "fail", "ok", "1/2"] in rows
    assert "fail = not run" in text


@pytest.mark.slow
def test_command_line_times_out_and_writes_the_csv(tmp_path, capsys):
    root = tmp_path / "submissions"
    write(
        root / "dave" / "06_evaluation.ipynb",
        new_code_cell("import time\n\ntime.sleep(60)"),
        new_code_cell(SETUP),
        exercise(NDCG_RIGHT),
    )
    checkpoint = root / "dave" / ".ipynb_checkpoints" / "06_evaluation-checkpoint.ipynb"
    checkpoint.parent.mkdir()
    checkpoint.write_text("not a notebook")  # skipped: it would be a failed submission
    out = tmp_path / "grades.csv"
    assert main([str(root), "--out", str(out), "--timeout", "2"]) == 0
    csv = pd.read_csv(out, keep_default_na=False)
    assert csv.to_dict("records") == [
        {
            "student": "dave",
            "notebook": "dave/06_evaluation.ipynb",
            "exercise": "06-ndcg",
            "status": NOT_RUN,
            "message": "timed out: the notebook ran past its 2 s limit (cell 2)",
        }
    ]
    assert not list(tmp_path.glob(".grades.csv.*"))  # no temporary file left beside it
    printed = capsys.readouterr().out
    assert "[1/1] dave/06_evaluation.ipynb (dave): 0 of 1 correct" in printed
    assert ["dave", "fail", "0/1"] in [line.split() for line in printed.splitlines()]
    assert f"wrote {out}" in printed


def test_students_are_file_stems_or_folder_names(tmp_path):
    for name in ("alice.ipynb", "bob/06_evaluation.ipynb", "bob/extra/07_x.ipynb"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("{}")
    (tmp_path / ".ipynb_checkpoints").mkdir()
    (tmp_path / ".ipynb_checkpoints" / "alice-checkpoint.ipynb").write_text("{}")
    (tmp_path / "notes.txt").write_text("")
    found = [
        (student, path.relative_to(tmp_path).as_posix())
        for student, path in find_submissions(tmp_path)
    ]
    assert found == [
        ("alice", "alice.ipynb"),
        ("bob", "bob/06_evaluation.ipynb"),
        ("bob", "bob/extra/07_x.ipynb"),
    ]


def test_an_unreadable_notebook_is_not_run(tmp_path):
    (tmp_path / "eve.ipynb").write_text("not json")
    table = grading._table([("eve", "eve.ipynb", grading.grade_notebook(tmp_path / "eve.ipynb"))])
    assert table.empty  # no exercise known from it alone
    ok = grading.NotebookGrade({"06-ndcg": (CORRECT, "")})
    table = grading._table(
        [
            ("eve", "eve.ipynb", grading.grade_notebook(tmp_path / "eve.ipynb")),
            ("al", "al.ipynb", ok),
        ]
    )
    eve = table.set_index("student").loc["eve"]
    assert eve["status"] == NOT_RUN and eve["message"].startswith("could not read the notebook")


def test_check_appends_one_json_line_per_call(tmp_path, monkeypatch, capsys):
    log = tmp_path / "checks.jsonl"
    monkeypatch.setenv(GRADE_LOG, str(log))
    check("06-ndcg", ...)
    check("06-ndcg", lambda rank, k: 0.0)
    printed = capsys.readouterr().out.splitlines()
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(e["exercise"], e["status"]) for e in entries] == [
        ("06-ndcg", NOT_DONE),
        ("06-ndcg", WRONG),
    ]
    assert [f"[06-ndcg] {e['status'].capitalize()}. {e['message']}" for e in entries] == printed


@pytest.mark.parametrize("where", ["a folder", "a missing folder"])
def test_check_prints_as_before_when_the_log_cannot_be_written(
    tmp_path, monkeypatch, capsys, where
):
    path = tmp_path if where == "a folder" else tmp_path / "missing" / "checks.jsonl"
    monkeypatch.setenv(GRADE_LOG, str(path))
    check("06-ndcg", ...)
    assert capsys.readouterr().out.startswith("[06-ndcg] Not done yet.")
    monkeypatch.delenv(GRADE_LOG)
    check("06-ndcg", ...)
    assert not (tmp_path / "missing").exists()
