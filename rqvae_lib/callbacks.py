"""A Lightning callback that records codebook health over the whole catalogue during training."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

import pytorch_lightning as pl
import torch
from torch import Tensor

from .checks import check_int
from .evaluate import batch_inference, codebook_stats


class CodebookUsageCallback(pl.Callback):
    """Every ``every_n_epochs`` training epochs, compute the catalogue's semantic IDs and record their stats.

    ``items`` is the whole catalogue as a feature tensor (moved to the model's device once and
    encoded there in chunks of ``batch_size``) or any dataloader that ``batch_inference`` takes.
    Per level ``l`` (1-based): ``usage_l`` (fraction of codes used), ``perplexity_l`` and
    ``dead_codes_l``; over whole IDs: ``unique_id_rate`` and ``collision_rate``. Each record is
    appended to ``history`` and logged, so it also lands in the CSV logger's file.
    """

    def __init__(
        self, items: Tensor | Iterable, every_n_epochs: int = 1, batch_size: int = 16384
    ) -> None:
        self.items = items
        self.every_n_epochs = check_int("every_n_epochs", every_n_epochs, 1)
        self.batch_size = check_int("batch_size", batch_size, 1)
        self.history: list[dict] = []

    @torch.no_grad()
    def semantic_ids(self, pl_module: pl.LightningModule) -> Tensor:
        """The IDs of every item under the model as it is now, without changing its mode."""
        if not isinstance(self.items, Tensor):
            was_training = pl_module.training
            try:
                return batch_inference(pl_module, self.items, device=pl_module.device)
            finally:
                pl_module.train(was_training)
        if self.items.device != pl_module.device:
            self.items = self.items.to(pl_module.device)  # once: the catalogue stays there
        chunks = self.items.split(self.batch_size)
        return torch.cat([pl_module.generate_semantic_ids(x) for x in chunks]).cpu()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if (trainer.current_epoch + 1) % self.every_n_epochs:
            return
        metrics = usage_metrics(self.semantic_ids(pl_module), pl_module.quantizer.num_embeddings)
        self.history.append(
            {"epoch": trainer.current_epoch, "step": trainer.global_step, **metrics}
        )
        pl_module.log_dict(metrics, on_step=False, on_epoch=True)


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
    """Read a usage history saved beside a model by :func:`rqvae_lib.training.save_run`."""
    return json.loads(Path(path).read_text())
