"""Grade a folder of submitted notebooks in one command: a table of exercise by student.

Usage::

    python -m rqvae_lib.course.grading SUBMISSIONS [--out grades.csv] [--timeout 600]

It runs every ``*.ipynb`` under ``SUBMISSIONS`` headless, one fresh kernel each, prints one line
per notebook as it goes, writes one CSV row per (student, exercise) to ``--out`` (default
``grades.csv``) and prints a grid of student by exercise with each student's count of correct
answers. From Python: ``table = grade("submissions/")`` (a :class:`pandas.DataFrame`).

Who is the student: a notebook directly in ``SUBMISSIONS`` belongs to the student named by its
file's stem (``SUBMISSIONS/alice.ipynb``: ``alice``); a notebook in a sub-folder belongs to the
student named by the first sub-folder (``SUBMISSIONS/alice/06_evaluation.ipynb``, or deeper:
``alice``), so a student may hand in several notebooks. Hidden folders and
``.ipynb_checkpoints`` are skipped.

How a notebook is run: solution cells are removed first, by the student edition's rule
(:func:`rqvae_lib.course.student.is_solution`: tagged ``solution``, or a code cell starting
``# Solution``; the student edition has none, and a submission that still holds the teacher's
solutions is graded on the student's own cells), then the rest runs top to bottom with ``nbclient`` (kernel ``python3``, working directory
the notebook's folder, ``allow_errors=False``). ``--timeout`` is the limit in seconds for all
of one notebook's cells together (the kernel's start-up is not counted). Each
``check("NN-name", answer)`` reports to a temporary file named by ``$RQVAE_GRADE_LOG``
(:data:`rqvae_lib.course.exercises.GRADE_LOG`), passed through the kernel's environment.

The table's columns are ``student, notebook, exercise, status, message``. ``status`` is
*correct*, *not right yet* (``message``: the hint the student was given), *not done yet*, or
*not run*: the notebook failed, or ran past the time limit, before that exercise's check
(``message``: the error's last line and the cell, counting all cells from 1). Checks that ran
before a failure keep their status. The exercises are those whose ``check`` any submission calls
(read from the cells' code, and from the checks that ran); a student whose notebooks never call
one gets *not done yet* for it. When an exercise is checked more than once (twice in a notebook,
or in two notebooks of one student), the best outcome counts: correct, then not right yet, then
not done yet, then not run.

Grading trusts the notebooks: a submission runs with the teacher's permissions, and a student who
wants to can write to the log. Run it on a machine (or account) meant for running others' code.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from rqvae_lib.course.exercises import CORRECT, EXERCISES, GRADE_LOG, NOT_DONE, WRONG
from rqvae_lib.course.student import is_solution
from rqvae_lib.course.tutorial import QUIET_KERNEL
from rqvae_lib.io import atomic_write

#: The status of an exercise whose check never ran because the notebook failed or timed out.
NOT_RUN = "not run"
#: Outcomes from worst to best: when an exercise is checked twice, the better one counts.
RANK = {NOT_RUN: 0, NOT_DONE: 1, WRONG: 2, CORRECT: 3}
#: The grid's short form of each status.
SHORT = {CORRECT: "ok", WRONG: "wrong", NOT_DONE: "todo", NOT_RUN: "fail"}
COLUMNS = ["student", "notebook", "exercise", "status", "message"]
#: A check call in a cell's code: ``check("06-ndcg", ...)``.
_CHECK_CALL = re.compile(r"""\bcheck\(\s*(["'])([^"'\n]+)\1""")


@dataclass
class NotebookGrade:
    """One notebook's outcome: ``results`` maps each exercise to (status, message); ``error`` is
    why the run stopped early (None when it ran to the end); ``readable`` is False when the file
    is not a notebook at all."""

    results: dict[str, tuple[str, str]] = field(default_factory=dict)
    error: str | None = None
    readable: bool = True
    seconds: float = 0.0


def find_submissions(submissions: str | os.PathLike) -> list[tuple[str, Path]]:
    """(student, path) of every notebook under ``submissions``, sorted; see the module's rule."""
    root = Path(submissions)
    found = []
    for path in sorted(root.rglob("*.ipynb")):
        parts = path.relative_to(root).parts
        if any(p.startswith(".") for p in parts):  # .ipynb_checkpoints, hidden folders
            continue
        found.append((path.stem if len(parts) == 1 else parts[0], path))
    return found


def _checks_in(cells: list) -> list[str]:
    """The registered exercise ids that the code cells call ``check`` on, in order."""
    ids = []
    for cell in cells:
        if cell.cell_type == "code":
            for _, ex_id in _CHECK_CALL.findall(cell.source):
                if ex_id in EXERCISES and ex_id not in ids:
                    ids.append(ex_id)
    return ids


def _better(new: tuple[str, str], old: tuple[str, str] | None) -> bool:
    """Whether outcome ``new`` replaces ``old``: better, or as good and later."""
    return old is None or RANK[new[0]] >= RANK[old[0]]


def _read_log(path: Path) -> dict[str, tuple[str, str]]:
    """The best (status, message) of each exercise in a grade log; a broken line is skipped."""
    results: dict[str, tuple[str, str]] = {}
    if not path.exists():
        return results
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            entry = json.loads(line)
            ex_id, outcome = entry["exercise"], (entry["status"], str(entry["message"]))
        except (ValueError, KeyError, TypeError):
            continue
        if isinstance(ex_id, str) and outcome[0] in RANK and _better(outcome, results.get(ex_id)):
            results[ex_id] = outcome
    return results


def _error_line(error: Exception, cell_number: int | None, timeout: int) -> str:
    """The last line of a run's error, and the cell it stopped in."""
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    if isinstance(error, CellTimeoutError):
        text = f"timed out: the notebook ran past its {timeout} s limit"
    elif isinstance(error, CellExecutionError):
        text = " ".join(f"{error.ename}: {error.evalue}".split())
    elif isinstance(error, DeadKernelError):
        text = "the kernel died (out of memory, or the code ended the process)"
    else:
        lines = [line for line in str(error).splitlines() if line.strip()]
        text = f"{type(error).__name__}: {lines[-1] if lines else ''}".rstrip(": ")
    return f"{text} (cell {cell_number})" if cell_number else text


def grade_notebook(
    path: str | os.PathLike, timeout: int = 600, kernel_name: str = "python3"
) -> NotebookGrade:
    """Run one submission without its solution cells and collect its checks' outcomes."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellTimeoutError

    path = Path(path)
    start = time.perf_counter()
    try:
        nb = nbformat.read(path, as_version=4)
    except Exception as error:  # not JSON, not a notebook
        message = _error_line(error, None, timeout)
        return NotebookGrade(error=f"could not read the notebook: {message}", readable=False)
    numbers = []  # each kept cell's 1-based position in the submitted notebook
    kept = []
    for number, cell in enumerate(nb.cells, 1):
        if not is_solution(cell):  # the student edition's rule
            numbers.append(number)
            kept.append(cell)
    nb.cells = kept
    static = _checks_in(kept)

    error, cell_number = None, None
    with tempfile.TemporaryDirectory(prefix="rqvae-grade-") as tmp:
        log = Path(tmp) / "checks.jsonl"
        client = NotebookClient(
            nb,
            kernel_name=kernel_name,
            extra_arguments=QUIET_KERNEL,
            allow_errors=False,
            shutdown_kernel="immediate",
            resources={"metadata": {"path": str(path.parent.resolve())}},
        )
        try:
            with client.setup_kernel(env={**os.environ, GRADE_LOG: str(log)}):
                deadline = time.monotonic() + timeout
                for index, cell in enumerate(nb.cells):
                    if cell.cell_type != "code":
                        continue
                    cell_number = numbers[index]
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise CellTimeoutError(f"no time left for cell {cell_number}")
                    client.timeout = max(1, math.ceil(left))
                    client.execute_cell(cell, index)
            cell_number = None
        except Exception as exc:  # the student's error, a timeout, a dead kernel
            error = _error_line(exc, cell_number, timeout)
        results = _read_log(log)

    for ex_id in static:
        if ex_id not in results:
            results[ex_id] = (
                (NOT_RUN, error)
                if error
                else (NOT_DONE, "The notebook ran to the end without calling this check.")
            )
    return NotebookGrade(results, error, seconds=time.perf_counter() - start)


def grade(
    submissions: str | os.PathLike,
    timeout: int = 600,
    *,
    kernel_name: str = "python3",
    progress: Callable[[str], object] | None = print,
) -> pd.DataFrame:
    """Run every submitted notebook and return one row per (student, exercise): see the module.

    ``progress`` receives one line per notebook graded (None: silent).
    """
    root = Path(submissions)
    found = find_submissions(root)
    graded: list[tuple[str, str, NotebookGrade]] = []
    for i, (student, path) in enumerate(found, 1):
        notebook = path.relative_to(root).as_posix()
        result = grade_notebook(path, timeout, kernel_name)
        graded.append((student, notebook, result))
        if progress is not None:
            statuses = [status for status, _ in result.results.values()]
            line = (
                f"[{i}/{len(found)}] {notebook} ({student}): {statuses.count(CORRECT)} of "
                f"{len(statuses)} correct, {result.seconds:.0f} s"
            )
            progress(line + (f"; stopped: {result.error}" if result.error else ""))
    return _table(graded)


def _table(graded: list[tuple[str, str, NotebookGrade]]) -> pd.DataFrame:
    """One row per (student, exercise) from the notebooks' outcomes: the best of each."""
    exercises = sorted({ex_id for _, _, result in graded for ex_id in result.results})
    rows = []
    for student in sorted({student for student, _, _ in graded}):
        mine = [(notebook, result) for s, notebook, result in graded if s == student]
        for ex_id in exercises:
            best, where = None, ""
            for notebook, result in mine:
                outcome = result.results.get(ex_id)
                if outcome is not None and _better(outcome, best):
                    best, where = outcome, notebook
            if best is None:
                unreadable = [(n, r) for n, r in mine if not r.readable]
                if unreadable:
                    where, best = unreadable[0][0], (NOT_RUN, unreadable[0][1].error or "")
                else:
                    best = (NOT_DONE, "The submission has no check of this exercise.")
            rows.append([student, where, ex_id, *best])
    return pd.DataFrame(rows, columns=COLUMNS)


def summary(table: pd.DataFrame) -> str:
    """The grid of student by exercise in short statuses, and each student's count of correct."""
    if table.empty:
        return "no exercises found"
    grid = table.pivot(index="student", columns="exercise", values="status")
    correct = (grid == CORRECT).sum(axis=1)
    grid = grid.apply(lambda column: column.map(SHORT))
    grid["correct"] = [f"{n}/{grid.shape[1]}" for n in correct]
    grid.columns.name = None
    legend = ", ".join(f"{short} = {status}" for status, short in SHORT.items())
    return f"{grid.to_string()}\n({legend}; the hints and errors are in the CSV)"


def write_csv(table: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write the table to ``path`` atomically (a temporary file, then a rename); return it."""
    atomic_write(path, lambda tmp: table.to_csv(tmp, index=False))
    return Path(path)


def main(argv: list[str] | None = None) -> int:
    """The command line: grade ``SUBMISSIONS``, write the CSV, print the grid."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("submissions", type=Path, help="the folder of submitted notebooks")
    parser.add_argument("--out", type=Path, default=Path("grades.csv"), help="the CSV to write")
    parser.add_argument(
        "--timeout", type=int, default=600, help="seconds each notebook may run (default 600)"
    )
    args = parser.parse_args(argv)
    if not args.submissions.is_dir():
        parser.error(f"{args.submissions} is not a folder")
    count = len(find_submissions(args.submissions))
    if not count:
        print(f"no notebooks under {args.submissions}")
        return 1
    print(f"grading {count} notebook(s) under {args.submissions}", flush=True)
    table = grade(args.submissions, args.timeout, progress=lambda line: print(line, flush=True))
    write_csv(table, args.out)
    print(summary(table))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
