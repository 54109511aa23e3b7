"""The seq2seq's training speed against a lean plain-PyTorch loop doing the same arithmetic.

    python benchmarks/seq2seq_speed.py                       # Beauty, every user, tiny preset
    python benchmarks/seq2seq_speed.py --preset tiger --device cuda --repeats 3

One epoch of ``rqvae_lib.retrieval.fit`` (its own timing of the training part, validation
excluded) against a loop written here from torch alone: the same model, initial weights, batches
(``batch_order`` with the same seed, left-padded inputs cut to each batch's widest row), loss,
AdamW groups, learning-rate schedule and gradient clipping, and nothing else. Both report the
epoch's mean loss: equal losses show the arithmetic is the same, so the time ratio is the
library's overhead. Runs alternate (lean, library, lean, ...) and the fastest of each is kept.
Targets: within 1.2x of the lean loop; results in ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import load, machine, setup_env  # noqa: E402

from rqvae_lib.config import seed_everything  # noqa: E402
from rqvae_lib.retrieval.experiment import (  # noqa: E402
    CPU_BUDGET,
    load_retrieval_data,
    semantic_id_table,
    seq2seq_model,
)
from rqvae_lib.retrieval.tokens import PAD  # noqa: E402
from rqvae_lib.retrieval.train import TrainConfig, batch_order, fit, lr_factor, subset  # noqa: E402


def lean_epoch(model, train, cfg: TrainConfig, device: torch.device) -> tuple[float, float]:
    """One epoch in plain PyTorch: (seconds of training, mean loss per sample)."""
    seed_everything(cfg.seed, cfg.deterministic)
    model.to(device).train()
    data = model.collate(train)
    tokens, target = data.inputs["tokens"].to(device), data.inputs["target"].to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        [{"params": [p for p in params if p.dim() >= 2], "weight_decay": cfg.weight_decay},
         {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}],
        lr=cfg.learning_rate,
    )  # fmt: skip
    order = batch_order(
        data.widths, cfg.batch_size, torch.Generator().manual_seed(cfg.seed), cfg.bucket_by_length
    )
    total = torch.zeros((), device=device)
    start = time.perf_counter()
    for step, index in enumerate(order):
        for group in optimizer.param_groups:
            group["lr"] = cfg.learning_rate * lr_factor(step, cfg.lr_schedule, cfg.warmup_steps)
        width = int(data.widths[index].max())
        rows = index.to(device)
        x, y = tokens[rows, -width:], target[rows]
        logits = model(x, x == PAD, y)
        loss = F.cross_entropy(logits.flatten(0, 1).float(), y.flatten())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        total += loss.detach() * len(index)
    loss = total.item() / len(data.widths)  # waits for the device
    return time.perf_counter() - start, loss


def library_epoch(model, train, val, cfg: TrainConfig) -> tuple[float, float]:
    """One epoch of ``fit``: (its training seconds, mean loss per sample)."""
    result = fit(model, train, val, cfg)
    return result.epoch_seconds[0], result.train_losses[0]


def replace_config(seed: int, device: str) -> TrainConfig:
    """The CPU budget's seq2seq training settings, one epoch, quiet."""
    return replace(CPU_BUDGET.seq2seq_config(seed, verbose=False), epochs=1, device=device)


def _tiny_val(data):
    """A handful of validation users: ``fit`` validates after its epoch, outside the timing."""
    return subset(data.samples.val, range(8))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--dataset", default="beauty", choices=("beauty", "toys"))
    p.add_argument("--preset", default=CPU_BUDGET.preset)
    p.add_argument("--max-users", type=int, default=None, help="a seeded user subset")
    p.add_argument("--repeats", type=int, default=2, help="epochs timed per loop")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    setup_env()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    data = load_retrieval_data(args.dataset, max_users=args.max_users)
    ids, item_ids = semantic_id_table(args.dataset, "rqvae")
    cfg = replace_config(args.seed, args.device)
    train, val = data.samples.train, _tiny_val(data)
    lean, library = [], []
    for _ in range(args.repeats):
        lean.append(lean_epoch(seq2seq_model(ids, item_ids, args.preset, args.seed), train, cfg,
                               device))  # fmt: skip
        library.append(library_epoch(seq2seq_model(ids, item_ids, args.preset, args.seed), train,
                                     val, cfg))  # fmt: skip
    (lean_s, lean_loss), (lib_s, lib_loss) = min(lean), min(library)
    print(f"{args.dataset}, {len(train.targets):,} training samples, preset {args.preset}, "
          f"batch {cfg.batch_size}, {args.device}; {machine()}; load {load()}")  # fmt: skip
    print(f"| loop | epoch seconds (fastest of {args.repeats}) | epoch loss |")
    print("|---|---|---|")
    print(f"| lean plain PyTorch | {lean_s:.1f} | {lean_loss:.6f} |")
    print(f"| rqvae_lib.retrieval.fit | {lib_s:.1f} | {lib_loss:.6f} |")
    same = math.isclose(lean_loss, lib_loss, rel_tol=1e-5)
    print(f"library / lean: {lib_s / lean_s:.2f}x; same loss: {same}")
    print("every epoch, in run order (s): lean " + ", ".join(f"{t:.1f}" for t, _ in lean)
          + "; library " + ", ".join(f"{t:.1f}" for t, _ in library))  # fmt: skip


if __name__ == "__main__":
    main()
