"""rqvae_lib.retrieval.seeded: one seed of the warm comparison and of the cold-start protocol,
end to end on the tiny P5 fixture with a one-epoch budget."""

from __future__ import annotations

import dataclasses
import json

import pytest
from retrieval_helpers import TINY_CONFIG

from rqvae_lib.retrieval import per_user_metric
from rqvae_lib.retrieval.cold_experiment import GROUPS, cold_retrieval_data
from rqvae_lib.retrieval.experiment import FAST_BUDGET, load_retrieval_data
from rqvae_lib.retrieval.id_tables import ID_TABLES, seeded_id_tables
from rqvae_lib.retrieval.seeded import COLD_TABLES, EPSILONS, run_cold_seed, run_warm_seed

pytestmark = pytest.mark.usefixtures("one_thread")

#: Every step runs, each once: one epoch of the seq2seq and of SASRec, every validation user.
BUDGET = dataclasses.replace(
    FAST_BUDGET, max_users=None, epochs=1, sasrec_epochs=1, val_users=None, val_every=1
)
#: A fifth of the fixture's 30 items is new: 6 items, the targets of 5 of the 24 test users.
FRACTION = 0.2


def without_seconds(value):
    """``value`` as sorted JSON, every key that names a wall time (``...seconds...``) dropped."""

    def strip(v):
        if isinstance(v, dict):
            return {k: strip(x) for k, x in v.items() if "seconds" not in k}
        if isinstance(v, list):
            return [strip(x) for x in v]
        return v

    return json.dumps(strip(value), sort_keys=True)


def test_a_warm_seed_gives_one_scored_record_per_table(fixture_root, tmp_path) -> None:
    """One seq2seq per table with its measures and per-user ranks; the same seed, the same run."""
    data = load_retrieval_data("tiny", root=fixture_root)
    options = dict(rqvae_epochs=2, root=fixture_root, config=TINY_CONFIG)
    runs = []
    for folder in ("first", "second"):
        tables = seeded_id_tables("tiny", ID_TABLES, 0, directory=tmp_path / folder, **options)
        runs.append(run_warm_seed(data, tables, 0, BUDGET, verbose=False))
    records = runs[0]
    assert [r["table"] for r in records] == list(ID_TABLES)
    num_users = len(data.samples.test.targets)
    for rec in records:
        assert (rec["experiment"], rec["seed"], rec["budget"]) == ("warm", 0, "fast")
        assert rec["model"] == "seq2seq" and rec["ids"] == rec["table"]
        assert rec["measures"] == pytest.approx(tables[rec["table"]].measures, nan_ok=True)
        assert rec["epochs"] == 1 and rec["val_users"] == len(data.samples.val.targets)
        ranks = rec["test_ranks"]
        assert len(ranks) == num_users == 24 and all(0 <= r <= 10 for r in ranks)
        for metric in ("recall@10", "ndcg@5"):  # the test metrics follow from the ranks
            assert rec["test"][metric][0] == pytest.approx(
                float(per_user_metric(ranks, metric).mean())
            )
    assert without_seconds(runs[0]) == without_seconds(runs[1])


def test_a_cold_seed_selects_epsilon_on_validation_and_repeats(fixture_root, tmp_path) -> None:
    """Seq2seq records per table, then the baselines; epsilon chosen on validation; seeded."""
    options = dict(
        budget=BUDGET, fraction=FRACTION, rqvae_epochs=2, root=fixture_root, verbose=False,
        config=TINY_CONFIG,
    )  # fmt: skip
    first = run_cold_seed("tiny", 0, directory=tmp_path / "first", **options)
    second = run_cold_seed("tiny", 0, directory=tmp_path / "second", **options)
    assert without_seconds(first) == without_seconds(second)
    data, cold = cold_retrieval_data("tiny", FRACTION, 0, root=fixture_root)
    tables = seeded_id_tables(
        "tiny", COLD_TABLES, 0, cold.new_items, cold.seed, directory=tmp_path / "first"
    )  # read from the run's cache
    assert [r["model"] for r in first] == ["seq2seq"] * len(COLD_TABLES) + [
        "random-new", "nearest-text", "sasrec-ce"
    ]  # fmt: skip
    num_users = len(data.samples.test.targets)
    num_new = sum(t in cold.new_items for t in data.samples.test.targets)
    assert (num_users, num_new, len(cold.new_items)) == (24, 5, 6)
    for rec in first:
        assert (rec["experiment"], rec["dataset"], rec["seed"]) == ("cold", "tiny", 0)
        assert (rec["new_items"], rec["fraction"], rec["budget"]) == (6, FRACTION, "fast")
        assert set(GROUPS) <= set(rec if rec["model"] != "seq2seq" else rec["test"])
    for rec, name in zip(first, COLD_TABLES, strict=False):
        assert rec["table"] == name and rec["measures"] == tables[name].measures
        assert rec["prefix_len"] == (1 if name == "rqvae" else None)
        curves = rec["val_curve"], rec["test_curve"]
        assert [[r["epsilon"] for r in c] for c in curves] == [sorted(EPSILONS)] * 2
        for row in (*rec["val_curve"], *rec["test_curve"], rec["whole_catalogue"]):
            users = row["users"]
            assert users["new"] + users["known"] == users["all"]
        assert all(r["users"] == {"all": 24, "new": 5, "known": 19} for r in rec["test_curve"])
        # known-only decoding never emits a new item: without admission no new target is hit
        assert rec["test_curve"][0]["new"]["recall@10"] == [0.0, 0.0]
        assert rec["test_curve"][0]["new"]["recall@5"] == [0.0, 0.0]
        recall = [r["all"]["recall@10"][0] for r in rec["val_curve"]]
        assert rec["epsilon"] == sorted(EPSILONS)[recall.index(max(recall))]  # ties: smaller
        assert rec["test"] == next(r for r in rec["test_curve"] if r["epsilon"] == rec["epsilon"])
        assert rec["whole_catalogue"]["epsilon"] == 0.0
    random_new, nearest = first[len(COLD_TABLES)], first[len(COLD_TABLES) + 1]
    for rec in (random_new, nearest):  # 6 new items fill every top 10: each new target is hit
        assert rec["new"]["recall@10"] == [1.0, 0.0] and rec["known"]["recall@10"] == [0.0, 0.0]
        assert rec["all"]["recall@10"][0] == pytest.approx(num_new / num_users)


def test_a_cold_seed_of_the_collaborative_tables(fixture_root, tmp_path) -> None:
    """The collaborative tables under the cold-start protocol: their SASRec vectors come from the
    cold split's training parts (no new item has one), new items join without moving a known
    ID, and ``baselines=False`` leaves the baselines to the content run of the seed."""
    from rqvae_lib.retrieval.collaborative import collaborative_embeddings
    from rqvae_lib.retrieval.experiment import CPU_BUDGET
    from rqvae_lib.retrieval.id_tables import COLLAB_TABLES

    options = dict(
        budget=BUDGET, fraction=FRACTION, rqvae_epochs=2, root=fixture_root, verbose=False,
        config=TINY_CONFIG, directory=tmp_path / "ids",
    )  # fmt: skip
    records = run_cold_seed("tiny", 0, COLLAB_TABLES, baselines=False, **options)
    assert [(r["model"], r["table"]) for r in records] == [("seq2seq", t) for t in COLLAB_TABLES]
    data, cold = cold_retrieval_data("tiny", FRACTION, 0, root=fixture_root)
    tables = seeded_id_tables(
        "tiny", COLLAB_TABLES, 0, cold.new_items, cold.seed, directory=tmp_path / "ids"
    )  # read from the run's cache: no sequences needed
    vectors = collaborative_embeddings(
        data.sequences,
        tables["rq-kmeans-collab"].item_ids,
        CPU_BUDGET.sasrec_config(0, False),
        "tiny",
    )  # the run's cache (the tables' SASRec is the CPU budget's): the cold split's training parts
    new = {int(i) for i in cold.new_items}
    assert [bool(k) for k in vectors.known] == [
        int(i) not in new for i in vectors.item_ids.tolist()
    ]
    for rec in records:
        assert (rec["experiment"], rec["new_items"]) == ("cold", 6)
        assert rec["prefix_len"] == 1  # balanced: the admission rule reads the first level
        ids = tables[rec["table"]].ids
        assert len({tuple(row) for row in ids.tolist()}) == len(ids)  # new items collide with none
