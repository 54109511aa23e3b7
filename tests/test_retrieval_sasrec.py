"""rqvae_lib.retrieval.sasrec: SASRec with either loss learns an obvious sequence task, padding
changes no score, BCE negatives are never the positive, history exclusion follows the metric's."""

from __future__ import annotations

import pytest
import torch
from retrieval_helpers import (
    NUM_ITEMS,
    SEEDS,
    learned_and_popular_recall,
    shared_task,
    tiny_sasrec,
)

from rqvae_lib.retrieval import SASRecConfig, drop_history

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: threads only contend


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["bce", "ce"])
def test_sasrec_learns_the_pattern_and_beats_most_popular(kind: str) -> None:
    model_recall, popular_recall = learned_and_popular_recall(kind)
    mean_model = sum(model_recall) / len(SEEDS)
    mean_popular = sum(popular_recall) / len(SEEDS)
    assert mean_popular < 0.3, popular_recall
    assert mean_model > 0.5 and mean_model > mean_popular + 0.4, (model_recall, popular_recall)


def test_padding_does_not_change_a_users_scores() -> None:
    task = shared_task(0)
    short, long = [task.item_ids[0]], task.item_ids[1:9]
    sasrec = tiny_sasrec(task, 0, "bce")
    alone, batched = sasrec.scores([short]), sasrec.scores([long, short])
    assert batched.isfinite().all() and torch.allclose(alone, batched[1:], atol=1e-5)


def test_bce_negative_is_never_the_positive_and_covers_the_rest() -> None:
    task = shared_task(0)
    model = tiny_sasrec(task, 0, "bce")
    positives = torch.arange(1, NUM_ITEMS + 1).repeat(200)  # every embedding row, 200 times
    negatives = model.sample_negatives(positives)
    assert (negatives != positives).all()
    assert negatives.min() >= 1 and negatives.max() <= NUM_ITEMS
    row_1 = negatives[positives == 1]
    assert set(row_1.tolist()) <= set(range(2, NUM_ITEMS + 1))
    assert len(set(negatives.tolist())) == NUM_ITEMS  # no item is never drawn


def test_sasrec_exclude_history_follows_drop_history() -> None:
    task = shared_task(0)
    model = tiny_sasrec(task, 0, "ce")
    histories = task.samples.test.histories[:4]
    full = model.recommend(histories, k=NUM_ITEMS)
    masked = model.recommend(histories, k=10, exclude_history=True)
    assert masked.equal(drop_history(full, histories)[:, :10])
    for row, history in zip(masked.tolist(), histories, strict=True):
        assert not set(row) & set(history)
    with pytest.raises(ValueError):
        SASRecConfig(NUM_ITEMS, loss="hinge")
