"""One training loop for every retrieval model (TIGER's seq2seq and SASRec), with model selection.

A model needs ``collate(samples) -> Collated`` (the whole split as row-aligned tensors, built
once), ``loss(batch) -> Tensor`` on a dict of row slices, and ``recommend(histories, k, *,
users=...) -> (B, k)`` item ids. The loop shuffles the training samples (seeded), groups them
into batches of similar history length (less padding), steps AdamW (weight decay on matrices
only, as nanoGPT) under the chosen learning-rate schedule, evaluates validation Recall@K /
NDCG@K every ``val_every`` epochs with :func:`recall_ndcg`, and keeps the state of the best
epoch by validation Recall@10. The test samples never enter here: report them once, with
:func:`evaluate_retrieval`, on the chosen model.

:func:`fit_together` trains several models in lockstep, epoch by epoch, each with its own random
state, so a time budget stops all of them after the same number of epochs: a controlled
comparison whatever the machine's speed. :func:`fit` is the one-model case.

With a ``checkpoint_dir``, each model's whole training state (weights, optimizer, step, random
streams, the best epoch so far and every measurement) is written there after every epoch, and a
later call with the same folder and config continues after the last saved epoch: an interrupted
run ends exactly where an uninterrupted one would.
"""

from __future__ import annotations

import contextlib
import copy
import math
import os
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple, Protocol

import torch
from torch import Tensor, nn

from rqvae_lib.config import DEFAULT_SEED, resolve_device, seed_everything
from rqvae_lib.io import atomic_write, check_writable
from rqvae_lib.retrieval.batches import Collated, slice_batch
from rqvae_lib.retrieval.metrics import KS, MetricValue, recall_ndcg
from rqvae_lib.retrieval.sequences import RetrievalSamples


class RetrievalModel(Protocol):
    """What the loop needs from a model (an ``nn.Module`` as well)."""

    def collate(self, samples: RetrievalSamples) -> Collated:
        """Every sample of a split as tensors (on the CPU)."""
        ...

    def loss(self, batch: dict[str, Tensor] | RetrievalSamples) -> Tensor:
        """Scalar training loss of a batch (a slice of ``collate``'s inputs, or samples)."""
        ...

    def recommend(
        self, histories: Sequence[Sequence[int]], k: int, *, users: Sequence[int] | None = None
    ) -> Tensor:
        """Top-k item ids (B, k), best first."""
        ...


@dataclass(frozen=True)
class TrainConfig:
    """Every option of :func:`fit` and :func:`fit_together`, declared once."""

    epochs: int = 20  # at most this many; a time budget may stop earlier
    time_budget_s: float | None = None  # no epoch starts that would end past it (estimated)
    batch_size: int = 256
    learning_rate: float = 1e-3  # peak learning rate
    lr_schedule: Literal["constant", "inverse_sqrt"] = "constant"
    warmup_steps: int = 0  # linear warm-up; then constant, or peak * sqrt(warmup / step) (TIGER)
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
        if self.lr_schedule not in ("constant", "inverse_sqrt") or self.warmup_steps < 0:
            raise ValueError(
                f"lr_schedule must be 'constant' or 'inverse_sqrt' and warmup_steps >= 0, got "
                f"{self.lr_schedule!r}, {self.warmup_steps}"
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


def make_optimizer(
    model: nn.Module, learning_rate: float, weight_decay: float
) -> torch.optim.AdamW:
    """AdamW with decay on parameters of 2+ dimensions (weights, embeddings), none on the rest."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    fused = bool(params) and params[0].is_cuda  # one kernel for the whole update on a GPU
    return torch.optim.AdamW(groups, lr=learning_rate, fused=fused or None)


def lr_factor(step: int, lr_schedule: str, warmup_steps: int) -> float:
    """Multiplier of the peak learning rate at 0-based ``step``: warm-up, then the schedule."""
    n = step + 1
    warm = min(1.0, n / warmup_steps) if warmup_steps else 1.0
    if lr_schedule == "inverse_sqrt" and warmup_steps and n > warmup_steps:
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


def _autocast(device: torch.device, enabled: bool) -> contextlib.AbstractContextManager:
    if enabled and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


@torch.no_grad()
def evaluate_retrieval(
    model: RetrievalModel,
    samples: RetrievalSamples,
    ks: Sequence[int] = KS,
    batch_size: int = 256,
    exclude_history: bool = False,
    amp: bool = True,
) -> dict[str, MetricValue]:
    """Recall@K and NDCG@K of ``model.recommend`` over every sample (validation or test)."""
    ranked = rank_samples(model, samples, max(ks), batch_size, exclude_history, amp)
    return recall_ndcg(
        ranked, samples.targets, samples.histories, ks, exclude_history=exclude_history
    )


@torch.no_grad()
def rank_samples(
    model: RetrievalModel,
    samples: RetrievalSamples,
    k: int,
    batch_size: int = 256,
    exclude_history: bool = False,
    amp: bool = True,
) -> Tensor:
    """``model.recommend``'s ranked item ids (N, width) for every sample, in batches: ``k`` wide,
    or ``k`` + the longest history with ``exclude_history`` (enough left once it is dropped)."""
    if exclude_history:  # enough candidates left after the history is dropped
        k += max(len(h) for h in samples.histories)
    device = next(model.parameters()).device  # type: ignore[attr-defined]
    ranked = []
    with _autocast(device, amp):
        for start in range(0, len(samples.targets), batch_size):
            batch = subset(samples, range(start, min(start + batch_size, len(samples.targets))))
            ranked.append(model.recommend(batch.histories, k, users=batch.users).cpu())  # (b, k)
    return torch.cat(ranked)


class _Run:
    """One model's training state in :func:`fit_together`, with its own random streams."""

    def __init__(self, name: str, model: nn.Module, train: RetrievalSamples, cfg: TrainConfig,
                 device: torch.device) -> None:  # fmt: skip
        self.name, self.model, self.cfg, self.device = name, model, cfg, device
        model.to(device)
        self.data: Collated = model.collate(train)  # type: ignore[operator]
        self.device_inputs = {k: v.to(device) for k, v in self.data.inputs.items()}
        self.optimizer = make_optimizer(model, cfg.learning_rate, cfg.weight_decay)
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
                group["lr"] = cfg.learning_rate * lr_factor(
                    self.step, cfg.lr_schedule, cfg.warmup_steps
                )
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
                    "diverged); lower learning_rate, keep grad_clip, or pass on_nonfinite='stop' to keep "
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
        metrics = evaluate_retrieval(self.model, val, cfg.ks, cfg.eval_batch_size, cfg.exclude_history,  # type: ignore[arg-type]
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

    def state(self) -> dict[str, Any]:
        """Everything that continues this run exactly: weights, optimizer, random streams,
        the best epoch so far and every measurement (plain types, for ``weights_only`` loads)."""
        return {
            "model_class": type(self.model).__name__,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "step": self.step,
            "order_rng": self.order_rng.get_state(),
            "torch_rng": self.rng[0],
            "cuda_rng": self.rng[1],
            "best_state": self.best_state,
            "best_epoch": self.best_epoch,
            "best_metric": self.best_metric,
            "val_metrics": [{k: tuple(v) for k, v in m.items()} for m in self.val_metrics],
            "val_epochs": list(self.val_epochs),
            "train_losses": list(self.train_losses),
            "epoch_seconds": list(self.epoch_seconds),
            "diverged_epoch": self.diverged_epoch,
        }

    def load_state(self, state: Mapping[str, Any]) -> None:
        """Continue from :meth:`state`'s output (tensors may be on the CPU)."""
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.step = state["step"]
        self.order_rng.set_state(state["order_rng"])
        self.rng = (state["torch_rng"], state["cuda_rng"])
        self.best_state = dict(state["best_state"])
        self.best_epoch, self.best_metric = state["best_epoch"], state["best_metric"]
        self.val_metrics = [
            {k: MetricValue(*v) for k, v in m.items()} for m in state["val_metrics"]
        ]
        self.val_epochs = list(state["val_epochs"])
        self.train_losses = list(state["train_losses"])
        self.epoch_seconds = list(state["epoch_seconds"])
        self.diverged_epoch = state["diverged_epoch"]

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


def _epochs(cfg: TrainConfig, started: float, first: int = 0) -> Iterator[tuple[int, bool]]:
    """Epoch numbers from ``first``, and whether each is the last: stop at ``epochs`` or before
    the budget ends (``started`` is shifted back by the time a resumed run spent before)."""
    for epoch in range(first, cfg.epochs):
        if cfg.time_budget_s is not None and epoch > 0:
            spent = time.perf_counter() - started
            per_epoch = spent / epoch  # training and validation so far, all models
            if spent + per_epoch > cfg.time_budget_s:
                return
        yield epoch, epoch == cfg.epochs - 1


#: Options that only change what is printed: a run may resume with other values.
_PRINT_ONLY = ("verbose", "log_every")
_CHECKPOINT_FORMAT = 1


def checkpoint_path(checkpoint_dir: str | os.PathLike, name: str) -> Path:
    """The file that holds model ``name``'s training state in ``checkpoint_dir``."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "model"
    return Path(checkpoint_dir) / f"{slug}.train-state.pt"


def _samples_fingerprint(train: RetrievalSamples, val: RetrievalSamples) -> str:
    """A cheap digest of the samples (users, targets, history lengths): resuming on other data
    is refused."""
    import hashlib

    digest = hashlib.sha256()
    for split in (train, val):
        lengths = [len(h) for h in split.histories]
        digest.update(repr((list(split.users), list(split.targets), lengths)).encode())
    return digest.hexdigest()


class _Progress(NamedTuple):
    """Where a run of :func:`fit_together` stands (saved with every model's state)."""

    epoch: int  # last finished epoch, 0-based; -1 before the first
    validated: int  # last validated epoch; -1 if none
    elapsed_s: float  # wall time spent so far, over every call
    finished: bool  # the run ended: a later call returns its results without training


def _save_checkpoints(
    directory: Path, runs: Sequence[_Run], progress: _Progress, meta: Mapping[str, Any]
) -> None:
    """Write every run's state, each file atomically (temporary file, then rename).

    All files are written before the first rename (nested :func:`atomic_write` calls), so the
    files disagree about the epoch only if the process dies between two renames.
    """
    items = [
        (checkpoint_path(directory, run.name), {**meta, **progress._asdict(), **run.state()})
        for run in runs
    ]

    def write(index: int) -> None:
        if index < len(items):
            path, state = items[index]
            atomic_write(path, lambda tmp: (torch.save(state, tmp), write(index + 1)))

    write(0)


def _load_checkpoints(
    directory: Path, runs: Sequence[_Run], meta: Mapping[str, Any]
) -> _Progress | None:
    """Restore every run from ``directory`` and return the saved progress; None if the folder
    holds no state for these models. Refuses states from another config, other samples or
    other model classes, and a partial set of files."""
    paths = {run.name: checkpoint_path(directory, run.name) for run in runs}
    present = [name for name, path in paths.items() if path.is_file()]
    if not present:
        return None
    if len(present) != len(runs):
        missing = [name for name in paths if name not in present]
        raise ValueError(
            f"{directory} holds training states for {present} but not for {missing}; resume "
            "with the same models as the interrupted run, or use another checkpoint_dir"
        )
    states = {}
    for run in runs:
        path = paths[run.name]
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # a truncated or foreign file: say which and what to do
            raise ValueError(
                f"{path} is not a readable training state ({err}); delete it to start again"
            ) from err
        if not isinstance(state, dict) or state.get("format") != _CHECKPOINT_FORMAT:
            raise ValueError(f"{path} is not a training state of this library; delete it")
        _check_same_run(path, state, run, meta)
        states[run.name] = state
    progress = {name: _Progress(*(s[f] for f in _Progress._fields)) for name, s in states.items()}
    if len({(p.epoch, p.finished) for p in progress.values()}) > 1:
        epochs = ", ".join(f"{name}: epoch {p.epoch + 1}" for name, p in progress.items())
        raise ValueError(
            f"the training states in {directory} disagree ({epochs}): the run stopped while "
            "saving them; delete them to start again"
        )
    for run in runs:
        run.load_state(states[run.name])
    return next(iter(progress.values()))


def _check_same_run(path: Path, state: Mapping[str, Any], run: _Run, meta: Mapping[str, Any]
                    ) -> None:  # fmt: skip
    """Refuse a state saved under another config, on other samples or for another model."""
    saved, current = state["config"], meta["config"]
    differing = sorted(
        k for k in set(saved) | set(current)
        if k not in _PRINT_ONLY and saved.get(k, "<absent>") != current.get(k, "<absent>")
    )  # fmt: skip
    if differing:
        changes = "; ".join(
            f"{k}: saved {saved.get(k, '<absent>')!r}, now {current.get(k, '<absent>')!r}"
            for k in differing
        )
        raise ValueError(
            f"{path} was written with another TrainConfig ({changes}); resume with the saved "
            "config, or use another checkpoint_dir to start a new run"
        )
    if state["samples"] != meta["samples"]:
        raise ValueError(
            f"{path} was written for other training or validation samples; resume on the same "
            "samples, or use another checkpoint_dir"
        )
    if state["model_class"] != type(run.model).__name__:
        raise ValueError(
            f"{path} holds the training state of a {state['model_class']}, not of "
            f"{run.name}'s {type(run.model).__name__}"
        )


def fit_together(
    models: Mapping[str, nn.Module],
    train: RetrievalSamples,
    val: RetrievalSamples,
    config: TrainConfig | None = None,
    checkpoint_dir: str | os.PathLike | None = None,
) -> dict[str, TrainResult]:
    """Train several models in lockstep on the same samples; each ends on its best epoch.

    Every model trains exactly as :func:`fit` would train it alone (same seed, same batch order,
    its own random state saved and restored around each epoch), and all stop after the same
    epoch, whether ``config.epochs`` or the time budget ends the run. A stop by the budget always
    validates the last epoch, so it can be selected.

    With ``checkpoint_dir``, every model's training state is saved there after each epoch (one
    file per model, :func:`checkpoint_path`). Called again with the same folder, models of the
    same classes, the same samples and config (``verbose`` and ``log_every`` may differ), it
    continues after the last saved epoch and ends exactly as an uninterrupted run; the time
    budget counts the time spent before. A run that finished returns its results at once.
    """
    cfg = config or TrainConfig()
    if not models:
        raise ValueError("fit_together needs at least one model")
    device = resolve_device(cfg.device)
    say = print if cfg.verbose else (lambda *_args, **_kwargs: None)
    directory = None if checkpoint_dir is None else Path(checkpoint_dir).expanduser()
    if directory is not None:
        check_writable(directory, "training checkpoints")
        files = [checkpoint_path(directory, name) for name in models]
        if len(set(files)) != len(files):
            raise ValueError(f"model names {list(models)} share a checkpoint file; rename them")
    runs = [_Run(name, model, train, cfg, device) for name, model in models.items()]
    meta = {"format": _CHECKPOINT_FORMAT, "config": asdict(cfg),
            "samples": _samples_fingerprint(train, val)}  # fmt: skip
    progress = _Progress(-1, -1, 0.0, False)
    if directory is not None:
        progress = _load_checkpoints(directory, runs, meta) or progress
        for run in runs if progress.epoch >= 0 else ():
            if progress.finished:
                say(f"{run.name}: the run in {directory} finished; returning its result")
            else:
                say(f"resuming {run.name} from epoch {progress.epoch + 2} of {directory} "
                    f"({progress.epoch + 1} done, {progress.elapsed_s:.0f} s spent)")  # fmt: skip
    epoch, validated = progress.epoch, progress.validated
    started = time.perf_counter() - progress.elapsed_s

    def save(finished: bool) -> None:
        if directory is not None:
            now = _Progress(epoch, validated, time.perf_counter() - started, finished)
            _save_checkpoints(directory, runs, now, meta)

    if not progress.finished:
        names = ", ".join(f"{r.name} ({type(r.model).__name__})" for r in runs)
        budget = f", at most {cfg.time_budget_s:.0f} s" if cfg.time_budget_s else ""
        say(f"training {names} on {device}: {len(train.targets)} samples, up to {cfg.epochs} "
            f"epochs{budget}")  # fmt: skip
        for epoch, last in _epochs(cfg, started, first=progress.epoch + 1):
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
                say(f"epoch {epoch + 1}: train loss {losses} "
                    f"({time.perf_counter() - started:.0f} s)")  # fmt: skip
            save(finished=False)
        if validated != epoch:  # the budget stopped the run between validations
            _validate_all(runs, epoch, val, cfg, say, started)
            validated = epoch
        save(finished=True)
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
    checkpoint_dir: str | os.PathLike | None = None,
) -> TrainResult:
    """Train ``model`` in place, select the epoch with the best validation metric, load it back.

    Seeded by ``config.seed`` (shuffling, dropout, negatives), so the same seed, model
    initialisation and device give the same metrics. The model ends on ``config.device`` holding
    the best epoch's weights. ``name`` labels the progress lines and the checkpoint file;
    ``checkpoint_dir`` saves the training state after every epoch and resumes from it (see
    :func:`fit_together`).
    """
    return fit_together({name: model}, train, val, config, checkpoint_dir)[name]
