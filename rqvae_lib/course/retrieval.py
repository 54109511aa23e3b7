"""The retrieval lesson's tables: results as frames, their standard errors, paired differences
between models on the same users, one user's top-k."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
from torch import nn

from rqvae_lib.retrieval.experiment import RetrievalData
from rqvae_lib.retrieval.metrics import MetricValue, mean_sem, per_user_metric


def results_frame(records: Sequence[Mapping[str, Any]], sem: bool = True) -> pd.DataFrame:
    """One row per record: test Recall/NDCG (``mean ± se`` strings, or floats), epochs, seconds."""
    rows = []
    for r in records:
        row: dict[str, Any] = {"dataset": r.get("dataset", ""), "model": r["name"]}
        if "job" in r:  # benchmark records: main run or ID ablation
            row["job"] = r["job"]
        for metric, (mean, se) in r["test"].items():
            row[metric] = f"{mean:.4f} ± {se:.4f}" if sem else mean
        if "epochs" in r:
            row["epochs (best)"] = f"{r['epochs']} ({r['best_epoch']})"
            row["train s"] = r["train_seconds"]
        row["test s"] = r["eval_seconds"]
        rows.append(row)
    frame = pd.DataFrame(rows)
    return frame.astype(object).where(frame.notna(), "")


def standard_errors(records: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """The standard errors of each record's test metrics, one row per record (indexed by name),
    aligned with ``results_frame(records, sem=False).set_index("model")`` for error bars."""
    frame = pd.DataFrame([{m: se for m, (_, se) in r["test"].items()} for r in records])
    return frame.set_axis([r["name"] for r in records]).rename_axis("model")


def paired_difference(
    record_a: Mapping[str, Any], record_b: Mapping[str, Any], metric: str = "recall@10"
) -> MetricValue:
    """Mean of ``metric`` for A minus B over the same test users, and its paired standard error.

    Both records need ``test_ranks`` (``run_seq2seq(..., keep_ranks=True)`` and the like), from
    the same test users in the same order. The standard error is that of the per-user
    differences, ``std(a_u - b_u) / sqrt(n)``: it counts what two models share user by user
    (both hit the easy users), so it is usually smaller than the unpaired
    ``sqrt(se_a^2 + se_b^2)``.
    """
    ranks = []
    for r in (record_a, record_b):
        if "test_ranks" not in r:
            raise ValueError(
                f"record {r.get('name', '?')!r} has no test_ranks: run with keep_ranks=True"
            )
        ranks.append(r["test_ranks"])
    if len(ranks[0]) != len(ranks[1]):
        raise ValueError(f"not the same users: {len(ranks[0])} and {len(ranks[1])} test ranks")
    return mean_sem(per_user_metric(ranks[0], metric) - per_user_metric(ranks[1], metric))


def recommendation_table(
    model: nn.Module, data: RetrievalData, index: int, k: int = 10
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One test user: their history (oldest first) and the model's top ``k`` with titles.

    The second frame marks the held-out test item (``hit``) and whether an item is already in the
    history (scored as any other item: no masking).
    """
    test = data.samples.test
    history, target = test.histories[index], test.targets[index]
    top = model.recommend([history], k, users=[test.users[index]])[0].tolist()  # type: ignore[operator]
    past = pd.DataFrame({"item": history, "title": [data.titles[i] for i in history]})
    recs = pd.DataFrame(
        {
            "rank": range(1, len(top) + 1),
            "item": top,
            "title": [data.titles.get(i, "(none)") for i in top],
            "hit": [i == target for i in top],
            "in history": [i in set(history) for i in top],
        }
    )
    return past, recs.set_index("rank")
