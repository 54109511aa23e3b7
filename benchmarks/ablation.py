"""Notebook 04's controlled comparison over seeds: every variant and RQ-KMeans, per seed.

    python benchmarks/ablation.py --seeds 1 2 3 --threads 1       # Beauty, 100 epochs
    for s in 1 2 3; do python benchmarks/ablation.py --seeds $s --threads 1 & done; wait

Each run trains (or loads, from ``artifacts/rqvae-04-*-seed<n>``) one variant of
``rqvae_lib.course.ablation.VARIANTS`` from ``seed_everything(seed)``, scores it as notebook 04
does (codebook statistics over the catalogue, relative error on the test items) and appends one
JSON line to ``--out`` at once, so an interrupted run resumes where it stopped; runs of other
seeds can append to the same file side by side. Notebook 04 trains seed 42 itself and reads this
file for the spread over the other seeds. The summary prints mean ± standard deviation.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import git_rev, load, machine, setup_env  # noqa: E402

from rqvae_lib.config import TUTORIAL_BATCH_SIZE, TUTORIAL_EPOCHS, data_root  # noqa: E402
from rqvae_lib.course.ablation import (  # noqa: E402
    RQ_KMEANS,
    VARIANTS,
    mean_sd_table,
    read_records,
    rq_kmeans_run,
    seed_summary,
    train_variant,
    usage_snapshot,
)
from rqvae_lib.data import ItemDataModule  # noqa: E402

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "ablation-beauty.jsonl"


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--split", default="beauty")
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--epochs", type=int, default=TUTORIAL_EPOCHS)
    p.add_argument(
        "--models", nargs="+", default=[*VARIANTS, RQ_KMEANS], choices=[*VARIANTS, RQ_KMEANS]
    )
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON lines, appended as it goes")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = p.parse_args(argv)

    setup_env()
    if args.threads:
        torch.set_num_threads(args.threads)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    done = set()
    if args.out.is_file():
        done = {(r["model"], r["seed"], r["epochs"]) for r in read_records(args.out)}

    dm = ItemDataModule(data_root(), args.split, batch_size=TUTORIAL_BATCH_SIZE)
    dm.prepare_data()
    new = []
    for seed in args.seeds:
        for name in args.models:
            if (name, seed, args.epochs) in done:
                continue
            if name == RQ_KMEANS:
                run = rq_kmeans_run(dm, num_levels=3, num_embeddings=256, seed=seed)
            else:
                run = train_variant(name, dm, args.epochs, seed=seed)
            record = {
                "model": name,
                "seed": seed,
                "epochs": args.epochs if name != RQ_KMEANS else 0,
                "split": args.split,
                "options": VARIANTS.get(name, {}),
                "row": run.row,
                "usage": usage_snapshot(run.history, 256),
                "seconds": round(run.seconds, 1),
                "machine": machine(),
                "load": load(),
                "commit": git_rev(),
            }
            if name == RQ_KMEANS:
                record["epochs"] = args.epochs  # scored beside the variants of these epochs
            with args.out.open("a") as f:
                f.write(json.dumps(record) + "\n")
                f.flush()
                os.fsync(f.fileno())
            new.append(record)
            print(f"seed {seed:>3} {name:<22} {run.row}", flush=True)

    records = [r for r in read_records(args.out) if r["epochs"] == args.epochs]
    summary = seed_summary(records)
    models = [m for m in [*VARIANTS, RQ_KMEANS] if m in summary.index.get_level_values(0)]
    print(f"\n{args.split}, {args.epochs} epochs, mean ± sd over seeds ({machine()})")
    print(mean_sd_table(summary, models).to_string())
    return new


if __name__ == "__main__":
    main()
