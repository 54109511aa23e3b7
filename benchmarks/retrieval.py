"""Generative retrieval on Amazon Beauty (and Toys): TIGER's seq2seq on our semantic IDs, the ID
ablation (RQ-VAE vs RQ-KMeans vs random IDs), SASRec with both losses and most-popular, all
scored at the item level on the full ID over every test user.

    python benchmarks/retrieval.py                       # Beauty + Toys, every job, one by one
    python benchmarks/retrieval.py --parallel --out DIR  # each job its own process (one GPU)
    python benchmarks/retrieval.py --datasets beauty --jobs main --preset cpu --budget-s 600

Jobs per dataset: ``main`` (seq2seq on RQ-VAE IDs), ``ablation`` (one seq2seq per ID source,
trained in lockstep, so all three stop after the same epoch), ``sasrec`` (BCE and CE, then
most-popular). A time budget stops training after whole epochs; model selection reads the
validation split only, and the test split is scored once, at the end. The ID tables come from
``rqvae_lib.retrieval.experiment.semantic_id_table`` (cached in ``artifacts/retrieval``; build
them once on a machine with the embeddings: ``--prepare-ids``). Results: ``DIR/retrieval.json``
(every number, curve and setting) and a markdown table on stdout; the measured tables live in
``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from common import REPO, git_rev, machine, markdown_table, setup_env

JOBS = ("main", "ablation", "sasrec")
DATASETS = ("beauty", "toys")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
    p.add_argument("--jobs", nargs="+", default=list(JOBS), choices=JOBS)
    p.add_argument("--ablation-datasets", nargs="+", default=["beauty"], choices=DATASETS,
                   help="datasets that run the ablation job (default: beauty)")  # fmt: skip
    p.add_argument("--preset", default="tiger", help="seq2seq size: tiger, cpu or tiny")
    p.add_argument("--backbone", default="torch", choices=("torch", "t5"),
                   help="seq2seq layers: torch.nn.Transformer or Hugging Face's T5")  # fmt: skip
    p.add_argument("--budget-s", type=float, default=330.0, help="training budget per seq2seq job")
    p.add_argument("--sasrec-budget-s", type=float, default=100.0, help="per SASRec loss")
    p.add_argument("--max-epochs", type=int, default=400)
    p.add_argument("--val-every", type=int, default=5, help="seq2seq validation period (epochs)")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--warmup-steps", type=int, default=1000)
    p.add_argument("--no-amp", action="store_true", help="float32 (TF32 matmuls) instead of bf16")
    p.add_argument("--fast-kernels", action="store_true", help="allow non-deterministic kernels")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--eval-batch-size", type=int, default=512)
    p.add_argument("--max-users", type=int, default=None, help="a seeded user subset (smoke runs)")
    p.add_argument("--device", default=None, help="cpu, cuda; default: CUDA when available")
    p.add_argument("--threads", type=int, default=None, help="torch threads per process")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--ids-dir", default=None, help="ID tables (default artifacts/retrieval)")
    p.add_argument("--prepare-ids", action="store_true", help="build the ID tables and stop")
    p.add_argument("--parallel", action="store_true", help="one process per (dataset, job)")
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results"), help="output folder")
    p.add_argument(
        "--parts-dir", default=None, help="children's results and logs (default OUT/.parts)"
    )
    p.add_argument("--part", default=None, help=argparse.SUPPRESS)  # a child's dataset:job
    return p.parse_args(argv)


def seq2seq_config(args: argparse.Namespace, **overrides):
    from rqvae_lib.retrieval import TrainConfig

    options = dict(
        epochs=args.max_epochs, time_budget_s=args.budget_s, batch_size=args.batch_size,
        lr=args.lr, schedule="inverse_sqrt", warmup_steps=args.warmup_steps,
        val_every=args.val_every, ks=(5, 10), eval_batch_size=args.eval_batch_size,
        seed=args.seed, device=args.device, amp=not args.no_amp,
        deterministic=not args.fast_kernels, on_nonfinite="stop",
    )  # fmt: skip
    return TrainConfig(**{**options, **overrides})


def run_job(dataset: str, job: str, args: argparse.Namespace) -> list[dict]:
    """One (dataset, job): train, select on validation, score the test split once."""
    import torch

    from rqvae_lib.retrieval.experiment import (
        ID_SOURCES,
        load_retrieval_data,
        run_most_popular,
        run_sasrec,
        run_seq2seq,
        semantic_id_table,
    )

    torch.set_float32_matmul_precision("high")  # TF32 on GPUs that have it
    data = load_retrieval_data(dataset, max_users=args.max_users, seed=args.seed)
    test_ks = (5, 10, 20)
    if job == "sasrec":
        rows = []
        for loss in ("bce", "ce"):
            cfg = seq2seq_config(
                args, time_budget_s=args.sasrec_budget_s, schedule="constant", warmup_steps=0,
                val_every=1, eval_batch_size=1024,
            )  # fmt: skip
            rows.append(run_sasrec(data, loss, cfg, test_ks=test_ks)[1])
        rows.append(run_most_popular(data, test_ks))
        return rows
    sources = ("rqvae",) if job == "main" else ID_SOURCES
    tables = {
        s: semantic_id_table(dataset, s, directory=args.ids_dir, seed=args.seed) for s in sources
    }
    out = run_seq2seq(
        data, tables, args.preset, seq2seq_config(args), test_ks=test_ks, backbone=args.backbone
    )
    return [dict(rec, job=job) for _, rec in out.values()]


def print_table(records: list[dict]) -> None:
    from rqvae_lib.retrieval.experiment import results_frame

    frame = results_frame(records)
    print(markdown_table(frame.to_dict("records"), list(frame.columns)))


PATH_OPTIONS = ("--out", "--parts-dir", "--ids-dir")


def portable_command(argv: list[str]) -> str:
    """The command line as results record it: path options relative to the repository
    (``config.display_path``), never this machine's layout."""
    from rqvae_lib.config import display_path

    shown = [
        display_path(arg) if i and argv[i - 1] in PATH_OPTIONS else arg
        for i, arg in enumerate(argv)
    ]
    return " ".join(["benchmarks/retrieval.py", *shown])


def portable_args(args: argparse.Namespace) -> dict:
    """The options as results record them: path options through ``config.display_path``."""
    from rqvae_lib.config import display_path

    paths = {opt.removeprefix("--").replace("-", "_") for opt in PATH_OPTIONS}
    return {k: display_path(v) if k in paths and v else v for k, v in vars(args).items()}


def write_json(path: Path, payload: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload, indent=1))
    os.replace(tmp, path)


def run_parallel(args: argparse.Namespace, argv: list[str], out: Path, header: dict) -> None:
    """Each (dataset, job) in its own process; merge results and logs into ``out`` as they end."""
    parts = Path(args.parts_dir) if args.parts_dir else out / ".parts"
    parts.mkdir(parents=True, exist_ok=True)
    children = {}
    for dataset in args.datasets:
        for job in args.jobs:
            if job == "ablation" and dataset not in args.ablation_datasets:
                continue
            name = f"{dataset}-{job}"
            log = open(parts / f"{name}.log", "w")  # noqa: SIM115 - closed when the child ends
            cmd = [sys.executable, "-u", __file__, *argv, "--part", f"{dataset}:{job}",
                   "--out", str(parts)]  # fmt: skip
            children[name] = (subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT), log)
            print(f"started {name} (pid {children[name][0].pid})", flush=True)
    while True:
        running = [n for n, (p, _) in children.items() if p.poll() is None]
        records = []
        for name in children:
            f = parts / f"{name}.json"
            if f.is_file():
                records += json.loads(f.read_text())["records"]
        write_json(out / "retrieval.json", {**header, "records": records})
        logs = "".join(f"===== {n} =====\n{(parts / f'{n}.log').read_text()}\n" for n in children)
        (out / "retrieval.log").write_text(logs)
        if not running:
            break
        time.sleep(10)
    for name, (proc, log) in children.items():
        log.close()
        print(f"{name}: exit {proc.returncode}")
    print_table(records)


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    setup_env()
    if args.threads:  # before the header, which records the thread count
        import torch

        torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.prepare_ids:
        from rqvae_lib.retrieval.experiment import ID_SOURCES, semantic_id_table

        for dataset in args.datasets:
            for source in ID_SOURCES:
                ids, _ = semantic_id_table(dataset, source, directory=args.ids_dir, seed=args.seed)
                print(f"{dataset} {source}: {tuple(ids.shape)}")
        return
    header = {"machine": machine(), "git": git_rev(), "command": portable_command(argv),
              "date": time.strftime("%Y-%m-%d"), "args": portable_args(args)}  # fmt: skip
    if args.part:
        dataset, job = args.part.split(":")
        records = run_job(dataset, job, args)
        write_json(out / f"{dataset}-{job}.json", {**header, "records": records})
        return
    if args.parallel:
        run_parallel(args, [a for a in argv if a != "--parallel"], out, header)
        return
    records = []
    for dataset in args.datasets:
        for job in args.jobs:
            if job == "ablation" and dataset not in args.ablation_datasets:
                continue
            records += run_job(dataset, job, args)
            write_json(out / "retrieval.json", {**header, "records": records})
    print_table(records)


if __name__ == "__main__":
    main()
