"""rqvae_lib.retrieval.cold_experiment: the cold data, new items joining a table, decoding over the
known items with admission, epsilon chosen on validation, and the seeded run (the ID tables
themselves: test_retrieval_id_tables)."""

from __future__ import annotations

import math

import pytest
import torch
from retrieval_helpers import TINY_CONFIG, shared_task

from rqvae_lib.data.amazon import leave_one_out
from rqvae_lib.retrieval import (
    ItemTrie,
    NewItemIndex,
    RetrievalSamples,
    TrainConfig,
    build_samples,
    cold_start_split,
    fit,
    recall_ndcg,
)
from rqvae_lib.retrieval import cold_experiment as ce
from rqvae_lib.retrieval.experiment import RetrievalData
from rqvae_lib.retrieval.id_tables import seeded_id_tables
from rqvae_lib.semantic_ids import deduplicate

pytestmark = pytest.mark.usefixtures("one_thread")


# --- 1. data --------------------------------------------------------------------------------
def test_sequences_of_undoes_leave_one_out() -> None:
    sequences = {5: [1, 2, 3, 4], 3: [7, 8], 9: [4, 5, 6]}  # one user too short to hold out
    assert ce.sequences_of(leave_one_out(sequences)) == sequences
    assert list(ce.sequences_of(leave_one_out(sequences))) == [5, 3, 9]  # file order kept


def test_cold_data_keeps_users_and_catalogue_and_no_new_item_trains(fixture_root) -> None:
    warm = ce.load_retrieval_data("tiny", fixture_root)
    data, cold = ce.cold_retrieval_data("tiny", fraction=0.1, seed=1, root=fixture_root)
    assert data.item_ids == warm.item_ids and len(cold.new_items) == 3
    assert data.sequences == cold.split and (cold.seed, cold.fraction) == (1, 0.1)
    assert cold.split.val == warm.sequences.val and cold.split.test == warm.sequences.test
    train, val, test = data.samples
    assert not set(train.targets) & cold.new_items
    assert all(not set(h) & cold.new_items for h in train.histories + val.histories)
    assert test.users == warm.samples.test.users  # every test user is scored
    assert all(val.histories)


def test_validation_users_left_without_history_are_dropped(monkeypatch) -> None:
    # Every item is some user's only training item: half of them new always empties a history.
    sequences = {10 + i: [i, i % 4 + 1, (i + 1) % 4 + 1] for i in (1, 2, 3, 4)}
    split = leave_one_out(sequences)
    fake = RetrievalData("toy", split, build_samples(split), [1, 2, 3, 4], {})
    monkeypatch.setattr(ce, "load_retrieval_data", lambda *args: fake)
    data, cold = ce.cold_retrieval_data("toy", fraction=0.5, seed=0)
    emptied = {u for u, items in cold.split.train.items() if not items}
    assert emptied and set(data.samples.val.users) == set(cold.split.val) - emptied
    assert len(cold.split.val) - len(data.samples.val.targets) == len(emptied)
    assert data.samples.test.users == list(cold.split.test)  # test histories end with val items


# --- 2. new items join a table: deduplicate(keep=) ------------------------------------------
def test_deduplicate_keeps_given_ids_and_fills_the_free_codes() -> None:
    from rqvae_lib import ResidualQuantizer

    torch.manual_seed(0)
    rq = ResidualQuantizer(2, 4, 4, kmeans_init=False, dead_code_steps=0)
    z = torch.randn(5, 4) * 1e-4 + 0.5  # five near-identical items: one nearest ID
    nearest = rq(z).encoding_indices
    known = deduplicate(rq, z[:2], nearest[:2])  # two items given out first
    ids = torch.cat([known, nearest[2:]])
    keep = torch.tensor([True, True, False, False, False])
    assert torch.equal(deduplicate(rq, z, ids, keep=torch.zeros(5, dtype=torch.bool)),
                       deduplicate(rq, z, ids))  # fmt: skip
    with pytest.warns(UserWarning, match="deduplicate: 2 items still share"):
        out = deduplicate(rq, z, ids, keep=keep)
    assert torch.equal(out[:2], known)  # the kept IDs never move
    assert torch.equal(out[:, 0], ids[:, 0])  # only the last level changes
    free = set(range(4)) - set(known[:, 1].tolist())
    assert set(out[2:4, 1].tolist()) == free  # the first new items take the two free codes
    assert torch.equal(out[4], ids[4])  # no code left: the last keeps its nearest, and collides


# --- 3. decoding over the known items, with admission ------------------------------------------
def test_known_only_decoding_never_emits_a_new_item_and_admission_does() -> None:
    task = shared_task(0)
    cold = cold_start_split(ce.sequences_of(task.split), task.item_ids, fraction=0.2, seed=0)
    test = build_samples(cold.split).test
    assert any(set(h) & cold.new_items for h in test.histories)  # the tokenizer reads new items
    model = ce.cold_seq2seq_model(
        task.tokenizer.semantic_ids, task.item_ids, cold.new_items, "tiny", seed=0
    )
    num_known = len(task.item_ids) - len(cold.new_items)
    ranked = model.recommend(test.histories, num_known)  # a beam as wide as the known items
    known = sorted(set(task.item_ids) - cold.new_items)
    assert all(sorted(row) == known for row in ranked.tolist())
    whole = ItemTrie.from_tokenizer(model.tokenizer)
    with ce.decoding_over(model, whole):
        everything = model.recommend(test.histories[:5], len(task.item_ids))
    assert all(sorted(row) == sorted(task.item_ids) for row in everything.tolist())
    assert model.trie is not whole  # the model's own trie is back
    index = ce.new_item_index(model.tokenizer, cold.new_items, prefix_len=1)
    plain = model.recommend(test.histories, 10)
    assert torch.equal(ce.recommend_with_new_items(model, test.histories, index, 10, 0.0), plain)
    admitted = ce.recommend_with_new_items(model, test.histories, index, 10, 0.3)
    per_row = [sum(i in cold.new_items for i in row) for row in admitted.tolist()]
    assert max(per_row) == 3  # floor(0.3 * 10): the cap, reached
    for row, base, num_new in zip(admitted.tolist(), plain.tolist(), per_row, strict=True):
        assert [i for i in row if i not in cold.new_items] == base[: 10 - num_new]  # in order


def test_the_admission_prefix_follows_the_table() -> None:
    assert ce.admission_prefix_len("rqvae", 3) == 2
    assert ce.admission_prefix_len("rq-kmeans", 3) is None
    assert ce.admission_prefix_len("random", 3) is None
    assert ce.admission_prefix_len("rqvae", 1) is None


# --- 4. epsilon on validation, on rankings with a known answer ---------------------------------
# Known items 1-6, new items 7-9 (7 has item 2's ID, 8 item 3's); top-2 rankings and targets:
CODES = {1: (0, 0, 0), 2: (0, 1, 0), 3: (1, 0, 0), 4: (1, 1, 0), 5: (2, 0, 0), 6: (2, 1, 0),
         7: (0, 1, 0), 8: (1, 0, 0), 9: (0, 2, 0)}  # fmt: skip
RANKED = torch.tensor([[2, 3], [1, 4], [4, 2], [2, 5], [3, 1]])
VAL = RetrievalSamples([0, 1, 2, 3, 4], [[1]] * 5, [7, 1, 2, 5, 8])
# epsilon 0: users 1, 2, 3 hit (3/5). epsilon 0.5 (one admission in the top 2): user 0 gets
# [2, 7] (hit), user 3 [2, 7] (miss), user 4 [3, 8] (hit): 4/5. epsilon 1 admits no more: 4/5.


def test_choose_epsilon_picks_the_best_overall_recall_ties_to_the_smaller(monkeypatch) -> None:
    def fake_rank(model, samples, k, *args):
        assert samples is VAL and k == 2
        return RANKED

    monkeypatch.setattr(ce, "rank_samples", fake_rank)
    index = NewItemIndex(CODES, [7, 8, 9])
    best, records = ce.choose_epsilon(None, VAL, index, [1.0, 0.0, 0.5, 0.5], k=2)
    assert best == 0.5
    assert [r["epsilon"] for r in records] == [0.0, 0.5, 1.0]
    recall = {r["epsilon"]: {g: r[g]["recall@2"][0] for g in ("all", "new", "known")}
              for r in records}  # fmt: skip
    assert recall[0.0] == pytest.approx({"all": 3 / 5, "new": 0.0, "known": 1.0})
    assert recall[0.5] == pytest.approx({"all": 4 / 5, "new": 1.0, "known": 2 / 3})
    assert recall[1.0] == recall[0.5]
    assert all(r["users"] == {"all": 5, "new": 2, "known": 3} for r in records)
    # epsilon 0 is the plain ranking, scored as the warm experiment scores it
    plain = recall_ndcg(RANKED, VAL.targets, ks=(2,))
    assert records[0]["all"]["ndcg@2"] == [plain["ndcg@2"].mean, plain["ndcg@2"].sem]
    assert plain["ndcg@2"].mean == pytest.approx((1 + 2 / math.log2(3)) / 5)
    # with only 0 and 1 on offer, 1 wins; with 0 alone, 0
    assert ce.choose_epsilon(None, VAL, index, [0.0, 1.0], k=2)[0] == 1.0
    assert ce.choose_epsilon(None, VAL, index, [0.0], k=2)[0] == 0.0
    with pytest.raises(ValueError, match="epsilons"):
        ce.choose_epsilon(None, VAL, index, [], k=2)
    # score_cold admits into each K on its own: at K=1 the cap floor(0.5) is 0, nothing admitted
    scored = ce.score_cold(None, VAL, index, 0.5, ks=(1, 2))
    assert scored["all"]["recall@2"][0] == pytest.approx(4 / 5)
    assert scored["all"]["recall@1"][0] == pytest.approx(1 / 5)  # user 1's item 1, first
    assert scored["new"]["recall@1"][0] == 0.0


# --- the seeded protocol end to end ------------------------------------------------------------
def run_cold(root, directory) -> tuple[list, dict, list]:
    """Data, RQ-KMeans table, one epoch of the tiny seq2seq, epsilon and test: all seeded."""
    data, cold = ce.cold_retrieval_data("tiny", fraction=0.1, seed=1, root=root)
    ids, item_ids, _ = seeded_id_tables(
        "tiny", ["rq-kmeans"], 0, cold.new_items, cold.seed, root=root, directory=directory,
        config=TINY_CONFIG,
    )["rq-kmeans"]  # fmt: skip
    model = ce.cold_seq2seq_model(ids, item_ids, cold.new_items, "tiny", seed=0)
    config = TrainConfig(epochs=1, batch_size=16, seed=0, device="cpu", verbose=False, ks=(5, 10))
    fit(model, data.samples.train, data.samples.val, config)
    index = ce.new_item_index(model.tokenizer, cold.new_items, prefix_len=1)  # admits often
    best, curve = ce.choose_epsilon(model, data.samples.val, index, [0.0, 0.2, 0.5], k=10)
    test = data.samples.test
    recs = ce.recommend_with_new_items(model, test.histories, index, 10, best).tolist()
    return recs, ce.score_cold(model, test, index, best, ks=(5, 10)), curve


def test_the_same_seed_gives_the_same_numbers(fixture_root, tmp_path) -> None:
    first = run_cold(fixture_root, tmp_path / "first")
    second = run_cold(fixture_root, tmp_path / "second")  # the table is refitted, not read
    assert first == second
    recs, scored, curve = first
    assert len(recs) == scored["users"]["all"] == 24 and all(len(r) == 10 for r in recs)
    assert curve[0]["known"] != curve[-1]["known"]  # admission changed the top 10s
