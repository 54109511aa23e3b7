"""Cold-start (new-item) retrieval, TIGER's protocol: a split with unseen items, and admitting them.

A seeded fraction of the catalogue is "new": no training sequence contains it and the ID table is
fitted without it, yet it can be a validation or test target. Constrained beam search over the
known items cannot emit a new item, so TIGER admits new items whose semantic ID shares the
generated item's prefix into the top K, at most a fraction epsilon of K (:func:`admit_new_items`).

Two baselines rank the new items alone, as (num_users, k) item ids that :func:`recall_ndcg`
scores directly on the new-item targets: :func:`random_new_items` (expected Recall@k is
``k / len(new_items)``) and :func:`nearest_text_new_items` (the new items whose text embedding is
closest to the mean of the user's history), the one that uses the same text the semantic IDs
come from.

An ID-based model (SASRec) and new items: "zero by construction" holds only for a model whose
table has no row for them. :class:`SASRec` built over the known items (``known_item_mask``) has
none, so it never emits a new item and its Recall@K on new-item targets is exactly 0; but it also
cannot read a history that holds one (``item_index`` raises ``KeyError``; in this split a new
validation item stays in its user's test history) or an empty one, so such histories must be
filtered first. Built over the whole catalogue, as :mod:`rqvae_lib.retrieval.experiment` builds
it, SASRec has a row for every new item and nothing is exact: the rows are never a training
target or a history input, but they are trained as negatives (every step under ``"ce"``, whose
softmax covers the whole catalogue; whenever one is sampled under ``"bce"``) and shrink by
weight decay. Their scores are therefore pushed down from the N(0, 0.02^2) initialisation, not
arbitrary and not minus infinity: a new item can still reach a top K, so its recall on new-item
targets is near 0, not 0 by construction.
"""

from __future__ import annotations

import math
import random
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F

from rqvae_lib.data.amazon import LeaveOneOut, leave_one_out
from rqvae_lib.retrieval.sequences import RetrievalSamples


class ColdSplit(NamedTuple):
    """A leave-one-out split whose training parts hold no new item, and the new items themselves."""

    split: LeaveOneOut  # training parts without new items; val/test as leave_one_out gives them
    new_items: frozenset[int]
    seed: int
    fraction: float


def cold_start_split(
    sequences: dict[int, list[int]],
    item_ids: Sequence[int],
    fraction: float = 0.05,
    seed: int = 0,
) -> ColdSplit:
    """Mark ``round(fraction * len(item_ids))`` items new (seeded) and drop them from training.

    The new items are ``random.Random(seed).sample`` of the sorted ids (global state untouched).
    Validation and test items are those of ``leave_one_out(sequences)``; new items are removed
    from each training part only, so a new validation item stays in its user's test history,
    while validation and test histories (read from the training part) lose their new items. A
    user whose training part becomes empty keeps an empty list and yields no training sample.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    catalogue = sorted(int(i) for i in item_ids)
    if len(set(catalogue)) != len(catalogue):
        raise ValueError("item_ids must be unique")
    count = round(fraction * len(catalogue))
    if not 0 < count < len(catalogue):
        raise ValueError(
            f"fraction {fraction} of {len(catalogue)} items gives {count} new items; "
            "need at least one new and one known item"
        )
    new_items = frozenset(random.Random(seed).sample(catalogue, count))
    split = leave_one_out(sequences)
    train = {user: [i for i in items if i not in new_items] for user, items in split.train.items()}
    return ColdSplit(LeaveOneOut(train, split.val, split.test), new_items, seed, fraction)


def known_item_mask(item_ids: Sequence[int] | np.ndarray, new_items: Collection[int]) -> np.ndarray:
    """Bool per catalogue row, True where the item is known: the rows an ID table may be fitted on."""
    return ~np.isin(np.asarray(item_ids), np.fromiter(new_items, dtype=np.int64))


def split_by_novelty(
    samples: RetrievalSamples, new_items: Collection[int]
) -> tuple[list[int], list[int]]:
    """Positions of the samples whose target is new, and of those whose target is known.

    Score each group alone and all samples together (new-item and known-item recall).
    """
    new = frozenset(new_items)
    new_pos = [i for i, target in enumerate(samples.targets) if target in new]
    known_pos = [i for i, target in enumerate(samples.targets) if target not in new]
    return new_pos, known_pos


class NewItemIndex:
    """New items grouped by semantic-ID prefix: built once per catalogue, applied to each user.

    ``codes[item]`` is an item's semantic ID (codes without the collision suffix, e.g.
    ``dict(zip(tokenizer.item_ids, tokenizer.semantic_ids.tolist()))``); it must cover every
    new item and every ranked item. ``prefix_len`` None compares the whole ID.
    """

    def __init__(
        self,
        codes: Mapping[int, Sequence[int]],
        new_items: Iterable[int],
        prefix_len: int | None = None,
    ) -> None:
        """Group the new items by their first ``prefix_len`` codes, ascending item id in a group."""
        if prefix_len is not None and prefix_len < 1:
            raise ValueError(f"prefix_len must be None or at least 1, got {prefix_len}")
        self.codes = codes
        self.prefix_len = prefix_len
        self.new_items: frozenset[int] = frozenset(int(i) for i in new_items)
        self._groups: dict[tuple[int, ...], list[int]] = {}
        for item in sorted(self.new_items):
            self._groups.setdefault(self.prefix(item), []).append(item)

    def prefix(self, item: int) -> tuple[int, ...]:
        """The item's first ``prefix_len`` codes (all of them when ``prefix_len`` is None)."""
        try:
            codes = self.codes[item]
        except KeyError:
            raise KeyError(f"item {item} has no semantic ID in codes") from None
        if self.prefix_len is not None and self.prefix_len > len(codes):
            raise ValueError(
                f"prefix_len {self.prefix_len} exceeds item {item}'s {len(codes)} codes"
            )
        return tuple(int(c) for c in codes[: self.prefix_len])

    def matching(self, item: int) -> list[int]:
        """The new items sharing ``item``'s prefix, ascending id (``item`` itself if it is new)."""
        return list(self._groups.get(self.prefix(item), ()))

    def admit(self, ranked: Sequence[int], k: int, epsilon: float) -> list[int]:
        """TIGER's admission rule on one user's ranking; see :func:`admit_new_items`."""
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        if not 0.0 <= epsilon <= 1.0:
            raise ValueError(f"epsilon must be in [0, 1], got {epsilon}")
        cap = math.floor(epsilon * k + 1e-9)  # tolerance: 0.29 * 100 is 28.999...
        out: list[int] = []
        admitted: set[int] = set()
        for item in ranked:
            if len(out) >= k:
                break
            if item in admitted:  # a new item already inserted after a better-ranked item
                continue
            out.append(item)
            if item in self.new_items:  # generated by the model itself: kept, counts to the cap
                admitted.add(item)
            if len(admitted) >= cap:
                continue
            for new in self.matching(item):
                if len(admitted) >= cap:
                    break
                if new not in admitted:
                    out.append(new)
                    admitted.add(new)
        return out[:k]

    def admit_all(self, ranked: Tensor, k: int, epsilon: float) -> Tensor:
        """:meth:`admit` on every row of ``ranked`` (num_users, width) item ids: (num_users, k).

        ``-1`` entries (a beam search that found fewer items) are skipped; short rows are padded
        with -1, as the search pads them.
        """
        out = torch.full((len(ranked), k), -1, dtype=torch.long)
        for user, row in enumerate(torch.as_tensor(ranked).long().tolist()):
            admitted = self.admit([item for item in row if item >= 0], k, epsilon)
            out[user, : len(admitted)] = torch.tensor(admitted, dtype=torch.long)
        return out


def admit_new_items(
    ranked: Sequence[int],
    codes: Mapping[int, Sequence[int]],
    new_items: Iterable[int],
    k: int,
    epsilon: float,
    prefix_len: int | None = None,
) -> list[int]:
    """Top ``k`` of ``ranked`` with new items sharing a ranked item's ID prefix admitted (TIGER).

    Walk ``ranked`` (best first, normally known items); after each item, insert the new items whose
    first ``prefix_len`` codes equal its own, ascending id, skipping any already in the output,
    until ``floor(epsilon * k)`` new items are in it; truncate to ``k``. A new item already in
    ``ranked`` keeps its place (unless already inserted higher) and counts to the cap (the cap
    limits insertions; ranked items are dropped only by the truncation). ``epsilon`` 0 gives ``ranked[:k]``. For many users, build
    one :class:`NewItemIndex` and call its ``admit``.
    """
    return NewItemIndex(codes, new_items, prefix_len).admit(ranked, k, epsilon)


def _sorted_new_items(new_items: Collection[int]) -> Tensor:
    """The new items as a (M,) long tensor, ascending id; at least one, no repeats."""
    items = sorted({int(i) for i in new_items})
    if not items:
        raise ValueError("new_items is empty")
    return torch.tensor(items, dtype=torch.long)


def random_new_items(num_users: int, new_items: Collection[int], k: int, seed: int = 0) -> Tensor:
    """Each user's ``k`` distinct new items drawn uniformly, in random order: (num_users, k) ids.

    The baseline's expected Recall@k on a new-item target is ``k / len(new_items)``. The draws
    come from a ``torch.Generator`` seeded with ``seed`` over the sorted ids, so they depend on
    ``seed`` alone (not on global state or the order of ``new_items``). With fewer than ``k`` new
    items, each row is a permutation of all of them padded with -1 (as ``most_popular``).
    """
    if num_users < 0:
        raise ValueError(f"num_users must be at least 0, got {num_users}")
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    items = _sorted_new_items(new_items)  # (M,)
    width = min(k, len(items))
    out = torch.full((num_users, k), -1, dtype=torch.long)
    g = torch.Generator().manual_seed(seed)
    chunk = 4096  # fixed, so the draws depend on the seed only
    for start in range(0, num_users, chunk):
        keys = torch.rand(min(chunk, num_users - start), len(items), generator=g)  # (B, M)
        # The top `width` of i.i.d. uniform keys: a uniform subset in uniform order.
        out[start : start + len(keys), :width] = items[keys.topk(width, dim=1).indices]
    return out


def nearest_text_new_items(
    histories: Sequence[Sequence[int]],
    embeddings: Tensor | np.ndarray,
    item_ids: Sequence[int] | Tensor,
    new_items: Collection[int],
    k: int,
    batch_size: int = 1024,
) -> Tensor:
    """The ``k`` new items nearest in text to each user's history, best first: (num_users, k) ids.

    ``embeddings`` (num_rows, dim) are the catalogue's text embeddings, row r belonging to
    ``item_ids[r]`` (the order of ``ItemDataset.item_ids``; P5 ids, which start at 1). Rows are
    L2-normalised; a user's query is the mean of their history items' rows (a repeated item
    counts each time; a new item in the history counts like any other), and the new items are
    ranked by cosine similarity to it, highest first, ties by smaller item id. An empty history
    falls back to the mean of every normalised row of ``embeddings`` (the average item).
    Nothing is excluded: a new item in the history can be ranked (TIGER does not mask; see
    :mod:`rqvae_lib.retrieval.metrics`). With fewer than ``k`` new items rows are padded with -1.
    Scores are float64 on the embeddings' device, ``batch_size`` users at a time; the result is
    on the CPU.
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    emb = torch.as_tensor(embeddings)
    ids = torch.as_tensor(item_ids).long().view(-1)
    if emb.ndim != 2 or emb.shape[0] != len(ids):
        raise ValueError(f"embeddings {tuple(emb.shape)} do not match {len(ids)} item ids")
    row_of = {item: r for r, item in enumerate(ids.tolist())}
    if len(row_of) != len(ids):
        raise ValueError("item_ids must be unique")

    def rows(items: Iterable[int]) -> list[int]:
        try:
            return [row_of[int(i)] for i in items]
        except KeyError as err:
            raise KeyError(f"item {err.args[0]} has no row in embeddings") from None

    new = _sorted_new_items(new_items)  # (M,) ascending: a stable sort breaks ties by id
    unit = F.normalize(emb.double(), dim=1)  # (R, D); a zero row stays zero
    candidates = unit[torch.tensor(rows(new.tolist()), device=unit.device)]  # (M, D)
    fallback = unit.mean(dim=0)  # (D,) the query of an empty history
    width = min(k, len(new))
    out = torch.full((len(histories), k), -1, dtype=torch.long)
    for start in range(0, len(histories), batch_size):
        chunk = histories[start : start + batch_size]
        lengths = torch.tensor([len(h) for h in chunk], device=unit.device)  # (B,)
        flat = torch.tensor(rows(i for h in chunk for i in h), dtype=torch.long, device=unit.device)
        offsets = torch.cumsum(lengths, 0) - lengths  # (B,) start of each bag
        query = F.embedding_bag(flat, unit, offsets, mode="mean")  # (B, D); empty bag -> 0
        query[lengths == 0] = fallback
        scores = F.normalize(query, dim=1) @ candidates.T  # (B, M) cosine similarities
        order = scores.sort(dim=1, descending=True, stable=True).indices[:, :width]  # (B, width)
        out[start : start + len(chunk), :width] = new[order.cpu()]
    return out
