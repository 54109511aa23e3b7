"""Leave-one-out samples for generative retrieval: (user, history, target) triples per split.

Training samples come only from each user's training part (every prefix predicts the next
item), so a user's validation and test positions are never training samples of that user (the
same item can still be a training target when the user reviewed it earlier too).
Validation sees the training part; test sees the training part plus the validation item.
Histories keep the last ``max_history`` items (TIGER and P5 use 20) and the P5 files' order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from rqvae_lib.data.amazon import LeaveOneOut

#: How many of the most recent items a history keeps (as in TIGER).
MAX_HISTORY = 20


class RetrievalSamples(NamedTuple):
    """One split's samples, aligned by position: ``histories[i]`` (oldest first) -> ``targets[i]``."""

    users: list[int]
    histories: list[list[int]]
    targets: list[int]


class RetrievalSplits(NamedTuple):
    """The three splits built from one :class:`LeaveOneOut`."""

    train: RetrievalSamples
    val: RetrievalSamples
    test: RetrievalSamples


def truncate_history(items: Sequence[int], max_history: int = MAX_HISTORY) -> list[int]:
    """The last ``max_history`` items, oldest first, so long users do not dominate the input."""
    if max_history < 1:
        raise ValueError(f"max_history must be at least 1, got {max_history}")
    return list(items[max(0, len(items) - max_history) :])


def training_samples(split: LeaveOneOut, max_history: int = MAX_HISTORY) -> RetrievalSamples:
    """Every position t >= 1 of each training part: history = items before t, target = item t.

    Only ``split.train`` is read, so held-out positions never become training samples of their
    user (a held-out item is a training target only if the user also reviewed it earlier).
    """
    samples = RetrievalSamples([], [], [])
    for user, items in split.train.items():  # P5 file order
        for t in range(1, len(items)):  # the first item has no history: skipped
            samples.users.append(user)
            samples.histories.append(truncate_history(items[:t], max_history))
            samples.targets.append(items[t])
    return samples


def validation_samples(split: LeaveOneOut, max_history: int = MAX_HISTORY) -> RetrievalSamples:
    """One sample per user with a validation item: history = training part, target = val item."""
    samples = RetrievalSamples([], [], [])
    for user, target in split.val.items():
        samples.users.append(user)
        samples.histories.append(truncate_history(split.train[user], max_history))
        samples.targets.append(target)
    return samples


def test_samples(split: LeaveOneOut, max_history: int = MAX_HISTORY) -> RetrievalSamples:
    """One sample per user with a test item: history = training part + val item, target = test."""
    samples = RetrievalSamples([], [], [])
    for user, target in split.test.items():
        samples.users.append(user)
        history = [*split.train[user], split.val[user]]
        samples.histories.append(truncate_history(history, max_history))
        samples.targets.append(target)
    return samples


test_samples.__test__ = False  # type: ignore[attr-defined]  # not a pytest test when imported


def build_samples(split: LeaveOneOut, max_history: int = MAX_HISTORY) -> RetrievalSplits:
    """Training, validation and test samples of one leave-one-out split, in P5 user order."""
    return RetrievalSplits(
        training_samples(split, max_history),
        validation_samples(split, max_history),
        test_samples(split, max_history),
    )
