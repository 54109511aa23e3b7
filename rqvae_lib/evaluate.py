"""Whole-catalogue evaluation: semantic IDs in batches, reconstruction error, codebook health."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm.auto import tqdm

from .config import resolve_device


def batch_features(batch: Any) -> Tensor:
    """The feature tensor of one batch: a ``{"features": ...}`` dict (as the datasets yield) or a tensor."""
    if isinstance(batch, Tensor):
        return batch
    if isinstance(batch, dict):
        if "features" not in batch:
            raise KeyError(
                f"expected batches as dicts with a 'features' key, got keys {sorted(batch)}"
            )
        return batch["features"]
    raise TypeError(
        f"expected batches as {{'features': tensor}} dicts or tensors, got {type(batch).__name__}; "
        "wrap a TensorDataset's tuples, e.g. DataLoader(FeatureDataset(x))"
    )


def _batches(model, dataloader: Iterable, device, desc: str, progress: bool) -> Iterator[Tensor]:
    """Features of each batch on ``device`` (model in eval mode there); an empty loader is an error."""
    model.eval()
    model.to(device)
    empty = True
    for batch in tqdm(dataloader, desc=desc, disable=not progress, leave=False):
        empty = False
        yield batch_features(batch).to(device)
    if empty:
        raise ValueError("the dataloader yielded no batches: there are no items to evaluate")


@torch.no_grad()
def batch_inference(
    model,
    dataloader: Iterable,
    device: str | torch.device | None = None,
    progress: bool = False,
    deduplicate: bool = False,
) -> Tensor:
    """Semantic IDs for every item the dataloader yields, streamed batch by batch.

    Returns an int64 tensor ``(num_items, num_levels)`` on the CPU, in dataloader order.
    ``device=None`` picks CUDA when available, else CPU; the model is moved there once and left
    in eval mode. ``deduplicate=True`` then applies the balanced last level over the whole
    catalogue (:func:`rqvae_lib.semantic_ids.deduplicate`); it keeps the latents,
    ``num_items x latent_dim`` floats, in memory.
    """
    device = resolve_device(device)
    if not deduplicate:
        return torch.cat(
            [
                model.generate_semantic_ids(x).cpu()
                for x in _batches(model, dataloader, device, "semantic IDs", progress)
            ]
        )
    latents = torch.cat(
        [model.encode(x) for x in _batches(model, dataloader, device, "semantic IDs", progress)]
    )
    return model.latents_to_ids(latents, deduplicate=True).cpu()


@torch.no_grad()
def evaluate_reconstruction(
    model, dataloader: Iterable, device: str | torch.device | None = None
) -> dict[str, float]:
    """Reconstruction error of the quantized model, over the whole dataloader.

    ``mse`` is the summed squared error per item (the reference's definition), ``rmse`` its root,
    and ``relative_error`` is ``sum ||x - x_hat||^2 / sum ||x||^2`` (0 is perfect, 1 is as bad as
    predicting zeros).
    """
    total_se, total_norm, n = 0.0, 0.0, 0
    for x in _batches(model, dataloader, resolve_device(device), "reconstruction", False):
        reconstructed = model(x)[0]
        total_se += F.mse_loss(reconstructed, x, reduction="sum").item()
        total_norm += x.pow(2).sum().item()
        n += x.shape[0]
    mse = total_se / n
    return {"mse": mse, "rmse": mse**0.5, "relative_error": total_se / max(total_norm, 1e-12)}


def reconstruction_error(
    features: Tensor | np.ndarray, reconstruction: Tensor | np.ndarray
) -> dict:
    """``mse`` (summed over dimensions, mean over items), ``rmse`` and ``relative_error``, as
    :func:`evaluate_reconstruction` reports them, for any reconstruction (RQ-KMeans, a baseline)."""
    x = torch.as_tensor(features, dtype=torch.float64)
    se = (x - torch.as_tensor(reconstruction, dtype=torch.float64)).pow(2).sum().item()
    mse = se / x.shape[0]
    return {"mse": mse, "rmse": mse**0.5, "relative_error": se / x.pow(2).sum().item()}


def perplexity(codes: Tensor, num_embeddings: int) -> float:
    """exp(entropy) of the code distribution: K when all codes are used equally, 1 when one is."""
    probs = torch.bincount(codes.flatten(), minlength=num_embeddings).float()
    probs = probs / probs.sum()
    return float(torch.exp(-(probs * torch.log(probs + 1e-10)).sum()))


def row_keys(ids: Tensor) -> Tensor:
    """One int64 per row, equal exactly when the rows are equal: a fast stand-in for rows in
    ``torch.unique(ids, dim=0)``. Falls back to that when the codes do not fit in 63 bits."""
    ids = torch.as_tensor(ids).long()
    base = int(ids.max()) + 1 if ids.numel() else 1
    if ids.numel() and int(ids.min()) >= 0 and base ** ids.shape[1] < 2**62:
        weights = base ** torch.arange(ids.shape[1] - 1, -1, -1, dtype=torch.long)
        return (ids * weights).sum(1)
    return torch.unique(ids, dim=0, return_inverse=True)[1]


def codebook_stats(ids: Tensor, num_embeddings: int) -> dict:
    """Usage, perplexity and collision statistics for semantic IDs ``(num_items, num_levels)``.

    Per-level lists: ``usage_rate_per_level``, ``unique_codes_per_level``, ``perplexity_per_level``.
    Aggregates over levels: ``unique_codes`` is their sum (distinct (level, code) pairs),
    ``usage_rate`` is that over ``num_levels * num_embeddings``, ``perplexity`` is the mean of
    the per-level perplexities. Whole IDs: ``unique_ids`` (distinct full IDs), ``unique_id_rate``,
    ``collision_rate`` (fraction of items whose full ID is shared with another item) and
    ``max_items_per_id``.
    """
    ids = torch.as_tensor(ids).long()
    if ids.dim() == 1:
        ids = ids[:, None]
    if ids.numel() == 0:
        raise ValueError("codebook_stats needs at least one semantic ID, got none")
    levels = ids.shape[1]
    unique_per_level = [int(torch.unique(ids[:, lv]).numel()) for lv in range(levels)]
    ppl_per_level = [perplexity(ids[:, lv], num_embeddings) for lv in range(levels)]
    _, inverse, counts = torch.unique(row_keys(ids), return_inverse=True, return_counts=True)
    n = ids.shape[0]
    return {
        "usage_rate": sum(unique_per_level) / (levels * num_embeddings),
        "unique_codes": sum(unique_per_level),
        "perplexity": sum(ppl_per_level) / levels,
        "usage_rate_per_level": [u / num_embeddings for u in unique_per_level],
        "unique_codes_per_level": unique_per_level,
        "perplexity_per_level": ppl_per_level,
        "unique_ids": int(counts.numel()),
        "unique_id_rate": counts.numel() / n,
        "collision_rate": float((counts[inverse] > 1).float().mean()),
        "max_items_per_id": int(counts.max()),
    }


@torch.no_grad()
def evaluate_quantization(
    model, dataloader: Iterable, device: str | torch.device | None = None
) -> dict:
    """The reference's ``usage_rate``, ``unique_codes`` and ``perplexity`` plus per-level and ID statistics.

    See ``codebook_stats`` for every key and how levels are aggregated.
    """
    ids = batch_inference(model, dataloader, device)
    return codebook_stats(ids, model.quantizer.num_embeddings)
