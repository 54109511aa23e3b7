"""RQ-KMeans: residual k-means on the raw embeddings, the training-free baseline for semantic IDs."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.cluster import KMeans
from torch import Tensor


def rq_kmeans(
    features: Tensor | np.ndarray, num_levels: int = 3, num_embeddings: int = 256, seed: int = 0
) -> tuple[Tensor, Tensor]:
    """Fit k-means level by level on the residuals of the raw features.

    Returns ``(ids, reconstruction)``: int64 IDs ``(num_items, num_levels)`` and the sum of the
    chosen centroids ``(num_items, dim)``, so it is scored exactly like the RQ-VAE.
    """
    x = torch.as_tensor(features, dtype=torch.float32).numpy().astype(np.float64)
    residual, recon, ids = x.copy(), np.zeros_like(x), []
    for level in range(num_levels):
        km = KMeans(n_clusters=num_embeddings, n_init=1, random_state=seed + level).fit(residual)
        codes = km.cluster_centers_[km.labels_]
        residual -= codes
        recon += codes
        ids.append(km.labels_.astype(np.int64))
    return torch.from_numpy(np.stack(ids, axis=1)), torch.from_numpy(recon.astype(np.float32))
