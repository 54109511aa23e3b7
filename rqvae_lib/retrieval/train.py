"""One training loop for every retrieval model (TIGER's seq2seq and SASRec), with model selection.

A model only needs ``loss(batch: RetrievalSamples) -> Tensor`` and ``recommend(histories, k,
users=...) -> (B, k)`` item ids. The loop shuffles the training samples (seeded), steps AdamW
(weight decay on matrices only, as nanoGPT), evaluates validation Recall@K / NDCG@K after every
epoch with :func:`recall_ndcg`, and keeps the state of the best epoch by validation Recall@10.
The test samples never enter here: report them once, with :func:`evaluate`, on the chosen model.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol

import torch
from torch import Tensor, nn

from rqvae_lib.config import DEFAULT_SEED, resolve_device, seed_everything
from rqvae_lib.retrieval.metrics import KS, MetricValue, recall_ndcg
from rqvae_lib.retrieval.sequences import RetrievalSamples


class RetrievalModel(Protocol):
    """What the loop needs from a model (an ``nn.Module`` as well)."""

    def loss(self, batch: RetrievalSamples) -> Tensor:
        """Scalar training loss of a batch of samples."""
        ...

    def recommend(
        self, histories: Sequence[Sequence[int]], k: int, users: Sequence[int] | None = None
    ) -> Tensor:
        """Top-k item ids (B, k), best first."""
        ...


@dataclass(frozen=True)
class TrainConfig:
    """Every option of :func:`fit`, declared once."""

    epochs: int = 20
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 0.01  # matrices and embeddings only; no decay on biases and norms
    grad_clip: float | None = 1.0  # max gradient norm; None for no clipping
    select_on: str = "recall@10"  # validation metric that picks the best epoch
    ks: tuple[int, ...] = KS
    eval_batch_size: int = 256
    exclude_history: bool = False  # the metrics.drop_history rule, for validation too
    log_every: int = 100  # print the running loss every N steps; 0 for epoch lines only
    verbose: bool = True  # False: print nothing
    seed: int = DEFAULT_SEED
    device: str | None = None  # None: CUDA when available, else CPU


class TrainResult(NamedTuple):
    """The best epoch's state (on CPU) and what every epoch measured."""

    best_state: dict[str, Tensor]
    best_epoch: int  # 0-based
    best_metric: float  # the ``select_on`` validation metric of the best epoch
    val_metrics: list[dict[str, MetricValue]]  # one dict per epoch
    train_losses: list[float]  # mean training loss per epoch


def _subset(samples: RetrievalSamples, index: Sequence[int]) -> RetrievalSamples:
    return RetrievalSamples(
        [samples.users[i] for i in index],
        [samples.histories[i] for i in index],
        [samples.targets[i] for i in index],
    )


def make_optimizer(model: nn.Module, lr: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW with decay on parameters of 2+ dimensions (weights, embeddings), none on the rest."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=lr)


@torch.no_grad()
def evaluate(
    model: RetrievalModel,
    samples: RetrievalSamples,
    ks: Sequence[int] = KS,
    batch_size: int = 256,
    exclude_history: bool = False,
) -> dict[str, MetricValue]:
    """Recall@K and NDCG@K of ``model.recommend`` over every sample (validation or test)."""
    k = max(ks)
    if exclude_history:  # enough candidates left after the history is dropped
        k += max(len(h) for h in samples.histories)
    ranked = []
    for start in range(0, len(samples.targets), batch_size):
        batch = _subset(samples, range(start, min(start + batch_size, len(samples.targets))))
        ranked.append(model.recommend(batch.histories, k, users=batch.users).cpu())  # (b, k)
    return recall_ndcg(
        torch.cat(ranked), samples.targets, samples.histories, ks, exclude_history=exclude_history
    )


def fit(
    model: nn.Module,
    train: RetrievalSamples,
    val: RetrievalSamples,
    config: TrainConfig | None = None,
) -> TrainResult:
    """Train ``model`` in place, select the epoch with the best validation metric, load it back.

    Seeded by ``config.seed`` (shuffling, dropout, negatives), so the same seed, model
    initialisation and device give the same metrics. The model ends on ``config.device`` holding
    the best epoch's weights.
    """
    cfg = config or TrainConfig()
    if cfg.epochs < 1 or cfg.batch_size < 1:
        raise ValueError(f"epochs and batch_size must be >= 1, got {cfg.epochs}, {cfg.batch_size}")
    if cfg.select_on not in {f"{m}@{k}" for m in ("recall", "ndcg") for k in cfg.ks}:
        raise ValueError(f"select_on={cfg.select_on!r} is not among the metrics for ks={cfg.ks}")
    seed_everything(cfg.seed)
    device = resolve_device(cfg.device)
    model.to(device)
    optimizer = make_optimizer(model, cfg.lr, cfg.weight_decay)
    order_rng = torch.Generator().manual_seed(cfg.seed)
    say = print if cfg.verbose else (lambda *_args, **_kwargs: None)
    say(f"training {type(model).__name__} on {device}: {len(train.targets)} samples, "
        f"{cfg.epochs} epochs")  # fmt: skip

    best_state: dict[str, Tensor] = {}
    best_epoch, best_metric = -1, -math.inf
    val_metrics: list[dict[str, MetricValue]] = []
    train_losses: list[float] = []
    step, running = 0, 0.0  # running: loss summed since the last progress line
    for epoch in range(cfg.epochs):
        model.train()
        order = torch.randperm(len(train.targets), generator=order_rng).tolist()
        total, count = 0.0, 0
        for start in range(0, len(order), cfg.batch_size):
            batch = _subset(train, order[start : start + cfg.batch_size])
            loss = model.loss(batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip is not None:
                nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            step += 1
            value = loss.item()
            total += value * len(batch.targets)
            count += len(batch.targets)
            running += value
            if cfg.log_every and step % cfg.log_every == 0:
                say(f"  step {step}: loss {running / cfg.log_every:.4f}")
                running = 0.0
        train_losses.append(total / count)
        model.eval()
        metrics = evaluate(model, val, cfg.ks, cfg.eval_batch_size, cfg.exclude_history)
        val_metrics.append(metrics)
        current = metrics[cfg.select_on].mean
        improved = current > best_metric
        if improved:
            best_epoch, best_metric = epoch, current
            best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        say(f"epoch {epoch + 1}/{cfg.epochs}: train loss {train_losses[-1]:.4f}, val "
            f"{cfg.select_on} {current:.4f} +- {metrics[cfg.select_on].sem:.4f}"
            f"{' (best)' if improved else ''}")  # fmt: skip
    model.load_state_dict(copy.deepcopy(best_state))
    model.eval()
    return TrainResult(best_state, best_epoch, best_metric, val_metrics, train_losses)
