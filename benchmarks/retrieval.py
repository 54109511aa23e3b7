"""Generative retrieval on Amazon Beauty (and Toys): TIGER's seq2seq on our semantic IDs, the ID
ablation (RQ-VAE vs RQ-KMeans vs random IDs), SASRec with both losses and most-popular, all
scored at the item level on the full ID over every test user.

    python benchmarks/retrieval.py                       # the GPU budget: Beauty + Toys, every job
    python benchmarks/retrieval.py --parallel --out DIR  # each job its own process (one GPU)
    python benchmarks/retrieval.py --budget cpu --datasets beauty --jobs main
    python benchmarks/retrieval.py --batch-size 1024 --learning-rate 2e-3 --warmup-steps 250

``--budget {fast,cpu,gpu}`` names one of the budgets declared in
``rqvae_lib.retrieval.experiment`` (``FAST_BUDGET``, ``CPU_BUDGET``, ``GPU_BUDGET``, default
``gpu``): it supplies the defaults of the model size, user subset, epochs, time budgets, learning
rate, warm-up, validation, test cut-offs and kernels, so a run under a budget trains as notebook
06 does under it. Every option overrides its budget's value.

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
from dataclasses import replace
from pathlib import Path

from common import REPO, git_rev, machine, markdown_table, setup_env

JOBS = ("main", "ablation", "sasrec")
DATASETS = ("beauty", "toys")


def optional(cast):
    """An option type that also reads ``none`` (no limit, every user) as None."""

    def parse(text: str):
        return None if text.lower() == "none" else cast(text)

    parse.__name__ = cast.__name__  # argparse names the type in its error messages
    return parse


def budgets() -> dict:
    """The retrieval budgets declared in ``rqvae_lib.retrieval.experiment``, by name."""
    from rqvae_lib.retrieval.experiment import CPU_BUDGET, FAST_BUDGET, GPU_BUDGET

    return {b.name: b for b in (FAST_BUDGET, CPU_BUDGET, GPU_BUDGET)}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The options; those that a budget declares default to its values (``--budget``)."""
    from rqvae_lib.retrieval.experiment import SEQ2SEQ_PRESETS

    known = budgets()
    first = argparse.ArgumentParser(add_help=False)
    first.add_argument("--budget", default="gpu", choices=list(known),
                       help="the budget that supplies the defaults (default: gpu)")  # fmt: skip
    b = known[first.parse_known_args(argv)[0].budget]
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter, parents=[first]
    )
    p.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
    p.add_argument("--jobs", nargs="+", default=list(JOBS), choices=JOBS)
    p.add_argument("--ablation-datasets", nargs="+", default=["beauty"], choices=DATASETS,
                   help="datasets that run the ablation job (default: beauty)")  # fmt: skip
    p.add_argument("--preset", default=b.preset, choices=list(SEQ2SEQ_PRESETS),
                   help="seq2seq size (default: the budget's, %(default)s)")  # fmt: skip
    p.add_argument("--backbone", default="torch", choices=("torch", "t5"),
                   help="seq2seq layers: torch.nn.Transformer or Hugging Face's T5")  # fmt: skip
    p.add_argument("--time-budget-s", "--budget-s", type=optional(float), default=b.time_budget_s,
                   help="seq2seq training seconds per job (default: %(default)s)")  # fmt: skip
    p.add_argument("--sasrec-budget-s", type=optional(float), default=b.sasrec_budget_s,
                   help="SASRec training seconds per loss (default: %(default)s)")  # fmt: skip
    p.add_argument("--epochs", "--max-epochs", type=int, default=b.epochs,
                   help="seq2seq epochs at most (default: %(default)s)")  # fmt: skip
    p.add_argument("--sasrec-epochs", "--sasrec-max-epochs", type=int, default=b.sasrec_epochs,
                   help="SASRec epochs at most (default: %(default)s)")  # fmt: skip
    p.add_argument("--val-every", type=int, default=b.val_every,
                   help="seq2seq validation period in epochs (default: %(default)s)")  # fmt: skip
    p.add_argument("--val-users", type=optional(int), default=b.val_users,
                   help="validation users that select the best epoch (default: %(default)s; "
                        "none: all)")  # fmt: skip
    p.add_argument("--learning-rate", type=float, default=b.learning_rate,
                   help="seq2seq peak learning rate (default: %(default)s)")  # fmt: skip
    p.add_argument("--warmup-steps", type=int, default=b.warmup_steps,
                   help="seq2seq linear warm-up steps (default: %(default)s)")  # fmt: skip
    p.add_argument("--test-ks", type=int, nargs="+", default=list(b.test_ks),
                   help="cut-offs of the test table; the beam is as wide as the largest "
                        "(default: %(default)s)")  # fmt: skip
    p.add_argument("--amp", action=argparse.BooleanOptionalAction, default=b.amp,
                   help="bf16 autocast on CUDA; --no-amp: float32 with TF32 matmuls "
                        "(default: %(default)s)")  # fmt: skip
    p.add_argument("--deterministic", action=argparse.BooleanOptionalAction,
                   default=b.deterministic,
                   help="torch's deterministic kernels (default: %(default)s)")  # fmt: skip
    p.add_argument(
        "--fast-kernels", dest="deterministic", action="store_false", help=argparse.SUPPRESS
    )  # the spelling of earlier records' commands
    p.add_argument(
        "--no-fast-kernels", dest="deterministic", action="store_true", help=argparse.SUPPRESS
    )
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--eval-batch-size", type=int, default=512)
    p.add_argument("--max-users", type=optional(int), default=b.max_users,
                   help="a seeded user subset (default: %(default)s; none: all)")  # fmt: skip
    p.add_argument("--device", default=None, help="cpu, cuda; default: CUDA when available")
    p.add_argument("--threads", type=int, default=None, help="torch threads per process")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--ids-dir", default=None, help="ID tables (default artifacts/retrieval)")
    p.add_argument("--prepare-ids", action="store_true", help="build the ID tables and stop")
    p.add_argument(
        "--checkpoint-dir", default=None,
        help="save every model's training state after each epoch in DIR/<dataset>-<job>/; run "
        "the same command again to resume an interrupted run from its last epoch",
    )  # fmt: skip
    p.add_argument("--parallel", action="store_true", help="one process per (dataset, job)")
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results"), help="output folder")
    p.add_argument(
        "--parts-dir", default=None, help="children's results and logs (default OUT/.parts)"
    )
    p.add_argument("--part", default=None, help=argparse.SUPPRESS)  # a child's dataset:job
    return p.parse_args(argv)


def seq2seq_config(args: argparse.Namespace):
    """The seq2seq models' ``TrainConfig``: the budget's, with this run's options."""
    return replace(
        budgets()[args.budget].seq2seq_config(seed=args.seed), epochs=args.epochs,
        time_budget_s=args.time_budget_s, batch_size=args.batch_size,
        learning_rate=args.learning_rate, warmup_steps=args.warmup_steps,
        val_every=args.val_every, eval_batch_size=args.eval_batch_size, device=args.device,
        amp=args.amp, deterministic=args.deterministic,
    )  # fmt: skip


def sasrec_config(args: argparse.Namespace):
    """SASRec's ``TrainConfig``: the budget's (constant learning rate), with this run's options."""
    return replace(
        budgets()[args.budget].sasrec_config(seed=args.seed), epochs=args.sasrec_epochs,
        time_budget_s=args.sasrec_budget_s, batch_size=args.batch_size, eval_batch_size=1024,
        device=args.device, amp=args.amp, deterministic=args.deterministic,
    )  # fmt: skip


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
    test_ks = tuple(args.test_ks)
    resume = None if args.checkpoint_dir is None else Path(args.checkpoint_dir) / f"{dataset}-{job}"
    if job == "sasrec":
        rows = [
            run_sasrec(data, loss, sasrec_config(args), test_ks, args.val_users, resume)[1]
            for loss in ("bce", "ce")
        ]
        rows.append(run_most_popular(data, test_ks))
        return rows
    sources = ("rqvae",) if job == "main" else ID_SOURCES
    tables = {
        s: semantic_id_table(dataset, s, directory=args.ids_dir, seed=args.seed) for s in sources
    }
    out = run_seq2seq(
        data, tables, args.preset, seq2seq_config(args), test_ks=test_ks,
        val_users=args.val_users, backbone=args.backbone, checkpoint_dir=resume,
    )  # fmt: skip
    return [dict(rec, job=job) for _, rec in out.values()]


def print_table(records: list[dict]) -> None:
    from rqvae_lib.course.retrieval import results_frame

    frame = results_frame(records)
    print(markdown_table(frame.to_dict("records"), list(frame.columns)))


PATH_OPTIONS = ("--out", "--parts-dir", "--ids-dir", "--checkpoint-dir")


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
