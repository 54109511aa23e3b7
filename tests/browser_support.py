"""What the browser tests (test_site.py, test_jupyterlab.py) share: Debian's chromium driven by
Playwright, a skip that names the package to install, and a notebook with a solution cell.

Without /usr/bin/chromium (or Playwright) the browser tests skip and say what to install; under
CI (``CI`` set) they fail instead, since ``.ci/run`` installs chromium. Playwright's own browser
download is not used: it needs the internet at install time, Debian's package does not.
"""

from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from pathlib import Path

import nbformat
import pytest

#: Debian's chromium; RQVAE_CHROMIUM points elsewhere (e.g. another Chromium build).
CHROMIUM = Path(os.environ.get("RQVAE_CHROMIUM", "/usr/bin/chromium"))
INSTALL = "apt-get install -y chromium"
#: Milliseconds Playwright waits for a page, an element or a condition: generous, for a busy
#: 2-core machine; a passing run waits far less, since every wait ends when its condition holds.
TIMEOUT_MS = 90_000
#: In the demo solution cell: text a test can look for (hidden until the toggle is opened).
SOLUTION_MARKER = "demo solution: exp of the entropy of the shares (3/4, 1/4)"


def require_browser() -> Path:
    """The chromium to drive; skip (fail under CI) when it or Playwright is missing."""
    problem = None
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        problem = f"no browser at {CHROMIUM}: install Debian's package, `{INSTALL}`"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            problem = "Playwright is missing: pip install -e '.[dev]'"
    if problem:
        if os.environ.get("CI"):
            pytest.fail(f"{problem}. CI must run the browser tests (.ci/run installs chromium).")
        pytest.skip(problem)
    return CHROMIUM


@contextmanager
def chromium():
    """A headless chromium (Playwright Browser), closed on exit."""
    from playwright.sync_api import sync_playwright

    executable = require_browser()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(executable),
            args=["--disable-dev-shm-usage", "--disable-gpu"],  # small /dev/shm in containers
            timeout=TIMEOUT_MS,
        )
        try:
            yield browser
        finally:
            browser.close()


def new_page(browser, width: int = 1440, height: int = 900):
    """A page in a fresh context (no shared storage), with the generous timeouts."""
    context = browser.new_context(viewport={"width": width, "height": height})
    context.set_default_timeout(TIMEOUT_MS)
    context.set_default_navigation_timeout(TIMEOUT_MS)
    return context.new_page()


def has_solution_cells(path: Path) -> bool:
    nb = nbformat.read(path, as_version=4)
    return any("solution" in c.metadata.get("tags", []) for c in nb.cells)


def solution_demo_cells() -> list:
    """An exercise laid out as site/CONVENTIONS.md says: question, answer cell, solution cell."""
    question = nbformat.v4.new_markdown_cell(
        "**Exercise (demo).** Three quarters of the items get one code, the rest another: what is "
        "the perplexity?"
    )
    answer = nbformat.v4.new_code_cell(
        'answer = ...  # your answer\ncheck("02-two-code-perplexity", answer)',
        metadata={"tags": ["exercise"]},
        execution_count=2,
        outputs=[
            nbformat.v4.new_output(
                "stream",
                name="stdout",
                text="[02-two-code-perplexity] Not done yet. Replace the `...` with your "
                "answer, then run the cell again.\n",
            )
        ],
    )
    solution = nbformat.v4.new_code_cell(
        f'# Solution\nanswer = 1.7548  # {SOLUTION_MARKER}\ncheck("02-two-code-perplexity", answer)',
        metadata={"tags": ["solution"], "jupyter": {"source_hidden": True}},
        execution_count=3,
        outputs=[
            nbformat.v4.new_output(
                "stream", name="stdout", text="[02-two-code-perplexity] Correct.\n"
            )
        ],
    )
    return [question, answer, solution]


def write_solution_demo(path: Path) -> Path:
    """A small notebook with one exercise and its solution cell (outputs saved, as committed)."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3 (ipykernel)",
        "language": "python",
    }
    title = nbformat.v4.new_markdown_cell(
        "# 99 · Solution toggle (test page)\n\nBuilt by tests/test_site.py only.\n\n"
        "*Time:* 1 min to read"
    )
    setup = nbformat.v4.new_code_cell(
        "from rqvae_lib.course.exercises import check", execution_count=1, outputs=[]
    )
    nb.cells = [title, setup, *solution_demo_cells()]
    nbformat.write(nb, path)
    return path


def copy_tree(src: Path, dst: Path, ignore: tuple[str, ...] = ()) -> Path:
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(*ignore), symlinks=False)
    return dst
