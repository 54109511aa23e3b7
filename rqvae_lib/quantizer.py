"""Vector quantization, one level (``VectorQuantizer``) and L levels (``ResidualQuantizer``).

Each level holds a codebook of K vectors. A level maps its input to the nearest code; the
residual quantizer feeds what is left over (the residual) to the next level, so an item's
semantic ID is the tuple of chosen code indices, coarse to fine.

The options live in one place, :class:`QuantizerConfig`. Two techniques keep codebooks alive
(both on by default, both work under DDP):
- k-means initialization of each level from the data it sees on its first training step;
- dead-code restart: a code unused for ``dead_code_steps`` steps is re-seeded from a current
  input, picked with probability proportional to its squared quantization error
  (k-means++ style), so new codes go where the codebook explains the data worst.

A third, off by default, evens out how often codes are used: ``balance_rate > 0`` adds a
per-code bias to the distances, adjusted after every training step, raised for codes chosen
more often than average and lowered for the others (bias-based load balancing, as in DeepSeek-V3's router). The bias is
part of the model, so inference uses the same assignment rule as training.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from sklearn.cluster import KMeans
from torch import Tensor, nn

from .checks import all_finite, check_bool, check_float, check_int


class QuantizerOutput(NamedTuple):
    quantized: Tensor  # straight-through quantized vectors, (batch, dim)
    commitment_loss: Tensor  # commitment_cost * ||z - sg[e]||^2
    embedding_loss: Tensor  # ||sg[z] - e||^2 (the codebook loss)
    encoding_indices: Tensor  # (batch,) for one level, (batch, num_levels) for the residual stack


@dataclass(frozen=True)
class QuantizerConfig:
    """The options of a codebook level, declared once for VectorQuantizer, ResidualQuantizer and RqVae.

    Attributes:
        commitment_cost: weight of the commitment loss (VQ-VAE's beta).
        kmeans_init: initialize each codebook by k-means on its first training batch.
        dead_code_steps: restart codes unused for this many training steps (0 turns it off).
        use_cosine: compare directions only: inputs and codes are L2-normalized (ViT-VQGAN).
        seed: seed for k-means and restarts, so runs are reproducible (level l uses seed + l).
        balance_rate: step size of the usage-balancing code bias, in units of the mean
            quantization error (0 turns it off); see benchmarks/RESULTS.md for its effect.
    """

    commitment_cost: float = 0.25
    kmeans_init: bool = True
    dead_code_steps: int = 10
    use_cosine: bool = False
    seed: int = 0
    balance_rate: float = 0.0

    def __post_init__(self) -> None:
        checked = {
            "commitment_cost": check_float("commitment_cost", self.commitment_cost, 0.0),
            "kmeans_init": check_bool("kmeans_init", self.kmeans_init),
            "dead_code_steps": check_int("dead_code_steps", self.dead_code_steps, 0),
            "use_cosine": check_bool("use_cosine", self.use_cosine),
            "seed": check_int("seed", self.seed, 0),
            "balance_rate": check_float("balance_rate", self.balance_rate, 0.0),
        }
        for name, value in checked.items():  # store normalized types (0 -> 0.0) so configs compare
            object.__setattr__(self, name, value)

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """The option names, in declaration order."""
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def build(cls, config: QuantizerConfig | dict | None = None, **options: Any) -> QuantizerConfig:
        """``config`` (a QuantizerConfig, a dict or None for the defaults) with ``options`` on top.

        Options set to ``None`` are ignored, so a caller can forward optional arguments as they are.
        """
        unknown = sorted(set(options) - set(cls.names()))
        if isinstance(config, dict):
            unknown += sorted(set(config) - set(cls.names()))
            config = cls(**{k: v for k, v in config.items() if k in cls.names()})
        if unknown:
            raise TypeError(
                f"unknown quantizer option(s) {unknown}; the options are {list(cls.names())}"
            )
        if config is not None and not isinstance(config, cls):
            raise TypeError(
                f"config must be a QuantizerConfig or a dict, got {type(config).__name__}"
            )
        return dataclasses.replace(
            config or cls(), **{k: v for k, v in options.items() if v is not None}
        )

    def as_dict(self) -> dict[str, Any]:
        """The options as a plain dict (for hyperparameters and config.json)."""
        return dataclasses.asdict(self)


# --- DDP helpers: every rank must end each step with the same codebooks ----------------------
def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def _gather(x: Tensor) -> Tensor:
    """Concatenate ``x`` (rows may differ per rank) from every rank, in rank order."""
    if not _distributed():
        return x
    n = torch.tensor([x.shape[0]], device=x.device)
    sizes = [torch.zeros_like(n) for _ in range(dist.get_world_size())]
    dist.all_gather(sizes, n)
    pad = int(max(s.item() for s in sizes))
    padded = torch.zeros((pad, *x.shape[1:]), dtype=x.dtype, device=x.device)
    padded[: x.shape[0]] = x
    parts = [torch.zeros_like(padded) for _ in sizes]
    dist.all_gather(parts, padded)
    return torch.cat([p[: int(s.item())] for p, s in zip(parts, sizes, strict=True)])


def _sum(x: Tensor) -> Tensor:
    if _distributed():
        dist.all_reduce(x)
    return x


def _broadcast(x: Tensor) -> None:
    if _distributed():
        dist.broadcast(x, src=0)


def kmeans(x: Tensor, k: int, seed: int = 0) -> Tensor:
    """``k`` centroids of the rows of ``x`` with scikit-learn's k-means (k-means++ init).

    With fewer rows than ``k``, the extra centroids are copies of random rows plus tiny noise;
    dead-code restart moves them to real data later.
    """
    data = x.detach().float().cpu().numpy().astype(np.float64)
    rng = np.random.default_rng(seed)
    n_clusters = min(k, len(np.unique(data, axis=0)))
    km = KMeans(n_clusters=n_clusters, n_init=1, max_iter=50, random_state=seed).fit(data)
    centres = km.cluster_centers_
    if n_clusters < k:
        extra = data[rng.integers(0, len(data), k - n_clusters)]
        extra = extra + rng.normal(scale=1e-3 * (data.std() + 1e-8), size=extra.shape)
        centres = np.concatenate([centres, extra])
    return torch.as_tensor(centres, dtype=x.dtype, device=x.device)


_MASK32 = 0xFFFFFFFF


def _hash32(x: Tensor) -> Tensor:
    """A 32-bit integer hash (Mueller's), on int64 tensors kept below 2**59: no overflow anywhere."""
    for _ in range(2):
        x = (((x >> 16) ^ x) * 0x45D9F3B) & _MASK32
    return (x >> 16) ^ x


def _uniform(n: int, seed: int, counter: Tensor) -> Tensor:
    """``n`` uniforms in (0, 1) from (seed, counter, row): the same on every device and rank.

    ``counter`` is a tensor on the device, so drawing them never waits for the device.
    """
    rows = torch.arange(n, device=counter.device, dtype=torch.int64)
    key = _hash32((counter.long() + seed * 1_000_003) & _MASK32)
    bits = _hash32(_hash32(key ^ rows) ^ (rows * 0x27D4EB2D & _MASK32))
    return ((bits >> 8).float() + 0.5) * 2.0**-24


@contextmanager
def codebook_maintenance(module: nn.Module, enabled: bool = True) -> Iterator[None]:
    """Let the quantizers in ``module`` update their codebooks during this block.

    Codebook upkeep (k-means init, dead-code restart, the balancing bias) runs only inside this
    block, in training mode with gradients on; RqVae.training_step opens it. A bare forward pass,
    even in training mode after ``trainer.fit``, never changes a codebook.
    """
    levels = [m for m in module.modules() if isinstance(m, VectorQuantizer)]
    previous = [m.maintain for m in levels]
    for m in levels:
        m.maintain = enabled
    try:
        yield
    finally:
        for m, was in zip(levels, previous, strict=True):
            m.maintain = was


class VectorQuantizer(nn.Module):
    """One codebook level: nearest-code lookup with the straight-through gradient.

    Returns ``(quantized, commitment_loss, embedding_loss, encoding_indices)`` where
    ``encoding_indices`` has shape ``(batch,)``. Codebook upkeep (k-means init, dead-code
    restart, balancing) runs only inside :func:`codebook_maintenance` in training mode with
    gradients on, so lookup alone never changes a code.

    Args:
        num_embeddings: codebook size K.
        embedding_dim: size of each code vector.
        commitment_cost: weight of the commitment loss (VQ-VAE's beta); None: the config's.
        config: a :class:`QuantizerConfig` (or dict); keyword ``options`` override its fields.
    """

    def __init__(
        self,
        num_embeddings: int,
        embedding_dim: int,
        commitment_cost: float | None = None,
        config: QuantizerConfig | dict | None = None,
        **options: Any,
    ) -> None:
        super().__init__()
        self.num_embeddings = check_int("num_embeddings", num_embeddings, 1)
        self.embedding_dim = check_int("embedding_dim", embedding_dim, 1)
        self.config = QuantizerConfig.build(config, commitment_cost=commitment_cost, **options)
        self.maintain = False  # set by codebook_maintenance()
        self.embedding = nn.Embedding(num_embeddings, embedding_dim)
        nn.init.uniform_(self.embedding.weight, -1.0 / num_embeddings, 1.0 / num_embeddings)
        self.register_buffer("initialized", torch.tensor(not self.config.kmeans_init))
        self.register_buffer("steps_since_used", torch.zeros(num_embeddings, dtype=torch.long))
        self.register_buffer("num_restarts", torch.zeros((), dtype=torch.long))
        self.register_buffer("code_bias", torch.zeros(num_embeddings))
        self._initialized: bool | None = not self.config.kmeans_init  # host copy of the buffer

    def _load_from_state_dict(self, *args: Any, **kwargs: Any) -> None:
        super()._load_from_state_dict(*args, **kwargs)
        self._initialized = None  # read the loaded buffer once, on next use

    @property
    def is_initialized(self) -> bool:
        """Whether the codebook has been initialized (read from the device once, then cached)."""
        if self._initialized is None:
            self._initialized = bool(self.initialized)
        return self._initialized

    @property
    def codebook(self) -> Tensor:
        """The code vectors as used for lookup (normalized in cosine mode)."""
        w = self.embedding.weight
        return F.normalize(w, dim=-1) if self.config.use_cosine else w

    def distances(self, z: Tensor) -> Tensor:
        """Squared Euclidean distance from each row of ``z`` to each code, plus the code bias."""
        e = self.codebook
        return z.pow(2).sum(1, keepdim=True) - 2 * z @ e.t() + e.pow(2).sum(1) + self.code_bias

    def nearest(self, z: Tensor) -> Tensor:
        """Index of the nearest code for each row of ``z``: squared Euclidean distance + code bias.

        ``||z||^2`` is the same for every code of a row, so the argmin leaves it out and the rest
        is one fused multiply-add: ``||e||^2 + bias - 2 z e^T``.
        """
        e = self.codebook
        return torch.addmm(e.pow(2).sum(1) + self.code_bias, z, e.t(), alpha=-2).argmin(dim=1)

    def forward(self, inputs: Tensor) -> QuantizerOutput:
        if inputs.dim() != 2 or inputs.shape[1] != self.embedding_dim:
            raise ValueError(
                f"expected inputs of shape (batch, {self.embedding_dim}), got {tuple(inputs.shape)}"
            )
        update = self.maintain and self.training and torch.is_grad_enabled()
        if not update and not all_finite(inputs):  # argmin of NaN is code 0
            raise ValueError(
                "the quantizer got NaN or inf inputs: the encoder's latents are not finite "
                "(non-finite weights, or inputs too large for the model's dtype)"
            )
        # Distances and codes in float32 at least, also under autocast: fp16 argmin ties easily.
        dtype = torch.promote_types(self.embedding.weight.dtype, torch.float32)
        with torch.autocast(inputs.device.type, enabled=False):
            z = inputs.to(dtype)
            z = F.normalize(z, dim=-1) if self.config.use_cosine else z
            if update and not self.is_initialized:
                self._init_codebook(z.detach())
            indices = self.nearest(z.detach())  # (B,)
            codes = F.embedding(indices, self.codebook).to(dtype)  # (B, D)
            embedding_loss = F.mse_loss(codes, z.detach())
            commitment_loss = self.config.commitment_cost * F.mse_loss(z, codes.detach())
            quantized = (
                z + (codes - z).detach()
            )  # straight-through: forward = code, backward = identity
            if update and (self.config.balance_rate > 0 or self.config.dead_code_steps > 0):
                self._maintain(z.detach(), codes.detach(), indices)
        return QuantizerOutput(quantized, commitment_loss, embedding_loss, indices)

    # --- codebook upkeep: training steps only ------------------------------------------------
    # DDP rule: counts and errors are summed over ranks and restart data is gathered in rank
    # order, so every rank takes the same decision from the same numbers; codebooks are also
    # broadcast from rank 0 after each change. On one process nothing here waits for the device.
    @torch.no_grad()
    def _maintain(self, z: Tensor, codes: Tensor, indices: Tensor) -> None:
        if indices.device.type == "cpu":  # no device to wait for: the cheapest count
            counts = torch.bincount(indices, minlength=self.num_embeddings)
        else:  # bincount would read the maximum back to the host; a one-hot sum does not
            k = torch.arange(self.num_embeddings, device=indices.device)
            counts = (indices[:, None] == k).sum(0)
        counts = _sum(counts)  # (K,) usage in this (global) batch
        if self.config.balance_rate > 0:
            self._balance(z, codes, counts)
        if self.config.dead_code_steps > 0:
            self._restart_dead_codes(z, codes, counts)

    @torch.no_grad()
    def _init_codebook(self, z: Tensor) -> None:
        data = _gather(z)
        if not _distributed() or dist.get_rank() == 0:
            self.embedding.weight.data.copy_(kmeans(data, self.num_embeddings, self.config.seed))
        _broadcast(self.embedding.weight.data)
        self.initialized.fill_(True)
        self._initialized = True

    @torch.no_grad()
    def _balance(self, z: Tensor, codes: Tensor, counts: Tensor) -> None:
        """Raise the bias of over-used codes and lower it for under-used ones (mean bias 0)."""
        error = _sum((z - codes).pow(2).sum().reshape(1))[0] / counts.sum().clamp(min=1)
        load = counts.float() / counts.float().mean()
        self.code_bias.add_(self.config.balance_rate * error * (load - 1))
        self.code_bias.sub_(self.code_bias.mean())

    @torch.no_grad()
    def _restart_dead_codes(self, z: Tensor, codes: Tensor, counts: Tensor) -> None:
        """Re-seed codes unused for ``dead_code_steps`` steps from current inputs.

        Inputs are drawn without replacement with probability proportional to their squared
        quantization error (Gumbel top-k on hashed noise), so new codes go where the codebook
        explains the data worst. On an accelerator, masks instead of branches: no host
        synchronisation.
        """
        self.steps_since_used.add_(1).masked_fill_(counts > 0, 0)
        dead = self.steps_since_used >= self.config.dead_code_steps  # (K,)
        # Skipping is the same as the masked update below with no dead code. Ask only where it is
        # free (the CPU) or needed (DDP; the answer is the same on every rank: counts are summed).
        if (z.device.type == "cpu" or _distributed()) and not bool(dead.any()):
            return
        data = _gather(z)  # (N, D), every rank's rows in rank order
        error = _gather((z - codes).pow(2).sum(1))  # (N,)
        k = self.num_embeddings
        gumbel = -torch.log(-torch.log(_uniform(len(error), self.config.seed, self.num_restarts)))
        order = (error.float().clamp(min=1e-12).log() + gumbel).topk(min(k, len(error))).indices
        rank = (dead.long().cumsum(0) - 1).clamp(min=0)  # the j-th dead code takes the j-th pick
        fresh = data[order[rank % len(order)]]  # (K, D)
        self.embedding.weight.data.copy_(torch.where(dead[:, None], fresh, self.embedding.weight))
        _broadcast(self.embedding.weight.data)
        self.steps_since_used.masked_fill_(dead, 0)
        self.code_bias.masked_fill_(dead, 0.0)
        self.num_restarts.add_(dead.any().long())


class ResidualQuantizer(nn.Module):
    """``num_levels`` VectorQuantizers in a chain: level l quantizes what levels < l left over.

    ``forward(z)`` returns ``(quantized, commitment_loss, embedding_loss, encoding_indices)``
    with losses summed over levels and ``encoding_indices`` of shape ``(batch, num_levels)``.
    With ``num_levels=1`` column 0 is exactly the single-level ``(batch,)`` index of the
    reference API. ``quantized`` is the sum of the chosen codes, passed straight through.
    Options as for :class:`VectorQuantizer`; level ``l`` gets ``seed + l``.
    """

    def __init__(
        self,
        num_levels: int,
        num_embeddings: int,
        embedding_dim: int,
        commitment_cost: float | None = None,
        config: QuantizerConfig | dict | None = None,
        **options: Any,
    ) -> None:
        super().__init__()
        check_int("num_levels", num_levels, 1)
        self.config = QuantizerConfig.build(config, commitment_cost=commitment_cost, **options)
        self.levels = nn.ModuleList(
            VectorQuantizer(
                num_embeddings,
                embedding_dim,
                config=dataclasses.replace(self.config, seed=self.config.seed + level),
            )
            for level in range(num_levels)
        )
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim

    @property
    def num_levels(self) -> int:
        return len(self.levels)

    def forward(self, z: Tensor) -> QuantizerOutput:
        residual, total = z, torch.zeros_like(z)  # r_0 = z
        commitment, embedding, indices = z.new_zeros(()), z.new_zeros(()), []
        for vq in self.levels:
            q, c, e, idx = vq(residual)  # q = e_l, straight through
            residual = residual - q.detach()  # r_l = r_{l-1} - e_l
            total = total + q.detach()
            commitment, embedding = commitment + c, embedding + e
            indices.append(idx)
        quantized = z + (total - z).detach()
        return QuantizerOutput(quantized, commitment, embedding, torch.stack(indices, dim=1))

    def decode_ids(self, ids: Tensor) -> Tensor:
        """The quantized latent for semantic IDs of shape ``(batch, num_levels)``: the sum of codes."""
        if ids.dim() != 2 or ids.shape[1] != self.num_levels:
            raise ValueError(
                f"expected ids of shape (batch, {self.num_levels}), got {tuple(ids.shape)}"
            )
        return sum(F.embedding(ids[:, i], vq.codebook) for i, vq in enumerate(self.levels))
