"""What a prefix groups, over seeds: categories against pairs of items, for the content and the
collaborative ID tables (notebook 08, section 4, on every seed).

    python benchmarks/collab_agreement.py                       # Beauty and Toys, seeds 0-2
    python benchmarks/collab_agreement.py --datasets beauty --seeds 0
    python benchmarks/collab_agreement.py --summary             # the changes, as markdown

For each dataset and seed, ``rqvae_lib.course.collab.seed_agreement`` reads the seed's four ID
tables (``AGREEMENT_TABLES``; fitted and cached in ``artifacts/retrieval`` as
``benchmarks/seeds.py`` does, when missing) and measures, per table and prefix depth, the
leave-one-out sub-category vote and the share of training and held-out pairs under one prefix
(with its lift over chance). Records go to ``--out`` (JSON lines), one per table and depth,
appended per (dataset, seed) unit; a unit in the file already is skipped.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import git_rev, machine, markdown_table, setup_env  # noqa: E402

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "collab_agreement.jsonl"
DATASETS = ("beauty", "toys")
#: The measures whose change the summary reports.
COLUMNS = ("category", "training pairs lift", "held-out pairs", "held-out pairs lift")


def read_records(path: Path) -> list[dict]:
    """The JSON lines of ``path`` (none when it does not exist)."""
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def unit_records(dataset: str, seed: int) -> list[dict]:
    """One record per table and depth of ``seed_agreement(dataset, seed)``."""
    from rqvae_lib.course.collab import seed_agreement

    frame = seed_agreement(dataset, seed).reset_index()
    stamp = dict(dataset=dataset, seed=seed, machine=machine(), commit=git_rev())
    return [dict(stamp, **row) for row in frame.to_dict("records")]


def summary(path: Path) -> str:
    """Per dataset and measure, the change from each content table to its collaborative version
    over seeds (``rqvae_lib.course.collab.agreement_changes``), as markdown."""
    from rqvae_lib.course.collab import agreement_changes

    records, parts = read_records(path), []
    for dataset in DATASETS:
        for column in COLUMNS:
            changes = agreement_changes(records, dataset, column)
            if len(changes):
                frame = changes.reset_index().round(4)
                parts += [f"### {dataset}: {column}",
                          markdown_table(frame.to_dict("records"), list(frame.columns))]  # fmt: skip
    return "\n\n".join(parts)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON lines, appended per unit")
    p.add_argument("--summary", action="store_true", help="print the changes in --out and stop")
    args = p.parse_args(argv)
    if args.summary:
        print(summary(args.out))
        return
    setup_env()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    done = {(r["dataset"], r["seed"]) for r in read_records(args.out)}
    for dataset in args.datasets:
        for seed in args.seeds:
            if (dataset, seed) in done:
                print(f"{dataset} seed {seed}: in {args.out.name} already", flush=True)
                continue
            records = unit_records(dataset, seed)
            with args.out.open("a") as f:  # one write per unit: whole lines
                f.write("".join(json.dumps(r) + "\n" for r in records))
            print(f"{dataset} seed {seed}: {len(records)} records", flush=True)


if __name__ == "__main__":
    main()
