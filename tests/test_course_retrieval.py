"""rqvae_lib.course.retrieval: the retrieval lesson's tables (results as frames, their standard
errors aligned for error bars, paired differences on the same users, one test user's history
and top-k)."""

from __future__ import annotations

import math

import pytest
import torch
from retrieval_helpers import shared_task, task_data, tiny_seq2seq

from rqvae_lib.course.retrieval import (
    paired_difference,
    recommendation_table,
    results_frame,
    standard_errors,
)
from rqvae_lib.retrieval.experiment import record
from rqvae_lib.retrieval.metrics import MetricValue

pytestmark = pytest.mark.usefixtures("one_thread")


def test_one_users_recommendations_mark_the_held_out_item() -> None:
    task = shared_task(0)
    data = task_data(task)
    model = tiny_seq2seq(task, 1)
    past, recs = recommendation_table(model, data, index=3, k=5)
    assert past["item"].tolist() == task.samples.test.histories[3]
    assert len(recs) == 5 and recs["hit"].sum() <= 1
    assert recs["hit"].tolist() == [i == task.samples.test.targets[3] for i in recs["item"]]
    history = set(task.samples.test.histories[3])
    assert recs["in history"].tolist() == [i in history for i in recs["item"]]
    assert past["title"].tolist() == [f"item {i}" for i in past["item"]]
    assert recs["title"].tolist() == [f"item {i}" for i in recs["item"]]
    assert list(recs.index) == [1, 2, 3, 4, 5]  # ranks, best first


def test_results_frame_and_standard_errors_line_up_by_model_name() -> None:
    model = tiny_seq2seq(shared_task(0), 1)
    metrics = {"recall@10": MetricValue(0.25, 0.01)}
    frame = results_frame(
        [record("a", model, None, metrics, 1.5), record("b", None, None, metrics, 0.1)]
    )
    assert frame["recall@10"].tolist() == ["0.2500 ± 0.0100"] * 2
    assert results_frame([record("a", None, None, metrics, 0.0)], sem=False)["recall@10"][0] == 0.25
    # Error bars: the standard errors, aligned with the means by model name.
    other = {"recall@10": MetricValue(0.5, 0.03)}
    records = [record("a", None, None, metrics, 0.0), record("b", None, None, other, 0.0)]
    errors = standard_errors(records)
    assert errors.loc["b", "recall@10"] == 0.03 and list(errors.index) == ["a", "b"]
    means = results_frame(records, sem=False).set_index("model")
    assert errors.index.equals(means.index) and means.loc["b", "recall@10"] == 0.5


def test_a_paired_difference_is_the_mean_and_standard_error_of_per_user_differences() -> None:
    metrics = {"recall@10": MetricValue(0.0, 0.0)}
    # Ranks of 6 users under two models: A hits users 0-3 (two beyond the top 5), B users 0-1.
    a = record("a", None, None, metrics, 0.0, test_ranks=[1, 2, 7, 9, 0, 0])
    b = record("b", None, None, metrics, 0.0, test_ranks=[1, 4, 0, 0, 0, 0])
    diff = paired_difference(a, b, "recall@10")
    per_user = torch.tensor([0, 0, 1, 1, 0, 0], dtype=torch.float64)  # a_u - b_u
    assert diff.mean == pytest.approx(2 / 6)
    assert diff.sem == pytest.approx((per_user.std() / math.sqrt(6)).item())
    assert paired_difference(a, b, "recall@5") == (0.0, 0.0)  # the same hits within 5
    ndcg = paired_difference(b, a, "ndcg@10")  # B minus A
    assert ndcg.mean == pytest.approx(
        (1 / math.log2(5) - 1 / math.log2(3) - 1 / 3 - 1 / math.log2(10)) / 6
    )
    with pytest.raises(ValueError, match="keep_ranks"):
        paired_difference(a, record("c", None, None, metrics, 0.0), "recall@10")
    with pytest.raises(ValueError, match="same users"):
        paired_difference(a, record("d", None, None, metrics, 0.0, test_ranks=[1]), "recall@10")
