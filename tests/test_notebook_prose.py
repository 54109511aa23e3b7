"""Every decimal figure a notebook's prose quotes is shown by that notebook or cited.

Fast and static: it reads the committed ``.ipynb`` JSON and executes nothing.

The rule, precisely:

- A *decimal figure* is a number with a decimal point in a markdown cell (``0.48``, ``1.5``,
  ``22.3%``, ``-0.002``). Integers are not checked, nor version-like or reference numbers: a
  dotted triple (``2.13.0``), a number after "section", "§", "Python", "torch", "version", "v",
  "arXiv", "Table", "Figure", "Eq." or "Appendix", and anything inside a link target or URL.
- The notebook *shows* a number when it appears in one of its code cells' outputs (stream text,
  ``text/plain`` or ``text/markdown``) or as a literal in a code cell's source (a constant
  the reader can see, like ``lr=0.02``). A quoted figure is covered when some shown number,
  rounded to the figure's decimals, equals it (``0.2963`` covers ``0.30`` and ``0.296``); a
  percentage is also covered by the fraction (``0.0906`` covers ``9.1%``) and the other way round.
- A figure written as approximate (after "about", "around", "roughly", "nearly", "~" or "≈")
  is covered by a shown number within one unit of its last digit (``about 0.32`` by anything
  from ``0.31`` to ``0.33``): the way to quote a result that moves in its last digit from one
  CPU, or one seed, to another.
- A figure is *cited* when its paragraph (a block of lines between blank lines; each list item
  and table row is its own paragraph) either links an external source (``https://...``, e.g.
  a paper) or names a file of this repository (``benchmarks/RESULTS.md``,
  ``04_codebook_usage.ipynb``, linked or in backticks) that itself shows the figure: the file's
  text for ``.md`` and other text files, its outputs and code for a notebook. A citation of a
  repository file that does not contain the number does not count.

A figure that is neither shown nor cited fails the test, with the cell and the sentence.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parent.parent
NOTEBOOK_DIR = REPO / "notebooks"
#: Every numbered notebook of the course.
NOTEBOOKS = sorted(p.name for p in NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))

FIGURE = re.compile(r"(?<![\w.])([-−]?)(\d{1,3}(?:,\d{3})+|\d+)\.(\d+)(?!\d|\.\d)(\s?%)?")
SHOWN = re.compile(r"(?<![\w.])-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?%?")
SKIP_BEFORE = re.compile(
    r"(?:section|sections|§|python|torch|version|\bv|arxiv:?|table|figure|fig\.|eq\.|appendix)"
    r"\s*$",
    re.IGNORECASE,
)
APPROXIMATE = re.compile(r"(?:\babout|\baround|\broughly|\bnearly|~|≈)\s*$", re.IGNORECASE)
LINK_TARGET = re.compile(r"\]\(([^)\s]+)[^)]*\)")
URL = re.compile(r"https?://\S+")
REPO_FILE = re.compile(r"[\w./-]+\.(?:md|ipynb|py|json|jsonl|csv|txt|yaml)\b")


def _paragraphs(markdown: str) -> list[str]:
    """Blocks between blank lines; list items and table rows are blocks of their own."""
    blocks, current = [], []
    for line in markdown.splitlines():
        starts_item = re.match(r"\s*(?:[-*+]|\d+\.)\s", line) or line.lstrip().startswith("|")
        if not line.strip() or starts_item:
            if current:
                blocks.append("\n".join(current))
            current = [] if not line.strip() else [line]
            if line.lstrip().startswith("|"):  # a table row ends where it starts
                blocks.append(line)
                current = []
        else:
            current.append(line)
    if current:
        blocks.append("\n".join(current))
    return blocks


def _shown_numbers(text: str) -> list[tuple[float, bool]]:
    """Every number in ``text`` as ``(value, written as a percentage)``."""
    out = []
    for match in SHOWN.finditer(text):
        token = match.group(0)
        pct = token.endswith("%")
        try:
            out.append((abs(float(token.rstrip("%").replace(",", ""))), pct))
        except ValueError:
            continue
    return out


def _notebook_shown_text(nb: dict) -> str:
    """All the text a notebook shows besides its prose: code outputs and code sources."""
    parts = []
    for cell in nb["cells"]:
        if cell["cell_type"] != "code":
            continue
        parts.append(_source(cell))
        for out in cell.get("outputs", []):
            if "text" in out:
                parts.append(_source({"source": out["text"]}))
            for mime in ("text/plain", "text/markdown"):
                if mime in out.get("data", {}):
                    parts.append(_source({"source": out["data"][mime]}))
    return "\n".join(parts)


def _source(cell: dict) -> str:
    src = cell["source"]
    return src if isinstance(src, str) else "".join(src)


def _covered(
    value: float, decimals: int, pct: bool, shown: list[tuple[float, bool]], approx: bool = False
) -> bool:
    tolerance = (1.0 if approx else 0.5) * 10.0**-decimals + 1e-9
    for v, v_pct in shown:
        candidates = [v]
        if pct and not v_pct:
            candidates.append(v * 100)  # a fraction printed, a percentage quoted
        if v_pct and not pct:
            candidates.append(v / 100)
        if any(math.isclose(c, value, abs_tol=tolerance) for c in candidates):
            return True
    return False


def quoted_figures(markdown: str) -> list[tuple[str, str, float, int, bool, bool]]:
    """``(paragraph, figure as written, value, decimals, is a percentage, is approximate)``."""
    found = []
    for para in _paragraphs(markdown):
        text = URL.sub(" ", LINK_TARGET.sub("]( )", para))
        for m in FIGURE.finditer(text):
            if SKIP_BEFORE.search(text[max(0, m.start() - 12) : m.start()]):
                continue
            integer, frac, pct = m.group(2).replace(",", ""), m.group(3), bool(m.group(4))
            approx = bool(APPROXIMATE.search(text[max(0, m.start() - 10) : m.start()]))
            value = float(f"{integer}.{frac}")
            found.append((para, m.group(0).strip(), value, len(frac), pct, approx))
    return found


def _citations(paragraph: str, root: Path, here: Path) -> tuple[bool, list[Path]]:
    """Whether the paragraph links an external source, and the repository files it names."""
    external = bool(URL.search(paragraph))
    files = []
    for name in REPO_FILE.findall(paragraph):
        if "://" in name:
            continue
        for base in (here, root):
            path = (base / name).resolve()
            if path.is_file() and root.resolve() in path.parents:
                files.append(path)
                break
    return external, files


def _file_shown(path: Path) -> list[tuple[float, bool]]:
    text = path.read_text(errors="replace")
    if path.suffix == ".ipynb":
        text = _notebook_shown_text(json.loads(text))
    return _shown_numbers(text)


def unsupported_figures(nb: dict, root: Path = REPO, here: Path = NOTEBOOK_DIR) -> list[str]:
    """One message per decimal figure in ``nb``'s prose that it neither shows nor cites."""
    shown = _shown_numbers(_notebook_shown_text(nb))
    problems = []
    for index, cell in enumerate(nb["cells"]):
        if cell["cell_type"] != "markdown":
            continue
        for para, written, value, decimals, pct, approx in quoted_figures(_source(cell)):
            if _covered(value, decimals, pct, shown, approx):
                continue
            external, files = _citations(para, root, here)
            if external or any(
                _covered(value, decimals, pct, _file_shown(f), approx) for f in files
            ):
                continue
            sentence = " ".join(para.split())
            at = max(sentence.find(written), 0)
            context = sentence[max(0, at - 120) : at + 120]
            cited = f" (cites {', '.join(f.name for f in files)}, which does not show it)"
            problems.append(
                f"markdown cell {index}: {written!r} is not in any output of this notebook"
                f"{cited if files else ' and not cited'}: ...{context}..."
            )
    return problems


# --- the rule on the committed notebooks -------------------------------------------------------
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_prose_figures_are_shown_or_cited(name: str) -> None:
    nb = json.loads((NOTEBOOK_DIR / name).read_text())
    problems = unsupported_figures(nb)
    assert not problems, "\n".join(problems)


# --- the checker itself, on tiny synthetic notebooks -------------------------------------------
def _notebook(markdown: str, printed: str | None = None, code: str = "x = 1") -> dict:
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell(code, execution_count=1)
    if printed is not None:
        cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=printed)]
    nb.cells = [cell, nbformat.v4.new_markdown_cell(markdown)]
    return json.loads(nbformat.writes(nb))


def test_checker_flags_a_figure_no_output_shows(tmp_path: Path) -> None:
    nb = _notebook("The relative error fell to 0.48.", printed="error: 0.3227\n")
    problems = unsupported_figures(nb, tmp_path, tmp_path)
    assert len(problems) == 1 and "'0.48'" in problems[0] and "not cited" in problems[0]


def test_checker_accepts_a_figure_an_output_shows_rounded(tmp_path: Path) -> None:
    nb = _notebook("The error is 0.48, or 0.478.", printed="error: 0.4781\n")
    assert unsupported_figures(nb, tmp_path, tmp_path) == []
    # a fraction printed covers the percentage quoted, and the other way round
    nb = _notebook("9.1% of pairs; 0.27% of them; a share of 0.108.", "0.0906 0.0027 10.77%\n")
    assert unsupported_figures(nb, tmp_path, tmp_path) == []
    # a constant visible in the code counts as shown
    nb = _notebook("Adam with a learning rate of 0.02.", code="opt = Adam(params, lr=0.02)")
    assert unsupported_figures(nb, tmp_path, tmp_path) == []


def test_an_approximate_figure_is_covered_within_one_unit_of_its_last_digit(tmp_path) -> None:
    printed = "error: 0.3262\n"
    for prose in ("The error is about 0.32.", "An error of ~0.33.", "Roughly 0.32 here."):
        assert unsupported_figures(_notebook(prose, printed), tmp_path, tmp_path) == [], prose
    for prose in ("The error is 0.32.", "The error is about 0.30.", "About 0.3 at most: 0.35."):
        assert len(unsupported_figures(_notebook(prose, printed), tmp_path, tmp_path)) == 1, prose


def test_checker_accepts_an_external_citation_in_the_same_paragraph(tmp_path: Path) -> None:
    cited = "The paper trains with a learning rate of 0.4 ([Rajput et al.](https://arxiv.org/abs/2305.05065))."
    assert unsupported_figures(_notebook(cited), tmp_path, tmp_path) == []
    other_paragraph = "The rate is 0.4.\n\nSee [the paper](https://arxiv.org/abs/2305.05065)."
    assert len(unsupported_figures(_notebook(other_paragraph), tmp_path, tmp_path)) == 1


def test_checker_accepts_a_repository_file_only_if_it_shows_the_figure(tmp_path: Path) -> None:
    (tmp_path / "benchmarks").mkdir()
    (tmp_path / "benchmarks" / "RESULTS.md").write_text("| rel. error | 0.478 |\n")
    good = "The error was 0.48 before (`benchmarks/RESULTS.md`)."
    assert unsupported_figures(_notebook(good), tmp_path, tmp_path) == []
    bad = "Every item got one ID, relative error 0.58 (`benchmarks/RESULTS.md`)."
    problems = unsupported_figures(_notebook(bad), tmp_path, tmp_path)
    assert len(problems) == 1 and "which does not show it" in problems[0]


def test_checker_ignores_versions_references_and_urls(tmp_path: Path) -> None:
    prose = (
        "Built with torch 2.13.0 and Python 3.11, as in section 3.1 of [the paper]"
        "(https://arxiv.org/abs/2305.05065v3); see arXiv:2305.05065.\n\n"
        "Integers such as 12,101 items or 256 codes are not checked."
    )
    assert quoted_figures(prose) == []
    assert unsupported_figures(_notebook(prose), tmp_path, tmp_path) == []


def test_paragraphs_split_list_items_and_table_rows() -> None:
    markdown = "Intro line\ncontinued.\n\n- item one 0.5\n- item two\n\n| a | 0.25 |\n| b | 0.4 |"
    assert _paragraphs(markdown) == [
        "Intro line\ncontinued.",
        "- item one 0.5",
        "- item two",
        "| a | 0.25 |",
        "| b | 0.4 |",
    ]
