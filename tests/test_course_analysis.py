"""rqvae_lib.course.analysis: what semantic IDs mean (prefixes, categories, neighbours, usage, t-SNE)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import usage_history

from rqvae_lib.course import analysis
from rqvae_lib.data import make_synthetic_catalogue
from rqvae_lib.evaluate import reconstruction_error


def test_category_prediction_beats_random_on_true_clusters():
    cat = make_synthetic_catalogue(600, 16, (4, 4, 4), seed=1)
    ids = torch.as_tensor(cat.labels)  # a perfect hierarchical ID
    df = analysis.category_prediction(ids, cat.labels[:, 0])
    assert list(df.index) == [1, 2, 3]
    assert (df["accuracy"] == 1.0).all()  # every depth: the other items share the label
    assert df["random_ids"].max() < 0.5
    assert df["majority_label"].max() < 0.5 and (df["items_scored"] == 1.0).all()


def test_category_prediction_leaves_items_alone_under_their_prefix_out():
    # Depth 2: items 0-1 share a prefix (same label), items 2-5 are alone. The old fallback
    # (alone -> the majority label) would have scored the lone items too and pulled the accuracy
    # towards the majority baseline; here they are simply not scored.
    ids = torch.tensor([[0, 0], [0, 0], [0, 1], [0, 2], [1, 3], [1, 4]])
    labels = ["x", "x", "y", "y", "y", "z"]
    df = analysis.category_prediction(ids, labels)
    assert df.loc[2, "items_scored"] == pytest.approx(2 / 6)
    assert df.loc[2, "accuracy"] == 1.0
    assert df.loc[2, "majority_label"] == 0.0  # "y" is the commonest label; the scored are "x"
    # depth 1: every item is scored. In {0,1,2,3} (x, x, y, y) each item's *others* hold more of
    # the other label, and in {4,5} (y, z) each sees only the other: leave-one-out gets all wrong.
    assert df.loc[1, "items_scored"] == 1.0
    assert df.loc[1, "accuracy"] == 0.0


def test_category_prediction_random_baseline_scores_the_same_items():
    # Depth 2: only items 0-1 (both "x") share a prefix. The random baseline shuffles the labels
    # among the scored items, so it scores those two items too, with their own labels: 1.0. (The
    # old baseline permuted the IDs over all items, which changed which items were scored.)
    ids = torch.tensor([[0, 0], [0, 0], [0, 1], [0, 2], [1, 3], [1, 4]])
    labels = ["x", "x", "y", "y", "y", "z"]
    df = analysis.category_prediction(ids, labels, repeats=5)
    assert df.loc[2, "random_ids"] == 1.0
    # depth 1: all six are scored and shuffled; the label counts stay those of the scored items
    assert 0.0 <= df.loc[1, "random_ids"] <= 1.0
    # score_only: depth 1 scored on items 0 and 1 only; the others still vote. Item 0's others
    # in {0,1,2,3} are x, y, y: wrong, and the same for item 1.
    only = analysis.category_prediction(ids, labels, score_only=np.array([1, 1, 0, 0, 0, 0], bool))
    assert np.allclose(only["items_scored"], 2 / 6)
    assert only.loc[1, "accuracy"] == 0.0 and only.loc[2, "accuracy"] == 1.0
    assert only.loc[1, "majority_label"] == 0.0  # the two scored items are "x"; "y" is commoner


def test_label_spread_counts_prefixes_per_label():
    ids = torch.tensor([[0, 0], [0, 1], [1, 0], [2, 0], [2, 1]])
    spread = analysis.label_spread(ids, ["a", "a", "a", "b", "b"], depth=1)
    assert list(spread.index) == ["a", "b"]
    assert spread.loc["a", "items"] == 3 and spread.loc["a", "prefixes"] == 2
    assert spread.loc["a", "top_prefix_share"] == pytest.approx(2 / 3)
    assert spread.loc["b", "prefixes"] == 1


def test_full_usage_epochs_first_and_from():
    usage = [(0.5, 1.0), (1.0, 0.9), (0.9, 1.0), (1.0, 1.0), (1.0, 1.0)]
    history = [
        {"epoch": e, "usage_l1": a, "usage_l2": b, "usage_l3": 0.5}
        for e, (a, b) in enumerate(usage)
    ]
    df = analysis.full_usage_epochs(history)
    assert df.loc[1, "first_epoch_all_used"] == 2 and df.loc[1, "all_used_from_epoch"] == 4
    assert df.loc[2, "first_epoch_all_used"] == 1 and df.loc[2, "all_used_from_epoch"] == 3
    assert np.isnan(df.loc[3, "first_epoch_all_used"]) and np.isnan(
        df.loc[3, "all_used_from_epoch"]
    )


def test_history_table_reports_codes_and_perplexity_at_chosen_epochs():
    table = analysis.history_table(usage_history(5), [1, 3, 99], 16)
    assert list(table.index) == [1, 3]  # epochs not in the history are left out
    assert table.loc[1, "codes used L1"] == 1 and table.loc[3, "codes used L2"] == 5
    assert table.loc[3, "perplexity L3"] == pytest.approx(7 * 0.9, abs=0.05)


def test_prefix_tree_and_shared_prefix():
    ids = torch.tensor([[0, 0, 0], [0, 0, 1], [0, 1, 0], [1, 0, 0]])
    sizes = analysis.prefix_tree_sizes(ids)
    assert sorted(sizes[1].tolist()) == [1, 3] and sorted(sizes[2].tolist()) == [1, 1, 2]
    assert analysis.shared_prefix_length(
        ids, np.array([0, 0, 0]), np.array([1, 2, 3])
    ).tolist() == [2, 1, 0]
    summary = analysis.prefix_tree_summary(ids)
    assert summary.loc[3, "prefixes"] == 4


def test_pair_prefix_sharing_finds_planted_structure():
    ids = torch.tensor([[i // 10, i % 10, 0] for i in range(100)])
    item_ids = np.arange(1, 101)  # P5 ids start at 1
    seqs = {u: [1 + 10 * (u % 10) + j for j in range(5)] for u in range(50)}  # same depth-1 block
    pairs = analysis.consecutive_pairs(seqs)
    assert pairs.shape == (200, 2)
    df = analysis.pair_prefix_sharing(ids, item_ids, pairs)
    assert df.loc[1, "pairs"] == 1.0 and df.loc[1, "lift"] > 3


def test_pair_prefix_sharing_exact_random_rate_matches_the_draws():
    rng = np.random.default_rng(0)
    ids = torch.as_tensor(rng.integers(0, 4, size=(60, 3)))
    item_ids = np.arange(1, 61)
    pairs = rng.integers(1, 61, size=(3000, 2))
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    exact = analysis.pair_prefix_sharing(ids, item_ids, pairs, exact=True)
    drawn = np.mean(
        [
            analysis.pair_prefix_sharing(ids, item_ids, pairs, seed=s)["random_pairs"]
            for s in range(40)
        ],
        axis=0,
    )
    np.testing.assert_allclose(exact["random_pairs"], drawn, rtol=0.05)
    assert (exact["pairs_low"] <= exact["pairs"]).all() and (
        exact["pairs"] <= exact["pairs_high"]
    ).all()
    assert (exact["lift_low"] <= exact["lift"]).all() and (
        exact["lift"] <= exact["lift_high"]
    ).all()
    # a hand case: items 0, 1 share a prefix, 2 does not; pairs (1,2), (2,1) as P5 ids 1..3
    ids = torch.tensor([[0], [0], [1]])
    df = analysis.pair_prefix_sharing(ids, [1, 2, 3], np.array([[1, 2], [2, 3]]), exact=True)
    # pool: item 0 once, item 1 twice, item 2 once (4 entries). First items 0 and 1:
    # 0 -> (n_p - n_a) / (4 - n_a) = (3 - 1) / 3; 1 -> (3 - 2) / (4 - 2) = 1 / 2
    assert df.loc[1, "random_pairs"] == pytest.approx((2 / 3 + 1 / 2) / 2)
    assert df.loc[1, "pairs"] == 0.5


def test_neighbour_prefix_depths_distinct_random_never_draws_the_item_itself():
    ids = torch.arange(5)[:, None]  # every item its own prefix: sharing means drawing oneself
    features = torch.eye(5)
    _, rand = analysis.neighbour_prefix_depths(ids, features, k=4, sample=5, distinct_random=True)
    assert (rand == 0).all()
    # euclidean: on a line, item 0's nearest item is 1 (cosine would call them all equal)
    line = torch.tensor([[1.0], [2.0], [10.0], [11.0]])
    ids = torch.tensor([[0], [0], [1], [1]])
    near, _ = analysis.neighbour_prefix_depths(ids, line, k=1, sample=4, metric="euclidean")
    assert (near == 1).all()
    with pytest.raises(ValueError, match="metric"):
        analysis.neighbour_prefix_depths(ids, line, metric="manhattan")


def test_neighbours_and_reconstruction_error():
    cat = make_synthetic_catalogue(300, 16, (3, 3), seed=2)
    ids = torch.as_tensor(cat.labels)
    emb = analysis.embedding_neighbours(cat.features, 0, k=5)
    pre = analysis.prefix_neighbours(ids, cat.features, 0, k=5)
    assert 0 not in emb and 0 not in pre and len(set(pre)) == 5
    table = analysis.neighbour_table(ids, cat.features, [f"item {i}" for i in range(300)], 0, k=3)
    assert table.shape[0] == 3 and (table["id_prefix: shared"] == 2).all()
    near, rand = analysis.neighbour_prefix_depths(ids, cat.features, k=5, sample=50)
    assert near.mean() > rand.mean()
    err = reconstruction_error(cat.features, cat.features * 0)
    assert err["relative_error"] == pytest.approx(1.0)


def test_tsne_2d_is_seeded_and_reports_progress(capsys):
    x = np.random.default_rng(0).normal(size=(80, 12)).astype(np.float32)
    xy = analysis.tsne_2d(x, seed=3, perplexity=10.0, report_every=500)
    lines = capsys.readouterr().out.splitlines()
    assert xy.shape == (80, 2)
    assert lines and all(line.startswith("t-SNE iteration") for line in lines)
    assert lines[0].startswith("t-SNE iteration 500:")
    np.testing.assert_array_equal(xy, analysis.tsne_2d(x, seed=3, perplexity=10.0, report_every=0))
    assert capsys.readouterr().out == ""
