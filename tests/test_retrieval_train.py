"""rqvae_lib.retrieval.train: the training loop. Lockstep training equals training alone, the
same seed trains the same model, budgets stop every model after the same epoch, a diverging model
never passes silently, batches cover every sample, the learning rate warms up then decays."""

from __future__ import annotations

import math

import pytest
import torch
from retrieval_helpers import fit_task, shared_task, tiny_sasrec, tiny_seq2seq

from rqvae_lib.retrieval import TrainConfig, fit, fit_together
from rqvae_lib.retrieval.train import batch_order, lr_factor

pytestmark = pytest.mark.usefixtures("one_thread")


def _config(**overrides) -> TrainConfig:
    options = dict(epochs=2, batch_size=32, learning_rate=3e-3, seed=5, device="cpu", verbose=False)
    return TrainConfig(**{**options, **overrides})


def _equal_states(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_lockstep_training_equals_training_each_model_alone() -> None:
    task = shared_task(0)
    train, val = task.samples.train, task.samples.val
    alone = {
        "seq2seq": fit(tiny_seq2seq(task, 1), train, val, _config()),
        "sasrec": fit(tiny_sasrec(task, 2, "bce"), train, val, _config()),
    }
    together = fit_together(
        {"seq2seq": tiny_seq2seq(task, 1), "sasrec": tiny_sasrec(task, 2, "bce")},
        train,
        val,
        _config(),
    )
    for name, result in alone.items():
        assert result.train_losses == together[name].train_losses
        assert _equal_states(result.best_state, together[name].best_state)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["seq2seq", "bce"])
def test_training_is_reproducible_with_the_same_seed(kind: str) -> None:
    task = shared_task(1)
    runs = []
    for _ in range(2):
        model = tiny_seq2seq(task, 3) if kind == "seq2seq" else tiny_sasrec(task, 3, "bce")
        result = fit_task(model, task, seed=3, epochs=2, learning_rate=3e-3)
        runs.append((result.train_losses, result.val_metrics, result.best_epoch))
        assert len(result.val_metrics) == 2 and 0 <= result.best_epoch < 2
        assert result.best_metric == result.val_metrics[result.best_epoch]["recall@10"].mean
        assert set(result.best_state) == set(model.state_dict())
    assert runs[0] == runs[1]


def test_a_time_budget_stops_every_model_after_the_same_validated_epoch() -> None:
    task = shared_task(0)
    config = _config(epochs=50, time_budget_s=1e-3, val_every=10)
    results = fit_together(
        {"a": tiny_seq2seq(task, 1), "b": tiny_sasrec(task, 2, "ce")},
        task.samples.train,
        task.samples.val,
        config,
    )
    for result in results.values():  # the first epoch overruns the budget: stop after it
        assert len(result.train_losses) == 1 and result.val_epochs == [0]
        assert result.best_epoch == 0


class _Diverging(torch.nn.Module):
    """Wraps a model; its loss is NaN from the ``bad_epoch``-th call of ``train()`` on."""

    def __init__(self, model: torch.nn.Module, bad_epoch: int) -> None:
        super().__init__()
        self.inner, self.bad_epoch, self.epochs = model, bad_epoch, 0

    def train(self, mode: bool = True):
        self.epochs += int(mode)
        return super().train(mode)

    def collate(self, samples):
        return self.inner.collate(samples)

    def loss(self, batch):
        loss = self.inner.loss(batch)
        return loss * math.nan if self.epochs >= self.bad_epoch else loss

    def recommend(self, histories, k, users=None):
        return self.inner.recommend(histories, k, users=users)


def test_a_non_finite_loss_raises_or_stops_at_the_last_good_epoch() -> None:
    task = shared_task(0)
    train, val = task.samples.train, task.samples.val
    with pytest.raises(FloatingPointError, match="not finite"):
        fit(_Diverging(tiny_sasrec(task, 2, "ce"), bad_epoch=2), train, val, _config(epochs=3))
    model = _Diverging(tiny_sasrec(task, 2, "ce"), bad_epoch=2)
    result = fit(model, train, val, _config(epochs=3, on_nonfinite="stop"))
    assert result.diverged_epoch == 1 and result.best_epoch == 0
    assert len(result.train_losses) == 2 and math.isnan(result.train_losses[1])
    assert result.val_epochs == [0]  # the NaN epoch is never validated, never selected
    assert all(v.isfinite().all() for v in result.best_state.values())
    with pytest.raises(FloatingPointError, match="before any validated epoch"):
        fit(_Diverging(tiny_sasrec(task, 2, "ce"), 1), train, val, _config(on_nonfinite="stop"))


@pytest.mark.parametrize("bucket", [False, True])
def test_batches_cover_every_sample_once_and_buckets_cut_padding(bucket: bool) -> None:
    widths = torch.randint(1, 80, (5000,), generator=torch.Generator().manual_seed(0))
    batches = batch_order(widths, 64, torch.Generator().manual_seed(1), bucket)
    assert torch.cat(batches).sort().values.equal(torch.arange(5000))
    assert all(len(b) <= 64 for b in batches)
    padded = sum(len(b) * int(widths[b].max()) for b in batches)
    if bucket:  # similar widths together: far fewer padded positions than random batches
        random_padded = sum(
            len(b) * int(widths[b].max())
            for b in batch_order(widths, 64, torch.Generator().manual_seed(1), False)
        )
        assert padded < 0.7 * random_padded


def test_learning_rate_warms_up_then_decays_as_inverse_square_root() -> None:
    assert lr_factor(0, "constant", 0) == 1.0
    assert lr_factor(49, "inverse_sqrt", 100) == pytest.approx(0.5)
    assert lr_factor(99, "inverse_sqrt", 100) == 1.0
    assert lr_factor(399, "inverse_sqrt", 100) == pytest.approx(0.5)
    assert lr_factor(399, "constant", 100) == 1.0
    with pytest.raises(ValueError, match="lr_schedule"):
        TrainConfig(lr_schedule="cosine")  # type: ignore[arg-type]
