"""One training loop for every retrieval model (TIGER's seq2seq and SASRec), with model selection.

A model needs ``collate(samples) -> Collated`` (the whole split as row-aligned tensors, built
once), ``loss(batch) -> Tensor`` on a dict of row slices, and ``recommend(histories, k,
users=...) -> (B, k)`` item ids. The loop shuffles the training samples (seeded), groups them
into batches of similar history length (less padding), steps AdamW (weight decay on matrices
only, as nanoGPT) under the chosen learning-rate schedule, evaluates validation Recall@K /
NDCG@K every ``val_every`` epochs with :func:`recall_ndcg`, and keeps the state of the best
epoch by validation Recall@10. The test samples never enter here: report them once, with
:func:`evaluate`, on the chosen model.

:func:`fit_together` trains several models in lockstep, epoch by epoch, each with its own random
state, so a time budget stops all of them after the same number of epochs: a controlled
comparison whatever the machine's speed. :func:`fit` is the one-model case.
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple, Protocol

import torch
from torch import Tensor, nn

from rqvae_lib.config import DEFAULT_SEED, resolve_device, seed_everything
from rqvae_lib.retrieval.metrics import KS, MetricValue, recall_ndcg
from rqvae_lib.retrieval.sequences import RetrievalSamples


class Collated(NamedTuple):
    """A split as tensors: ``inputs`` rows align with the samples; ``padded`` names the inputs
    that are left-padded (B, S) and may be cut to the widest row of a batch (``widths``)."""

    inputs: dict[str, Tensor]
    widths: Tensor  # (N,) int64 on the CPU: columns each row needs, counted from the right
    padded: tuple[str, ...]


class RetrievalModel(Protocol):
    """What the loop needs from a model (an ``nn.Module`` as well)."""

    def collate(self, samples: RetrievalSamples) -> Collated:
        """Every sample of a split as tensors (on the CPU)."""
        ...

    def loss(self, batch: dict[str, Tensor] | RetrievalSamples) -> Tensor:
        """Scalar training loss of a batch (a slice of ``collate``'s inputs, or samples)."""
        ...

    def recommend(
        self, histories: Sequence[Sequence[int]], k: int, users: Sequence[int] | None = None
    ) -> Tensor:
        """Top-k item ids (B, k), best first."""
        ...


@dataclass(frozen=True)
class TrainConfig:
    """Every option of :func:`fit` and :func:`fit_together`, declared once."""

    epochs: int = 20  # at most this many; a time budget may stop earlier
    time_budget_s: float | None = None  # no epoch starts that would end past it (estimated)
    batch_size: int = 256
    lr: float = 1e-3  # peak learning rate
    schedule: Literal["constant", "inverse_sqrt"] = "constant"
    warmup_steps: int = 0  # linear warm-up; then constant, or lr * sqrt(warmup / step) (TIGER)
    weight_decay: float = 0.01  # matrices and embeddings only; no decay on biases and norms
    grad_clip: float | None = 1.0  # max gradient norm; None for no clipping
    bucket_by_length: bool = True  # batches of similar history length, in shuffled order
    amp: bool = True  # bfloat16 autocast on CUDA (ignored on the CPU)
    deterministic: bool = True  # torch's deterministic kernels (slower on a GPU)
    on_nonfinite: Literal["raise", "stop"] = "raise"  # a NaN/inf epoch loss: error, or stop
    # that model there and keep its best validated epoch (recorded in TrainResult.diverged_epoch)
    select_on: str = "recall@10"  # validation metric that picks the best epoch
    val_every: int = 1  # validate every N epochs, and always after the last one
    ks: tuple[int, ...] = KS
    eval_batch_size: int = 256
    exclude_history: bool = False  # the metrics.drop_history rule, for validation too
    log_every: int = 0  # also print the running loss every N steps; 0 for epoch lines only
    verbose: bool = True  # False: print nothing
    seed: int = DEFAULT_SEED
    device: str | None = None  # None: CUDA when available, else CPU

    def __post_init__(self) -> None:
        """Reject settings that could only fail later, naming the option."""
        if self.epochs < 1 or self.batch_size < 1 or self.val_every < 1:
            raise ValueError(
                f"epochs, batch_size and val_every must be >= 1, got {self.epochs}, "
                f"{self.batch_size}, {self.val_every}"
            )
        if self.select_on not in {f"{m}@{k}" for m in ("recall", "ndcg") for k in self.ks}:
            raise ValueError(
                f"select_on={self.select_on!r} is not among the metrics for ks={self.ks}"
            )
        if self.schedule not in ("constant", "inverse_sqrt") or self.warmup_steps < 0:
            raise ValueError(
                f"schedule must be 'constant' or 'inverse_sqrt' and warmup_steps >= 0, got "
                f"{self.schedule!r}, {self.warmup_steps}"
            )
        if self.on_nonfinite not in ("raise", "stop"):
            raise ValueError(f"on_nonfinite must be 'raise' or 'stop', got {self.on_nonfinite!r}")
        if self.time_budget_s is not None and self.time_budget_s <= 0:
            raise ValueError(f"time_budget_s must be positive or None, got {self.time_budget_s}")


class TrainResult(NamedTuple):
    """The best epoch's state (on CPU) and what every epoch measured."""

    best_state: dict[str, Tensor]
    best_epoch: int  # 0-based
    best_metric: float  # the ``select_on`` validation metric of the best epoch
    val_metrics: list[dict[str, MetricValue]]  # one dict per validated epoch
    val_epochs: list[int]  # 0-based epoch of each entry of val_metrics
    train_losses: list[float]  # mean training loss per epoch
    epoch_seconds: list[float]  # wall time of each epoch's training (validation excluded)
    diverged_epoch: int | None = (
        None  # 0-based epoch whose loss was not finite (on_nonfinite="stop")
    )


def subset(samples: RetrievalSamples, index: Sequence[int]) -> RetrievalSamples:
    """The samples at ``index``, in that order."""
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
    fused = bool(params) and params[0].is_cuda  # one kernel for the whole update on a GPU
    return torch.optim.AdamW(groups, lr=lr, fused=fused or None)


def lr_factor(step: int, schedule: str, warmup_steps: int) -> float:
    """Multiplier of the peak learning rate at 0-based ``step``: warm-up, then the schedule."""
    n = step + 1
    warm = min(1.0, n / warmup_steps) if warmup_steps else 1.0
    if schedule == "inverse_sqrt" and warmup_steps and n > warmup_steps:
        return math.sqrt(warmup_steps / n)
    return warm


def batch_order(
    widths: Tensor, batch_size: int, generator: torch.Generator, bucket: bool
) -> list[Tensor]:
    """Shuffled batches of sample indices (CPU int64); with ``bucket``, similar widths together.

    Bucketing sorts each pool of 50 shuffled batches by width, cuts it into batches and shuffles
    the batches again, so every sample is seen once per epoch with far less padding.
    """
    order = torch.randperm(len(widths), generator=generator)
    if not bucket:
        return list(order.split(batch_size))
    batches: list[Tensor] = []
    pool = 50 * batch_size
    for start in range(0, len(order), pool):
        chunk = order[start : start + pool]
        chunk = chunk[torch.sort(widths[chunk], stable=True).indices]
        batches.extend(chunk.split(batch_size))
    shuffle = torch.randperm(len(batches), generator=generator).tolist()
    return [batches[i] for i in shuffle]


def slice_batch(
    data: Collated, device_inputs: dict[str, Tensor], index: Tensor
) -> dict[str, Tensor]:
    """Rows ``index`` of every input, left-padded inputs cut to the widest row among them."""
    width = int(data.widths[index].max())  # on the CPU: no wait for the device
    rows = index.to(next(iter(device_inputs.values())).device, non_blocking=True)
    return {
        name: value[rows, -width:] if name in data.padded else value[rows]
        for name, value in device_inputs.items()
    }


def full_width_batch(data: Collated, device: torch.device) -> dict[str, Tensor]:
    """Every row of ``data`` as one batch on ``device`` (for a model's ``loss`` on samples)."""
    inputs = {name: value.to(device) for name, value in data.inputs.items()}
    return slice_batch(data, inputs, torch.arange(len(data.widths)))


def _autocast(device: torch.device, enabled: bool) -> contextlib.AbstractContextManager:
    if enabled and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


@torch.no_grad()
def evaluate(
    model: RetrievalModel,
    samples: RetrievalSamples,
    ks: Sequence[int] = KS,
    batch_size: int = 256,
    exclude_history: bool = False,
    amp: bool = True,
) -> dict[str, MetricValue]:
    """Recall@K and NDCG@K of ``model.recommend`` over every sample (validation or test)."""
    k = max(ks)
    if exclude_history:  # enough candidates left after the history is dropped
        k += max(len(h) for h in samples.histories)
    device = next(model.parameters()).device  # type: ignore[attr-defined]
    ranked = []
    with _autocast(device, amp):
        for start in range(0, len(samples.targets), batch_size):
            batch = subset(samples, range(start, min(start + batch_size, len(samples.targets))))
            ranked.append(model.recommend(batch.histories, k, users=batch.users).cpu())  # (b, k)
    return recall_ndcg(
        torch.cat(ranked), samples.targets, samples.histories, ks, exclude_history=exclude_history
    )


class _Run:
    """One model's training state in :func:`fit_together`, with its own random streams."""

    def __init__(self, name: str, model: nn.Module, train: RetrievalSamples, cfg: TrainConfig,
                 device: torch.device) -> None:  # fmt: skip
        self.name, self.model, self.cfg, self.device = name, model, cfg, device
        model.to(device)
        self.data: Collated = model.collate(train)  # type: ignore[operator]
        self.device_inputs = {k: v.to(device) for k, v in self.data.inputs.items()}
        self.optimizer = make_optimizer(model, cfg.lr, cfg.weight_decay)
        self.order_rng = torch.Generator().manual_seed(cfg.seed)
        seed_everything(cfg.seed, cfg.deterministic)  # the model's dropout and negatives too
        self.rng = self._get_rng()
        self.step = 0
        self.diverged_epoch: int | None = None
        self.best_state: dict[str, Tensor] = {}
        self.best_epoch, self.best_metric = -1, -math.inf
        self.val_metrics: list[dict[str, MetricValue]] = []
        self.val_epochs: list[int] = []
        self.train_losses: list[float] = []
        self.epoch_seconds: list[float] = []

    def _get_rng(self) -> tuple[Tensor, Tensor | None]:
        cuda = torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None
        return torch.get_rng_state(), cuda

    def _set_rng(self) -> None:
        torch.set_rng_state(self.rng[0])
        if self.rng[1] is not None:
            torch.cuda.set_rng_state(self.rng[1], self.device)

    def train_epoch(self, say) -> None:
        cfg, model = self.cfg, self.model
        self._set_rng()
        model.train()
        start = time.perf_counter()
        total = torch.zeros((), device=self.device)
        running = torch.zeros((), device=self.device)
        for index in batch_order(
            self.data.widths, cfg.batch_size, self.order_rng, cfg.bucket_by_length
        ):
            for group in self.optimizer.param_groups:
                group["lr"] = cfg.lr * lr_factor(self.step, cfg.schedule, cfg.warmup_steps)
            batch = slice_batch(self.data, self.device_inputs, index)
            with _autocast(self.device, cfg.amp):
                loss = model.loss(batch)  # type: ignore[operator]
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip is not None:
                nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            self.optimizer.step()
            self.step += 1
            total += loss.detach().float() * len(index)
            running += loss.detach().float()
            if cfg.log_every and self.step % cfg.log_every == 0:
                say(f"  {self.name} step {self.step}: loss {running.item() / cfg.log_every:.4f}")
                running.zero_()
        self.train_losses.append(total.item() / len(self.data.widths))
        self.epoch_seconds.append(time.perf_counter() - start)
        self.rng = self._get_rng()
        if not math.isfinite(self.train_losses[-1]):
            epoch = len(self.train_losses)
            if cfg.on_nonfinite == "raise":
                raise FloatingPointError(
                    f"{self.name}: the training loss of epoch {epoch} is not finite (the model "
                    "diverged); lower lr, keep grad_clip, or pass on_nonfinite='stop' to keep "
                    "the best epoch validated before it"
                )
            self.diverged_epoch = epoch - 1
            say(f"  {self.name}: loss not finite in epoch {epoch}; stopped, keeping the best "
                "validated epoch before it")  # fmt: skip

    @property
    def active(self) -> bool:
        """Still training (not stopped by a non-finite loss)."""
        return self.diverged_epoch is None

    def validate(self, epoch: int, val: RetrievalSamples) -> tuple[float, bool]:
        cfg = self.cfg
        self.model.eval()
        metrics = evaluate(self.model, val, cfg.ks, cfg.eval_batch_size, cfg.exclude_history,  # type: ignore[arg-type]
                           cfg.amp)  # fmt: skip
        self.val_metrics.append(metrics)
        self.val_epochs.append(epoch)
        current = metrics[cfg.select_on].mean
        improved = current > self.best_metric
        if improved:
            self.best_epoch, self.best_metric = epoch, current
            self.best_state = {
                k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()
            }
        return current, improved

    def result(self) -> TrainResult:
        if not self.best_state:
            raise FloatingPointError(
                f"{self.name}: the loss was not finite before any validated epoch; nothing to keep"
            )
        self.model.load_state_dict(copy.deepcopy(self.best_state))
        self.model.eval()
        return TrainResult(
            self.best_state, self.best_epoch, self.best_metric, self.val_metrics,
            self.val_epochs, self.train_losses, self.epoch_seconds, self.diverged_epoch,
        )  # fmt: skip


def _epochs(cfg: TrainConfig, runs: Sequence[_Run], started: float) -> Iterator[tuple[int, bool]]:
    """Epoch numbers, and whether each is the last: stop at ``epochs`` or before the budget ends."""
    for epoch in range(cfg.epochs):
        last = epoch == cfg.epochs - 1
        yield epoch, last
        if last:
            return
        if cfg.time_budget_s is not None and epoch >= 0:
            spent = time.perf_counter() - started
            per_epoch = spent / (epoch + 1)  # training and validation so far, all models
            if spent + per_epoch > cfg.time_budget_s:
                return


def fit_together(
    models: Mapping[str, nn.Module],
    train: RetrievalSamples,
    val: RetrievalSamples,
    config: TrainConfig | None = None,
) -> dict[str, TrainResult]:
    """Train several models in lockstep on the same samples; each ends on its best epoch.

    Every model trains exactly as :func:`fit` would train it alone (same seed, same batch order,
    its own random state saved and restored around each epoch), and all stop after the same
    epoch, whether ``config.epochs`` or the time budget ends the run. A stop by the budget always
    validates the last epoch, so it can be selected.
    """
    cfg = config or TrainConfig()
    if not models:
        raise ValueError("fit_together needs at least one model")
    device = resolve_device(cfg.device)
    say = print if cfg.verbose else (lambda *_args, **_kwargs: None)
    runs = [_Run(name, model, train, cfg, device) for name, model in models.items()]
    names = ", ".join(f"{r.name} ({type(r.model).__name__})" for r in runs)
    budget = f", at most {cfg.time_budget_s:.0f} s" if cfg.time_budget_s else ""
    say(f"training {names} on {device}: {len(train.targets)} samples, up to {cfg.epochs} "
        f"epochs{budget}")  # fmt: skip
    started = time.perf_counter()
    epoch = -1
    validated = -1
    stop_epochs = _epochs(cfg, runs, started)
    for epoch, last in stop_epochs:
        for run in runs:
            if run.active:
                run.train_epoch(say)
        if not any(run.active for run in runs):
            break
        if last or (epoch + 1) % cfg.val_every == 0:
            _validate_all(runs, epoch, val, cfg, say, started)
            validated = epoch
        else:
            losses = ", ".join(f"{r.name} {r.train_losses[-1]:.4f}" for r in runs)
            say(f"epoch {epoch + 1}: train loss {losses} ({time.perf_counter() - started:.0f} s)")
    if validated != epoch:  # the budget stopped the run between validations
        _validate_all(runs, epoch, val, cfg, say, started)
    return {run.name: run.result() for run in runs}


def _validate_all(runs: Sequence[_Run], epoch: int, val: RetrievalSamples, cfg: TrainConfig,
                  say, started: float) -> None:  # fmt: skip
    parts = []
    for run in runs:
        if not run.active:
            continue
        current, improved = run.validate(epoch, val)
        sem = run.val_metrics[-1][cfg.select_on].sem
        parts.append(f"{run.name} loss {run.train_losses[-1]:.4f} val {cfg.select_on} "
                     f"{current:.4f} +- {sem:.4f}{' (best)' if improved else ''}")  # fmt: skip
    say(f"epoch {epoch + 1}: " + "; ".join(parts) + f" ({time.perf_counter() - started:.0f} s)")


def fit(
    model: nn.Module,
    train: RetrievalSamples,
    val: RetrievalSamples,
    config: TrainConfig | None = None,
    name: str = "model",
) -> TrainResult:
    """Train ``model`` in place, select the epoch with the best validation metric, load it back.

    Seeded by ``config.seed`` (shuffling, dropout, negatives), so the same seed, model
    initialisation and device give the same metrics. The model ends on ``config.device`` holding
    the best epoch's weights. ``name`` labels the progress lines.
    """
    return fit_together({name: model}, train, val, config)[name]
