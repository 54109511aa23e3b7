"""Training an RqVae with Lightning: a Trainer with the usage callback, train-and-save, load-or-train."""

from __future__ import annotations

import json
import logging
import os
import time
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any, NamedTuple

import pytorch_lightning as pl
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.loggers import CSVLogger
from torch import Tensor

from .callbacks import CodebookUsageCallback, load_history
from .config import TUTORIAL_CONFIG, TUTORIAL_EPOCHS, artifacts_dir, fast_mode
from .data.datasets import FeatureDataModule
from .io import check_writable
from .model import RqVae

HISTORY_NAME, METRICS_NAME, INFO_NAME = "usage_history.json", "metrics.csv", "train_info.json"


#: Epochs in fast mode (``RQVAE_FAST=1``, on in CI): enough to exercise every step.
FAST_EPOCHS = 15


def default_epochs(fast: bool | None = None) -> int:
    """Epochs a training run takes unless told: FAST_EPOCHS in fast mode, else TUTORIAL_EPOCHS."""
    return FAST_EPOCHS if (fast_mode() if fast is None else fast) else TUTORIAL_EPOCHS


def quiet_lightning() -> None:
    """Silence Lightning's info lines and its warnings about workers and unused GPUs."""
    for name in ("pytorch_lightning", "lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)
    for pattern in (
        ".*does not have many workers.*",
        ".*GPU available but not used.*",
        ".*number of training batches.*",
        ".*LeafSpec.*",
        ".*isinstance.*treespec.*",
    ):
        warnings.filterwarnings("ignore", message=pattern)


def make_trainer(
    max_epochs: int,
    name: str = "rqvae",
    usage_items: Tensor | Iterable | None = None,
    save_dir: str | os.PathLike | None = None,
    quiet: bool | None = None,
    usage_every_n_epochs: int = 1,
    **trainer_kwargs: Any,
) -> pl.Trainer:
    """A Trainer with ``accelerator="auto"``, a CSVLogger, checkpointing and the usage callback.

    Each run logs to a new folder ``<save_dir or artifacts>/logs/<name>/version_<n>/`` (with the
    final weights in ``checkpoints/last.ckpt``), so an earlier run's logs are never overwritten. ``quiet``
    (default: fast mode or CI) turns off progress bars, the model summary and Lightning's info
    lines; training then prints one line every few epochs instead.
    """
    quiet = fast_mode() if quiet is None else quiet
    if quiet:
        quiet_lightning()
    root = Path(save_dir) if save_dir is not None else artifacts_dir() / "logs"
    check_writable(root, "training logs")
    # The final weights as last.ckpt. Writing a checkpoint every epoch would cost more than the
    # usage callback; long runs that must survive a crash go through the command line, whose
    # configs checkpoint every epoch and resume with --ckpt_path last.
    callbacks: list[pl.Callback] = [ModelCheckpoint(save_top_k=0, save_last=True)]
    if usage_items is not None:
        callbacks.append(CodebookUsageCallback(usage_items, usage_every_n_epochs))
    if quiet:
        callbacks.append(EpochPrinter())
    return pl.Trainer(
        max_epochs=max_epochs,
        accelerator="auto",
        devices=1,
        logger=CSVLogger(root, name=name),
        callbacks=callbacks,
        enable_progress_bar=not quiet,
        enable_model_summary=not quiet,
        log_every_n_steps=1,
        deterministic=True,
        **trainer_kwargs,
    )


class EpochPrinter(pl.Callback):
    """Print one short line every ``every`` epochs (about ten lines per fit), for quiet runs."""

    def __init__(self, every: int | None = None) -> None:
        self.every, self.start = every, 0.0

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.start = time.perf_counter()
        self.every = self.every or max(1, trainer.max_epochs // 10)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        epoch = trainer.current_epoch + 1
        if epoch % self.every and epoch != trainer.max_epochs:
            return
        loss = trainer.callback_metrics.get("train_loss")
        text = f"epoch {epoch:>3}/{trainer.max_epochs}"
        if loss is not None:
            text += f"  train_loss {float(loss):.4f}"
        print(f"{text}  ({time.perf_counter() - self.start:.0f} s)", flush=True)


class TrainRun(NamedTuple):
    """What :func:`train_model` returns."""

    model: RqVae
    trainer: pl.Trainer
    history: list[dict]
    metrics_csv: Path
    seconds: float


def catalogue_features(datamodule: pl.LightningDataModule) -> Tensor | Iterable:
    """Every item the datamodule predicts on: its feature tensor, or else its predict loader."""
    if isinstance(datamodule, FeatureDataModule):
        return datamodule.dataset("all").features
    return datamodule.predict_dataloader()


def train_model(
    datamodule: pl.LightningDataModule,
    max_epochs: int | None = None,
    name: str = "rqvae",
    config: dict | None = None,
    quiet: bool | None = None,
    save_dir: str | os.PathLike | None = None,
    usage_every_n_epochs: int = 1,
    collaborative: Any = None,
    **model_kwargs: Any,
) -> TrainRun:
    """Build ``RqVae(**config, **model_kwargs)`` (config defaults to TUTORIAL_CONFIG) and fit it.

    The input width comes from the data (``datamodule.dim``). The usage callback watches the
    datamodule's whole catalogue every ``usage_every_n_epochs`` epochs. ``collaborative`` (with
    ``vectors``, ``item_ids`` and ``known``, as :mod:`rqvae_lib.retrieval.collaborative` makes
    them) is the alignment term's targets, for a config with ``align_weight > 0``.
    """
    max_epochs = default_epochs() if max_epochs is None else max_epochs
    datamodule.prepare_data()
    options = {**(config or TUTORIAL_CONFIG), **model_kwargs}
    if hasattr(datamodule, "dim"):
        options["input_dim"] = datamodule.dim
    model = RqVae(**options)
    if collaborative is not None:
        model.set_collaborative(collaborative.vectors, collaborative.item_ids, collaborative.known)
    trainer = make_trainer(
        max_epochs, name, catalogue_features(datamodule), save_dir, quiet, usage_every_n_epochs
    )
    start = time.perf_counter()
    trainer.fit(model, datamodule=datamodule)
    seconds = time.perf_counter() - start
    callback = next(c for c in trainer.callbacks if isinstance(c, CodebookUsageCallback))
    metrics_csv = Path(trainer.logger.log_dir) / METRICS_NAME
    return TrainRun(model.eval(), trainer, callback.history, metrics_csv, seconds)


def save_run(result: TrainRun, directory: str | os.PathLike, overwrite: bool = False) -> Path:
    """``save_pretrained`` plus the usage history, the metrics CSV and timing, as one folder.

    Written atomically with the model; an existing folder is replaced only with ``overwrite``.
    """
    info = {
        "epochs": result.trainer.current_epoch,
        "seconds": round(result.seconds, 1),
        "accelerator": type(result.trainer.accelerator).__name__,
    }
    extra = {
        HISTORY_NAME: json.dumps(result.history, indent=1) + "\n",
        INFO_NAME: json.dumps(info, indent=1) + "\n",
    }
    if result.metrics_csv.is_file():
        extra[METRICS_NAME] = result.metrics_csv.read_text()
    return result.model.save_pretrained(directory, overwrite=overwrite, extra_files=extra)


def load_or_train(
    directory: str | os.PathLike,
    datamodule: pl.LightningDataModule | None = None,
    max_epochs: int | None = None,
    **train_kwargs: Any,
) -> RqVae:
    """Load the model saved in ``directory``; if there is none, train one and save it there.

    A saved model that fails to load is never replaced: the error says what is wrong, and the
    folder stays as it was (move it away or delete it to retrain).
    """
    directory = Path(directory)
    if directory.exists() and any(directory.iterdir()):
        try:
            return RqVae.from_pretrained(directory)
        except (ValueError, FileNotFoundError) as exc:
            raise type(exc)(
                f"cannot load the model saved in {directory}: {exc}. It was left untouched; "
                "move or delete the folder to train a new one there"
            ) from exc
    if datamodule is None:
        raise FileNotFoundError(f"no model in {directory} and no datamodule given to train one")
    check_writable(directory.parent, "the model")
    print(
        f"No saved model in {directory.name}: training one ({max_epochs or default_epochs()} epochs)."
    )
    result = train_model(datamodule, max_epochs, name=directory.name, **train_kwargs)
    save_run(result, directory)
    return result.model


def load_run_history(directory: str | os.PathLike) -> list[dict]:
    """The per-epoch usage history saved by :func:`save_run` ([] if there is none)."""
    path = Path(directory) / HISTORY_NAME
    return load_history(path) if path.is_file() else []
