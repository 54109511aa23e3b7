"""A Lightning callback that records codebook health over the whole catalogue every epoch."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

import pytorch_lightning as pl

from .evaluate import batch_inference, codebook_stats


class CodebookUsageCallback(pl.Callback):
    """After each training epoch, compute the semantic IDs of ``dataloader`` and record their stats.

    Per level ``l`` (1-based): ``usage_l`` (fraction of codes used), ``perplexity_l`` and
    ``dead_codes_l``; over whole IDs: ``unique_id_rate`` and ``collision_rate``. Each epoch's
    record is appended to ``history`` and logged, so it also lands in the CSV logger's file.
    """

    def __init__(self, dataloader: Iterable, every_n_epochs: int = 1) -> None:
        self.dataloader, self.every_n_epochs = dataloader, every_n_epochs
        self.history: list[dict] = []

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if (trainer.current_epoch + 1) % self.every_n_epochs:
            return
        was_training = pl_module.training
        ids = batch_inference(pl_module, self.dataloader, device=pl_module.device)
        pl_module.train(was_training)
        metrics = usage_metrics(ids, pl_module.quantizer.num_embeddings)
        self.history.append(
            {"epoch": trainer.current_epoch, "step": trainer.global_step, **metrics}
        )
        pl_module.log_dict(metrics, on_step=False, on_epoch=True)

    def save(self, path: str | os.PathLike) -> Path:
        """Write ``history`` as JSON (atomically) and return the path."""
        path = Path(path)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(self.history, indent=1) + "\n")
        os.replace(tmp, path)
        return path


def usage_metrics(ids, num_embeddings: int) -> dict[str, float]:
    """Flat per-level usage, perplexity and dead codes plus ID-level stats, for logging."""
    stats = codebook_stats(ids, num_embeddings)
    out: dict[str, float] = {}
    for lv, (used, ppl) in enumerate(
        zip(stats["unique_codes_per_level"], stats["perplexity_per_level"], strict=True), start=1
    ):
        out[f"usage_l{lv}"] = used / num_embeddings
        out[f"perplexity_l{lv}"] = ppl
        out[f"dead_codes_l{lv}"] = float(num_embeddings - used)
    out["unique_id_rate"] = stats["unique_id_rate"]
    out["collision_rate"] = stats["collision_rate"]
    return out


def load_history(path: str | os.PathLike) -> list[dict]:
    """Read a history written by :meth:`CodebookUsageCallback.save`."""
    return json.loads(Path(path).read_text())
