"""Run the tutorial notebooks headless, in place: ``python -m rqvae_lib.course.tutorial [notebooks...]``.

Each notebook runs top to bottom in the current environment (kernel ``python3``), then is
stripped like ``nbstripout --keep-output --keep-count``: outputs and counts stay, metadata goes.
With no arguments it runs every ``notebooks/NN_*.ipynb``. ``make tutorial`` calls this.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from rqvae_lib.config import REPO_ROOT, fast_mode
from rqvae_lib.io import atomic_write

#: Metadata nbstripout removes by default, plus what changes from machine to machine.
STRIP_KEYS = [
    "metadata.signature",
    "metadata.widgets",
    "metadata.language_info.version",
    "metadata.language_info.codemirror_mode",
    "metadata.language_info.pygments_lexer",
    "cell.metadata.collapsed",
    "cell.metadata.ExecuteTime",
    "cell.metadata.execution",
    "cell.metadata.heading_collapsed",
    "cell.metadata.hidden",
    "cell.metadata.scrolled",
]
KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}


def strip_notebook(nb):
    """Strip metadata in place like ``nbstripout --keep-output --keep-count``; pin the kernel.

    Cells tagged ``solution`` lose their outputs and counts too: a committed output would give
    the answer away in JupyterLab (which shows a collapsed cell's output), on GitHub and in nbviewer.
    """
    from nbstripout import strip_output

    strip_output(nb, keep_output=True, keep_count=True, keep_id=False, extra_keys=STRIP_KEYS)
    for cell in nb.cells:
        if cell.cell_type == "code" and "solution" in cell.metadata.get("tags", []):
            cell.outputs, cell.execution_count = [], None
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    return nb


def run_notebook(path: str | os.PathLike, timeout: int = 3600) -> float:
    """Execute one notebook in place (working directory: its folder); return the seconds taken."""
    import nbformat
    from nbconvert.preprocessors import ExecutePreprocessor

    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    ExecutePreprocessor(timeout=timeout, kernel_name="python3").preprocess(
        nb, {"metadata": {"path": str(path.parent)}}
    )
    seconds = time.perf_counter() - start
    atomic_write(path, lambda tmp: nbformat.write(strip_notebook(nb), str(tmp)))
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: notebooks/NN_*.ipynb")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds per cell")
    args = parser.parse_args(argv)
    notebooks = args.notebooks or sorted((REPO_ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    mode = "fast" if fast_mode() else "full"
    print(f"running {len(notebooks)} notebook(s) in {mode} mode", flush=True)
    total = 0.0
    for nb in notebooks:
        print(f"{nb} ...", end=" ", flush=True)
        try:
            seconds = run_notebook(nb, args.timeout)
        except Exception as exc:  # report which notebook failed, then stop
            print(f"FAILED\n{exc}", file=sys.stderr)
            return 1
        total += seconds
        print(f"{seconds:.0f} s", flush=True)
    print(f"all notebooks took {total:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
