"""rqvae_lib.retrieval.cold: the cold-start split and TIGER's admission rule for new items."""

from __future__ import annotations

import pytest

from rqvae_lib.data.amazon import leave_one_out
from rqvae_lib.retrieval import (
    NewItemIndex,
    admit_new_items,
    build_samples,
    cold_start_split,
    known_item_mask,
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
