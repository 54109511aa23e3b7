"""The student edition of the course: ``python -m rqvae_lib.course.student [--out student]``.

Writes a copy of every ``notebooks/NN_*.ipynb`` to ``<out>/notebooks/`` that can be handed out:

- every solution cell is removed: a cell tagged ``solution``, and (in case a tag was forgotten)
  any code cell whose source starts with ``# Solution`` (``site/CONVENTIONS.md``);
- an ``exercise`` cell keeps its committed output only when that output is the *not done yet*
  feedback of :func:`rqvae_lib.course.exercises.check`; any other output (a *correct* verdict
  left by an author who ran the cell with an answer, a hint, an error) is cleared with its
  execution count, so no output of an answer cell gives an answer away;
- every other cell keeps its source and outputs (figures, tables), so the edition reads like
  the course.

The notebooks reach their data, models and figures through ``rqvae_lib`` (``data_root``,
``artifacts_dir``, ``REPO_ROOT``), never by a path relative to ``notebooks/``, and link only to
each other, so nothing else is copied: the edition runs wherever ``rqvae_lib`` is installed
(a clone with ``make venv``). ``notebooks/`` itself is never written to. ``make student`` calls
this.
"""

from __future__ import annotations

import argparse
import copy
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rqvae_lib.config import REPO_ROOT
from rqvae_lib.io import atomic_write

#: The numbered notebooks of the course, as ``make`` and the site find them.
NOTEBOOK_GLOB = "[0-9][0-9]_*.ipynb"
SOLUTION_TAG, EXERCISE_TAG = "solution", "exercise"
#: One line of *not done yet* feedback, as :class:`rqvae_lib.course.exercises.Feedback` prints it.
NOT_DONE_LINE = re.compile(r"\[[0-9]{2}-[a-z0-9-]+\] Not done yet\.[^\n]*")


def cell_tags(cell: Any) -> list[str]:
    """The tags of a notebook cell (an empty list when it has none)."""
    return list(cell.get("metadata", {}).get("tags", []))


def is_solution(cell: Any) -> bool:
    """Whether a cell is a solution: tagged ``solution``, or a code cell starting ``# Solution``."""
    if SOLUTION_TAG in cell_tags(cell):
        return True
    source = cell.get("source", "")
    source = "".join(source) if isinstance(source, list) else source
    return cell.get("cell_type") == "code" and source.lstrip().startswith("# Solution")


def is_not_done_feedback(outputs: list[Any]) -> bool:
    """Whether a cell's outputs are only *not done yet* lines printed by ``check`` (and not empty)."""
    lines: list[str] = []
    for output in outputs:
        if output.get("output_type") != "stream" or output.get("name") != "stdout":
            return False
        text = output.get("text", "")
        lines += ("".join(text) if isinstance(text, list) else text).splitlines()
    lines = [line for line in lines if line.strip()]
    return bool(lines) and all(NOT_DONE_LINE.fullmatch(line) for line in lines)


def student_notebook(nb: Any) -> tuple[Any, int, int]:
    """A copy of ``nb`` without solutions: (copy, solution cells removed, exercise outputs cleared).

    ``nb`` itself is not changed.
    """
    nb = copy.deepcopy(nb)
    kept, cleared = [], 0
    for cell in nb.cells:
        if is_solution(cell):
            continue
        if cell.cell_type == "code" and EXERCISE_TAG in cell_tags(cell):
            if cell.outputs and not is_not_done_feedback(cell.outputs):
                cell.outputs, cell.execution_count = [], None
                cleared += 1
            elif not cell.outputs:
                cell.execution_count = None
        kept.append(cell)
    removed = len(nb.cells) - len(kept)
    nb.cells = kept
    return nb, removed, cleared


def student_edition(
    notebooks: Path, out: Path, report: Callable[[str], Any] | None = print
) -> list[Path]:
    """Write the student edition of ``notebooks/NN_*.ipynb`` to ``out/notebooks/``; return its files.

    Each file is written atomically; ``report`` (default ``print``) gets one line per notebook.
    Raises ValueError when the edition would land in ``notebooks`` itself (it would overwrite
    the course), FileNotFoundError when ``notebooks`` holds no numbered notebook.
    """
    import nbformat

    source_dir, target_dir = Path(notebooks).resolve(), (Path(out) / "notebooks").resolve()
    if target_dir == source_dir or source_dir in target_dir.parents:
        raise ValueError(
            f"the student edition would be written into {source_dir}, the course's own "
            "notebooks (with their solutions); choose another --out, for example 'student'"
        )
    sources = sorted(source_dir.glob(NOTEBOOK_GLOB))
    if not sources:
        raise FileNotFoundError(f"no notebooks {NOTEBOOK_GLOB} in {source_dir}")
    written = []
    for path in sources:
        nb = nbformat.read(path, as_version=4)
        edition, removed, cleared = student_notebook(nb)
        target = target_dir / path.name
        atomic_write(target, lambda tmp, edition=edition: nbformat.write(edition, str(tmp)))
        written.append(target)
        if report is not None:
            note = f", {cleared} exercise output(s) cleared" if cleared else ""
            report(
                f"{target}: {removed} solution cell(s) removed{note} "
                f"({len(nb.cells)} -> {len(edition.cells)} cells)"
            )
    names = {p.name for p in sources}
    stale = sorted(p.name for p in target_dir.glob(NOTEBOOK_GLOB) if p.name not in names)
    if stale and report is not None:
        report(
            f"note: {target_dir} also holds {', '.join(stale)}, not in {source_dir} (left as is)"
        )
    return written


def main(argv: list[str] | None = None) -> int:
    """Command line: build the student edition; exit status 2 when it would overwrite the course."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("student"),
        help="folder of the edition; the notebooks go to OUT/notebooks (default: student)",
    )
    parser.add_argument(
        "--notebooks",
        type=Path,
        default=REPO_ROOT / "notebooks",
        help="folder of the course's notebooks (default: the repository's notebooks/)",
    )
    args = parser.parse_args(argv)
    try:
        written = student_edition(args.notebooks, args.out)
    except (ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"student edition: {len(written)} notebook(s) in {(args.out / 'notebooks').resolve()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
