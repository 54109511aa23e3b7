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
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure
from torch import Tensor

from rqvae_lib.course.analysis import (
    category_prediction,
    consecutive_pairs,
    pair_prefix_sharing,
    shared_prefix_length,
)
from rqvae_lib.course.seeds import verdict
from rqvae_lib.data.amazon import LeaveOneOut
from rqvae_lib.retrieval.metrics import mean_sem

#: The tables notebook 08 compares: two content-only, each with its collaborative version.
AGREEMENT_TABLES = ("rqvae", "rqvae-collab", "rq-kmeans-balanced", "rq-kmeans-collab")
#: Each content table's collaborative version.
COLLAB_OF = {"rqvae": "rqvae-collab", "rq-kmeans-balanced": "rq-kmeans-collab"}


def heldout_pairs(split: LeaveOneOut) -> np.ndarray:
    """(last training item, validation item) of each user whose two differ: (num_pairs, 2).

    Each is a next review that no training part holds, so vectors learnt from the training parts
    alone never saw the pair (:func:`rqvae_lib.retrieval.collaborative.training_only_split`).
    """
    pairs = [(s[-1], split.val[u]) for u, s in split.train.items() if s and s[-1] != split.val[u]]
    return np.asarray(pairs, dtype=np.int64).reshape(-1, 2)


def agreement_pairs(split: LeaveOneOut) -> dict[str, np.ndarray]:
    """The two sets of pairs :func:`prefix_agreement` reads: consecutive items of the training
    parts (what the collaborative vectors learnt from) and :func:`heldout_pairs` (what they never
    saw)."""
    return {
        "training pairs": consecutive_pairs(split.train),
        "held-out pairs": heldout_pairs(split),
    }


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


def seed_agreement(
    split: str,
    seed: int,
    tables: Sequence[str] = AGREEMENT_TABLES,
    max_users: int | None = None,
    root: str | Path | None = None,
    config: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """:func:`prefix_agreement` of one seed's ID tables of ``split`` (``seeded_id_tables`` with
    ``config``, fitted or read from ``artifacts/retrieval``) on its sub-categories and
    :func:`agreement_pairs`, as notebook 08 computes it for its seed."""
    from rqvae_lib.data import ItemDataModule, top_category
    from rqvae_lib.retrieval.experiment import load_retrieval_data
    from rqvae_lib.retrieval.id_tables import seeded_id_tables

    data = load_retrieval_data(split, root, max_users)
    dm = ItemDataModule(root, split)
    dm.prepare_data()
    dm.setup()
    catalogue = dm.dataset("all")
    fitted = seeded_id_tables(
        split, tables, seed, root=root, config=config, sequences=data.sequences
    )
    labels = top_category(catalogue.items, level=2).tolist()
    ids = {name: fitted[name].ids for name in tables}
    return prefix_agreement(ids, catalogue.item_ids, labels, agreement_pairs(data.sequences))


def agreement_changes(
    records: Sequence[Mapping], dataset: str, column: str, pairs_of: Mapping[str, str] = COLLAB_OF
) -> pd.DataFrame:
    """Per content table and depth: ``column`` of the content table and of its collaborative
    version, and the change, each the mean over the seeds both have with its standard error over
    seeds; ``verdict`` says whether the change exceeds twice its standard error.

    ``records`` are JSON-like rows of :func:`prefix_agreement` with ``dataset``, ``seed``,
    ``table`` and ``depth`` (``benchmarks/collab_agreement.py`` writes them).
    """
    frame = pd.DataFrame([r for r in records if r["dataset"] == dataset])
    if frame.empty:
        return pd.DataFrame()
    rows = []
    for content, collaborative in pairs_of.items():
        for depth in sorted(frame["depth"].unique()):
            at = frame[frame["depth"] == depth].pivot_table(
                index="seed", columns="table", values=column
            )
            if content not in at or collaborative not in at:
                continue
            both = at[[content, collaborative]].dropna()
            row: dict = {"content table": content, "depth": int(depth), "seeds": len(both)}
            for label, values in (("content", both[content]), ("collaborative", both[collaborative]),
                                  ("change", both[collaborative] - both[content])):  # fmt: skip
                mean, sem = mean_sem(torch.tensor(values.to_numpy(), dtype=torch.float64))
                row[label], row[f"{label} sem"] = mean, sem
            row["verdict"] = verdict(row["change"], row["change sem"], len(both), "up", "down")
            rows.append(row)
    return pd.DataFrame(rows).set_index(["content table", "depth"]) if rows else pd.DataFrame()
