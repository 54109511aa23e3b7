"""Run the tutorial notebooks headless, in place: ``python -m rqvae_lib.course.tutorial [notebooks...]``.

Each notebook runs top to bottom in the current environment (kernel ``python3``), then is
stripped like ``nbstripout --keep-output --keep-count``: outputs and counts stay, metadata goes.
With no arguments it runs every ``notebooks/NN_*.ipynb``. ``make tutorial`` calls this.
Each header's reading time (a word count) and run time (this run's seconds, date and machine)
are rewritten to match the outputs written; ``--reading-times`` refreshes the word counts alone,
after an edit of the prose, without running anything.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import sys
import time
from pathlib import Path

from rqvae_lib.config import REPO_ROOT, fast_mode
from rqvae_lib.io import atomic_write

#: The reading rate behind the headers' reading times: a steady pace for technical prose.
WORDS_PER_MINUTE = 200
#: The header phrase that states a notebook's reading time, as ``reading_time`` computes it.
READING_TIME = re.compile(r"\d+ min to read its [\d,]+ words(?= of prose)")
#: The header phrase that states how long the run that made the committed outputs took.
RUN_TIME = re.compile(r"the last (?:full|fast)-mode run took [\d,]+ s \([^)]*\)")

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


def reading_time(nb) -> tuple[int, int]:
    """(words of prose, minutes to read them at ``WORDS_PER_MINUTE``) of a notebook's markdown.

    A reproducible count, not a guess: code, figures and exercises take a learner longer, and the
    headers say so beside the number.
    """
    words = sum(len(cell.source.split()) for cell in nb.cells if cell.cell_type == "markdown")
    return words, max(1, round(words / WORDS_PER_MINUTE))


def machine() -> str:
    """A short description of this machine for a run stamp: cores, CPU model, GPU if one is used."""
    model = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = re.findall(r"^model name\s*:\s*(.+)$", cpuinfo.read_text(), re.MULTILINE)
        model = names[0].strip() if names else ""
    model = model or platform.processor() or platform.machine()
    text = f"{os.cpu_count()} CPU cores, {model}"
    try:
        import torch

        if torch.cuda.is_available():
            text += f", GPU {torch.cuda.get_device_name(0)}"
    except ImportError:  # the runner itself needs no torch
        pass
    return text


def stamp_times(nb, seconds: float | None = None, when: str | None = None) -> bool:
    """Rewrite the header's reading time (and run time, when ``seconds`` is given) in place.

    The header's first markdown cell carries the phrases of ``READING_TIME`` and ``RUN_TIME``;
    the runner keeps them true for the outputs it commits. Returns whether anything changed.
    """
    header = next((c for c in nb.cells if c.cell_type == "markdown"), None)
    if header is None:
        return False
    before = header.source
    if seconds is not None:  # first: the machine's name changes the word count
        mode = "fast" if fast_mode() else "full"
        when = when or time.strftime("%Y-%m-%d")
        run = f"the last {mode}-mode run took {seconds:,.0f} s ({when}, {machine()})"
        header.source = RUN_TIME.sub(run, header.source)
    words, minutes = reading_time(nb)
    header.source = READING_TIME.sub(f"{minutes} min to read its {words:,} words", header.source)
    return header.source != before


#: Kernel options for headless runs: the kernel logs errors only (its start-up warning about
#: unencrypted local TCP says nothing a learner can act on; cell timeouts still apply).
QUIET_KERNEL = ["--IPKernelApp.log_level=ERROR"]


def run_notebook(path: str | os.PathLike, timeout: int = 3600) -> float:
    """Execute one notebook in place (working directory: its folder); return the seconds taken."""
    import nbformat
    from nbconvert.preprocessors import ExecutePreprocessor

    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    executor = ExecutePreprocessor(
        timeout=timeout, kernel_name="python3", extra_arguments=QUIET_KERNEL
    )
    executor.preprocess(nb, {"metadata": {"path": str(path.parent)}})
    seconds = time.perf_counter() - start
    stamp_times(nb, seconds)
    atomic_write(path, lambda tmp: nbformat.write(strip_notebook(nb), str(tmp)))
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: notebooks/NN_*.ipynb")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds per cell")
    parser.add_argument(
        "--reading-times", action="store_true", help="only refresh the headers' reading times"
    )
    args = parser.parse_args(argv)
    notebooks = args.notebooks or sorted((REPO_ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    if args.reading_times:
        import nbformat

        for path in notebooks:
            nb = nbformat.read(path, as_version=4)
            if stamp_times(nb):
                atomic_write(path, lambda tmp, nb=nb: nbformat.write(nb, str(tmp)))
                print(f"{path}: reading time updated")
        return 0
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
