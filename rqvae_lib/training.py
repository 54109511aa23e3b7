"""Training conventions for the notebooks: a Lightning Trainer, train-and-save, load-or-train."""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
import warnings
from pathlib import Path
from typing import Any, NamedTuple

import pytorch_lightning as pl
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.loggers import CSVLogger
from torch.utils.data import DataLoader

from .callbacks import CodebookUsageCallback, load_history
from .config import TIGER_CONFIG, artifacts_dir, fast_mode
from .model import RqVae

HISTORY_NAME, METRICS_NAME, INFO_NAME = "usage_history.json", "metrics.csv", "train_info.json"


def default_epochs(fast: bool | None = None) -> int:
    """Epochs the tutorial trains for: 15 in fast mode, 100 otherwise."""
    return 15 if (fast_mode() if fast is None else fast) else 100


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
    usage_loader: DataLoader | None = None,
    save_dir: str | os.PathLike | None = None,
    quiet: bool | None = None,
    **trainer_kwargs: Any,
) -> pl.Trainer:
    """A Trainer with ``accelerator="auto"``, a CSVLogger, checkpointing and the usage callback.

    Logs go to ``<save_dir or artifacts>/logs/<name>/`` (cleared first). ``quiet`` (default:
    fast mode or CI) turns off progress bars, the model summary and Lightning's info lines.
    """
    quiet = fast_mode() if quiet is None else quiet
    if quiet:
        quiet_lightning()
    root = Path(save_dir) if save_dir is not None else artifacts_dir() / "logs"
    shutil.rmtree(root / name, ignore_errors=True)
    callbacks: list[pl.Callback] = [
        ModelCheckpoint(dirpath=root / name / "checkpoints", filename="{epoch}", save_last=True)
    ]
    if usage_loader is not None:
        callbacks.append(CodebookUsageCallback(usage_loader))
    return pl.Trainer(
        max_epochs=max_epochs,
        accelerator="auto",
        devices=1,
        logger=CSVLogger(root, name=name, version=""),
        callbacks=callbacks,
        enable_progress_bar=not quiet,
        enable_model_summary=not quiet,
        log_every_n_steps=1,
        deterministic=True,
        **trainer_kwargs,
    )


class TrainResult(NamedTuple):
    """What :func:`train_model` returns."""

    model: RqVae
    trainer: pl.Trainer
    history: list[dict]
    metrics_csv: Path
    seconds: float


def usage_loader_for(datamodule: pl.LightningDataModule, batch_size: int = 4096) -> DataLoader:
    """A non-shuffled loader over every item the datamodule predicts on (its whole catalogue)."""
    dataset = datamodule.predict_dataloader().dataset
    return DataLoader(dataset, batch_size=batch_size)


def train_model(
    datamodule: pl.LightningDataModule,
    max_epochs: int | None = None,
    name: str = "rqvae",
    config: dict | None = None,
    quiet: bool | None = None,
    save_dir: str | os.PathLike | None = None,
    **model_kwargs: Any,
) -> TrainResult:
    """Build ``RqVae(**config, **model_kwargs)`` (config defaults to TIGER_CONFIG) and fit it.

    The usage callback watches the datamodule's whole catalogue (``predict_dataloader``); the
    model takes the datamodule's ``seed`` unless one is given.
    """
    max_epochs = default_epochs() if max_epochs is None else max_epochs
    shared_seed = getattr(datamodule, "hparams", {}).get("seed")
    if shared_seed is not None:  # Lightning refuses a model and datamodule with different seeds
        model_kwargs.setdefault("seed", shared_seed)
    model = RqVae(**{**(config or TIGER_CONFIG), **model_kwargs})
    datamodule.prepare_data()
    trainer = make_trainer(max_epochs, name, usage_loader_for(datamodule), save_dir, quiet)
    start = time.perf_counter()
    trainer.fit(model, datamodule=datamodule)
    seconds = time.perf_counter() - start
    callback = next(c for c in trainer.callbacks if isinstance(c, CodebookUsageCallback))
    metrics_csv = Path(trainer.logger.log_dir) / METRICS_NAME
    return TrainResult(model.eval(), trainer, callback.history, metrics_csv, seconds)


def save_run(result: TrainResult, directory: str | os.PathLike) -> Path:
    """``save_pretrained`` plus the usage history, the metrics CSV and timing next to the weights."""
    directory = result.model.save_pretrained(directory)
    (directory / HISTORY_NAME).write_text(json.dumps(result.history, indent=1) + "\n")
    if result.metrics_csv.is_file():
        shutil.copyfile(result.metrics_csv, directory / METRICS_NAME)
    info = {
        "epochs": result.trainer.current_epoch,
        "seconds": round(result.seconds, 1),
        "accelerator": type(result.trainer.accelerator).__name__,
    }
    (directory / INFO_NAME).write_text(json.dumps(info, indent=1) + "\n")
    return directory


def load_or_train(
    directory: str | os.PathLike,
    datamodule: pl.LightningDataModule | None = None,
    max_epochs: int | None = None,
    **train_kwargs: Any,
) -> RqVae:
    """Load the model saved in ``directory``; if there is none (or it no longer fits ``RqVae``),
    train one and save it there."""
    directory = Path(directory)
    if (directory / "config.json").is_file():
        try:
            return RqVae.from_pretrained(directory)
        except ValueError as exc:  # saved by another version of RqVae: retrain if we can
            if datamodule is None:
                raise
            print(f"Cannot load {directory} ({exc}); retraining.")
    if datamodule is None:
        raise FileNotFoundError(f"no model in {directory} and no datamodule given to train one")
    print(f"No saved model in {directory}: training one ({max_epochs or default_epochs()} epochs).")
    result = train_model(datamodule, max_epochs, name=directory.name, **train_kwargs)
    save_run(result, directory)
    return result.model


def load_run_history(directory: str | os.PathLike) -> list[dict]:
    """The per-epoch usage history saved by :func:`save_run` ([] if there is none)."""
    path = Path(directory) / HISTORY_NAME
    return load_history(path) if path.is_file() else []
