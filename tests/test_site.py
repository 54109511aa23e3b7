"""The course site (``make site``), built from the committed notebooks and opened in a real
headless browser (Debian's chromium, driven by Playwright).

The site is built into the test's temp folder from a copy of ``site/``, with the real notebooks
plus a small demo notebook that holds an exercise and its solution cell, so the solution toggle
is tested whatever the real notebooks hold. Every page must load with no console error, no
failed request and no request off this machine; every image must load; every internal link
must lead to an existing page (and anchor); solutions must stay hidden until their toggle is
clicked. A screenshot of each page lands in ``<tmp>/screenshots/`` (the path is printed).
"""

from __future__ import annotations

import functools
import http.server
import re
import subprocess
import sys
import threading
import time
from html import unescape
from pathlib import Path
from urllib.parse import unquote, urldefrag, urlparse

import pytest
from browser_support import (
    SOLUTION_MARKER,
    chromium,
    copy_tree,
    has_solution_cells,
    new_page,
    require_browser,
    write_solution_demo,
)

from rqvae_lib.config import REPO_ROOT

pytestmark = pytest.mark.slow  # a site build and a browser: about a minute on 2 cores

NOTEBOOKS = sorted((REPO_ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
DEMO = "99_solution_demo"


@pytest.fixture(scope="module")
def built_site(tmp_path_factory) -> Path:
    """Build a copy of site/ with the real notebooks and the demo; return the HTML folder."""
    require_browser()  # skip before spending a build on a machine that cannot look at it
    tmp = tmp_path_factory.mktemp("site")
    source = copy_tree(REPO_ROOT / "site", tmp / "site", ignore=("notebooks", "_build"))
    notebooks = tmp / "notebooks"
    notebooks.mkdir()
    for nb in NOTEBOOKS:
        (notebooks / nb.name).symlink_to(nb)
    write_solution_demo(notebooks / f"{DEMO}.ipynb")
    html = tmp / "build" / "html"
    command = [sys.executable, "-m", "sphinx", "-b", "html", "-q", "-W", "--keep-going"]
    command += ["-d", str(tmp / "build" / "doctrees"), str(source), str(html)]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    seconds = time.perf_counter() - start
    assert done.returncode == 0, f"site build failed:\n{done.stdout}\n{done.stderr}"
    print(f"site built in {seconds:.0f} s into {html}")
    return html


@pytest.fixture(scope="module")
def server(built_site: Path):
    """Serve the built site on 127.0.0.1 (a random free port); yield its base URL."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=str(built_site))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def browser(built_site):
    with chromium() as browser:
        yield browser


def pages(html: Path) -> list[str]:
    """Every HTML page of the site, as paths relative to its root."""
    skip = ("_static", "_sources", "_images")
    found = [p.relative_to(html).as_posix() for p in html.rglob("*.html")]
    return sorted(p for p in found if not p.startswith(skip))


def open_page(page, url: str) -> None:
    """Load a page and wait until its math is typeset and the network is quiet."""
    page.goto(url, wait_until="load")
    page.evaluate(
        "async () => { if (window.MathJax && MathJax.startup && MathJax.startup.promise)"
        " await MathJax.startup.promise; }"
    )
    page.wait_for_load_state("networkidle")


IMAGES_JS = """async () => Promise.all(Array.from(document.images).map(async (img) => {
    img.loading = "eager";
    try { await img.decode(); } catch (e) {}
    return [img.getAttribute("src"), img.naturalWidth];
}))"""
LINKS_JS = "() => Array.from(document.querySelectorAll('a[href]'), (a) => a.href)"


def test_every_page_loads_cleanly(built_site, server, browser, tmp_path_factory, capsys):
    shots = tmp_path_factory.mktemp("screenshots")
    with capsys.disabled():
        print(f"\nsite screenshots: {shots}")
    all_pages = pages(built_site)
    assert "index.html" in all_pages
    for nb in [*NOTEBOOKS, Path(DEMO)]:
        assert f"notebooks/{nb.stem}.html" in all_pages, f"no page for {nb.name}"

    problems: list[str] = []
    links: dict[str, str] = {}  # link -> the page it was found on
    page = new_page(browser)
    events: list[str] = []
    page.on("console", lambda m: m.type == "error" and events.append(f"console: {m.text}"))
    page.on("pageerror", lambda e: events.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: events.append(f"failed request: {r.url} {r.failure}"))
    page.on("response", lambda r: r.status >= 400 and events.append(f"HTTP {r.status}: {r.url}"))
    page.on(
        "request",
        lambda r: (
            r.url.startswith(("data:", "blob:", server))
            or events.append(f"request off this machine: {r.url}")
        ),
    )
    for name in all_pages:
        events.clear()
        open_page(page, server + name)
        problems += [f"{name}: {event}" for event in events]
        for src, width in page.evaluate(IMAGES_JS):
            if not width:
                problems.append(f"{name}: image did not load: {src}")
        for href in page.evaluate(LINKS_JS):
            links.setdefault(href, name)
        shot = shots / f"{name.replace('/', '__')}.png"
        page.screenshot(path=str(shot), full_page=True, animations="disabled")
    problems += broken_links(links, server, built_site)
    assert not problems, "\n".join(problems)


def broken_links(links: dict[str, str], server: str, html: Path) -> list[str]:
    """Internal links whose file does not exist, or whose #anchor is not on the target page."""
    broken, ids_cache = [], {}
    for href, found_on in sorted(links.items()):
        if not href.startswith(server):
            continue  # external (papers, docs): not fetched, the site must work offline
        url, fragment = urldefrag(href)
        path = unquote(urlparse(url).path).lstrip("/")
        target = html / path
        if path == "" or path.endswith("/"):
            target = target / "index.html"
        if not target.is_file():
            broken.append(f"{found_on}: link to a missing page: {href}")
            continue
        if fragment and target.suffix == ".html":
            if target not in ids_cache:
                text = target.read_text(encoding="utf-8")
                ids_cache[target] = {unescape(m) for m in re.findall(r'\bid="([^"]+)"', text)}
            if unquote(fragment) not in ids_cache[target]:
                broken.append(f"{found_on}: link to a missing anchor: {href}")
    return broken


def test_solutions_hidden_until_toggled(built_site, server, browser, tmp_path_factory):
    with_solutions = [f"notebooks/{DEMO}.html"] + [
        f"notebooks/{nb.stem}.html" for nb in NOTEBOOKS if has_solution_cells(nb)
    ]
    page = new_page(browser)
    for name in with_solutions:
        open_page(page, server + name)
        cells = page.locator("div.cell.tag_solution")
        assert cells.count() > 0, f"{name}: no solution cell rendered"
        for i in range(cells.count()):
            cell = cells.nth(i)
            source = cell.locator(".cell_input")
            toggle = cell.locator("summary")
            assert source.count() == 1 and not source.is_visible(), f"{name}: solution {i} shown"
            assert "Show solution" in toggle.inner_text(), f"{name}: solution {i}: no toggle"
            toggle.click()
            source.wait_for(state="visible")
            assert "Hide solution" in toggle.inner_text()
            toggle.click()
            source.wait_for(state="hidden")
        if name.endswith(f"{DEMO}.html"):  # the demo's solution text is not on the page
            assert SOLUTION_MARKER not in page.locator("article").inner_text()
            page.locator("div.cell.tag_solution summary").first.click()
            assert SOLUTION_MARKER in page.locator("article").inner_text()
            shot = tmp_path_factory.mktemp("screenshots") / "solution_opened.png"
            page.screenshot(path=str(shot), full_page=True, animations="disabled")


def test_outline_lists_every_notebook_with_its_time(built_site, server, browser):
    """The landing page links each numbered notebook (the demo included: it is picked up
    without any edit) and shows its time when the header states one."""
    page = new_page(browser)
    open_page(page, server + "index.html")
    outline = page.locator(".course-outline")
    hrefs = outline.locator("a").evaluate_all("(links) => links.map((a) => a.href)")
    expected = [f"{server}notebooks/{p.stem}.html" for p in [*NOTEBOOKS, Path(DEMO)]]
    assert hrefs == expected
    assert "1 min to read" in outline.inner_text()
