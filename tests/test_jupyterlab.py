"""One notebook opened in JupyterLab itself, in a real headless browser (Debian's chromium).

The test starts JupyterLab on 127.0.0.1 (a free port, a token it chooses, ``--no-browser``)
with a temporary root folder holding a copy of notebook 02, plus an exercise and its solution
cell when the notebook has none yet. It checks that the notebook renders with its figures,
that solution cells are collapsed, and that its first code cell runs in the kernel and shows
its output; then it shuts the server down through its API and waits for it to exit. A
screenshot lands in the test's temp folder (the path is printed).
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest
from browser_support import (
    SOLUTION_MARKER,
    TIMEOUT_MS,
    chromium,
    has_solution_cells,
    new_page,
    require_browser,
    solution_demo_cells,
)

from rqvae_lib.config import REPO_ROOT

pytestmark = pytest.mark.slow  # a JupyterLab server, a kernel and a browser: under a minute

NOTEBOOK = REPO_ROOT / "notebooks" / "02_quantizer_from_scratch.ipynb"
START_TIMEOUT_S = 120  # JupyterLab's start on a busy 2-core machine
#: User settings for the test's JupyterLab: every cell rendered (no windowing, so all figures
#: are in the page), no news or update prompts over the notebook.
SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "checkForUpdates": False,
        "fetchNews": "false",
    },
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def prepare_root(root: Path) -> tuple[str, int, int]:
    """Copy the notebook into ``root``: the first code cell's outputs cleared (so the test sees
    the kernel's), a solution cell added if it has none. Returns (name, first code cell index,
    number of image outputs)."""
    nb = nbformat.read(NOTEBOOK, as_version=4)
    first = next(i for i, c in enumerate(nb.cells) if c.cell_type == "code")
    nb.cells[first].outputs, nb.cells[first].execution_count = [], None
    if not has_solution_cells(NOTEBOOK):
        nb.cells[first + 1 : first + 1] = solution_demo_cells()
    images = sum("image/png" in o.get("data", {}) for c in nb.cells for o in c.get("outputs", []))
    nbformat.write(nb, root / NOTEBOOK.name)
    return NOTEBOOK.name, first, images


def api(base: str, token: str, path: str, method: str = "GET", timeout: float = 10):
    request = urllib.request.Request(
        f"{base}{path}", method=method, headers={"Authorization": f"token {token}"}
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.status, response.read()


@pytest.fixture
def jupyterlab(tmp_path: Path):
    """A JupyterLab server of this environment, isolated in tmp_path; yields (url, token, root)."""
    require_browser()  # skip before starting a server that nothing will look at
    root, home = tmp_path / "root", tmp_path / "jupyter"
    root.mkdir()
    for name, values in SETTINGS.items():
        path = home / "settings" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    kernel = home / "data" / "kernels" / "python3"  # this Python, whatever else is installed
    kernel.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    spec = {"argv": argv, "display_name": "Python 3 (ipykernel)", "language": "python"}
    (kernel / "kernel.json").write_text(json.dumps(spec))
    env = dict(
        os.environ,
        JUPYTER_CONFIG_DIR=str(home / "config"),
        JUPYTER_DATA_DIR=str(home / "data"),
        JUPYTER_RUNTIME_DIR=str(home / "runtime"),
        JUPYTER_PLATFORM_DIRS="0",
        JUPYTER_PREFER_ENV_PATH="0",  # the data dir above first: its kernel spec wins
        IPYTHONDIR=str(home / "ipython"),
    )
    token = secrets.token_hex(16)
    command = [
        sys.executable, "-m", "jupyter", "lab", "--no-browser",
        "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={free_port()}",
        "--ServerApp.port_retries=50",  # if that port is taken meanwhile, the next free one
        f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
        "--ServerApp.allow_root=True", "--ServerApp.open_browser=False",
        f"--LabApp.user_settings_dir={home / 'settings'}",
        f"--LabApp.workspaces_dir={home / 'workspaces'}",
        "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]  # fmt: skip
    log = (tmp_path / "jupyterlab.log").open("w")
    server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    info = home / "runtime" / f"jpserver-{server.pid}.json"  # written once it listens
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if server.poll() is not None:
                pytest.fail(f"JupyterLab exited ({server.returncode}):\n{_tail(tmp_path)}")
            try:
                base = f"http://127.0.0.1:{json.loads(info.read_text())['port']}"
                if api(base, token, "/api/status", timeout=5)[0] == 200:
                    break
            except (OSError, ValueError, KeyError):  # no info file yet, or no answer yet
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"JupyterLab did not answer in {START_TIMEOUT_S} s:\n{_tail(tmp_path)}")
            time.sleep(0.5)  # polling interval while the server starts
        yield base, token, root
        # Shut down through the API (kernels too), as a user's "Shut Down" does.
        assert api(base, token, "/api/shutdown", method="POST")[0] in (200, 202, 204)
        assert server.wait(timeout=60) == 0, _tail(tmp_path)
    finally:
        if server.poll() is None:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
        log.close()


def _tail(tmp_path: Path, lines: int = 40) -> str:
    text = (tmp_path / "jupyterlab.log").read_text(errors="replace")
    return "\n".join(text.splitlines()[-lines:])


def test_notebook_in_jupyterlab(jupyterlab, tmp_path, capsys):
    base, token, root = jupyterlab
    name, first, images = prepare_root(root)
    assert images > 0, "the notebook has no figure to check"
    with chromium() as browser:
        page = new_page(browser)
        page.goto(f"{base}/lab/tree/{name}?token={token}", wait_until="load")
        notebook = page.locator(".jp-NotebookPanel .jp-Notebook")
        notebook.wait_for(state="visible")
        cells = notebook.locator(".jp-Cell")
        page.wait_for_function(
            "n => document.querySelectorAll('.jp-NotebookPanel .jp-Cell').length >= n",
            arg=len(nbformat.read(root / name, as_version=4).cells),
        )

        # Figures: every saved image output is rendered and loaded.
        page.wait_for_function(
            """n => { const imgs = document.querySelectorAll('.jp-NotebookPanel .jp-OutputArea-output img');
                      return imgs.length >= n && Array.from(imgs).every(i => i.complete && i.naturalWidth > 0); }""",
            arg=images,
        )

        # Solutions: collapsed. JupyterLab's bar shows the source's first line, "# Solution".
        nb = nbformat.read(root / name, as_version=4)
        solutions = [i for i, c in enumerate(nb.cells) if "solution" in c.metadata.get("tags", [])]
        assert solutions
        for i in solutions:
            cell = cells.nth(i)
            assert not cell.locator(".jp-Cell-inputArea").is_visible(), f"solution {i} is open"
            bar = cell.locator(".jp-InputPlaceholder")
            assert bar.is_visible(), f"solution {i}: no collapsed bar"
            assert bar.inner_text().strip().startswith("# Solution"), bar.inner_text()
        if not has_solution_cells(NOTEBOOK):
            assert not page.get_by_text(SOLUTION_MARKER).is_visible()

        # The first code cell runs in the kernel and its output appears.
        cell = cells.nth(first)
        assert cell.locator(".jp-OutputArea-output").count() == 0
        cell.locator(".jp-Cell-inputArea").click()
        page.keyboard.press("Shift+Enter")
        output = cell.locator(".jp-OutputArea-output").first
        output.wait_for(state="visible", timeout=3 * TIMEOUT_MS)  # kernel start + imports
        assert "device:" in output.inner_text()
        page.wait_for_function(
            "el => el.textContent.includes('[1]')",
            arg=cell.locator(".jp-InputPrompt").element_handle(),
        )
        shot = tmp_path / "jupyterlab.png"
        page.screenshot(path=str(shot), animations="disabled")
        with capsys.disabled():
            print(f"\nJupyterLab screenshot: {shot}")
