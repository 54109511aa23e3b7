"""Sphinx extension for the course site: the notebooks, the outline and the solution toggles.

- ``builder-inited``: copies every ``notebooks/NN_*.ipynb`` into ``<site>/notebooks/``
  (git-ignored), so the site is built from the committed notebooks as they are, and a new
  notebook is picked up by the next build. Copies of notebooks that are gone are removed.
- ``course-outline`` directive: the landing page's outline, read from each notebook's first
  cell (title, the ``*Time...:*`` line, the goals listed after "You will learn").
- ``source-read``: code cells tagged ``solution`` get myst-nb's ``hide-cell`` tag and the
  prompts "Show solution"/"Hide solution", so they sit behind a toggle. Only the copy read by
  Sphinx changes; the notebooks on disk stay as committed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

NOTEBOOK_GLOB = "[0-9][0-9]_*.ipynb"
SOLUTION_TAG = "solution"
COPY_DIR = "notebooks"  # inside the Sphinx source folder, git-ignored

logger = logging.getLogger(__name__)


def notebooks_dir(app) -> Path:
    """Where the numbered notebooks live: ``course_notebooks``, relative to the site folder."""
    return (Path(app.confdir) / app.config.course_notebooks).resolve()


def course_notebooks(app) -> list[Path]:
    return sorted(notebooks_dir(app).glob(NOTEBOOK_GLOB))


def sync_notebooks(app) -> None:
    """Make ``<srcdir>/notebooks/`` hold a copy of each numbered notebook, and nothing else.

    Copies, not symlinks: Sphinx resolves symlinks when it follows a link between pages, which
    would send a notebook's link to ``03_training.ipynb`` outside the site. A copy is refreshed
    when its size or modification time differs from the notebook's, so the build stays
    incremental; the folder is git-ignored.
    """
    found = course_notebooks(app)
    if not found:
        logger.warning("no notebooks matching %s in %s", NOTEBOOK_GLOB, notebooks_dir(app))
    copies = Path(app.srcdir) / COPY_DIR
    copies.mkdir(exist_ok=True)
    wanted = {nb.name: nb for nb in found}
    for entry in copies.iterdir():
        if entry.name not in wanted and (entry.is_symlink() or entry.suffix == ".ipynb"):
            entry.unlink()  # a notebook that was renamed or removed
    for name, nb in wanted.items():
        copy, stat = copies / name, nb.stat()
        if copy.is_symlink() or not copy.exists() or _signature(copy.stat()) != _signature(stat):
            copy.unlink(missing_ok=True)
            shutil.copy2(nb, copy)


def _signature(stat: os.stat_result) -> tuple[int, int]:
    return stat.st_size, stat.st_mtime_ns


def hide_solutions(app, docname: str, source: list[str]) -> None:
    """Put code cells tagged ``solution`` behind a "Show solution" toggle (myst-nb hide-cell)."""
    if not str(app.env.doc2path(docname)).endswith(".ipynb"):
        return
    nb = json.loads(source[0])
    changed = False
    for cell in nb.get("cells", []):
        meta = cell.setdefault("metadata", {})
        tags = meta.get("tags", [])
        if cell.get("cell_type") != "code" or SOLUTION_TAG not in tags:
            continue
        meta["tags"] = [*tags, "hide-cell"]
        prompts = meta.setdefault("mystnb", {})
        prompts.setdefault("code_prompt_show", "Show solution")
        prompts.setdefault("code_prompt_hide", "Hide solution")
        changed = True
    if changed:
        source[0] = json.dumps(nb)


# -- the outline ------------------------------------------------------------------------------

TIME_LINE = re.compile(r"^\*(?P<label>(?:Run )?[Tt]ime[^*]*?):\*\s*(?P<text>.*)$")


def read_header(path: Path) -> dict:
    """Title, time and goals from a notebook's first markdown cell."""
    cells = json.loads(path.read_text(encoding="utf-8")).get("cells", [])
    first = next((c for c in cells if c.get("cell_type") == "markdown"), {"source": ""})
    source = first["source"]
    lines = (source if isinstance(source, str) else "".join(source)).splitlines()
    title = next((ln[2:].strip() for ln in lines if ln.startswith("# ")), path.stem)
    return {"title": title, "time": _time(lines), "goals": _goals(lines)}


def _time(lines: list[str]) -> str:
    """The ``*Time:*`` (or ``*Run time, ...:*``) paragraph, cut before its first ( ; or ,."""
    for i, line in enumerate(lines):
        match = TIME_LINE.match(line.strip())
        if not match:
            continue
        text = [match["text"]]
        for more in lines[i + 1 :]:
            if not more.strip():
                break
            text.append(more.strip())
        short = re.split(r"\s*[(;,]|\.(?:\s|$)", " ".join(text), maxsplit=1)[0].strip()
        return short if match["label"].lower() == "time" else f"run: {short}"
    return ""


def _goals(lines: list[str]) -> list[str]:
    """The bullets that follow a line containing "you will learn", joined per bullet."""
    start = next((i for i, ln in enumerate(lines) if "you will learn" in ln.lower()), None)
    if start is None:
        return []
    goals: list[str] = []
    for line in lines[start + 1 :]:
        if line.lstrip().startswith(("- ", "* ")):
            goals.append(line.strip()[2:])
        elif goals and line.startswith("  ") and line.strip():
            goals[-1] += " " + line.strip()
        elif goals or line.strip():
            break
    return goals


class CourseOutline(SphinxDirective):
    """``{course-outline}``: one entry per numbered notebook, in order, with its time and goals."""

    def run(self) -> list[nodes.Node]:
        here = Path(self.env.doc2path(self.env.docname)).parent
        md: list[str] = []
        for nb in course_notebooks(self.env.app):
            self.env.note_dependency(str(nb))
            header = read_header(nb)
            link = os.path.relpath(Path(self.env.srcdir) / COPY_DIR / nb.name, here)
            time = f" · *{header['time']}*" if header["time"] else ""
            md.append(f"- **[{header['title']}]({link})**{time}")
            md.extend(f"  - {goal}" for goal in header["goals"])
        if not md:
            md = ["No notebooks found."]
        container = nodes.container(classes=["course-outline"])
        self.state.nested_parse(
            StringList(md, source="course-outline"), self.content_offset, container
        )
        return [container]


def setup(app):
    app.add_config_value("course_notebooks", "../notebooks", "env", types=(str,))
    app.connect("builder-inited", sync_notebooks)
    app.connect("source-read", hide_solutions)
    app.add_directive("course-outline", CourseOutline)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
