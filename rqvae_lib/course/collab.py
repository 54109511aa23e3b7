"""Notebook 08's reading of collaborative IDs: what the alignment term moves, measured two ways.

An ID table's prefixes can group items two ways: by what they are (a category) and by what
users do with them (items one user reviewed one after the other). :func:`prefix_agreement`
measures both per table and depth, with :mod:`rqvae_lib.course.analysis`'s leave-one-out
category vote and its exact chance level for pairs; :func:`heldout_pairs` gives the pairs that
no training part holds, so that a table aligned with vectors learnt from the training parts is
also judged on pairs it never saw; :func:`moved_pairs` lists the pairs a table brings under a
shared prefix that another table keeps apart.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure
from torch import Tensor

from rqvae_lib.course.analysis import (
    category_prediction,
    pair_prefix_sharing,
    shared_prefix_length,
)
from rqvae_lib.data.amazon import LeaveOneOut


def heldout_pairs(split: LeaveOneOut) -> np.ndarray:
    """(last training item, validation item) of each user whose two differ: (num_pairs, 2).

    Each is a next review that no training part holds, so vectors learnt from the training parts
    alone never saw the pair (:func:`rqvae_lib.retrieval.collaborative.training_only_split`).
    """
    pairs = [(s[-1], split.val[u]) for u, s in split.train.items() if s and s[-1] != split.val[u]]
    return np.asarray(pairs, dtype=np.int64).reshape(-1, 2)


def prefix_agreement(
    tables: Mapping[str, Tensor | np.ndarray],
    item_ids: Sequence[int] | Tensor,
    labels: Sequence,
    pairs: Mapping[str, np.ndarray],
    depths: Sequence[int] = (1, 2),
) -> pd.DataFrame:
    """Per table and prefix depth: how well the prefix groups a category, and how often pairs
    share it.

    ``tables`` maps a name to IDs ``(num_items, num_levels)`` whose rows are ``item_ids``, as are
    ``labels``. ``category`` is :func:`~rqvae_lib.course.analysis.category_prediction`'s
    leave-one-out accuracy (items alone under their prefix are not scored: ``items_scored``).
    For each named set of ``pairs`` (P5 ids), ``<name>`` is the share of pairs whose IDs share
    the prefix and ``<name> lift`` that share over its exact chance level (the second item drawn
    by popularity: :func:`~rqvae_lib.course.analysis.pair_prefix_sharing`).
    """
    item_ids = [int(i) for i in torch.as_tensor(item_ids).tolist()]
    rows = []
    for name, ids in tables.items():
        category = category_prediction(ids, labels, repeats=1)
        sharing = {
            key: pair_prefix_sharing(ids, item_ids, p, exact=True) for key, p in pairs.items()
        }
        for depth in depths:
            row = {"table": name, "depth": depth,
                   "items_scored": float(category.loc[depth, "items_scored"]),
                   "category": float(category.loc[depth, "accuracy"])}  # fmt: skip
            for key, df in sharing.items():
                row[key] = float(df.loc[depth, "pairs"])
                row[f"{key} lift"] = float(df.loc[depth, "lift"])
            rows.append(row)
    return pd.DataFrame(rows).set_index(["table", "depth"])


def moved_pairs(
    before: Tensor | np.ndarray,
    after: Tensor | np.ndarray,
    item_ids: Sequence[int] | Tensor,
    pairs: np.ndarray,
    depth: int,
    titles: Mapping[int, str] | None = None,
) -> pd.DataFrame:
    """The pairs whose IDs share the first ``depth`` codes in ``after`` but not in ``before``.

    One row per unordered pair (P5 ids ``a < b``), with ``count`` (how often it occurs in
    ``pairs``), both IDs in each table and, given ``titles`` (P5 id -> title), both titles;
    the commonest pairs first, then by item ids.
    """
    item_ids = [int(i) for i in torch.as_tensor(item_ids).tolist()]
    row_of = {item: r for r, item in enumerate(item_ids)}
    before, after = np.asarray(torch.as_tensor(before)), np.asarray(torch.as_tensor(after))
    unordered = np.sort(np.asarray(pairs, dtype=np.int64).reshape(-1, 2), axis=1)
    found, count = np.unique(unordered, axis=0, return_counts=True)
    a = np.array([row_of[int(i)] for i in found[:, 0]], dtype=np.int64)
    b = np.array([row_of[int(i)] for i in found[:, 1]], dtype=np.int64)
    joined = (shared_prefix_length(after, a, b) >= depth) & (
        shared_prefix_length(before, a, b) < depth
    )
    out = pd.DataFrame({"a": found[joined, 0], "b": found[joined, 1], "count": count[joined],
                        "before a": [before[r].tolist() for r in a[joined]],
                        "before b": [before[r].tolist() for r in b[joined]],
                        "after a": [after[r].tolist() for r in a[joined]],
                        "after b": [after[r].tolist() for r in b[joined]]})  # fmt: skip
    if titles is not None:
        out["title a"] = [titles[int(i)] for i in out["a"]]
        out["title b"] = [titles[int(i)] for i in out["b"]]
    return out.sort_values(
        ["count", "a", "b"], ascending=[False, True, True], kind="stable"
    ).reset_index(drop=True)


def agreement_figure(
    agreement: pd.DataFrame,
    pair_set: str,
    pairs_of: Mapping[str, str],
    depths: Sequence[int] = (1, 2),
) -> Figure:
    """Category accuracy (x) against the lift of ``pair_set``'s sharing (y), a panel per prefix
    depth, one point per table of :func:`prefix_agreement`'s frame; an arrow from each table to
    its collaborative version (``pairs_of``: content table -> collaborative table)."""
    fig, axes = plt.subplots(1, len(depths), figsize=(6 * len(depths), 4.5), layout="constrained")
    axes = np.atleast_1d(axes)
    for ax, depth in zip(axes, depths, strict=True):
        at = agreement.xs(depth, level="depth")
        x, y = at["category"], at[f"{pair_set} lift"]
        for i, name in enumerate(at.index):
            ax.scatter(x[name], y[name], color=f"C{i}", s=50, label=name)
        for start, end in pairs_of.items():
            if start in at.index and end in at.index:
                ax.annotate("", xy=(x[end], y[end]), xytext=(x[start], y[start]),
                            arrowprops={"arrowstyle": "->", "color": "gray"})  # fmt: skip
        ax.set_xlabel(f"category accuracy, first {depth} code(s) (leave-one-out vote)")
        ax.set_ylabel(f"{pair_set} sharing the first {depth} code(s), times chance")
        ax.set_title(f"prefix depth {depth}")
        ax.grid(alpha=0.3)
    axes[-1].legend(fontsize=8)
    fig.suptitle("what a prefix groups: categories against what users do (arrows: + collaborative)")
    return fig
