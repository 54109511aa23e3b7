"""rqvae_lib.retrieval.cold: the cold-start split and TIGER's admission rule for new items."""

from __future__ import annotations

import math

import pytest
import torch

from rqvae_lib.data.amazon import leave_one_out
from rqvae_lib.retrieval import (
    NewItemIndex,
    RetrievalSamples,
    SASRec,
    SASRecConfig,
    admit_new_items,
    build_samples,
    cold_start_split,
    known_item_mask,
    nearest_text_new_items,
    random_new_items,
    recall_ndcg,
    split_by_novelty,
)

# A 4-item catalogue where every item is some user's only training item and some user's
# validation item, so half of it being new always empties a training part and always puts a new
# item in a test history, whatever the seed.
SMALL_ITEMS = [1, 2, 3, 4]
SMALL = {10 + i: [i, i % 4 + 1, (i + 1) % 4 + 1] for i in SMALL_ITEMS}
SMALL |= {20: [1, 2, 3, 4, 1, 2], 21: [4, 3]}  # a longer user and one too short to hold out

# A 20-item catalogue for counting and seeding.
ITEMS = list(range(100, 120))
SEQUENCES = {u: [100 + (u * 7 + t * 3) % 20 for t in range(3 + u % 5)] for u in range(12)}


def test_no_new_item_reaches_training() -> None:
    for seed in range(5):
        cold = cold_start_split(SEQUENCES, ITEMS, fraction=0.25, seed=seed)
        assert all(not set(items) & cold.new_items for items in cold.split.train.values())
        train = build_samples(cold.split).train
        assert not set(train.targets) & cold.new_items
        assert all(not set(h) & cold.new_items for h in train.histories)


def test_val_and_test_are_those_of_leave_one_out() -> None:
    cold = cold_start_split(SEQUENCES, ITEMS, fraction=0.25, seed=3)
    full = leave_one_out(SEQUENCES)
    assert cold.split.val == full.val and cold.split.test == full.test
    assert cold.split.train == {
        u: [i for i in items if i not in cold.new_items] for u, items in full.train.items()
    }
    assert (cold.seed, cold.fraction) == (3, 0.25)


def test_new_items_are_counted_and_seeded() -> None:
    for fraction in (0.05, 0.1, 0.25, 0.5):
        cold = cold_start_split(SEQUENCES, ITEMS, fraction=fraction, seed=0)
        assert len(cold.new_items) == round(fraction * len(ITEMS))
        assert cold.new_items <= set(ITEMS)
    same = [cold_start_split(SEQUENCES, ITEMS, 0.25, seed=7).new_items for _ in range(2)]
    assert same[0] == same[1]
    assert cold_start_split(SEQUENCES, ITEMS[::-1], 0.25, seed=7).new_items == same[0]  # order
    assert cold_start_split(SEQUENCES, ITEMS, 0.25, seed=8).new_items != same[0]


def test_test_users_with_a_new_target_are_counted_right() -> None:
    full_test = leave_one_out(SEQUENCES).test
    counts = []
    for seed in range(6):
        cold = cold_start_split(SEQUENCES, ITEMS, fraction=0.25, seed=seed)
        test = build_samples(cold.split).test
        new_pos, known_pos = split_by_novelty(test, cold.new_items)
        direct = sum(1 for target in full_test.values() if target in cold.new_items)
        assert len(new_pos) == direct
        assert sorted(new_pos + known_pos) == list(range(len(test.targets)))
        assert all(test.targets[i] in cold.new_items for i in new_pos)
        assert not any(test.targets[i] in cold.new_items for i in known_pos)
        counts.append(direct)
    assert 0 in counts and max(counts) > 0  # both cases occur among these seeds


def test_empty_training_parts_and_new_validation_items() -> None:
    cold = cold_start_split(SMALL, SMALL_ITEMS, fraction=0.5, seed=0)
    assert len(cold.new_items) == 2
    emptied = [u for u, items in cold.split.train.items() if not items]
    assert emptied  # the users whose only training item is new
    train, val, test = build_samples(cold.split)
    assert not set(emptied) & set(train.users)  # no training sample from them
    assert all(h == [] for u, h in zip(val.users, val.histories, strict=True) if u in emptied)
    # A new validation item stays at the end of its user's test history.
    new_val = [u for u, item in cold.split.val.items() if item in cold.new_items]
    assert new_val
    for user, history in zip(test.users, test.histories, strict=True):
        assert history[-1] == cold.split.val[user]
    assert cold.split.train[21] == [i for i in SMALL[21] if i not in cold.new_items]


def test_known_item_mask_excludes_exactly_the_new_items() -> None:
    cold = cold_start_split(SEQUENCES, ITEMS, fraction=0.25, seed=2)
    mask = known_item_mask(ITEMS, cold.new_items)
    assert mask.dtype == bool and mask.shape == (len(ITEMS),)
    assert {i for i, known in zip(ITEMS, mask, strict=True) if not known} == cold.new_items


def test_cold_split_rejects_bad_arguments() -> None:
    for fraction in (0.0, 1.0, -0.1, 1.5):
        with pytest.raises(ValueError, match="fraction"):
            cold_start_split(SEQUENCES, ITEMS, fraction=fraction)
    with pytest.raises(ValueError, match="unique"):
        cold_start_split(SEQUENCES, [*ITEMS, 100])
    with pytest.raises(ValueError, match="new items"):
        cold_start_split(SEQUENCES, ITEMS, fraction=0.01)  # rounds to 0 new items


# Known items 1-6 and new items 7-9, three codes each (semantic IDs, no collision suffix).
CODES = {
    1: (0, 0, 0),
    2: (0, 1, 0),
    3: (1, 0, 0),
    4: (1, 1, 0),
    5: (2, 0, 0),
    6: (2, 1, 0),
    7: (0, 1, 0),  # item 2's full ID
    8: (1, 0, 0),  # item 3's full ID
    9: (0, 2, 0),  # shares only the first code with items 1, 2 and 7
}
NEW = [9, 8, 7]  # order does not matter: groups are kept in ascending id
RANKED = [2, 3, 1, 4, 5, 6]  # the model's ranking of the known items


def test_admission_on_a_hand_made_case() -> None:
    # k=4, cap floor(0.5 * 4) = 2: 2, then 7 (same ID); 3, then 8; the cap is reached.
    assert admit_new_items(RANKED, CODES, NEW, k=4, epsilon=0.5) == [2, 7, 3, 8]
    # cap floor(0.25 * 4) = 1: only 7 gets in; the rest is the ranking.
    assert admit_new_items(RANKED, CODES, NEW, k=4, epsilon=0.25) == [2, 7, 3, 1]
    # k=6, cap 3: 1 and 4 match no new ID in full, so only two new items exist to admit.
    assert admit_new_items(RANKED, CODES, NEW, k=6, epsilon=0.5) == [2, 7, 3, 8, 1, 4]


def test_epsilon_zero_is_the_ranking_and_the_cap_holds() -> None:
    for k in (1, 3, 6, 8):
        assert admit_new_items(RANKED, CODES, NEW, k=k, epsilon=0.0) == RANKED[:k]
    for k in range(1, 10):
        for epsilon in (0.1, 0.25, 0.3, 0.5, 0.75, 1.0):
            for prefix_len in (None, 1, 2):
                out = admit_new_items(RANKED, CODES, NEW, k, epsilon, prefix_len)
                num_new = sum(i in NEW for i in out)
                assert num_new <= int(epsilon * k)  # the cap
                assert len(out) == len(set(out)) == min(k, len(RANKED) + num_new)
                assert [i for i in out if i not in NEW] == RANKED[: len(out) - num_new]


def test_a_new_item_matching_two_ranked_items_is_admitted_once() -> None:
    # prefix_len 1: 2 (first code 0) brings 7 and 9; 3 brings 8; 1 and 4 match only admitted ones.
    out = admit_new_items(RANKED, CODES, NEW, k=9, epsilon=1.0, prefix_len=1)
    assert out == [2, 7, 9, 3, 8, 1, 4, 5, 6]


def test_a_shorter_prefix_admits_more() -> None:
    full = admit_new_items(RANKED, CODES, NEW, k=6, epsilon=0.5)
    first_code = admit_new_items(RANKED, CODES, NEW, k=6, epsilon=0.5, prefix_len=1)
    assert full == [2, 7, 3, 8, 1, 4]
    assert first_code == [2, 7, 9, 3, 8, 1]
    assert sum(i in NEW for i in first_code) > sum(i in NEW for i in full)
    # The cap can stop in the middle of one item's group: cap floor(0.25 * 6) = 1.
    one = admit_new_items(RANKED, CODES, NEW, k=6, epsilon=0.25, prefix_len=1)
    assert one == [2, 7, 3, 1, 4, 5]


def test_a_new_item_in_the_ranking_keeps_its_place_and_counts() -> None:
    # 7 was generated itself: it stays first and uses one of the two admissions; 2 adds nothing.
    assert admit_new_items([7, 2, 3, 1], CODES, NEW, k=4, epsilon=0.5) == [7, 2, 3, 8]
    assert admit_new_items([7, 9, 2, 3], CODES, NEW, k=4, epsilon=0.25) == [7, 9, 2, 3]
    # 7 inserted after 2 is not repeated where the ranking itself has it.
    assert admit_new_items([2, 7, 3, 1], CODES, NEW, k=4, epsilon=0.5) == [2, 7, 3, 8]


def test_index_is_reusable_and_validates() -> None:
    index = NewItemIndex(CODES, NEW, prefix_len=1)
    assert index.matching(1) == [7, 9] and index.matching(5) == []
    assert index.admit(RANKED, 4, 0.5) == [2, 7, 9, 3]
    assert index.admit([3, 4], 4, 0.5) == [3, 8, 4]  # shorter than k: nothing is padded
    with pytest.raises(ValueError, match="epsilon"):
        index.admit(RANKED, 4, 1.5)
    with pytest.raises(ValueError, match="epsilon"):
        index.admit(RANKED, 4, -0.1)
    with pytest.raises(ValueError, match="k must"):
        index.admit(RANKED, 0, 0.5)
    with pytest.raises(ValueError, match="prefix_len"):
        NewItemIndex(CODES, NEW, prefix_len=0)
    with pytest.raises(ValueError, match="prefix_len"):
        NewItemIndex(CODES, NEW, prefix_len=4)
    with pytest.raises(KeyError, match="semantic ID"):
        index.admit([42], 4, 0.5)


# --- baselines on new items ---------------------------------------------------------------------


def test_random_new_items_recall_matches_k_over_num_new() -> None:
    new = list(range(1000, 1050))  # 50 new items
    num_users, k = 20_000, 10
    ranked = random_new_items(num_users, new, k, seed=0)
    assert ranked.shape == (num_users, k) and ranked.dtype == torch.long
    assert set(ranked.unique().tolist()) == set(new)
    assert all(len(set(row)) == k for row in ranked[:500].tolist())  # distinct within a row
    targets = torch.tensor(new)[
        torch.randint(0, 50, (num_users,), generator=torch.Generator().manual_seed(1))
    ]
    recall = recall_ndcg(ranked, targets, ks=(k,))[f"recall@{k}"].mean
    p = k / len(new)
    assert abs(recall - p) < 5 * math.sqrt(p * (1 - p) / num_users)  # 5 binomial standard errors
    # Every position is uniform too: item 1000 is first for about 1 / 50 of the users.
    first = (ranked[:, 0] == 1000).double().mean().item()
    assert abs(first - 1 / 50) < 5 * math.sqrt((1 / 50) * (49 / 50) / num_users)


def test_random_new_items_depends_on_the_seed_only() -> None:
    new = {5, 3, 9, 1, 7, 11}
    torch.manual_seed(123)
    a = random_new_items(100, new, 4, seed=7)
    torch.manual_seed(456)
    b = random_new_items(100, sorted(new, reverse=True), 4, seed=7)
    assert torch.equal(a, b)
    assert not torch.equal(a, random_new_items(100, new, 4, seed=8))
    assert torch.equal(random_new_items(5000, new, 4, seed=7)[:100], a)  # chunks are seed-bound
    padded = random_new_items(3, [2, 1], 4)
    assert padded[:, 2:].eq(-1).all() and all(sorted(r[:2]) == [1, 2] for r in padded.tolist())
    assert random_new_items(0, new, 4).shape == (0, 4)
    with pytest.raises(ValueError, match="empty"):
        random_new_items(3, [], 2)
    with pytest.raises(ValueError, match="k must"):
        random_new_items(3, new, 0)


# 2-D text embeddings; rows in shuffled id order. Known 1-4 and 10, new 5-9. Items 3 and 10 are
# not unit length, so normalising matters. Every cosine below is exact or clearly apart.
TEXT = {
    1: (1.0, 0.0),
    2: (0.0, 1.0),
    3: (3.0, 0.0),  # 1's direction
    4: (1.0, 1.0),
    10: (0.0, -5.0),
    5: (2.0, 0.0),  # new, 1's direction
    6: (0.0, 1.0),  # new, 2's direction
    7: (1.0, 1.0),  # new, the diagonal
    8: (-1.0, 0.0),  # new, opposite 1
    9: (1.0, 0.0),  # new, tied with 5 everywhere
}
TEXT_IDS = [9, 3, 1, 7, 10, 2, 5, 8, 4, 6]
TEXT_EMB = torch.tensor([TEXT[i] for i in TEXT_IDS])
TEXT_NEW = {8, 6, 9, 5, 7}


def test_nearest_text_on_a_hand_made_case() -> None:
    histories = [
        [1],  # query (1, 0): 5 and 9 (cosine 1, tie by id), 7 (0.71), 6 (0), 8 (-1)
        [2, 3],  # unit rows average to the diagonal: 7, then 5, 6, 9 tied at 0.71, then 8
        [1, 1, 2],  # (2, 1) / 3 with the repeat: 7 (0.95), 5, 9 (0.89), 6 (0.45), 8
        [5],  # a new item in the history counts (and is not excluded): as [1]
        [],  # the catalogue mean, (3.41, 2.41) / 10: 7 (0.98), 5, 9 (0.82), 6 (0.58), 8
    ]
    expected = [
        [5, 9, 7, 6, 8],
        [7, 5, 6, 9, 8],
        [7, 5, 9, 6, 8],
        [5, 9, 7, 6, 8],
        [7, 5, 9, 6, 8],
    ]
    ranked = nearest_text_new_items(histories, TEXT_EMB, TEXT_IDS, TEXT_NEW, k=5)
    assert ranked.tolist() == expected
    # Without normalising, [2, 3] would average to (1.5, 0.5) and put 5 first.
    for batch_size in (1, 2, 3):
        same = nearest_text_new_items(histories, TEXT_EMB, TEXT_IDS, TEXT_NEW, 5, batch_size)
        assert same.tolist() == expected
    top2 = nearest_text_new_items(histories, TEXT_EMB.numpy(), torch.tensor(TEXT_IDS), TEXT_NEW, 2)
    assert top2.tolist() == [row[:2] for row in expected]
    wide = nearest_text_new_items(histories[:1], TEXT_EMB, TEXT_IDS, TEXT_NEW, 7)
    assert wide.tolist() == [[5, 9, 7, 6, 8, -1, -1]]
    empty = nearest_text_new_items([[], []], TEXT_EMB, TEXT_IDS, TEXT_NEW, 5, batch_size=1)
    assert empty.tolist() == [expected[-1]] * 2
    assert nearest_text_new_items([], TEXT_EMB, TEXT_IDS, TEXT_NEW, 5).shape == (0, 5)
    # Scored directly: users 0 and 3 find their target first; every target is within the top 5.
    scores = recall_ndcg(ranked, [5, 8, 8, 5, 6], ks=(1, 5))
    assert scores["recall@1"].mean == pytest.approx(2 / 5)
    assert scores["recall@5"].mean == pytest.approx(1.0)


def test_nearest_text_matches_a_per_user_loop() -> None:
    g = torch.Generator().manual_seed(0)
    ids = list(range(1, 201))  # P5 ids from 1
    emb = torch.randn(200, 16, generator=g)
    new = list(range(150, 201))
    histories = [
        torch.randint(1, 201, (int(n),), generator=g).tolist()
        for n in torch.randint(0, 8, (300,), generator=g)
    ]
    ranked = nearest_text_new_items(histories, emb, ids, new, k=10, batch_size=64)
    unit = torch.nn.functional.normalize(emb.double(), dim=1)
    for user, history in enumerate(histories):
        query = unit[[i - 1 for i in history]].mean(0) if history else unit.mean(0)
        cos = [(float(unit[i - 1] @ query) / float(query.norm()), i) for i in new]
        best = [i for _, i in sorted(cos, key=lambda c: (-c[0], c[1]))[:10]]
        assert ranked[user].tolist() == best


def test_nearest_text_rejects_bad_inputs() -> None:
    with pytest.raises(KeyError, match="item 42 has no row"):
        nearest_text_new_items([[1, 42]], TEXT_EMB, TEXT_IDS, TEXT_NEW, 3)
    with pytest.raises(KeyError, match="item 42 has no row"):
        nearest_text_new_items([[1]], TEXT_EMB, TEXT_IDS, {5, 42}, 3)
    with pytest.raises(ValueError, match="do not match"):
        nearest_text_new_items([[1]], TEXT_EMB[:-1], TEXT_IDS, TEXT_NEW, 3)
    with pytest.raises(ValueError, match="unique"):
        nearest_text_new_items([[1]], TEXT_EMB, [1] * 10, TEXT_NEW, 3)
    with pytest.raises(ValueError, match="empty"):
        nearest_text_new_items([[1]], TEXT_EMB, TEXT_IDS, [], 3)
    with pytest.raises(ValueError, match="k must"):
        nearest_text_new_items([[1]], TEXT_EMB, TEXT_IDS, TEXT_NEW, 0)
    with pytest.raises(ValueError, match="batch_size"):
        nearest_text_new_items([[1]], TEXT_EMB, TEXT_IDS, TEXT_NEW, 3, batch_size=0)


def test_sasrec_and_new_items_as_the_module_docstring_says() -> None:
    ids, new = list(range(1, 11)), [9, 10]
    small = {"d_model": 8, "d_ff": 8, "dropout": 0.0}
    torch.manual_seed(0)
    # Over the known items: no row for a new item, so it is never emitted, and cannot be read.
    known = SASRec(SASRecConfig(8, **small), ids[:8])  # type: ignore[arg-type]
    assert not set(known.recommend([[1, 2], [3]], k=8).flatten().tolist()) & set(new)
    with pytest.raises(KeyError, match="not in the SASRec catalogue"):
        known.recommend([[1, 9]], k=3)
    # Over the whole catalogue: the new rows are no target and no input, yet trained as negatives.
    samples = RetrievalSamples([0, 1, 2], [[1, 2], [3], [4, 5]], [3, 4, 6])
    for loss in ("ce", "bce"):
        model = SASRec(SASRecConfig(10, loss=loss, **small), ids)  # type: ignore[arg-type]
        model.loss(samples).backward()
        grad = model.item_emb.weight.grad[model.item_index(new)]  # (2, d)
        if loss == "ce":  # the softmax covers every row
            assert (grad.norm(dim=1) > 0).all()
        assert model.scores([[1, 2]]).shape == (1, 10)  # new items are scored like any other


def test_admit_all_applies_the_rule_row_by_row() -> None:
    index = NewItemIndex(CODES, NEW)
    ranked = torch.tensor([RANKED[:4], [3, 4, -1, -1], [-1, -1, -1, -1]])  # -1: a short beam
    out = index.admit_all(ranked, k=4, epsilon=0.5)
    assert out.tolist() == [[2, 7, 3, 8], [3, 8, 4, -1], [-1, -1, -1, -1]]
    assert torch.equal(index.admit_all(ranked, 3, 0.0), ranked[:, :3])
    assert index.admit_all(torch.empty(0, 4, dtype=torch.long), 2, 0.5).shape == (0, 2)
