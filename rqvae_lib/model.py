"""RqVae: encoder -> residual quantizer -> decoder, as a LightningModule with save/load."""

from __future__ import annotations

import dataclasses
import numbers
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .checkpoints import (
    CheckpointError,
    CheckpointNotFoundError,
    check_weights,
    read_checkpoint,
)
from .checks import all_finite, check_choice, check_finite_state, check_float, check_int
from .modules import Decoder, Encoder, hidden_sizes, info_nce
from .pretrained import META_KEYS, WEIGHTS_NAME, check_state_dict, read_pretrained, write_pretrained
from .quantizer import QuantizerConfig, ResidualQuantizer, codebook_maintenance
from .semantic_ids import deduplicate as _deduplicate

#: The reference's training metrics, logged once per epoch.
TRAIN_METRICS = ("train_loss", "train_recon_loss", "train_commitment_loss", "train_embedding_loss")
#: Precisions that store the codebooks in 16 bits: nearest-code search is unreliable there.
HALF_PRECISIONS = ("16-true", "bf16-true", "16", "bf16", "half")


@dataclass(frozen=True)
class RqVaeConfig:
    """Every option of :class:`RqVae`, declared once and checked when built.

    ``RqVae(**options)`` (the reference's keyword constructor) builds one, and
    ``RqVae.from_config(config)`` takes one. ``as_dict()`` is the flat form that Lightning's
    ``hparams``, ``config.json`` and the command line's ``--model.*`` options use: the quantizer's
    options sit beside the model's.

    Attributes:
        input_dim: width of the item embeddings.
        hidden_dim: the MLP's hidden widths, one int or a list (TIGER: 512, 256, 128).
        latent_dim: width of the latent that is quantized.
        num_embeddings: codes per level (K).
        learning_rate: Adam's (peak) learning rate.
        num_levels: codebook levels: the length of a semantic ID.
        recon_weight: weight of the reconstruction term (1: the reference's ``recon + commitment
            + embedding``; larger trades collisions for accuracy).
        weight_decay: decay on the encoder's and decoder's weight matrices only.
        lr_schedule: ``"plateau"`` (ReduceLROnPlateau) or ``"cosine"`` (per-step decay to 0).
        align_weight: weight of the collaborative alignment term (LETTER): an in-batch InfoNCE
            between each item's quantized latent, through a linear head to ``align_dim``, and
            its collaborative embedding (:meth:`RqVae.set_collaborative`). 0, the default, turns
            it off and builds no head.
        align_temperature: the InfoNCE's temperature.
        align_dim: width of the collaborative embeddings (SASRec's item vectors: 64).
        quantizer: the codebook options (:class:`~rqvae_lib.quantizer.QuantizerConfig`).
    """

    #: Options added after models were saved without them, each with the value that behaves as
    #: those models did; loading fills them in (``read_pretrained(added_options=...)``).
    ADDED_OPTIONS: ClassVar[dict[str, Any]] = {
        "align_weight": 0.0,
        "align_temperature": 0.1,
        "align_dim": 64,
    }

    input_dim: int = 768
    hidden_dim: int | tuple[int, ...] = 512
    latent_dim: int = 256
    num_embeddings: int = 1024
    learning_rate: float = 1e-3
    num_levels: int = 3
    recon_weight: float = 1.0
    weight_decay: float = 0.0
    lr_schedule: str = "plateau"
    align_weight: float = 0.0
    align_temperature: float = 0.1
    align_dim: int = 64
    quantizer: QuantizerConfig = QuantizerConfig()  # noqa: RUF009  (frozen: safe to share)

    def __post_init__(self) -> None:
        """Check every option, naming the bad one; store normalized types so configs compare."""
        sizes = hidden_sizes(self.hidden_dim)
        hidden: int | tuple[int, ...] = (
            sizes[0] if isinstance(self.hidden_dim, numbers.Integral) else tuple(sizes)
        )  # keep the reference's int form
        checked = {
            "input_dim": check_int("input_dim", self.input_dim, 1),
            "hidden_dim": hidden,
            "latent_dim": check_int("latent_dim", self.latent_dim, 1),
            "num_embeddings": check_int("num_embeddings", self.num_embeddings, 1),
            "learning_rate": check_float("learning_rate", self.learning_rate, 0.0),
            "num_levels": check_int("num_levels", self.num_levels, 1),
            "recon_weight": check_float("recon_weight", self.recon_weight, 0.0),
            "weight_decay": check_float("weight_decay", self.weight_decay, 0.0),
            "lr_schedule": check_choice("lr_schedule", self.lr_schedule, ("plateau", "cosine")),
            "align_weight": check_float("align_weight", self.align_weight, 0.0),
            "align_temperature": check_float("align_temperature", self.align_temperature, 1e-6),
            "align_dim": check_int("align_dim", self.align_dim, 1),
            "quantizer": QuantizerConfig.build(self.quantizer),
        }
        for name, value in checked.items():
            object.__setattr__(self, name, value)

    @classmethod
    def option_names(cls) -> tuple[str, ...]:
        """The flat option names: the model's, then the quantizer's."""
        own = [f.name for f in dataclasses.fields(cls) if f.name != "quantizer"]
        return tuple(own + list(QuantizerConfig.names()))

    @classmethod
    def from_dict(cls, options: dict[str, Any]) -> RqVaeConfig:
        """The config of flat ``options`` (as :meth:`as_dict` writes them); unknown keys are errors."""
        unknown = sorted(set(options) - set(cls.option_names()))
        if unknown:
            raise TypeError(
                f"unknown RqVae option(s) {unknown}; the options are {list(cls.option_names())}"
            )
        quantizer = {k: v for k, v in options.items() if k in QuantizerConfig.names()}
        own = {k: v for k, v in options.items() if k not in quantizer}
        return cls(**own, quantizer=QuantizerConfig(**quantizer))

    def as_dict(self) -> dict[str, Any]:
        """Every option, flat (the quantizer's beside the model's), JSON-ready."""
        own = {
            f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "quantizer"
        }
        if isinstance(own["hidden_dim"], tuple):
            own["hidden_dim"] = list(own["hidden_dim"])
        return {**own, **self.quantizer.as_dict()}


class RqVae(pl.LightningModule):
    """Residual-Quantized VAE that turns item embeddings into semantic IDs.

    The first six arguments and their defaults are the reference API's; the keyword options
    and the quantizer's (given as ``quantizer=QuantizerConfig(...)`` or as keywords such as
    ``kmeans_init=False``) are described in :class:`RqVaeConfig`, which the constructor builds
    (``model.config``). ``commitment_cost=None`` takes the quantizer config's (0.25 by default,
    as in the reference).

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
        commitment_cost: float | None = None,
        learning_rate: float = 1e-3,
        *,
        num_levels: int = 3,
        recon_weight: float = 1.0,
        weight_decay: float = 0.0,
        lr_schedule: str = "plateau",
        align_weight: float = 0.0,
        align_temperature: float = 0.1,
        align_dim: int = 64,
        quantizer: QuantizerConfig = QuantizerConfig(),  # noqa: B008  (frozen: safe to share)
        **quantizer_options: Any,
    ) -> None:
        super().__init__()
        config = RqVaeConfig(
            input_dim=input_dim,
            hidden_dim=hidden_dim,
            latent_dim=latent_dim,
            num_embeddings=num_embeddings,
            learning_rate=learning_rate,
            num_levels=num_levels,
            recon_weight=recon_weight,
            weight_decay=weight_decay,
            lr_schedule=lr_schedule,
            align_weight=align_weight,
            align_temperature=align_temperature,
            align_dim=align_dim,
            quantizer=QuantizerConfig.build(
                quantizer, commitment_cost=commitment_cost, **quantizer_options
            ),
        )
        #: Every option, in one frozen dataclass; ``RqVae.from_config(model.config)`` rebuilds it.
        self.config = config
        # Flat hyperparameters: every option, quantizer's included, so RqVae(**hparams) rebuilds it.
        self.save_hyperparameters(config.as_dict())
        self.input_dim, self.latent_dim = config.input_dim, config.latent_dim
        self.learning_rate = config.learning_rate
        sizes = hidden_sizes(config.hidden_dim)
        self.encoder = Encoder(self.input_dim, sizes, self.latent_dim)
        self.quantizer = ResidualQuantizer(
            config.num_levels, config.num_embeddings, self.latent_dim, config=config.quantizer
        )
        self.decoder = Decoder(self.latent_dim, sizes, self.input_dim)
        if config.align_weight > 0:  # the collaborative alignment's head (no head: no term)
            self.align_head = nn.Linear(self.latent_dim, config.align_dim)
        # Training-time targets of the alignment term, set by set_collaborative; not saved.
        self.register_buffer("collab_vectors", torch.empty(0, config.align_dim), persistent=False)
        self.register_buffer("collab_rows", torch.empty(0, dtype=torch.long), persistent=False)
        self._epoch_sums: Tensor | None = None  # running loss sums of the epoch (see training_step)
        self._epoch_count = 0

    @classmethod
    def from_config(cls, config: RqVaeConfig) -> RqVae:
        """A new, untrained model of ``config``."""
        if not isinstance(config, RqVaeConfig):
            raise TypeError(f"expected an RqVaeConfig, got {type(config).__name__}")
        return cls(**config.as_dict())

    @classmethod
    def option_names(cls) -> tuple[str, ...]:
        """Every constructor option, as stored in ``hparams`` and ``config.json``."""
        return RqVaeConfig.option_names()

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
        if features.dtype != self.dtype:
            raise TypeError(
                f"expected {self.dtype} features (the model's dtype), got {features.dtype}; "
                f"convert them with .to({self.dtype})"
            )
        # In a training step on an accelerator this would stall the device every step; there the
        # end-of-epoch check (on_train_epoch_end) catches what a bad batch does to the weights.
        if not (self.training and features.device.type != "cpu") and not all_finite(features):
            bad = int((~torch.isfinite(features)).any(dim=1).sum())
            raise ValueError(
                f"expected finite features, got NaN or inf in {bad} of {features.shape[0]} rows"
            )
        return features

    def encode(self, features: Tensor) -> Tensor:
        """Encode features ``(batch, input_dim)`` to latents ``(batch, latent_dim)``."""
        return self.encoder(self.check_features(features))

    def forward(self, features: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Return ``(reconstructed, commitment_loss, embedding_loss, semantic_ids)``; ids are ``(batch, num_levels)``.

        A forward pass never changes a codebook; only ``training_step`` maintains them.
        """
        quantized, commitment_loss, embedding_loss, ids = self._quantize(features)
        return self.decoder(quantized), commitment_loss, embedding_loss, ids

    def _quantize(self, features: Tensor):
        """The quantizer's output (quantized latent, losses, IDs) for ``features``."""
        return self.quantizer(self.encode(features))

    @torch.no_grad()
    def generate_semantic_ids(self, features: Tensor, deduplicate: bool = False) -> Tensor:
        """Semantic IDs ``(batch, num_levels)``, int64. Never changes the codebooks.

        Features of any float dtype are converted to the model's. ``deduplicate=True`` makes the
        last level a balanced assignment over this batch (see
        :func:`rqvae_lib.semantic_ids.deduplicate`): pass the whole catalogue at once.
        """
        if isinstance(features, Tensor) and features.is_floating_point():
            features = features.to(self.device, self.dtype)
        return self.latents_to_ids(self.encode(features), deduplicate)

    @torch.no_grad()
    def latents_to_ids(self, z: Tensor, deduplicate: bool = False) -> Tensor:
        """Semantic IDs of latents ``(batch, latent_dim)`` (see :meth:`generate_semantic_ids`)."""
        ids = self.quantizer(z).encoding_indices  # no gradients: lookup only, inputs checked
        return _deduplicate(self.quantizer, z, ids) if deduplicate else ids

    @torch.no_grad()
    def decode_semantic_ids(self, ids: Tensor) -> Tensor:
        """Reconstruct features from semantic IDs ``(batch, num_levels)``: decoder(sum of codes)."""
        return self.decoder(self.quantizer.decode_ids(ids.to(self.device)))

    def check_finite(self, where: str = "the model") -> None:
        """Raise if any weight or codebook is NaN or inf: such a model gives one ID for every item."""
        check_finite_state(self.state_dict(), where)

    # --- training -------------------------------------------------------------------------
    @property
    def train_metrics(self) -> tuple[str, ...]:
        """The losses logged per epoch: the reference's four, and the alignment term when on."""
        return TRAIN_METRICS + (("train_align_loss",) if self.config.align_weight > 0 else ())

    def set_collaborative(
        self, vectors: Tensor, item_ids: Tensor | list[int], known: Tensor | None = None
    ) -> RqVae:
        """Give the alignment term its targets: ``vectors[r]`` is item ``item_ids[r]``'s
        collaborative embedding (``known[r]`` False: it has none, as a new item). Items of a
        batch without one contribute only the content terms. Kept on the model, not saved."""
        vectors = torch.as_tensor(vectors).float()
        item_ids = torch.as_tensor(item_ids).long().view(-1)
        known = torch.ones(len(item_ids), dtype=torch.bool) if known is None else known.bool()
        if vectors.shape != (len(item_ids), self.config.align_dim) or known.shape != item_ids.shape:
            raise ValueError(
                f"expected vectors of shape ({len(item_ids)}, align_dim={self.config.align_dim}) "
                f"and one known flag per item id, got {tuple(vectors.shape)} and "
                f"{tuple(known.shape)}"
            )
        if not all_finite(vectors[known]):
            raise ValueError("the collaborative vectors hold NaN or inf")
        if len(item_ids) and int(item_ids.min()) < 0:
            raise ValueError("item ids must be >= 0")
        size = int(item_ids.max()) + 1 if len(item_ids) else 0
        rows = torch.full((size,), -1, dtype=torch.long)
        rows[item_ids[known]] = torch.arange(len(item_ids))[known]
        self.collab_vectors = vectors.to(self.collab_vectors.device)
        self.collab_rows = rows.to(self.collab_rows.device)
        return self

    def alignment_loss(self, quantized: Tensor, item_ids: Tensor) -> Tensor:
        """The InfoNCE (:func:`~rqvae_lib.modules.info_nce`) of the batch's items that have a
        collaborative embedding, the head applied to their quantized latents; 0 below two such
        items (an InfoNCE needs a negative)."""
        if len(self.collab_rows) == 0:  # no targets set (a loaded model): nothing to align
            return quantized.new_zeros(())
        ids = item_ids.to(self.collab_rows.device).long()
        inside = ids < len(self.collab_rows)
        rows = torch.where(inside, self.collab_rows[ids.clamp(max=len(self.collab_rows) - 1)], -1)
        has = rows >= 0
        if int(has.sum()) < 2:
            return quantized.new_zeros(())
        latents = self.align_head(quantized[has])
        return info_nce(latents, self.collab_vectors[rows[has]], self.config.align_temperature)

    def _losses(self, batch: dict[str, Tensor]) -> tuple[Tensor, ...]:
        features = batch["features"]
        quantized, commitment_loss, embedding_loss, _ = self._quantize(features)
        recon_loss = F.mse_loss(self.decoder(quantized), features)
        total = self.hparams.recon_weight * recon_loss + commitment_loss + embedding_loss
        if self.config.align_weight == 0:
            return total, recon_loss, commitment_loss, embedding_loss
        align = self.alignment_loss(quantized, batch["item_id"])
        total = total + self.config.align_weight * align
        return total, recon_loss, commitment_loss, embedding_loss, align

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        with codebook_maintenance(self):  # the only place codebooks change
            losses = self._losses(batch)
        self._log_epoch_means(losses, batch["features"].shape[0], batch_idx)
        return losses[0]

    def _log_epoch_means(self, losses: tuple[Tensor, ...], n: int, batch_idx: int) -> None:
        """Log the reference's four training losses as batch-size-weighted epoch means.

        The sums stay on the device and are handed to ``self.log`` once, on the epoch's last
        batch: the same epoch means as logging every step, without Lightning's per-call cost.
        """
        sums = torch.stack([loss.detach() for loss in losses]) * n
        if batch_idx == 0 or self._epoch_sums is None:
            self._epoch_sums, self._epoch_count = sums, n
        else:
            self._epoch_sums, self._epoch_count = self._epoch_sums + sums, self._epoch_count + n
        last = getattr(self._trainer, "num_training_batches", float("inf")) if self._trainer else 1
        if batch_idx + 1 < last:
            return
        means = self._epoch_sums / self._epoch_count
        for name, value in zip(self.train_metrics, means, strict=True):
            self.log(
                name,
                value,
                on_step=False,
                on_epoch=True,
                batch_size=self._epoch_count,
                sync_dist=True,
                prog_bar=name == "train_loss",
            )

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        total, recon, *_ = self._losses(batch)
        log = dict(
            on_step=False, on_epoch=True, batch_size=batch["features"].shape[0], sync_dist=True
        )
        self.log("val_loss", total, prog_bar=True, **log)
        self.log("val_recon_loss", recon, **log)
        return total

    def setup(self, stage: str) -> None:
        """Refuse 16-bit weights: codebook search in fp16/bf16 collapses IDs. Mixed precision works.
        With the alignment term on, refuse to train without its targets."""
        if stage == "fit" and self.config.align_weight > 0 and len(self.collab_rows) == 0:
            raise ValueError(
                f"align_weight={self.config.align_weight} needs collaborative embeddings: call "
                "model.set_collaborative(vectors, item_ids) before training (or give "
                "train_model collaborative=...; rqvae_lib.retrieval.collaborative makes them)"
            )
        precision = str(getattr(self._trainer, "precision", "32")) if self._trainer else "32"
        if precision in HALF_PRECISIONS:
            raise ValueError(
                f"RqVae cannot train with precision={precision!r}: 16-bit codebooks make "
                "nearest-code search unreliable. Use precision='32-true', or '16-mixed' / "
                "'bf16-mixed' (the quantizer then computes in float32)"
            )

    def on_train_epoch_end(self) -> None:
        self.check_finite(f"RqVae after epoch {self.current_epoch}")  # one check per epoch

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
        """Adam (decay on weight matrices only) plus ReduceLROnPlateau(factor 0.5, patience 5) on ``val_loss`` (``train_loss`` without
        validation), or with ``lr_schedule="cosine"`` a per-step cosine decay to 0 over the fit."""
        decay = self.hparams.weight_decay
        params: Any = self.parameters()
        if decay > 0:  # decay the MLPs' weight matrices only, not biases or codebooks (nanoGPT)
            matrices = [
                p for n, p in self.named_parameters() if p.dim() >= 2 and "quantizer" not in n
            ]
            others = [
                p for n, p in self.named_parameters() if not (p.dim() >= 2 and "quantizer" not in n)
            ]
            params = [
                {"params": matrices, "weight_decay": decay},
                {"params": others, "weight_decay": 0.0},
            ]
        optimizer = torch.optim.Adam(params, lr=self.learning_rate)
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
    def save_pretrained(
        self,
        directory: str | os.PathLike,
        overwrite: bool = False,
        extra_files: dict[str, str] | None = None,
    ) -> Path:
        """Write ``config.json`` and ``model.safetensors`` (plus ``extra_files``, name -> text).

        The files are written into a temporary folder that replaces ``directory`` whole, so a crash
        never leaves new weights beside an old config. An existing model is replaced only with
        ``overwrite=True``. The config holds every option, the class name, the library version
        and the weights' sha256, which ``from_pretrained`` checks (:mod:`rqvae_lib.pretrained`).
        """
        return write_pretrained(
            directory,
            self.config.as_dict(),
            self.state_dict(),
            type(self).__name__,
            overwrite=overwrite,
            extra_files=extra_files,
        )

    @classmethod
    def from_pretrained(
        cls, directory: str | os.PathLike, map_location: str | torch.device = "cpu"
    ) -> RqVae:
        """Load a model written by ``save_pretrained``, checking the config and the weights.

        A config without the class name, the weights' checksum or any option, a checksum that
        does not match, or weights that do not fit the config are clear errors.
        """
        files = read_pretrained(
            directory, [cls.__name__], cls.option_names(), (), map_location,
            added_options=RqVaeConfig.ADDED_OPTIONS,
        )  # fmt: skip
        model = cls.from_config(RqVaeConfig.from_dict(
            {k: v for k, v in files.config.items() if k not in META_KEYS}
        ))  # fmt: skip
        model._check_state_dict(files.state, source=str(Path(directory) / WEIGHTS_NAME))
        model.load_state_dict(files.state)
        return model.to(map_location).eval()

    @classmethod
    def load_from_checkpoint(
        cls, checkpoint_path: str | os.PathLike, map_location: Any = None, **kwargs: Any
    ) -> RqVae:
        """Lightning's loader, after a check that names the file and the problem when it is unusable."""
        read_checkpoint(checkpoint_path)
        return super().load_from_checkpoint(checkpoint_path, map_location=map_location, **kwargs)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self._check_state_dict(checkpoint.get("state_dict", {}), source="checkpoint")

    def _check_state_dict(self, state: dict[str, Tensor], source: str) -> None:
        """Compare saved tensors with this model's, naming every missing, extra or mis-shaped one."""
        shape = ("input_dim", "hidden_dim", "latent_dim", "num_embeddings", "num_levels")
        config = {k: self.hparams[k] for k in shape}
        check_state_dict(self.state_dict(), state, source, f"the model config {config}")


def model_from_checkpoint(checkpoint: dict[str, Any], path: str | os.PathLike) -> RqVae:
    """The RqVae a checkpoint describes: built from its own hyperparameters, weights loaded."""
    saved = checkpoint.get("hyper_parameters") or {}
    known = set(RqVae.option_names())
    options = {k: v for k, v in saved.items() if k in known}
    try:
        model = RqVae(**options)
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"checkpoint {path} holds an invalid model config: {err}") from err
    check_weights(model, checkpoint["state_dict"], path)
    model.load_state_dict(checkpoint["state_dict"])
    model.check_finite(f"the model in {path}")
    return model


def load_model(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> RqVae:
    """Load an RqVae in eval mode from a Lightning ``.ckpt`` or a ``save_pretrained`` folder.

    The model's config comes from the file itself. Raises ``CheckpointNotFoundError`` (a
    ``FileNotFoundError``) or ``CheckpointError`` (a ``ValueError``) naming the file and the
    problem: missing, truncated, mismatched or non-finite weights.
    """
    path = Path(path)
    if path.is_dir():
        try:
            return RqVae.from_pretrained(path, map_location)
        except FileNotFoundError as err:
            raise CheckpointNotFoundError(str(err)) from err
        except Exception as err:  # a bad config.json, a truncated model.safetensors, a mismatch
            raise CheckpointError(f"cannot load the model saved in {path}: {err}") from err
    model = model_from_checkpoint(read_checkpoint(path), path)
    return model.to(map_location).eval()
