"""RQ-KMeans: residual k-means on the raw embeddings, the training-free baseline for semantic IDs.

One recipe in two steps: :func:`rq_kmeans_fit` learns one codebook per level on some items
(``n_init=1``, ``random_state=seed + level``), :func:`rq_kmeans_encode` gives any items their IDs
under those codebooks (at each level, the nearest centroid to what is left over).
:func:`rq_kmeans` does both on the same items.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor


def _float64(features: Tensor | np.ndarray) -> np.ndarray:
    return torch.as_tensor(features, dtype=torch.float32).numpy().astype(np.float64)


def rq_kmeans_fit(
    features: Tensor | np.ndarray, num_levels: int = 3, num_embeddings: int = 256, seed: int = 0
) -> list[np.ndarray]:
    """Residual k-means fitted on ``features``: one ``(num_embeddings, dim)`` array per level.

    Returns the centroids, so that other items (the whole catalogue, held-out items) can be
    encoded with :func:`rq_kmeans_encode`, e.g. after fitting on an RQ-VAE's training split.
    """
    from sklearn.cluster import KMeans  # imported here: scikit-learn takes a second to load

    residual = _float64(features)
    centroids = []
    for level in range(num_levels):
        km = KMeans(n_clusters=num_embeddings, n_init=1, random_state=seed + level).fit(residual)
        centroids.append(km.cluster_centers_)
        residual = residual - km.cluster_centers_[km.labels_]
    return centroids


def rq_kmeans_encode(
    features: Tensor | np.ndarray, centroids: Sequence[np.ndarray]
) -> tuple[Tensor, Tensor]:
    """IDs ``(num_items, num_levels)`` and reconstructions of ``features`` under fitted centroids:
    at each level the nearest centroid to what is left over."""
    residual = _float64(features)
    recon, ids = np.zeros_like(residual), []
    for c in centroids:
        c = np.asarray(c, dtype=np.float64)
        d = (residual**2).sum(1, keepdims=True) - 2 * residual @ c.T + (c**2).sum(1)
        idx = d.argmin(1)
        residual = residual - c[idx]
        recon += c[idx]
        ids.append(idx.astype(np.int64))
    return torch.from_numpy(np.stack(ids, axis=1)), torch.from_numpy(recon.astype(np.float32))


def rq_kmeans(
    features: Tensor | np.ndarray, num_levels: int = 3, num_embeddings: int = 256, seed: int = 0
) -> tuple[Tensor, Tensor]:
    """Fit residual k-means on ``features`` and encode the same items.

    Returns ``(ids, reconstruction)``: int64 IDs ``(num_items, num_levels)`` and the sum of the
    chosen centroids ``(num_items, dim)``, so it is scored exactly like the RQ-VAE.
    """
    centroids = rq_kmeans_fit(features, num_levels, num_embeddings, seed)
    return rq_kmeans_encode(features, centroids)
