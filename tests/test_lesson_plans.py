"""The lesson plans of the course site: ``site/lessons/class-N.md``, one page per class.

Static and fast: it reads the pages and the committed notebooks and builds nothing
(``tests/test_site.py`` builds the site and opens every page, these included, in a browser).

A page states the notebooks it covers (``**Notebooks:**``, naming each ``.ipynb`` file) and
the class length (``**Length:** 90 minutes.``), then has five sections:

- ``## Goals``: for each notebook its title (``**NN · Title**``) and the goals of its header
  (the bullets after "You will learn"), word for word: a plan neither invents goals nor falls
  behind an edited header;
- ``## Outline``: a table of minutes per part, an intro, rows ``NN · sections a–b: ...`` that
  together cover every numbered section of each notebook (a section named "Exercises" goes in
  the exercises row), the exercises and a wrap-up, adding up to the class length, with a total
  row;
- ``## Run live``: items ``**NN · heading**: ...``, each naming a heading of notebook NN, at
  least one per notebook;
- ``## Questions``: 4 to 6 numbered questions, each with an ``*Expected answer:*``;
- ``## Takeaways``: 3 to 5 bullets.

Every notebook is covered by exactly one page, the pages in course order, and every number a
page quotes (its outline's minutes and its length aside) is one that its notebooks show, in
prose, code or outputs, up to the rounding it is quoted with.
"""

from __future__ import annotations

import bisect
import functools
import json
import re
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
SITE = REPO_ROOT / "site"
LESSONS = SITE / "lessons"
NOTEBOOKS = sorted((REPO_ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
PAGES = sorted(LESSONS.glob("class-*.md"), key=lambda p: int(p.stem.removeprefix("class-")))
SECTIONS = ("Goals", "Outline", "Run live", "Questions", "Takeaways")
PARTS = ("Intro", "Exercises", "Wrap-up")  # outline rows of every class, besides its notebooks
MAX_WORDS = 950  # "under about 900 words": a plan is read in a few minutes before class

NOTEBOOK_FILE = re.compile(r"\b\d\d_\w+\.ipynb\b")
RUN_LIVE_ITEM = re.compile(r"\*\*(\d\d) · (.+?)\*\*:")
OUTLINE_SECTIONS = re.compile(r"(\d\d) · sections? ([^:]+):")
SECTION_RANGE = re.compile(r"(\d+)\s*[–-]\s*(\d+)|(\d+)")
NUMBER = re.compile(r"(?<![\w.])(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?%?")


# --- reading a page ------------------------------------------------------------------------------
def sections(text: str) -> dict[str, str]:
    """The page's ``## `` sections: heading -> the text up to the next one."""
    parts = re.split(r"^## +(.+?)\s*$", text, flags=re.M)
    return {parts[i]: parts[i + 1] for i in range(1, len(parts), 2)}


def covered(text: str) -> list[str]:
    """The notebook files named in the page's ``**Notebooks:**`` paragraph, in order."""
    match = re.search(r"^\*\*Notebooks:\*\*(.*?)(?:\n\s*\n|\Z)", text, re.M | re.S)
    assert match, "no **Notebooks:** paragraph"
    return list(dict.fromkeys(NOTEBOOK_FILE.findall(match[1])))


def class_minutes(text: str) -> int:
    match = re.search(r"^\*\*Length:\*\* (\d+) minutes\.?$", text, re.M)
    assert match, "no '**Length:** N minutes.' line"
    return int(match[1])


def outline(section: str) -> tuple[list[tuple[int, str]], int | None]:
    """The outline table's parts as (minutes, part), and the minutes of its total row."""
    parts, total = [], None
    for line in section.splitlines():
        if not line.lstrip().startswith("|"):
            continue
        cells = [c.strip().strip("*").strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 2 or not cells[0].isdigit():
            continue  # the header row and the separator
        if cells[1].lower() == "total":
            total = int(cells[0])
        else:
            parts.append((int(cells[0]), cells[1]))
    return parts, total


def outline_sections(labels: list[str]) -> dict[str, set[int]]:
    """Notebook number -> the section numbers its outline rows name (``sections 4–7``)."""
    found: dict[str, set[int]] = {}
    for label in labels:
        match = OUTLINE_SECTIONS.match(label)
        if not match:
            continue
        numbers = found.setdefault(match[1], set())
        for first, last, single in SECTION_RANGE.findall(match[2]):
            numbers |= set(range(int(first), int(last) + 1)) if first else {int(single)}
    return found


def bullets(section: str) -> list[str]:
    """The section's ``- `` bullets, each joined with its indented continuation lines."""
    items: list[str] = []
    for line in section.splitlines():
        if line.startswith("- "):
            items.append(line[2:].strip())
        elif items and line.startswith("  ") and line.strip():
            items[-1] += " " + line.strip()
        elif line.strip():
            items.append("")  # a paragraph ends a list: the next bullet starts a new item
    return [item for item in items if item]


def page_goals(section: str) -> dict[str, tuple[str, list[str]]]:
    """Notebook number -> (title, goals), from ``**NN · Title**`` lines and the bullets after."""
    groups: dict[str, tuple[str, list[str]]] = {}
    current: list[str] | None = None
    for line in section.splitlines():
        title = re.fullmatch(r"\*\*((\d\d) · .+)\*\*", line.strip())
        if title:
            current = groups.setdefault(title[2], (title[1], []))[1]
        elif current is not None and line.startswith("- "):
            current.append(line[2:].strip())
        elif current and line.startswith("  ") and line.strip():
            current[-1] += " " + line.strip()
    return groups


def numbered(section: str) -> list[str]:
    """The items of the section's numbered list (``1. ...``), each with its continuation."""
    return [item.strip() for item in re.split(r"^\d+\. ", section, flags=re.M)[1:]]


def words(text: str) -> int:
    """Words of the page as read: link targets left out, a word holding a letter or digit."""
    text = re.sub(r"\]\([^)]*\)", "]", text)
    return sum(bool(re.search(r"[A-Za-z0-9]", token)) for token in text.split())


# --- reading a notebook ------------------------------------------------------------------------
@functools.cache
def notebook(name: str) -> dict:
    return json.loads((REPO_ROOT / "notebooks" / name).read_text(encoding="utf-8"))


def _text(source: str | list[str]) -> str:
    return source if isinstance(source, str) else "".join(source)


def header(name: str) -> tuple[str, list[str]]:
    """Title and goals of the notebook's first markdown cell, as the landing page reads them."""
    first = next(c for c in notebook(name)["cells"] if c["cell_type"] == "markdown")
    lines = _text(first["source"]).splitlines()
    title = next(ln[2:].strip() for ln in lines if ln.startswith("# "))
    start = next(i for i, ln in enumerate(lines) if "you will learn" in ln.lower())
    goals: list[str] = []
    for line in lines[start + 1 :]:
        if line.startswith("- "):
            goals.append(line[2:].strip())
        elif goals and line.startswith("  ") and line.strip():
            goals[-1] += " " + line.strip()
        elif goals or line.strip():
            break
    return title, goals


def headings(name: str) -> set[str]:
    """The text of every markdown heading of the notebook (``## 4. Evaluation`` -> ``4. ...``)."""
    found = set()
    for cell in notebook(name)["cells"]:
        if cell["cell_type"] == "markdown":
            found |= set(re.findall(r"^#{1,6} +(.+?)\s*$", _text(cell["source"]), re.M))
    return found


def numbered_sections(name: str) -> dict[int, str]:
    """The notebook's numbered sections, ``## 4. Evaluation`` -> ``{4: "Evaluation"}``."""
    found = {}
    for heading in headings(name):
        match = re.fullmatch(r"(\d+)\. (.+)", heading)
        if match:
            found[int(match[1])] = match[2]
    return found


def notebook_text(name: str) -> str:
    """All a notebook shows: its markdown and code, and its outputs' text."""
    parts = []
    for cell in notebook(name)["cells"]:
        parts.append(_text(cell["source"]))
        for out in cell.get("outputs", []):
            if "text" in out:
                parts.append(_text(out["text"]))
            for mime in ("text/plain", "text/markdown"):
                if mime in out.get("data", {}):
                    parts.append(_text(out["data"][mime]))
    return "\n".join(parts)


def _value(token: str) -> float:
    return float(token.rstrip("%").replace(",", ""))


@functools.cache
def shown_numbers(names: tuple[str, ...]) -> tuple[list[float], list[float]]:
    """Sorted values of the numbers the notebooks show: (plain numbers, percentages)."""
    plain, percent = [], []
    for name in names:
        for token in NUMBER.findall(notebook_text(name)):
            (percent if token.endswith("%") else plain).append(_value(token))
    return sorted(plain), sorted(percent)


def _near(values: list[float], value: float, tolerance: float) -> bool:
    i = bisect.bisect_left(values, value - tolerance)
    return i < len(values) and values[i] <= value + tolerance


def unshown_numbers(text: str, names: tuple[str, ...]) -> list[str]:
    """The numbers the page quotes that none of the notebooks shows, to the quoted rounding.

    The outline's minutes and the length line are the plan's own. A percentage is also covered
    by the fraction (``4.7%`` by ``0.047``) and the other way round.
    """
    text = re.sub(r"^\*\*Length:\*\*.*$", "", text, flags=re.M)
    text = re.sub(r"^\|\s*(?:\*\*)?\d+(?:\*\*)?\s*\|", "|", text, flags=re.M)
    text = re.sub(r"\]\([^)]*\)", "]", text)  # link targets
    plain, percent = shown_numbers(names)
    missing = []
    for token in NUMBER.findall(text):
        value = _value(token)
        mantissa = token.rstrip("%").lower().split("e")[0]
        decimals = len(mantissa.split(".")[1]) if "." in mantissa else 0
        tolerance = abs(value) * 1e-9 if "e" in token.lower() else 0.5 * 10.0**-decimals + 1e-12
        if token.endswith("%"):
            found = _near(percent, value, tolerance) or _near(plain, value / 100, tolerance / 100)
        else:
            found = _near(plain, value, tolerance) or _near(percent, value * 100, tolerance * 100)
        if not found:
            missing.append(token)
    return missing


# --- the tests ---------------------------------------------------------------------------------
def _page_id(path: Path) -> str:
    return path.stem


def test_every_notebook_is_covered_by_exactly_one_page_in_course_order() -> None:
    assert PAGES, f"no lesson plans in {LESSONS}"
    found = [name for page in PAGES for name in covered(page.read_text(encoding="utf-8"))]
    assert sorted(found) == sorted(set(found)), f"a notebook is covered twice: {found}"
    assert found == [nb.name for nb in NOTEBOOKS], (
        "the plans, class 1 first, must cover every notebook once, in course order"
    )


def test_the_lesson_index_lists_every_page_and_the_site_links_it() -> None:
    index = (LESSONS / "index.md").read_text(encoding="utf-8")
    toctree = re.search(r"```\{toctree\}\n(.*?)```", index, re.S)
    assert toctree, "site/lessons/index.md has no toctree"
    entries = [ln.strip() for ln in toctree[1].splitlines() if ln.strip() and ":" not in ln]
    assert entries == [page.stem for page in PAGES]
    landing = (SITE / "index.md").read_text(encoding="utf-8")
    trees = re.findall(r"```\{toctree\}\n(.*?)```", landing, re.S)
    assert any(re.search(r"^lessons/index$", tree, re.M) for tree in trees), (
        "site/index.md must list lessons/index in a toctree (the site's navigation)"
    )
    exclude = re.search(r"^exclude_patterns = (.*)$", (SITE / "conf.py").read_text(), re.M)
    assert exclude and "lessons" not in exclude[1], "conf.py must not exclude site/lessons/"


@pytest.mark.parametrize("page", PAGES, ids=_page_id)
def test_a_page_has_the_five_sections(page: Path) -> None:
    found = list(sections(page.read_text(encoding="utf-8")))
    assert found == list(SECTIONS), f"{page.name}: sections {found}, expected {SECTIONS}"


@pytest.mark.parametrize("page", PAGES, ids=_page_id)
def test_goals_are_the_notebooks_own(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    goals = page_goals(sections(text)["Goals"])
    names = covered(text)
    assert sorted(goals) == sorted(name[:2] for name in names), f"{page.name}: goals of {goals}"
    for name in names:
        title, expected = header(name)
        shown_title, shown = goals[name[:2]]
        assert shown_title == title, f"{page.name}: title of {name}"
        assert shown == expected, f"{page.name}: the goals of {name} differ from its header"


@pytest.mark.parametrize("page", PAGES, ids=_page_id)
def test_outline_adds_up_to_the_class_length(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    parts, total = outline(sections(text)["Outline"])
    length = class_minutes(text)
    assert sum(minutes for minutes, _ in parts) == length, f"{page.name}: {parts}"
    assert total == length, f"{page.name}: the total row says {total}, the page {length}"
    labels = [part for _, part in parts]
    for start in [*PARTS, *(f"{name[:2]} ·" for name in covered(text))]:
        assert any(label.startswith(start) for label in labels), f"{page.name}: no '{start}' row"


@pytest.mark.parametrize("page", PAGES, ids=_page_id)
def test_outline_covers_every_section_of_its_notebooks(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    parts, _ = outline(sections(text)["Outline"])
    named = outline_sections([part for _, part in parts])
    for name in covered(text):
        expected = {n for n, title in numbered_sections(name).items() if title != "Exercises"}
        assert named.get(name[:2], set()) == expected, (
            f"{page.name}: the outline names sections {sorted(named.get(name[:2], []))} of "
            f"{name}, which has {sorted(expected)} (besides its exercises)"
        )


@pytest.mark.parametrize("page", PAGES, ids=_page_id)
def test_run_live_names_sections_of_the_notebooks(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    by_number = {name[:2]: name for name in covered(text)}
    items = bullets(sections(text)["Run live"])
    assert items, f"{page.name}: nothing to run live"
    used = set()
    for item in items:
        match = RUN_LIVE_ITEM.match(item)
        assert match, f"{page.name}: a run-live item must start '**NN · heading**:': {item}"
        number, heading = match.groups()
        assert number in by_number, f"{page.name}: notebook {number} is not covered here"
        assert heading in headings(by_number[number]), (
            f"{page.name}: {by_number[number]} has no heading {heading!r}"
        )
        used.add(number)
    assert used == set(by_number), f"{page.name}: a notebook has nothing to run live"


@pytest.mark.parametrize("page", PAGES, ids=_page_id)
def test_questions_have_expected_answers_and_takeaways_are_few(page: Path) -> None:
    parts = sections(page.read_text(encoding="utf-8"))
    questions = numbered(parts["Questions"])
    assert 4 <= len(questions) <= 6, f"{page.name}: {len(questions)} questions"
    for question in questions:
        assert re.match(r"\*\*.+?\?\*\*", question, re.S), f"{page.name}: {question[:60]}"
        assert "*Expected answer:*" in question, f"{page.name}: no answer to {question[:60]}"
    takeaways = bullets(parts["Takeaways"])
    assert 3 <= len(takeaways) <= 5, f"{page.name}: {len(takeaways)} takeaways"


@pytest.mark.parametrize("page", PAGES, ids=_page_id)
def test_every_number_comes_from_the_notebooks(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    missing = unshown_numbers(text, tuple(covered(text)))
    assert not missing, f"{page.name}: numbers no covered notebook shows: {missing}"


@pytest.mark.parametrize("page", PAGES, ids=_page_id)
def test_a_page_stays_short(page: Path) -> None:
    count = words(page.read_text(encoding="utf-8"))
    assert count <= MAX_WORDS, f"{page.name}: {count} words, keep it under about 900"


# --- the readers themselves, on a small page ---------------------------------------------------
def test_the_readers_on_a_small_page() -> None:
    page = (
        "# Class 9\n\n**Notebooks:** [`01_a.ipynb`](../notebooks/01_a.ipynb) and\n`02_b.ipynb`\n\n"
        "**Length:** 30 minutes.\n\n## Outline\n\n| Minutes | Part |\n|---:|---|\n"
        "| 5 | Intro |\n| 25 | 01 · all |\n| **30** | **Total** |\n\n## Run live\n\n"
        "- **01 · 2. Data**: a cell,\n  on two lines.\n\nShow instead:\n\n- **02 · Try it**: x\n"
    )
    assert covered(page) == ["01_a.ipynb", "02_b.ipynb"]
    labels = ["01 · sections 1–3: x", "01 · section 5: y", "02 · sections 2-3 and 6: z", "Intro"]
    assert outline_sections(labels) == {"01": {1, 2, 3, 5}, "02": {2, 3, 6}}
    assert class_minutes(page) == 30
    parts = sections(page)
    assert outline(parts["Outline"]) == ([(5, "Intro"), (25, "01 · all")], 30)
    assert bullets(parts["Run live"]) == [
        "**01 · 2. Data**: a cell, on two lines.",
        "**02 · Try it**: x",
    ]


def test_number_check_allows_rounding_and_percentages(monkeypatch) -> None:
    shown = "error 0.31927, share 0.0472, 12,101 items, 9.45% of pairs, rate 3e-4\n"
    monkeypatch.setattr(
        f"{__name__}.notebook_text", lambda name: shown if name == "x.ipynb" else ""
    )
    shown_numbers.cache_clear()
    try:
        good = "0.3193, 0.32, 4.7%, 12,101 and 12101, 0.0945, 3e-4"
        assert unshown_numbers(good, ("x.ipynb",)) == []
        assert unshown_numbers("0.3194, 4.8%, 12,102, 9.3%", ("x.ipynb",)) == [
            "0.3194",
            "4.8%",
            "12,102",
            "9.3%",
        ]
        assert unshown_numbers("**Length:** 77 minutes.\n| 13 | Intro |", ("x.ipynb",)) == []
    finally:
        shown_numbers.cache_clear()
