"""A synthetic catalogue with a known cluster hierarchy, for tests and the offline quick start."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class SyntheticCatalogue:
    """Features plus the true cluster label at every depth of the hierarchy."""

    features: torch.Tensor  # (num_items, dim) float32
    labels: np.ndarray  # (num_items, depth) int64; labels[:, d] is the cluster id at depth d

    def __len__(self) -> int:
        return self.features.shape[0]


def make_synthetic_catalogue(
    num_items: int = 4096,
    dim: int = 64,
    branching: tuple[int, ...] = (8, 8, 8),
    scales: tuple[float, ...] | None = None,
    noise: float = 0.05,
    common: float = 1.0,
    normalize: bool = True,
    seed: int = 0,
) -> SyntheticCatalogue:
    """Draw items from a tree of Gaussian clusters, reproducibly from ``seed``.

    Depth ``d`` has ``prod(branching[:d+1])`` clusters; each child centre is its parent's plus an
    offset of scale ``scales[d]`` (default halving per depth), and each item adds ``noise``.
    Every item also shares one ``common`` offset, because sentence embeddings are anisotropic
    (their mean vector is far from zero; notebook 01 measures it on Beauty). With ``normalize``
    the vectors lie on the unit sphere.
    """
    if num_items < 1 or dim < 1 or not branching:
        raise ValueError(
            f"need num_items >= 1, dim >= 1 and a non-empty branching, got {num_items}, {dim}, {branching}"
        )
    rng = np.random.default_rng(seed)
    scales = scales or tuple(1.0 / 2**d for d in range(len(branching)))
    if len(scales) != len(branching):
        raise ValueError(f"scales has {len(scales)} entries but branching has {len(branching)}")

    centres = rng.normal(size=(1, dim))
    centres *= common / np.linalg.norm(centres)
    for b, s in zip(branching, scales, strict=True):
        offsets = rng.normal(scale=s / np.sqrt(dim), size=(centres.shape[0], b, dim))
        centres = (centres[:, None, :] + offsets).reshape(-1, dim)

    leaf = rng.integers(0, centres.shape[0], size=num_items)
    x = centres[leaf] + rng.normal(scale=noise / np.sqrt(dim), size=(num_items, dim))
    if normalize:
        x /= np.linalg.norm(x, axis=1, keepdims=True)

    labels = np.empty((num_items, len(branching)), dtype=np.int64)
    denom = int(np.prod(branching))
    for d, b in enumerate(branching):
        denom //= b
        labels[:, d] = leaf // denom
    return SyntheticCatalogue(torch.from_numpy(x.astype(np.float32)), labels)
