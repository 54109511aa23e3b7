"""Encoder and Decoder: plain MLPs between item embeddings and the small latent that is quantized."""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .checks import check_int


def hidden_sizes(hidden_dim: int | Sequence[int]) -> list[int]:
    """``hidden_dim`` (one width or a list) as a list of positive ints; a clear error otherwise."""
    if isinstance(hidden_dim, str) or not isinstance(hidden_dim, numbers.Integral | Sequence):
        raise TypeError(
            f"hidden_dim must be an int or a list of ints, got {hidden_dim!r} "
            f"({type(hidden_dim).__name__})"
        )
    sizes = [hidden_dim] if isinstance(hidden_dim, numbers.Integral) else list(hidden_dim)
    if not sizes:
        raise ValueError("hidden_dim must be a positive int or a non-empty list of them, got []")
    return [check_int("hidden_dim", h, 1) for h in sizes]


def mlp(sizes: Sequence[int]) -> nn.Sequential:
    """Linear layers of the given sizes with SiLU between them and no activation after the last."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.SiLU())
    return nn.Sequential(*layers)


class Encoder(nn.Module):
    """MLP ``input_dim -> hidden_dim(s) -> latent_dim``.

    ``hidden_dim`` is one width or a list, e.g. ``[512, 256, 128]`` for TIGER's shape. Hidden layers
    use SiLU: smooth like GELU, cheap, and with no dead units (ReLU can silence latent directions,
    which starves the codebooks); the output layer is linear so the latent can take any sign.
    """

    def __init__(self, input_dim: int, hidden_dim: int | Sequence[int], latent_dim: int) -> None:
        super().__init__()
        self.net = mlp([input_dim, *hidden_sizes(hidden_dim), latent_dim])

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class Decoder(nn.Module):
    """MLP ``latent_dim -> hidden_dim(s) -> output_dim``, the Encoder's mirror.

    A list of hidden sizes is given in the encoder's order (``[512, 256, 128]``) and reversed
    here, so one config describes both. SiLU between layers, linear output (see ``Encoder``).
    """

    def __init__(self, latent_dim: int, hidden_dim: int | Sequence[int], output_dim: int) -> None:
        super().__init__()
        self.net = mlp([latent_dim, *reversed(hidden_sizes(hidden_dim)), output_dim])

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z)


def info_nce(latents: Tensor, targets: Tensor, temperature: float) -> Tensor:
    """In-batch InfoNCE: row ``i`` of ``latents`` should be nearer (cosine over ``temperature``)
    to row ``i`` of ``targets`` than to any other row; the other rows are the negatives.

    ``-mean_i log softmax_j(cos(latents_i, targets_j) / temperature)[i]`` for ``(batch, d)``
    inputs (LETTER's collaborative alignment, with cosine and a temperature).
    """
    logits = F.normalize(latents, dim=-1) @ F.normalize(targets, dim=-1).T / temperature
    return F.cross_entropy(logits, torch.arange(len(logits), device=logits.device))
