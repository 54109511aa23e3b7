"""What semantic IDs buy, over seeds: the ID tables downstream (warm) and new items (cold start).

    python benchmarks/seeds.py                          # the CPU budget, every unit below
    python benchmarks/seeds.py --experiments warm --datasets toys --seeds 0
    python benchmarks/seeds.py --threads 1 --out benchmarks/results/seeds.jsonl
    python benchmarks/seeds.py --experiments collab --out benchmarks/results/collab.jsonl

Units, in this order: the warm comparison of every ID table (``rqvae_lib.retrieval.id_tables.
ID_TABLES``) on Beauty for each seed, the cold-start protocol on Beauty for each seed, then the
warm comparison on Toys (``rqvae_lib.retrieval.seeded``: ``run_warm_seed``, ``run_cold_seed``).
The collaborative table (``collab``, only when asked for: ``rqvae-collab``, the RQ-VAE with
LETTER's alignment term against SASRec vectors of the training parts) runs the warm protocol on
its own table, seed by seed, comparable with the warm records of the same seed (every model
trains as it would alone); ``--align-weight W`` trains it with another weight (records
``collab@W``, table ``rqvae-collab@W``, IDs in ``artifacts/retrieval/align-W``).
``collab-kmeans`` does the same for ``rq-kmeans-collab`` (RQ-KMeans on text and SASRec vectors
side by side, training-free). ``cold-collab`` runs the cold-start protocol on both collaborative
tables (their SASRec vectors from the cold split's training parts: a new item has none), without
the baselines, which the ``cold`` unit of the same seed holds.
Each unit appends its records to ``--out`` (JSON lines) when it ends, so a finished unit is
skipped on the next run and processes running other units can share the file; an interrupted one resumes from its last epoch (checkpoints under
``--checkpoint-dir``). The ID tables and their RQ-VAEs are cached in ``artifacts/retrieval``.
Notebook 07 reads the records; ``benchmarks/RESULTS.md`` holds the tables they give.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import git_rev, load, machine, markdown_table, setup_env  # noqa: E402

from rqvae_lib.config import artifacts_dir  # noqa: E402
from rqvae_lib.retrieval.experiment import CPU_BUDGET, FAST_BUDGET, GPU_BUDGET  # noqa: E402
from rqvae_lib.retrieval.seeded import SEEDS  # noqa: E402

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "seeds.jsonl"
EXPERIMENTS = ("warm", "cold", "collab", "collab-kmeans", "cold-collab")
DATASETS = ("beauty", "toys")
BUDGETS = {b.name: b for b in (FAST_BUDGET, CPU_BUDGET, GPU_BUDGET)}


def units(experiments, datasets, seeds) -> list[tuple[str, str, int]]:
    """(experiment, dataset, seed) in run order: Beauty warm, Beauty cold, then Toys warm (and
    Toys cold only when asked for by name)."""
    order = [("warm", "beauty"), ("cold", "beauty"), ("warm", "toys"), ("cold", "toys"),
             ("collab", "beauty"), ("collab", "toys"),
             ("collab-kmeans", "beauty"), ("collab-kmeans", "toys"),
             ("cold-collab", "beauty"), ("cold-collab", "toys")]  # fmt: skip
    return [
        (e, d, s) for e, d in order if e in experiments and d in datasets for s in seeds
    ]  # fmt: skip


def read_done(path: Path, budget: str) -> set[tuple[str, str, int]]:
    """The units whose records (of ``budget``) are already in ``path``."""
    from rqvae_lib.course.seeds import read_seed_records

    if not path.is_file():
        return set()
    return {(r["experiment"], r["dataset"], r["seed"]) for r in read_seed_records(path, budget)}


def append_records(path: Path, records: list[dict]) -> None:
    """Append a unit's records as JSON lines in one locked write: runs of other units (other
    processes) can append to the same file side by side."""
    text = "".join(json.dumps(r) + "\n" for r in records)
    with path.open("a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
        fcntl.flock(f, fcntl.LOCK_UN)


def run_unit(experiment: str, dataset: str, seed: int, args: argparse.Namespace) -> list[dict]:
    """Train and score one unit; its records, stamped with the machine and commit."""
    from rqvae_lib.config import TUTORIAL_CONFIG
    from rqvae_lib.retrieval.experiment import load_retrieval_data
    from rqvae_lib.retrieval.id_tables import COLLAB_TABLES, ID_TABLES, seeded_id_tables
    from rqvae_lib.retrieval.seeded import COLD_TABLES, run_cold_seed, run_warm_seed

    budget = BUDGETS[args.budget]
    resume = args.checkpoint_dir / f"{experiment}-{dataset}-seed{seed}-{budget.name}"
    start = time.perf_counter()
    if experiment in ("cold", "cold-collab"):
        collab = experiment == "cold-collab"
        records = run_cold_seed(dataset, seed, COLLAB_TABLES if collab else COLD_TABLES,
                                budget=budget, directory=args.ids_dir, checkpoint_dir=resume,
                                baselines=not collab)  # fmt: skip
    else:  # the warm protocol: the five tables, or one collaborative table
        data = load_retrieval_data(dataset, max_users=budget.max_users)
        names, ids_dir, config, rename = list(ID_TABLES), args.ids_dir, None, {}
        if experiment == "collab-kmeans":
            names = ["rq-kmeans-collab"]
        elif experiment != "warm":  # collab, or collab@W
            names = ["rqvae-collab"]
            if args.align_weight is not None:
                weight = f"{args.align_weight:g}"
                ids_dir = (args.ids_dir or artifacts_dir() / "retrieval") / f"align-{weight}"
                config = {**TUTORIAL_CONFIG, "align_weight": args.align_weight}
                rename = {"rqvae-collab": f"rqvae-collab@{weight}"}
        sequences = data.sequences if experiment != "warm" else None
        tables = seeded_id_tables(dataset, names, seed, directory=ids_dir, config=config,
                                  sequences=sequences)  # fmt: skip
        records = [dict(r, table=rename.get(r["table"], r["table"]))
                   for r in run_warm_seed(data, tables, seed, budget, resume)]  # fmt: skip
    stamp = dict(unit_seconds=round(time.perf_counter() - start, 1), machine=machine(),
                 load=load(), commit=git_rev(), threads=torch.get_num_threads())  # fmt: skip
    return [dict(r, experiment=experiment, dataset=dataset, seed=seed, budget=budget.name, **stamp)
            for r in records]  # fmt: skip


def _markdown(frame) -> str:
    """A frame (index included) as a markdown table, with ``common.markdown_table``."""
    frame = frame.reset_index() if frame.index.name or frame.index.names[0] else frame
    return markdown_table(frame.to_dict("records"), [str(c) for c in frame.columns])


def summary(path: Path, budget: str) -> str:
    """The records of ``path`` as markdown: per dataset the warm table and its pairs, then the
    cold start (``rqvae_lib.course.seeds`` computes them, as notebook 07 shows them)."""
    from rqvae_lib.course import seeds as tables

    records = tables.read_seed_records(path, budget)
    parts = []
    for dataset in DATASETS:
        warm = tables.warm_table(records, dataset)
        if len(warm):
            pairs = tables.pair_table(records, dataset).round(4)
            parts += [f"### {dataset}: ID tables downstream",
                      _markdown(warm.drop(columns="key").round(4)), _markdown(pairs)]  # fmt: skip
        cold = tables.cold_table(records, dataset)
        if len(cold):
            parts += [f"### {dataset}: new items", _markdown(cold)]
    return "\n\n".join(parts)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--experiments", nargs="+", default=["warm", "cold"], choices=EXPERIMENTS,
                   help="default: warm cold (collab only when named)")  # fmt: skip
    p.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
    p.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    p.add_argument("--budget", default="cpu", choices=list(BUDGETS),
                   help="rqvae_lib.retrieval.experiment's budget (default: cpu)")  # fmt: skip
    p.add_argument("--toys-cold", action="store_true", help="also the cold start on Toys")
    p.add_argument("--align-weight", type=float, default=None,
                   help="the collab table's alignment weight (default: COLLAB_OPTIONS)")  # fmt: skip
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON lines, appended per unit")
    p.add_argument("--ids-dir", type=Path, default=None, help="ID tables (artifacts/retrieval)")
    p.add_argument("--checkpoint-dir", type=Path, default=None,
                   help="resume checkpoints (default: artifacts/seeds-checkpoints)")  # fmt: skip
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: 1)")
    p.add_argument("--summary", action="store_true",
                   help="print the tables of the records in --out and stop")  # fmt: skip
    args = p.parse_args(argv)
    if args.summary:
        print(summary(args.out, args.budget))
        return
    setup_env()
    torch.set_num_threads(args.threads or 1)
    if args.checkpoint_dir is None:
        args.checkpoint_dir = artifacts_dir() / "seeds-checkpoints"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    todo = [
        u for u in units(args.experiments, args.datasets, args.seeds)
        if u[0] not in ("cold", "cold-collab") or u[1] != "toys" or args.toys_cold
    ]  # fmt: skip
    if args.align_weight is not None:  # its own unit name, so each weight resumes on its own
        todo = [(f"collab@{args.align_weight:g}", *u[1:]) if u[0] == "collab" else u for u in todo]
    for unit in todo:
        if unit in read_done(args.out, args.budget):  # read per unit: another run may have it
            print(f"{unit}: in {args.out.name} already", flush=True)
            continue
        print(f"--- {unit} ({machine()})", flush=True)
        records = run_unit(*unit, args)
        append_records(args.out, records)
        for r in records:
            scores = r.get("test", r)
            scores = scores.get("all", scores)  # cold records score groups of users
            print(f"{unit} {r.get('table', r.get('model'))}: Recall@10 {scores['recall@10']}")


if __name__ == "__main__":
    main()
