"""RqVae: encoder -> residual quantizer -> decoder, as a LightningModule with save/load."""

from __future__ import annotations

import inspect
import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import Tensor

from .modules import Decoder, Encoder
from .quantizer import ResidualQuantizer

CONFIG_NAME, WEIGHTS_NAME = "config.json", "model.safetensors"


class RqVae(pl.LightningModule):
    """Residual-Quantized VAE that turns item embeddings into semantic IDs.

    The first six arguments and their defaults are the reference API's. Keyword options:
    ``num_levels`` (codebook levels; the ID length), ``kmeans_init`` and ``dead_code_steps``
    (keep codebooks alive; on by default), ``use_cosine`` (compare directions only),
    ``recon_weight`` (weight of the reconstruction term in the total loss: 1 is the reference's
    ``recon + commitment + embedding``; larger trades collisions for accuracy), ``weight_decay``,
    ``lr_schedule`` (``"plateau"``: ReduceLROnPlateau; ``"cosine"``: cosine decay to 0 over the
    fit, per step), ``balance_rate`` (a per-code distance bias that evens out code usage; 0 is
    off) and ``seed``.
    ``hidden_dim`` may be a list, e.g. ``[512, 256, 128]`` with ``latent_dim=32`` for TIGER.

    Semantic IDs have shape ``(batch, num_levels)``: column ``l`` is the code chosen at level
    ``l``. The reference's single-quantizer ``(batch,)`` ID is the ``num_levels=1`` case,
    ``ids[:, 0]``.
    """

    def __init__(
        self,
        input_dim: int = 768,
        hidden_dim: int | list[int] = 512,
        latent_dim: int = 256,
        num_embeddings: int = 1024,
        commitment_cost: float = 0.25,
        learning_rate: float = 1e-3,
        *,
        num_levels: int = 3,
        kmeans_init: bool = True,
        dead_code_steps: int = 10,
        use_cosine: bool = False,
        recon_weight: float = 1.0,
        weight_decay: float = 0.0,
        lr_schedule: str = "plateau",
        seed: int = 0,
        balance_rate: float = 0.0,
    ) -> None:
        super().__init__()
        if lr_schedule not in ("plateau", "cosine"):
            raise ValueError(f"lr_schedule must be 'plateau' or 'cosine', got {lr_schedule!r}")
        if isinstance(hidden_dim, Sequence):
            hidden_dim = [int(h) for h in hidden_dim]
        self.save_hyperparameters()
        self.input_dim, self.latent_dim, self.learning_rate = input_dim, latent_dim, learning_rate
        self.encoder = Encoder(input_dim, hidden_dim, latent_dim)
        self.quantizer = ResidualQuantizer(
            num_levels,
            num_embeddings,
            latent_dim,
            commitment_cost,
            kmeans_init=kmeans_init,
            dead_code_steps=dead_code_steps,
            use_cosine=use_cosine,
            seed=seed,
            balance_rate=balance_rate,
        )
        self.decoder = Decoder(latent_dim, hidden_dim, input_dim)

    # --- the model ------------------------------------------------------------------------
    def check_features(self, features: Any) -> Tensor:
        """Raise a clear error unless ``features`` is a finite, non-empty float (batch, input_dim) tensor."""
        if not isinstance(features, Tensor):
            raise TypeError(
                f"expected features as a torch.Tensor of shape (batch, {self.input_dim}), got {type(features).__name__}"
            )
        if features.dim() != 2 or features.shape[1] != self.input_dim:
            raise ValueError(
                f"expected features of shape (batch, {self.input_dim}), got {tuple(features.shape)}"
            )
        if features.shape[0] == 0:
            raise ValueError(
                f"expected at least one row of features, got an empty batch of shape {tuple(features.shape)}"
            )
        if not features.is_floating_point():
            raise TypeError(
                f"expected floating-point features (e.g. torch.float32), got {features.dtype}; call .float() first"
            )
        if not torch.isfinite(features).all():
            bad = int((~torch.isfinite(features)).any(dim=1).sum())
            raise ValueError(
                f"expected finite features, got NaN or inf in {bad} of {features.shape[0]} rows"
            )
        return features

    def encode(self, features: Tensor) -> Tensor:
        """Encode features ``(batch, input_dim)`` to latents ``(batch, latent_dim)``."""
        return self.encoder(self.check_features(features))

    def forward(self, features: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Return ``(reconstructed, commitment_loss, embedding_loss, semantic_ids)``; ids are ``(batch, num_levels)``."""
        quantized, commitment_loss, embedding_loss, ids = self.quantizer(self.encode(features))
        return self.decoder(quantized), commitment_loss, embedding_loss, ids

    @torch.no_grad()
    def generate_semantic_ids(self, features: Tensor, deduplicate: bool = False) -> Tensor:
        """Semantic IDs ``(batch, num_levels)``, int64. Never changes the codebooks.

        ``deduplicate=True`` makes the last level a balanced assignment over this batch (see
        ``ResidualQuantizer.deduplicate``): pass the whole catalogue at once.
        """
        features = self.check_features(features).to(self.device, self.dtype)
        z = self.encoder(features)
        ids = self.quantizer(z).encoding_indices
        return self.quantizer.deduplicate(z, ids) if deduplicate else ids

    @torch.no_grad()
    def decode_semantic_ids(self, ids: Tensor) -> Tensor:
        """Reconstruct features from semantic IDs ``(batch, num_levels)``: decoder(sum of codes)."""
        return self.decoder(self.quantizer.decode_ids(ids.to(self.device)))

    # --- training -------------------------------------------------------------------------
    def _losses(self, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        features = batch["features"]
        reconstructed, commitment_loss, embedding_loss, _ = self(features)
        recon_loss = F.mse_loss(reconstructed, features)
        total = self.hparams.recon_weight * recon_loss + commitment_loss + embedding_loss
        return total, recon_loss, commitment_loss, embedding_loss

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        total, recon, commitment, embedding = self._losses(batch)
        log = dict(
            on_step=False, on_epoch=True, batch_size=batch["features"].shape[0], sync_dist=True
        )
        self.log("train_loss", total, prog_bar=True, **log)
        self.log("train_recon_loss", recon, **log)
        self.log("train_commitment_loss", commitment, **log)
        self.log("train_embedding_loss", embedding, **log)
        return total

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        total, recon, _, _ = self._losses(batch)
        log = dict(
            on_step=False, on_epoch=True, batch_size=batch["features"].shape[0], sync_dist=True
        )
        self.log("val_loss", total, prog_bar=True, **log)
        self.log("val_recon_loss", recon, **log)
        return total

    def _validates(self) -> bool:
        """Will this fit run validation? (Lightning has no public flag before the loop starts.)"""
        trainer = self._trainer
        if trainer is None:
            return True
        try:
            source = trainer.fit_loop.epoch_loop.val_loop._data_source
            return source.is_defined() and trainer.limit_val_batches != 0
        except AttributeError:  # a future Lightning: assume the reference's setup
            return True

    def configure_optimizers(self) -> dict[str, Any]:
        """Adam plus ReduceLROnPlateau(factor 0.5, patience 5) on ``val_loss`` (``train_loss`` without
        validation), or with ``lr_schedule="cosine"`` a per-step cosine decay to 0 over the fit."""
        optimizer = torch.optim.Adam(
            self.parameters(), lr=self.learning_rate, weight_decay=self.hparams.weight_decay
        )
        if self.hparams.get("lr_schedule", "plateau") == "cosine":
            total = max(1, int(self.trainer.estimated_stepping_batches)) if self._trainer else 1000
            cosine = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total)
            return {
                "optimizer": optimizer,
                "lr_scheduler": {"scheduler": cosine, "interval": "step"},
            }
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="min", factor=0.5, patience=5
        )
        monitor = "val_loss" if self._validates() else "train_loss"
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "monitor": monitor},
        }

    # --- save and load --------------------------------------------------------------------
    def save_pretrained(self, directory: str | os.PathLike) -> Path:
        """Write ``config.json`` and ``model.safetensors`` to ``directory``, each atomically."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        config = json.dumps(dict(self.hparams), indent=2, sort_keys=True)
        _atomic_write(directory / WEIGHTS_NAME, lambda p: save_file(state, str(p)))
        _atomic_write(directory / CONFIG_NAME, lambda p: Path(p).write_text(config + "\n"))
        return directory

    @classmethod
    def from_pretrained(
        cls, directory: str | os.PathLike, map_location: str | torch.device = "cpu"
    ) -> RqVae:
        """Load a model written by ``save_pretrained``; a config/weights mismatch is a clear error."""
        directory = Path(directory)
        for name in (CONFIG_NAME, WEIGHTS_NAME):
            if not (directory / name).is_file():
                raise FileNotFoundError(
                    f"{directory / name} not found; expected a folder written by RqVae.save_pretrained()"
                )
        config = json.loads((directory / CONFIG_NAME).read_text())
        known = set(inspect.signature(cls.__init__).parameters) - {"self"}
        unknown = sorted(set(config) - known)
        if unknown:
            raise ValueError(
                f"{directory / CONFIG_NAME} has unknown keys {unknown}; RqVae accepts {sorted(known)}"
            )
        model = cls(**config)
        state = load_file(str(directory / WEIGHTS_NAME), device=str(map_location))
        model._check_state_dict(state, source=str(directory / WEIGHTS_NAME))
        model.load_state_dict(state)
        return model.eval()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self._check_state_dict(checkpoint.get("state_dict", {}), source="checkpoint")

    def _check_state_dict(self, state: dict[str, Tensor], source: str) -> None:
        """Compare saved tensors with this model's, naming every missing, extra or mis-shaped one."""
        own = self.state_dict()
        problems = [f"missing {k}" for k in own if k not in state]
        problems += [f"unexpected {k}" for k in state if k not in own]
        problems += [
            f"{k}: saved shape {tuple(state[k].shape)}, model expects {tuple(v.shape)}"
            for k, v in own.items()
            if k in state and state[k].shape != v.shape
        ]
        if problems:
            config = {
                k: self.hparams[k]
                for k in ("input_dim", "hidden_dim", "latent_dim", "num_embeddings", "num_levels")
            }
            raise ValueError(
                f"{source} does not match the model config {config}: "
                + "; ".join(problems[:6])
                + (f" (and {len(problems) - 6} more)" if len(problems) > 6 else "")
            )


def _atomic_write(path: Path, write) -> None:
    """Call ``write(tmp)`` on a temporary file next to ``path``, then rename it into place."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
