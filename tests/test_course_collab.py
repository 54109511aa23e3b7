"""rqvae_lib.course.collab: notebook 08's measures of what a prefix groups, on hand-made tables."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from rqvae_lib.course import analysis, collab
from rqvae_lib.data.amazon import LeaveOneOut

#: Six items (P5 ids 10..15) in two tables: "after" brings items 12 and 13 under item 10's prefix.
ITEMS = [10, 11, 12, 13, 14, 15]
BEFORE = torch.tensor([[0, 0], [0, 1], [1, 0], [1, 1], [2, 0], [2, 1]])
AFTER = torch.tensor([[0, 0], [0, 1], [0, 2], [0, 3], [2, 0], [1, 1]])
LABELS = ["a", "a", "b", "b", "c", "c"]
PAIRS = np.array([[10, 12], [12, 10], [10, 13], [14, 15], [11, 10], [15, 13]])


def test_heldout_pairs_are_the_last_training_item_and_the_validation_item() -> None:
    split = LeaveOneOut({1: [5, 6], 2: [7], 3: [], 4: [8, 9]}, {1: 7, 2: 7, 3: 5, 4: 2},
                        {1: 1, 2: 2, 3: 3, 4: 4})  # fmt: skip
    pairs = collab.heldout_pairs(split)
    assert pairs.tolist() == [[6, 7], [9, 2]]  # user 2 repeats its item; user 3 has no training
    assert pairs.dtype == np.int64
    assert collab.heldout_pairs(LeaveOneOut({}, {}, {})).shape == (0, 2)


def test_prefix_agreement_reads_the_category_vote_and_the_pair_sharing() -> None:
    table = collab.prefix_agreement({"before": BEFORE, "after": AFTER}, ITEMS, LABELS,
                                    {"pairs": PAIRS}, depths=(1, 2))  # fmt: skip
    assert list(table.index) == [("before", 1), ("before", 2), ("after", 1), ("after", 2)]
    # before: every first code holds one label, so the vote is always right at depth 1
    assert table.loc[("before", 1), "category"] == 1.0
    assert table.loc[("before", 1), "items_scored"] == 1.0
    assert np.isnan(table.loc[("before", 2), "category"])  # every item alone at depth 2
    # pairs sharing the first code: before 1 of 6 ([11, 10]) and (14, 15); after 4 of 6
    assert table.loc[("before", 1), "pairs"] == pytest.approx(2 / 6)
    assert table.loc[("after", 1), "pairs"] == pytest.approx(4 / 6)
    assert table.loc[("after", 2), "pairs"] == 0.0
    for name, ids in (("before", BEFORE), ("after", AFTER)):
        exact = analysis.pair_prefix_sharing(ids, ITEMS, PAIRS, exact=True)
        assert table.loc[(name, 1), "pairs lift"] == pytest.approx(exact.loc[1, "lift"])
        vote = analysis.category_prediction(ids, LABELS, repeats=1)
        assert table.loc[(name, 1), "category"] == pytest.approx(vote.loc[1, "accuracy"])


def test_moved_pairs_lists_the_pairs_a_table_joins_once_each_commonest_first() -> None:
    titles = {i: f"item {i}" for i in ITEMS}
    moved = collab.moved_pairs(BEFORE, AFTER, ITEMS, PAIRS, 1, titles)
    assert moved[["a", "b", "count"]].values.tolist() == [[10, 12, 2], [10, 13, 1]]
    assert moved.loc[0, "before b"] == [1, 0] and moved.loc[0, "after b"] == [0, 2]
    assert moved.loc[1, "title b"] == "item 13"
    apart = collab.moved_pairs(AFTER, BEFORE, ITEMS, PAIRS, 1)  # the reverse: (14, 15) split
    assert apart[["a", "b", "count"]].values.tolist() == [[14, 15, 1]]
    assert "title a" not in apart.columns


def test_agreement_figure_draws_a_point_per_table_and_the_arrows() -> None:
    table = collab.prefix_agreement({"before": BEFORE, "after": AFTER}, ITEMS, LABELS,
                                    {"pairs": PAIRS}, depths=(1, 2))  # fmt: skip
    fig = collab.agreement_figure(table, "pairs", {"before": "after"}, depths=(1, 2))
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    for ax in fig.axes:
        assert len(ax.collections) == 2 and len(ax.texts) == 1  # two points, one arrow
    point = fig.axes[0].collections[1].get_offsets()[0]  # "after" at depth 1
    assert tuple(point) == pytest.approx((table.loc[("after", 1), "category"],
                                          table.loc[("after", 1), "pairs lift"]))  # fmt: skip
    assert fig.axes[-1].get_legend() is not None


def test_agreement_pairs_are_the_training_and_the_heldout_pairs() -> None:
    split = LeaveOneOut({1: [5, 6, 6, 7], 2: [8]}, {1: 9, 2: 8}, {1: 1, 2: 2})
    pairs = collab.agreement_pairs(split)
    assert list(pairs) == ["training pairs", "held-out pairs"]
    assert pairs["training pairs"].tolist() == [[5, 6], [6, 7]]  # repeats are not pairs
    assert pairs["held-out pairs"].tolist() == [[7, 9]]


def _records(dataset: str, values: dict[tuple[str, int], list[float]]) -> list[dict]:
    return [dict(dataset=dataset, seed=s, table=t, depth=d, category=v)
            for (t, d), per_seed in values.items() for s, v in enumerate(per_seed)]  # fmt: skip


def test_agreement_changes_pair_each_table_with_its_collaborative_version_over_seeds() -> None:
    records = _records("beauty", {("rqvae", 1): [0.70, 0.72, 0.74],
                                  ("rqvae-collab", 1): [0.60, 0.63, 0.63],
                                  ("rq-kmeans-balanced", 1): [0.5, 0.6, 0.7],
                                  ("rq-kmeans-collab", 1): [0.5, 0.7, 0.6]})  # fmt: skip
    records += _records("toys", {("rqvae", 1): [0.1], ("rqvae-collab", 1): [0.9]})
    changes = collab.agreement_changes(records, "beauty", "category")
    assert list(changes.index) == [("rqvae", 1), ("rq-kmeans-balanced", 1)]
    row = changes.loc[("rqvae", 1)]
    diffs = np.array([-0.10, -0.09, -0.11])  # the per-seed changes
    assert row["change"] == pytest.approx(diffs.mean())
    assert row["change sem"] == pytest.approx(diffs.std(ddof=1) / np.sqrt(3))
    assert row["content"] == pytest.approx(0.72) and row["collaborative"] == pytest.approx(0.62)
    assert row["seeds"] == 3 and row["verdict"] == "down"
    assert changes.loc[("rq-kmeans-balanced", 1), "verdict"] == "within noise"  # 0, +0.1, -0.1
    one = collab.agreement_changes(records, "toys", "category")
    assert one.loc[("rqvae", 1), "verdict"] == "within noise"  # one seed: no verdict
    assert collab.agreement_changes(records, "toys", "category", {"a": "b"}).empty
    assert collab.agreement_changes(records, "other", "category").empty


def test_seed_agreement_measures_the_seeded_tables_of_a_split(fixture_root) -> None:
    """On the tiny fixture: the four seeded tables (fitted once, then read back), measured on
    the fixture's sub-categories and pairs exactly as prefix_agreement measures them."""
    from retrieval_helpers import TINY_CONFIG

    from rqvae_lib.data import ItemDataModule, top_category
    from rqvae_lib.retrieval.experiment import load_retrieval_data
    from rqvae_lib.retrieval.id_tables import seeded_id_tables

    data = load_retrieval_data("tiny", fixture_root)
    tables = seeded_id_tables("tiny", collab.AGREEMENT_TABLES, 0, rqvae_epochs=2, root=fixture_root,
                              config=TINY_CONFIG, sequences=data.sequences)  # fmt: skip
    got = collab.seed_agreement("tiny", 0, root=fixture_root, config=TINY_CONFIG)  # reads them
    dm = ItemDataModule(fixture_root, "tiny")
    dm.prepare_data()
    dm.setup()
    catalogue = dm.dataset("all")
    want = collab.prefix_agreement(
        {name: tables[name].ids for name in collab.AGREEMENT_TABLES}, catalogue.item_ids,
        top_category(catalogue.items, level=2).tolist(), collab.agreement_pairs(data.sequences),
    )  # fmt: skip
    assert list(got.index.get_level_values("table").unique()) == list(collab.AGREEMENT_TABLES)
    assert got.equals(want)
    changes = collab.agreement_changes(
        [dict(r, dataset="tiny", seed=0) for r in got.reset_index().to_dict("records")],
        "tiny", "held-out pairs",
    )  # fmt: skip
    assert changes.loc[("rqvae", 1), "change"] == pytest.approx(
        got.loc[("rqvae-collab", 1), "held-out pairs"] - got.loc[("rqvae", 1), "held-out pairs"]
    )
