"""Item-level Recall@K and NDCG@K over all users, and the most-popular baseline.

Each user has one held-out target, so Recall@K is 1 if it is in the top K (else 0) and NDCG@K is
``1 / log2(rank + 1)`` for a hit at 1-based ``rank <= K`` (the ideal DCG is 1). Users with no hit
count as 0: the mean is over every user, with its standard error ``std / sqrt(n)`` (sample std).

Items already in the history: ``exclude_history`` removes them from every ranked list before
scoring, the same way for every model. The default is False, because TIGER (and P5) do not mask,
and because a held-out item can repeat an earlier purchase, which masking would make unreachable.
Models that want masking should return at least ``K + max_history`` candidates.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import torch
from torch import Tensor

#: The cut-offs reported by TIGER.
KS = (5, 10, 20)


class MetricValue(NamedTuple):
    """A mean over users and its standard error."""

    mean: float
    sem: float


def drop_history(ranked: Tensor, histories: Sequence[Sequence[int]]) -> Tensor:
    """Remove each user's history items from their ranked list, keep the order, pad with -1."""
    ranked = torch.as_tensor(ranked).long()
    if len(histories) != ranked.shape[0]:
        raise ValueError(f"{len(histories)} histories for {ranked.shape[0]} ranked lists")
    out = torch.full_like(ranked, -1)
    for u, (row, history) in enumerate(zip(ranked.tolist(), histories, strict=True)):
        seen = set(history)
        kept = [item for item in row if item not in seen]
        out[u, : len(kept)] = torch.tensor(kept, dtype=torch.long)
    return out


def hit_ranks(ranked: Tensor, targets: Sequence[int] | Tensor) -> Tensor:
    """1-based rank of each user's target in their ranked list (first occurrence); 0 if absent."""
    ranked = torch.as_tensor(ranked).long()  # (n, width)
    targets = torch.as_tensor(targets).long().view(-1, 1)  # (n, 1)
    if ranked.ndim != 2 or ranked.shape[0] != targets.shape[0]:
        raise ValueError(f"ranked {tuple(ranked.shape)} does not match {targets.shape[0]} targets")
    hit = ranked == targets  # (n, width)
    first = hit.float().argmax(dim=1) + 1  # (n,) position of the first hit
    return torch.where(hit.any(dim=1), first, torch.zeros_like(first))


def user_ranks(
    ranked: Tensor,
    targets: Sequence[int] | Tensor,
    k: int,
    histories: Sequence[Sequence[int]] | None = None,
    exclude_history: bool = False,
) -> Tensor:
    """Each user's 1-based rank of their target within the top ``k`` (0: not there), under the
    rule of :func:`recall_ndcg` (``exclude_history`` drops history items first).

    Every Recall@K and NDCG@K with K <= ``k`` follows from these ranks user by user
    (:func:`per_user_metric`), which is what a paired comparison of two models needs.
    """
    ranked = torch.as_tensor(ranked).long()
    if exclude_history:
        if histories is None:
            raise ValueError("exclude_history=True needs the users' histories")
        ranked = drop_history(ranked, histories)
    rank = hit_ranks(ranked, targets)  # (n,)
    return torch.where(rank <= k, rank, torch.zeros_like(rank))


def per_user_metric(ranks: Tensor | Sequence[int], metric: str) -> Tensor:
    """Each user's ``"recall@K"`` (1 for a hit within K, else 0) or ``"ndcg@K"``
    (``1 / log2(rank + 1)`` for a hit within K, else 0), float64, from :func:`user_ranks`.

    Their mean and its standard error are :func:`recall_ndcg`'s values for that metric.
    """
    name, _, k = metric.partition("@")
    if name not in ("recall", "ndcg") or not k.isdigit():
        raise ValueError(f"metric must be 'recall@K' or 'ndcg@K', got {metric!r}")
    rank = torch.as_tensor(ranks).double()
    within = (rank > 0) & (rank <= int(k))
    if name == "recall":
        return within.double()
    return torch.where(within, 1.0 / torch.log2(rank + 1.0), torch.zeros_like(rank))


def mean_sem(values: Tensor) -> MetricValue:
    """Mean of per-user (or per-seed) values and its standard error, ``std / sqrt(n)``."""
    n = values.numel()
    sem = (values.std(correction=1) / math.sqrt(n)).item() if n > 1 else float("nan")
    return MetricValue(values.mean().item(), sem)


def recall_ndcg(
    ranked: Tensor,
    targets: Sequence[int] | Tensor,
    histories: Sequence[Sequence[int]] | None = None,
    ks: Sequence[int] = KS,
    exclude_history: bool = False,
) -> dict[str, MetricValue]:
    """``{"recall@K": ..., "ndcg@K": ...}`` for each K, from (num_users, >= max K) ranked item ids.

    ``histories`` is needed only with ``exclude_history=True`` (see the module docstring).
    """
    ranked = torch.as_tensor(ranked).long()
    if ranked.ndim != 2 or ranked.shape[0] == 0 or ranked.shape[1] < max(ks):
        raise ValueError(f"ranked must be (num_users > 0, >= {max(ks)}); got {tuple(ranked.shape)}")
    if exclude_history:
        if histories is None:
            raise ValueError("exclude_history=True needs the users' histories")
        ranked = drop_history(ranked, histories)
    rank = hit_ranks(ranked, targets).double()  # (n,) 0 = miss
    hit = rank > 0
    gain = torch.where(hit, 1.0 / torch.log2(rank + 1.0), torch.zeros_like(rank))  # (n,)
    out = {}
    for k in ks:
        within = hit & (rank <= k)
        out[f"recall@{k}"] = mean_sem(within.double())
        out[f"ndcg@{k}"] = mean_sem(torch.where(within, gain, torch.zeros_like(gain)))
    return out


def item_popularity(train: Mapping[int, Sequence[int]]) -> Tensor:
    """Item ids ranked by training-interaction count, most popular first, ties by smaller id.

    ``train`` is user -> training items (``LeaveOneOut.train``): every training interaction
    counts, the first item of each sequence included, and no held-out item.
    """
    counts = Counter(item for items in train.values() for item in items)
    order = sorted(counts, key=lambda item: (-counts[item], item))
    return torch.tensor(order, dtype=torch.long)


def most_popular(
    train: Mapping[int, Sequence[int]],
    k: int,
    histories: Sequence[Sequence[int]] | None = None,
    exclude_history: bool = False,
) -> Tensor:
    """The K most popular training items: (k,), or (num_users, k) when ``histories`` is given.

    With ``exclude_history`` each user's list skips their history items, by :func:`drop_history`,
    the rule :func:`recall_ndcg` applies; lists are padded with -1 if the catalogue runs out.
    """
    popular = item_popularity(train)
    if histories is None:
        if exclude_history:
            raise ValueError("exclude_history=True needs the users' histories")
        return torch.cat([popular[:k], torch.full((max(0, k - len(popular)),), -1)])
    longest = max((len(h) for h in histories), default=0)
    width = k + longest if exclude_history else k
    head = torch.cat([popular[:width], torch.full((max(0, width - len(popular)),), -1)])
    ranked = head.expand(len(histories), width)  # (num_users, width)
    if exclude_history:
        ranked = drop_history(ranked, histories)
    return ranked[:, :k].clone()
