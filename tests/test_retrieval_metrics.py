"""rqvae_lib.retrieval.metrics: hit ranks, Recall and NDCG with standard errors, excluding history,
and the most-popular baseline."""

from __future__ import annotations

import math

import pytest
import torch

from rqvae_lib.data.amazon import leave_one_out
from rqvae_lib.retrieval import (
    drop_history,
    hit_ranks,
    most_popular,
    per_user_metric,
    recall_ndcg,
    user_ranks,
)


def test_recall_and_ndcg_by_hand() -> None:
    ranked = torch.arange(1, 21).repeat(4, 1)  # every user sees items 1..20 in order
    targets = [1, 3, 7, 99]  # ranks 1, 3, 7 and a miss
    assert hit_ranks(ranked, targets).tolist() == [1, 3, 7, 0]
    m = recall_ndcg(ranked, targets)
    assert m["recall@5"].mean == 0.5 and m["recall@10"].mean == 0.75
    assert m["recall@20"].mean == 0.75
    # NDCG: 1/log2(2) = 1, 1/log2(4) = 0.5, 1/log2(8) = 1/3.
    assert m["ndcg@5"].mean == 1.5 / 4
    assert m["ndcg@10"].mean == pytest.approx((1.5 + 1 / 3) / 4, abs=1e-15)
    # Standard error of the recall@5 hits [1, 1, 0, 0]: sample std sqrt(1/3), over sqrt(4).
    assert m["recall@5"].sem == pytest.approx(math.sqrt(1 / 3) / 2, abs=1e-15)
    with pytest.raises(ValueError):
        recall_ndcg(ranked[:, :10], targets)


def test_exclude_history_is_one_rule_for_every_ranking() -> None:
    ranked = torch.tensor([[5, 1, 2, 3, 4, 6]])
    assert drop_history(ranked, [[5, 2]]).tolist() == [[1, 3, 4, 6, -1, -1]]
    # Target 3 moves from rank 4 to rank 2 once history items 5 and 2 are removed.
    kept = recall_ndcg(ranked, [3], [[5, 2]], ks=(2, 4))
    masked = recall_ndcg(ranked, [3], [[5, 2]], ks=(2, 4), exclude_history=True)
    assert kept["recall@2"].mean == 0.0 and kept["ndcg@4"].mean == 1 / math.log2(5)
    assert masked["recall@2"].mean == 1.0 and masked["ndcg@2"].mean == 1 / math.log2(3)
    # A repeated purchase is unreachable when masking: why the default is False.
    assert recall_ndcg(ranked, [5], [[5]], ks=(4,), exclude_history=True)["recall@4"].mean == 0


def test_most_popular_counts_training_interactions_with_id_tie_break() -> None:
    train = leave_one_out({1: [3, 2, 3, 9, 8], 2: [2, 5, 3, 4, 7], 3: [5, 1]}).train
    # Training counts: 3 -> 3, then 2 and 5 with two each (tie: smaller id first), 1 -> 1.
    # Held-out items (9, 8, 4, 7) are never counted, so the catalogue runs out: -1 pads.
    assert most_popular(train, 4).tolist() == [3, 2, 5, 1]
    assert most_popular(train, 6).tolist() == [3, 2, 5, 1, -1, -1]
    histories = [[3, 1], [9]]
    assert most_popular(train, 3, histories).tolist() == [[3, 2, 5], [3, 2, 5]]
    assert most_popular(train, 3, histories, exclude_history=True).tolist() == [
        [2, 5, -1],
        [3, 2, 5],
    ]


def test_per_user_values_from_ranks_give_recall_ndcgs_means_and_errors() -> None:
    ranked = torch.arange(1, 21).repeat(5, 1)  # items 1..20 in order for every user
    targets = [1, 3, 7, 15, 99]  # ranks 1, 3, 7, 15 and a miss
    ranks = user_ranks(ranked, targets, k=10)
    assert ranks.tolist() == [1, 3, 7, 0, 0]  # rank 15 is beyond the top 10: a miss there
    assert user_ranks(ranked, targets, k=20).tolist() == [1, 3, 7, 15, 0]
    assert per_user_metric(ranks, "recall@5").tolist() == [1.0, 1.0, 0.0, 0.0, 0.0]
    assert per_user_metric(ranks, "ndcg@10").tolist() == pytest.approx([1, 0.5, 1 / 3, 0, 0])
    m = recall_ndcg(ranked, targets, ks=(5, 10))
    for name, value in m.items():
        per_user = per_user_metric(ranks, name)
        assert per_user.mean().item() == pytest.approx(value.mean, abs=1e-15), name
        assert (per_user.std() / math.sqrt(5)).item() == pytest.approx(value.sem, abs=1e-15)
    # The history rule is recall_ndcg's: item 3 moves to rank 2 once items 1 and 2 are dropped.
    assert user_ranks(ranked[:1], [3], 10, [[1, 2]], exclude_history=True).tolist() == [1]
    with pytest.raises(ValueError):
        user_ranks(ranked, targets, 10, exclude_history=True)  # no histories
    with pytest.raises(ValueError):
        per_user_metric(ranks, "mrr@10")
