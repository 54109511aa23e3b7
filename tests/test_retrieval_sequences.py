"""rqvae_lib.retrieval.sequences: leave-one-out samples of P5 sequences, truncated histories."""

from __future__ import annotations

from rqvae_lib.data.amazon import leave_one_out
from rqvae_lib.retrieval import build_samples, truncate_history

# P5-like sequences in file order (user ids deliberately not sorted); user 9 is long.
SEQUENCES = {
    7: [1, 2, 3, 4, 5],
    3: [2, 6, 2, 7],  # a repeat purchase: the validation item 2 is also the first training item
    9: list(range(100, 130)),  # 30 items: histories must be truncated to 20
    5: [8, 9],  # too short to hold anything out: all training
}


def test_samples_window_the_training_part_and_hold_out_the_last_two() -> None:
    split = leave_one_out(SEQUENCES)
    train, val, test = build_samples(split)
    # P5 file order is kept in every split; user 5 (2 items) has no val/test sample.
    assert list(dict.fromkeys(train.users)) == [7, 3, 9, 5]
    assert val.users == test.users == [7, 3, 9]
    # Every prefix of the training part is a sample; the first item (no history) is skipped.
    assert [(h, t) for u, h, t in zip(*train, strict=True) if u == 7] == [([1], 2), ([1, 2], 3)]
    assert [(h, t) for u, h, t in zip(*train, strict=True) if u == 3] == [([2], 6)]
    assert val.histories[0] == [1, 2, 3] and val.targets[0] == 4
    assert test.histories[0] == [1, 2, 3, 4] and test.targets[0] == 5
    # No held-out position of a user is one of that user's training samples.
    for held_out in (val, test):
        for user, history, target in zip(*held_out, strict=True):
            user_train = [(h, t) for u, h, t in zip(*train, strict=True) if u == user]
            assert all(len(h) < len(split.train[user]) for h, _ in user_train)
            assert (history[-20:], target) not in user_train
            assert len(user_train) == len(split.train[user]) - 1
    targets_of = {
        u: [t for v, t in zip(train.users, train.targets, strict=True) if v == u] for u in SEQUENCES
    }
    assert targets_of[7] == [2, 3] and targets_of[3] == [6]  # never 4, 5 (user 7) or 2, 7 (user 3)
    # Histories keep the last 20 items, oldest first.
    assert max(len(h) for h in train.histories + val.histories + test.histories) == 20
    long = [h for u, h in zip(train.users, train.histories, strict=True) if u == 9]
    assert long[-1] == list(range(107, 127)) and train.targets[len(train.targets) - 2] == 127
    assert test.histories[2] == list(range(109, 129)) and test.targets[2] == 129
    assert truncate_history([1, 2, 3], 2) == [2, 3]
