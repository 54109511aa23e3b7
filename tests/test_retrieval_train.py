"""The retrieval training loop: lockstep training equals training alone, budgets stop every model
after the same epoch, a diverging model never passes silently, batches cover every sample."""

from __future__ import annotations

import math

import pytest
import torch
from test_retrieval_models import _sasrec, _seq2seq, _task

from rqvae_lib import plots
from rqvae_lib.retrieval import (
    Seq2SeqConfig,
    T5Seq2Seq,
    TigerSeq2Seq,
    TrainConfig,
    build_seq2seq,
    fit,
    fit_together,
)
from rqvae_lib.retrieval.seq2seq import EncodedHistory
from rqvae_lib.retrieval.train import batch_order, full_width_batch, lr_factor, slice_batch

pytestmark = pytest.mark.usefixtures("one_thread")


def _config(**overrides) -> TrainConfig:
    options = dict(epochs=2, batch_size=32, learning_rate=3e-3, seed=5, device="cpu", verbose=False)
    return TrainConfig(**{**options, **overrides})


def _equal_states(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_lockstep_training_equals_training_each_model_alone() -> None:
    task = _task(0)
    train, val = task.samples.train, task.samples.val
    alone = {
        "seq2seq": fit(_seq2seq(task, 1), train, val, _config()),
        "sasrec": fit(_sasrec(task, 2, "bce"), train, val, _config()),
    }
    together = fit_together(
        {"seq2seq": _seq2seq(task, 1), "sasrec": _sasrec(task, 2, "bce")}, train, val, _config()
    )
    for name, result in alone.items():
        assert result.train_losses == together[name].train_losses
        assert _equal_states(result.best_state, together[name].best_state)


def test_a_time_budget_stops_every_model_after_the_same_validated_epoch() -> None:
    task = _task(0)
    config = _config(epochs=50, time_budget_s=1e-3, val_every=10)
    results = fit_together(
        {"a": _seq2seq(task, 1), "b": _sasrec(task, 2, "ce")},
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
    task = _task(0)
    train, val = task.samples.train, task.samples.val
    with pytest.raises(FloatingPointError, match="not finite"):
        fit(_Diverging(_sasrec(task, 2, "ce"), bad_epoch=2), train, val, _config(epochs=3))
    model = _Diverging(_sasrec(task, 2, "ce"), bad_epoch=2)
    result = fit(model, train, val, _config(epochs=3, on_nonfinite="stop"))
    assert result.diverged_epoch == 1 and result.best_epoch == 0
    assert len(result.train_losses) == 2 and math.isnan(result.train_losses[1])
    assert result.val_epochs == [0]  # the NaN epoch is never validated, never selected
    assert all(v.isfinite().all() for v in result.best_state.values())
    with pytest.raises(FloatingPointError, match="before any validated epoch"):
        fit(_Diverging(_sasrec(task, 2, "ce"), 1), train, val, _config(on_nonfinite="stop"))


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


def test_a_trimmed_batch_gives_the_full_width_loss() -> None:
    task = _task(0)
    for model in (_seq2seq(task, 1).eval(), _sasrec(task, 2, "ce").eval()):
        data = model.collate(task.samples.train)
        index = torch.arange(10)
        with torch.no_grad():
            trimmed = model.loss(slice_batch(data, data.inputs, index))
            full = {k: v[index] for k, v in full_width_batch(data, torch.device("cpu")).items()}
            assert torch.allclose(trimmed, model.loss(full), atol=1e-5)


def test_beam_decoding_equals_decoding_on_repeated_memory() -> None:
    task = _task(0)
    model = _seq2seq(task, 1).eval()
    with torch.no_grad():
        encoded = model.encode(*model.encode_histories(task.samples.test.histories[:6]))
        prefix = task.tokenizer.encode_items(task.samples.test.targets[:6] * 3)[:, :-1]  # (18, D-1)
        prefix = torch.cat([torch.full((18, 1), 2), prefix], dim=1)  # BOS first
        repeated = EncodedHistory(
            encoded.memory.repeat_interleave(3, 0), encoded.padding_mask.repeat_interleave(3, 0)
        )
        assert torch.allclose(
            model.decode_beams(encoded, prefix, 3), model.decode(repeated, prefix), atol=1e-5
        )


def test_learning_rate_warms_up_then_decays_as_inverse_square_root() -> None:
    assert lr_factor(0, "constant", 0) == 1.0
    assert lr_factor(49, "inverse_sqrt", 100) == pytest.approx(0.5)
    assert lr_factor(99, "inverse_sqrt", 100) == 1.0
    assert lr_factor(399, "inverse_sqrt", 100) == pytest.approx(0.5)
    assert lr_factor(399, "constant", 100) == 1.0
    with pytest.raises(ValueError, match="lr_schedule"):
        TrainConfig(lr_schedule="cosine")  # type: ignore[arg-type]


def test_tiny_preset_is_a_tiger_model_shape() -> None:
    task = _task(0)
    config = Seq2SeqConfig.from_tokenizer(task.tokenizer)
    model = TigerSeq2Seq(config, task.tokenizer)
    assert (config.d_model, config.num_heads, config.num_encoder_layers, config.d_ff) == (
        384,
        6,
        4,
        1024,
    )
    assert len(model.transformer.decoder.layers) == 4
    # The T5 backbone at the same sizes: T5's own layer counts and head width; a typo is refused.
    t5 = build_seq2seq(Seq2SeqConfig.preset("tiny", task.tokenizer, backbone="t5"), task.tokenizer)
    assert isinstance(t5, T5Seq2Seq) and t5.t5.config.num_decoder_layers == 1
    assert t5.t5.config.d_kv * t5.t5.config.num_heads == 64
    with pytest.raises(ValueError, match="backbone"):
        Seq2SeqConfig.preset("tiny", task.tokenizer, backbone="T5")


def test_budgets_results_table_and_one_users_recommendations() -> None:
    from rqvae_lib.course.retrieval import recommendation_table, results_frame, standard_errors
    from rqvae_lib.retrieval.experiment import (
        CPU_BUDGET,
        FAST_BUDGET,
        GPU_BUDGET,
        RetrievalData,
        choose_budget,
        record,
        validation_subset,
    )
    from rqvae_lib.retrieval.metrics import MetricValue

    assert choose_budget(True, "cuda") is FAST_BUDGET
    assert choose_budget(False, "cpu") is CPU_BUDGET and choose_budget(False, "cuda") is GPU_BUDGET
    assert GPU_BUDGET.preset == "tiger" and GPU_BUDGET.max_users is None
    assert CPU_BUDGET.max_users is None  # full mode scores every user, on any machine
    config = CPU_BUDGET.seq2seq_config()
    assert config.lr_schedule == "inverse_sqrt" and config.on_nonfinite == "stop"

    task = _task(0)
    data = RetrievalData(
        "toy", task.split, task.samples, task.item_ids, {i: f"item {i}" for i in task.item_ids}
    )
    val = validation_subset(data, 20, seed=1)
    assert len(val.targets) == 20 and set(val.users) <= set(task.samples.val.users)
    assert (
        validation_subset(data, 20, seed=1) == val
        and validation_subset(data, None, 1) is task.samples.val
    )

    model = _seq2seq(task, 1)
    past, recs = recommendation_table(model, data, index=3, k=5)
    assert past["item"].tolist() == task.samples.test.histories[3]
    assert len(recs) == 5 and recs["hit"].sum() <= 1
    assert recs["hit"].tolist() == [i == task.samples.test.targets[3] for i in recs["item"]]

    metrics = {"recall@10": MetricValue(0.25, 0.01)}
    frame = results_frame(
        [record("a", model, None, metrics, 1.5), record("b", None, None, metrics, 0.1)]
    )
    assert frame["recall@10"].tolist() == ["0.2500 ± 0.0100"] * 2
    assert results_frame([record("a", None, None, metrics, 0.0)], sem=False)["recall@10"][0] == 0.25
    # Error bars: the standard errors, aligned with the means by model name, drawn on the bars.
    other = {"recall@10": MetricValue(0.5, 0.03)}
    records = [record("a", None, None, metrics, 0.0), record("b", None, None, other, 0.0)]
    errors = standard_errors(records)
    assert errors.loc["b", "recall@10"] == 0.03 and list(errors.index) == ["a", "b"]
    means = results_frame(records, sem=False).set_index("model")
    fig = plots.metric_bars(means.iloc[::-1], ["recall@10"], errors=errors)
    from matplotlib.container import BarContainer

    (bars,) = [c for c in fig.axes[0].containers if isinstance(c, BarContainer)]
    assert [b.get_height() for b in bars] == [0.5, 0.25]
    assert bars.errorbar is not None  # drawn, in the bars' order (b first)
    segments = bars.errorbar.lines[2][0].get_segments()
    assert [round(float(s[1][1] - s[0][1]), 6) for s in segments] == [0.06, 0.02]


def test_seed_everything_switches_deterministic_kernels_both_ways() -> None:
    """A budget with deterministic=False (the GPU one) really runs without them, even after an
    earlier seed_everything() switched them on (notebook 06 seeds first, then trains)."""
    from rqvae_lib.config import seed_everything

    try:
        seed_everything(0)
        assert torch.are_deterministic_algorithms_enabled()
        seed_everything(0, deterministic=False)
        assert not torch.are_deterministic_algorithms_enabled()
    finally:
        seed_everything(0)
