"""What semantic IDs mean: prefix trees, category prediction, co-purchase sharing, neighbours.

Every function takes IDs ``(num_items, num_levels)`` in catalogue order and returns plain
NumPy arrays or pandas DataFrames, so notebooks only print and plot.
"""

from __future__ import annotations

import contextlib
import re
import sys
import time
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor


def _ids(ids: Tensor | np.ndarray) -> np.ndarray:
    ids = np.asarray(torch.as_tensor(ids).long())
    return ids[:, None] if ids.ndim == 1 else ids


def prefix_keys(ids: Tensor | np.ndarray, depth: int) -> np.ndarray:
    """One integer per item naming its ID prefix of length ``depth`` (equal prefix, equal key)."""
    ids = _ids(ids)
    if not 1 <= depth <= ids.shape[1]:
        raise ValueError(f"depth must be between 1 and {ids.shape[1]}, got {depth}")
    return np.unique(ids[:, :depth], axis=0, return_inverse=True)[1].reshape(-1)


def prefix_tree_sizes(ids: Tensor | np.ndarray) -> dict[int, np.ndarray]:
    """Depth -> the number of items under each distinct prefix of that depth."""
    ids = _ids(ids)
    return {d: np.bincount(prefix_keys(ids, d)) for d in range(1, ids.shape[1] + 1)}


def prefix_tree_summary(ids: Tensor | np.ndarray) -> pd.DataFrame:
    """Per depth: distinct prefixes, items per prefix (mean, median, max) and singleton share."""
    rows = []
    for depth, sizes in prefix_tree_sizes(ids).items():
        rows.append(
            {
                "depth": depth,
                "prefixes": len(sizes),
                "mean_size": sizes.mean(),
                "median_size": float(np.median(sizes)),
                "max_size": int(sizes.max()),
                "items_alone": float((sizes == 1).sum() / sizes.sum()),
            }
        )
    return pd.DataFrame(rows).set_index("depth")


def _loo_majority_accuracy(
    keys: np.ndarray, labels: np.ndarray, score_only: np.ndarray | None = None
) -> tuple[float, float]:
    """Leave-one-out majority vote within groups: ``(accuracy, share of items scored)``.

    An item is scored only if at least one *other* item has its key; its prediction is the most
    common label among those others (ties go to the commoner label overall). Items alone under
    their key are left out rather than given a fallback guess, so the accuracy measures what the
    groups carry, not how many items happen to be alone. ``score_only`` (a boolean mask over the
    items) scores only the masked items; every item still votes.
    """
    num_labels = int(labels.max()) + 1
    counts = np.zeros((int(keys.max()) + 1, num_labels), dtype=np.int64)
    np.add.at(counts, (keys, labels), 1)
    prior = np.bincount(labels, minlength=num_labels) * 1e-9  # ties go to the commoner label
    if score_only is not None:  # per item (the same vote as below, item by item)
        rows = np.flatnonzero(score_only)
        others = counts[keys[rows]].copy()
        others[np.arange(len(rows)), labels[rows]] -= 1
        scored = others.sum(1) > 0
        correct = np.argmax(others + prior, axis=1) == labels[rows]
        if not scored.any():
            return float("nan"), 0.0
        return float(correct[scored].mean()), int(scored.sum()) / len(labels)
    pairs, weight = np.unique(np.stack([keys, labels], 1), axis=0, return_counts=True)
    others = counts[pairs[:, 0]].copy()  # (num_pairs, num_labels): the group's label counts
    others[np.arange(len(pairs)), pairs[:, 1]] -= 1  # ... without the item itself
    scored = others.sum(1) > 0
    correct = np.argmax(others + prior, axis=1) == pairs[:, 1]
    num_scored = int(weight[scored].sum())
    if num_scored == 0:
        return float("nan"), 0.0
    return float(weight[scored & correct].sum() / num_scored), num_scored / len(labels)


def category_prediction(
    ids: Tensor | np.ndarray,
    labels: Sequence,
    seed: int = 0,
    repeats: int = 3,
    score_only: np.ndarray | None = None,
) -> pd.DataFrame:
    """How well the ID prefix at each depth predicts a label, against random IDs and a guess.

    An item's prediction is the most common label among the *other* items that share its prefix
    (leave-one-out). Items alone under their prefix have nothing to vote with and are not scored:
    ``items_scored`` is the share of items that are. Two baselines, scored on exactly the items
    that ``accuracy`` scores: ``random_ids`` shuffles the labels among the scored items at each
    depth (the same groups and group sizes, the same items and label counts, no meaning),
    averaged over ``repeats`` draws; ``majority_label`` always guesses the overall commonest
    label. ``score_only`` (a boolean mask over the items, e.g. the items scored at the deepest
    depth) scores only those items at every depth, so that depths compare on the same items;
    all items still vote, and the shuffle of ``random_ids`` is then among the scored items of
    the mask.
    """
    ids = _ids(ids)
    codes, _ = pd.factorize(pd.Series(list(labels)), sort=True)
    majority = int(np.bincount(codes).argmax())
    mask = None if score_only is None else np.asarray(score_only, dtype=bool).reshape(-1)
    rng = np.random.default_rng(seed)
    rows = []
    for depth in range(1, ids.shape[1] + 1):
        keys = prefix_keys(ids, depth)
        accuracy, scored = _loo_majority_accuracy(keys, codes, mask)
        in_group = np.bincount(keys)[keys] >= 2  # the items scored at this depth
        if mask is not None:
            in_group &= mask
        members = np.flatnonzero(in_group)
        random_scores = []
        for _ in range(repeats):
            shuffled = codes.copy()
            shuffled[members] = codes[rng.permutation(members)]
            random_scores.append(_loo_majority_accuracy(keys, shuffled, mask)[0])
        rows.append(
            {
                "depth": depth,
                "items_scored": scored,
                "accuracy": accuracy,
                "random_ids": float(np.mean(random_scores)) if members.size else float("nan"),
                "majority_label": float(np.mean(codes[in_group] == majority))
                if in_group.any()
                else float("nan"),
            }
        )
    return pd.DataFrame(rows).set_index("depth")


def label_spread(ids: Tensor | np.ndarray, labels: Sequence, depth: int = 1) -> pd.DataFrame:
    """Per label: its items, over how many distinct ID prefixes of ``depth`` they spread, and the
    share of them under the label's most common prefix; largest labels first."""
    keys = prefix_keys(ids, depth)
    df = pd.DataFrame({"label": list(labels), "prefix": keys})
    out = df.groupby("label")["prefix"].agg(
        items="size",
        prefixes="nunique",
        top_prefix_share=lambda s: s.value_counts().iloc[0] / len(s),
    )
    return out.sort_values(["items", "prefixes"], ascending=[False, True])


def consecutive_pairs(sequences: dict[int, list[int]] | Iterable[list[int]]) -> np.ndarray:
    """Consecutive pairs ``(a, b)``, ``a != b``, from users' item sequences: (num_pairs, 2).

    On Amazon review data a sequence is one user's reviews in time order, so a pair is two items
    the same user reviewed one after the other (not necessarily bought together).
    """
    seqs = sequences.values() if isinstance(sequences, dict) else sequences
    pairs = [(a, b) for s in seqs for a, b in zip(s[:-1], s[1:], strict=True) if a != b]
    return np.asarray(pairs, dtype=np.int64).reshape(-1, 2)


def shared_prefix_length(ids: Tensor | np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """For rows ``a[i]`` and ``b[i]``: how many leading codes their IDs share (0..num_levels)."""
    ids = _ids(ids)
    same = ids[np.asarray(a)] == ids[np.asarray(b)]
    return np.cumprod(same, axis=1).sum(axis=1)


def pair_prefix_sharing(
    ids: Tensor | np.ndarray,
    item_ids: Sequence[int],
    pairs: np.ndarray,
    seed: int = 0,
    exact: bool = False,
) -> pd.DataFrame:
    """Fraction of item pairs sharing the ID prefix at each depth, against random pairs.

    ``item_ids[row]`` is the P5 id of row ``row`` of ``ids``; ``pairs`` holds P5 ids (e.g. from
    :func:`consecutive_pairs`). Random pairs keep each pair's first item and draw a different
    second one from all pair items (same popularity). Columns: ``pairs``, ``random_pairs`` and
    ``lift`` (their ratio; NaN where no random pair shares the prefix).

    ``exact=True`` computes ``random_pairs`` exactly instead of by one draw: for a pair whose
    first item is ``a``, the chance that the second item, drawn from all pair items by
    popularity and never ``a`` itself, shares ``a``'s prefix is ``(n_p - n_a) / (2P - n_a)``
    (``n_p``: how often items with ``a``'s prefix appear in the P pairs, ``n_a``: how often
    ``a`` does), averaged over the pairs. It also adds 95% Clopper-Pearson intervals for the
    share of real pairs (``pairs_low``, ``pairs_high``; they treat the pairs as independent
    draws) and the lift they give (``lift_low``, ``lift_high``).
    """
    ids = _ids(ids)
    row_of = {int(item): row for row, item in enumerate(item_ids)}
    rows = np.vectorize(row_of.__getitem__, otypes=[np.int64])(pairs)
    real = shared_prefix_length(ids, rows[:, 0], rows[:, 1])
    if exact:
        from scipy.stats import beta

        weight = np.bincount(rows.reshape(-1), minlength=ids.shape[0]).astype(np.float64)
        total, first = weight.sum(), rows[:, 0]
        out = []
        for d in range(1, ids.shape[1] + 1):
            keys = prefix_keys(ids, d)
            under = np.bincount(keys, weights=weight)[keys]  # pair entries under each prefix
            chance = (under[first] - weight[first]) / (total - weight[first])
            k, n = int(np.sum(real >= d)), len(real)
            low = beta.ppf(0.025, k, n - k + 1) if k > 0 else 0.0
            high = beta.ppf(0.975, k + 1, n - k) if k < n else 1.0
            out.append(
                {
                    "depth": d,
                    "pairs": k / n,
                    "random_pairs": float(chance.mean()),
                    "pairs_low": float(low),
                    "pairs_high": float(high),
                }
            )
        df = pd.DataFrame(out).set_index("depth")
        random = df["random_pairs"].replace(0.0, np.nan)
        df["lift"] = df["pairs"] / random
        df["lift_low"] = df["pairs_low"] / random
        df["lift_high"] = df["pairs_high"] / random
        return df[
            ["pairs", "random_pairs", "lift", "pairs_low", "pairs_high", "lift_low", "lift_high"]
        ]
    rng = np.random.default_rng(seed)
    random_b = rng.choice(rows.reshape(-1), size=len(rows))
    distinct = random_b != rows[:, 0]  # like the real pairs, never an item with itself
    rand = shared_prefix_length(ids, rows[distinct, 0], random_b[distinct])
    out = [
        {
            "depth": d,
            "pairs": float(np.mean(real >= d)),
            "random_pairs": float(np.mean(rand >= d)),
        }
        for d in range(1, ids.shape[1] + 1)
    ]
    df = pd.DataFrame(out).set_index("depth")
    df["lift"] = df["pairs"] / df["random_pairs"].replace(0.0, np.nan)  # NaN: no random pair
    return df


def embedding_neighbours(features: Tensor | np.ndarray, query: int, k: int = 10) -> np.ndarray:
    """Rows of the ``k`` items closest to ``query`` by cosine similarity (the query excluded)."""
    x = F.normalize(torch.as_tensor(features, dtype=torch.float32), dim=1)
    sims = x @ x[query]
    sims[query] = -float("inf")
    return sims.topk(k).indices.numpy()


def prefix_neighbours(
    ids: Tensor | np.ndarray, features: Tensor | np.ndarray, query: int, k: int = 10
) -> np.ndarray:
    """Rows of ``k`` items ranked by shared ID prefix length with ``query``, ties by cosine."""
    ids = _ids(ids)
    n = ids.shape[0]
    shared = shared_prefix_length(ids, np.full(n, query), np.arange(n)).astype(np.float64)
    x = F.normalize(torch.as_tensor(features, dtype=torch.float32), dim=1)
    score = shared * 10 + (x @ x[query]).numpy()  # cosine lies in [-1, 1]
    score[query] = -np.inf
    return np.argsort(-score, kind="stable")[:k]


def neighbour_table(
    ids: Tensor | np.ndarray,
    features: Tensor | np.ndarray,
    titles: Sequence[str],
    query: int,
    k: int = 5,
) -> pd.DataFrame:
    """Side by side: the ``k`` nearest items by embedding and by ID prefix, with shared depth."""
    ids = _ids(ids)
    from rqvae_lib.semantic_ids import ids_to_tokens

    out = {}
    for name, rows in (
        ("embedding", embedding_neighbours(features, query, k)),
        ("id_prefix", prefix_neighbours(ids, features, query, k)),
    ):
        out[f"{name}: title"] = [str(titles[r])[:60] for r in rows]
        out[f"{name}: id"] = ids_to_tokens(ids[rows])
        out[f"{name}: shared"] = shared_prefix_length(ids, np.full(k, query), rows)
    return pd.DataFrame(out, index=pd.RangeIndex(1, k + 1, name="rank"))


def neighbour_prefix_depths(
    ids: Tensor | np.ndarray,
    features: Tensor | np.ndarray,
    k: int = 10,
    sample: int = 1000,
    seed: int = 0,
    distinct_random: bool = False,
    metric: str = "cosine",
) -> tuple[np.ndarray, np.ndarray]:
    """Shared prefix length between sampled items and their ``k`` embedding neighbours, and
    between the same items and ``k`` random items: two flat arrays to compare.

    ``distinct_random=True`` never draws a sampled item itself as one of its random items (like
    its neighbours, which never include it); by default a random item may be the item itself.
    ``metric``: ``"cosine"`` (default) or ``"euclidean"`` (nearest by squared distance, the
    lookup's metric in an RQ-VAE latent) picks the neighbours.
    """
    if metric not in ("cosine", "euclidean"):
        raise ValueError(f"metric must be 'cosine' or 'euclidean', got {metric!r}")
    ids = _ids(ids)
    rng = np.random.default_rng(seed)
    n = ids.shape[0]
    queries = rng.choice(n, size=min(sample, n), replace=False)
    x = torch.as_tensor(features, dtype=torch.float32)
    if metric == "cosine":
        x = F.normalize(x, dim=1)
        sims = x[queries] @ x.T
    else:  # minus the squared distance, up to a per-query constant
        sims = 2 * x[queries] @ x.T - (x * x).sum(1)
    sims[torch.arange(len(queries)), torch.as_tensor(queries)] = -float("inf")
    nn_rows = sims.topk(k, dim=1).indices.numpy()
    a = np.repeat(queries, k)
    if distinct_random:  # draw among the n - 1 other items: skip over the item itself
        random_rows = rng.integers(0, n - 1, size=a.size)
        random_rows += random_rows >= a
    else:
        random_rows = rng.integers(0, n, size=a.size)
    return (
        shared_prefix_length(ids, a, nn_rows.reshape(-1)),
        shared_prefix_length(ids, a, random_rows),
    )


def comparison_row(name: str, stats: dict, recon: dict) -> dict:
    """One row of a model comparison from ``codebook_stats`` and a reconstruction dict."""
    row = {"model": name}
    for lv, (use, ppl) in enumerate(
        zip(stats["usage_rate_per_level"], stats["perplexity_per_level"], strict=True), start=1
    ):
        row[f"usage L{lv}"] = round(use, 3)
        row[f"perplexity L{lv}"] = round(ppl, 1)
    row["unique IDs"] = stats["unique_ids"]
    row["collision rate"] = round(stats["collision_rate"], 4)
    row["max items/ID"] = stats["max_items_per_id"]
    row["rel. error"] = round(recon["relative_error"], 4)
    return row


def history_table(
    history: Sequence[dict], epochs: Sequence[int], num_embeddings: int
) -> pd.DataFrame:
    """Codes used and perplexity per level at the given (1-based) epochs of a usage history."""
    df = pd.DataFrame(list(history))
    df["epoch"] = df["epoch"] + 1
    levels = sorted(int(c[len("usage_l") :]) for c in df.columns if c.startswith("usage_l"))
    df = df.set_index("epoch").loc[[e for e in epochs if e in set(df["epoch"])]]
    out = pd.DataFrame(index=df.index)
    for lv in levels:
        out[f"codes used L{lv}"] = (df[f"usage_l{lv}"] * num_embeddings).round().astype(int)
    for lv in levels:
        out[f"perplexity L{lv}"] = df[f"perplexity_l{lv}"].round(1)
    return out


def full_usage_epochs(history: Sequence[dict]) -> pd.DataFrame:
    """Per level of a usage history: the first epoch (1-based) with every code used, and the
    epoch from which every code stays used to the end of the history (NaN where never/not)."""
    df = pd.DataFrame(list(history))
    epochs = df["epoch"].to_numpy() + 1
    levels = sorted(int(c[len("usage_l") :]) for c in df.columns if c.startswith("usage_l"))
    rows = []
    for lv in levels:
        full = df[f"usage_l{lv}"].to_numpy() >= 1.0
        first = epochs[full][0] if full.any() else np.nan
        not_full = np.flatnonzero(~full)
        if not full[-1]:
            since = np.nan
        else:
            since = epochs[not_full[-1] + 1] if len(not_full) else epochs[0]
        rows.append({"level": lv, "first_epoch_all_used": first, "all_used_from_epoch": since})
    return pd.DataFrame(rows).set_index("level")


class _TsneProgress:
    """A stdout stand-in for t-SNE's verbose log: one short line every ``every`` iterations."""

    ITERATION = re.compile(r"Iteration (\d+): error = ([\d.eE+-]+)")

    def __init__(self, every: int, out) -> None:
        self.every, self.out, self.start, self.buffer = every, out, time.perf_counter(), ""

    def write(self, text: str) -> int:
        self.buffer += text
        *lines, self.buffer = self.buffer.split("\n")
        for line in lines:
            match = self.ITERATION.search(line)
            if match and int(match.group(1)) % self.every == 0:
                elapsed = time.perf_counter() - self.start
                print(
                    f"t-SNE iteration {match.group(1)}: KL divergence {float(match.group(2)):.2f}"
                    f" ({elapsed:.0f} s)",
                    file=self.out,
                    flush=True,
                )
        return len(text)

    def flush(self) -> None:
        self.out.flush()


def tsne_2d(
    features: Tensor | np.ndarray,
    seed: int = 0,
    pca_dims: int = 50,
    perplexity: float = 30.0,
    report_every: int = 100,
) -> np.ndarray:
    """2-D t-SNE of ``features`` after PCA to ``pca_dims``: ``(num_items, 2)``.

    t-SNE on a few thousand items takes tens of seconds on a laptop CPU, so it prints one line
    every ``report_every`` iterations (0: silent). Seeded: the same input gives the same map.
    """
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    x = torch.as_tensor(features, dtype=torch.float32).numpy()
    dims = min(pca_dims, x.shape[0], x.shape[1])
    reduced = PCA(n_components=dims, random_state=seed).fit_transform(x)
    tsne = TSNE(
        n_components=2,
        init="pca",
        perplexity=perplexity,
        random_state=seed,
        verbose=2 if report_every else 0,
    )
    if not report_every:
        return tsne.fit_transform(reduced)
    with contextlib.redirect_stdout(_TsneProgress(report_every, sys.stdout)):
        return tsne.fit_transform(reduced)
