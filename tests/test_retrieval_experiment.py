"""rqvae_lib.retrieval.experiment: the budgets (which one a machine gets, the training configs they
declare), the seeded validation subset, and the run_* functions that train and score."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from retrieval_helpers import shared_task, task_data

from rqvae_lib.config import DEFAULT_SEED
from rqvae_lib.retrieval import Seq2SeqConfig, TrainConfig, evaluate_retrieval, per_user_metric
from rqvae_lib.retrieval.experiment import (
    CPU_BUDGET,
    FAST_BUDGET,
    GPU_BUDGET,
    SASREC_LEARNING_RATE,
    VAL_KS,
    choose_budget,
    run_most_popular,
    run_sasrec,
    run_seq2seq,
    validation_subset,
)

BUDGETS = (FAST_BUDGET, CPU_BUDGET, GPU_BUDGET)


def test_fast_mode_picks_the_fast_budget_else_the_device_does() -> None:
    assert choose_budget(True, "cuda") is FAST_BUDGET
    assert choose_budget(False, "cpu") is CPU_BUDGET and choose_budget(False, "cuda") is GPU_BUDGET
    assert choose_budget(True, "cpu") is FAST_BUDGET
    # The device's type decides, whatever its index or spelling.
    assert choose_budget(False, torch.device("cuda", 1)) is GPU_BUDGET
    assert choose_budget(False, "cuda:0") is GPU_BUDGET
    assert choose_budget(False, "mps") is CPU_BUDGET


def test_the_lessons_budgets_count_epochs_not_seconds() -> None:
    """A time limit trains fewer epochs on a slower CPU, and the prose then misquotes the outputs."""
    for budget in (FAST_BUDGET, CPU_BUDGET):
        assert budget.time_budget_s is None and budget.sasrec_budget_s is None, budget.name
        assert budget.epochs > 0 and budget.sasrec_epochs > 0


def test_a_budgets_training_configs_carry_its_fields() -> None:
    # All values distinct, and none TrainConfig's default: a field dropped or swapped shows.
    odd = replace(
        CPU_BUDGET, epochs=3, time_budget_s=7.0, learning_rate=2e-4, warmup_steps=13, val_every=2,
        sasrec_epochs=5, sasrec_budget_s=11.0, amp=False, deterministic=False,
    )  # fmt: skip
    for budget in (odd, *BUDGETS):
        config = budget.seq2seq_config(seed=11, verbose=False)
        assert config.lr_schedule == "inverse_sqrt" and config.on_nonfinite == "stop"
        assert (config.epochs, config.time_budget_s, config.val_every) == (
            budget.epochs, budget.time_budget_s, budget.val_every
        ), budget.name  # fmt: skip
        assert (config.learning_rate, config.warmup_steps) == (
            budget.learning_rate, budget.warmup_steps
        )  # fmt: skip
        assert (config.amp, config.deterministic, config.ks) == (
            budget.amp, budget.deterministic, VAL_KS
        )  # fmt: skip
        sasrec = budget.sasrec_config(seed=11, verbose=False)
        assert (sasrec.epochs, sasrec.time_budget_s, sasrec.learning_rate) == (
            budget.sasrec_epochs, budget.sasrec_budget_s, SASREC_LEARNING_RATE
        ), budget.name  # fmt: skip
        assert sasrec.lr_schedule == "constant" and sasrec.on_nonfinite == "stop"
        assert (sasrec.amp, sasrec.deterministic, sasrec.ks) == (
            budget.amp, budget.deterministic, VAL_KS
        )  # fmt: skip
        for train_config in (config, sasrec):
            assert (train_config.seed, train_config.verbose) == (11, False)
        assert budget.seq2seq_config().seed == budget.sasrec_config().seed == DEFAULT_SEED
        assert budget.seq2seq_config().verbose and budget.sasrec_config().verbose


def test_every_budget_names_a_seq2seq_preset() -> None:
    tokenizer = shared_task(0).tokenizer
    for budget in BUDGETS:
        config = Seq2SeqConfig.preset(budget.preset, tokenizer)  # an unknown name raises
        assert config.vocab_size == tokenizer.vocab_size, budget.name


def test_the_validation_subset_is_seeded_and_drawn_from_the_validation_users() -> None:
    task = shared_task(0)
    data = task_data(task)
    val = validation_subset(data, 20, seed=1)
    assert len(val.targets) == 20 and set(val.users) <= set(task.samples.val.users)
    assert (
        validation_subset(data, 20, seed=1) == val
        and validation_subset(data, None, 1) is task.samples.val
    )
    assert validation_subset(data, 20, seed=2) != val
    assert validation_subset(data, len(task.samples.val.targets), 1) is task.samples.val


@pytest.mark.usefixtures("one_thread")
def test_the_run_functions_select_on_the_subset_and_score_every_test_user() -> None:
    task = shared_task(0)
    data = task_data(task)
    ks = (5, 10)
    metrics = {f"{m}@{k}" for m in ("recall", "ndcg") for k in ks}
    config = TrainConfig(
        epochs=2, batch_size=64, learning_rate=3e-3, seed=3, device="cpu", verbose=False
    )
    item_ids = torch.tensor(task.item_ids)
    tables = {
        "task": (task.tokenizer.semantic_ids, item_ids),
        "random": (torch.randint(0, 8, (len(item_ids), 2)), item_ids),
    }
    seq2seq = run_seq2seq(data, tables, "tiny", config, ks, val_users=20, keep_ranks=True)
    assert list(seq2seq) == ["task", "random"]
    for source, (model, record) in seq2seq.items():
        assert record["ids"] == source and record["preset"] == "tiny"
        assert record["val_users"] == 20 and record["epochs"] == 2  # lockstep, both epochs
        assert record["parameters"] == sum(p.numel() for p in model.parameters())
        assert record["test"].keys() == metrics
        test = evaluate_retrieval(model, data.samples.test, ks)  # every test user, not 20
        assert record["test"]["recall@10"] == [test["recall@10"].mean, test["recall@10"].sem]
        # keep_ranks: one rank per test user, which gives the record's means user by user.
        ranks = record["test_ranks"]
        assert len(ranks) == len(data.samples.test.targets) and 0 <= min(ranks) <= max(ranks) <= 10
        for name, (mean, _) in record["test"].items():
            assert per_user_metric(ranks, name).mean().item() == pytest.approx(mean, abs=1e-12)
    model, record = run_sasrec(data, "ce", config, ks, val_users=20)
    assert "test_ranks" not in record  # only when asked for
    assert record["model"] == "sasrec" and record["loss"] == "ce" and record["epochs"] == 2
    assert record["test"].keys() == metrics
    test = evaluate_retrieval(model, data.samples.test, ks)
    assert record["test"]["ndcg@5"] == [test["ndcg@5"].mean, test["ndcg@5"].sem]
    popular = run_most_popular(data, ks)
    assert popular["name"] == "most popular" and popular["test"].keys() == metrics
    assert "parameters" not in popular and "epochs" not in popular
    assert "test_ranks" not in popular
    ranks = run_most_popular(data, ks, keep_ranks=True)["test_ranks"]
    assert per_user_metric(ranks, "ndcg@10").mean().item() == pytest.approx(
        popular["test"]["ndcg@10"][0], abs=1e-12
    )
