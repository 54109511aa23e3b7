"""rqvae_lib.retrieval.train, resuming: an interrupted run ends exactly where an uninterrupted run
ends, a finished run is not trained again, and a checkpoint of another run is refused."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from retrieval_helpers import Task, tiny_sasrec, tiny_seq2seq

from rqvae_lib.retrieval import TrainConfig, TrainResult, checkpoint_path, fit, fit_together
from rqvae_lib.retrieval.train import _Run

pytestmark = pytest.mark.usefixtures("one_thread")

EPOCHS = 4


@pytest.fixture(scope="module")
def task() -> Task:
    return Task(2, num_users=30)  # about 100 training samples: a few batches per epoch


def _config(**overrides) -> TrainConfig:
    options = dict(
        epochs=EPOCHS, batch_size=16, learning_rate=3e-3, lr_schedule="inverse_sqrt",
        warmup_steps=10, seed=7, device="cpu", verbose=False,
    )  # fmt: skip
    return TrainConfig(**{**options, **overrides})


def _models(task: Task, seed: int) -> dict[str, torch.nn.Module]:
    """Dropout in both, negatives sampled in SASRec's loss: every random stream matters."""
    return {"seq2seq": tiny_seq2seq(task, seed), "sasrec": tiny_sasrec(task, seed + 1, "bce")}


def _fit(task: Task, models, config: TrainConfig, checkpoint_dir=None) -> dict[str, TrainResult]:
    return fit_together(models, task.samples.train, task.samples.val, config, checkpoint_dir)


def _assert_same(a: TrainResult, b: TrainResult) -> None:
    assert a.train_losses == b.train_losses and len(a.train_losses) == EPOCHS
    assert a.val_metrics == b.val_metrics and a.val_epochs == b.val_epochs
    assert (a.best_epoch, a.best_metric, a.diverged_epoch) == (
        b.best_epoch, b.best_metric, b.diverged_epoch
    )  # fmt: skip
    assert a.best_state.keys() == b.best_state.keys()
    differ = [k for k in a.best_state if not torch.equal(a.best_state[k], b.best_state[k])]
    assert not differ, differ


def _interrupt(done: int):
    """A ``_Run.train_epoch`` that raises KeyboardInterrupt when an epoch after ``done`` starts."""
    train_epoch = _Run.train_epoch

    def interrupted(run: _Run, say) -> None:
        if len(run.train_losses) >= done:
            raise KeyboardInterrupt
        train_epoch(run, say)

    return interrupted


@pytest.fixture(scope="module")
def uninterrupted(task: Task) -> dict[str, TrainResult]:
    """Trained with one thread, as every run of the tests here: a module fixture is set up before
    the function-scoped ``one_thread``, and another thread count sums in another order."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _fit(task, _models(task, seed=1), _config())
    finally:
        torch.set_num_threads(threads)


def test_an_interrupted_run_resumes_to_the_same_end(
    task: Task,
    uninterrupted: dict[str, TrainResult],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with monkeypatch.context() as patch:
        patch.setattr(_Run, "train_epoch", _interrupt(done=2))
        with pytest.raises(KeyboardInterrupt):
            _fit(task, _models(task, seed=1), _config(), tmp_path)
    saved = torch.load(checkpoint_path(tmp_path, "seq2seq"), weights_only=True)
    assert saved["epoch"] == 1 and len(saved["train_losses"]) == 2 and not saved["finished"]
    # Fresh models, even of another initialisation: everything comes from the checkpoints.
    # verbose only changes what is printed, so it may differ from the interrupted run's.
    models = _models(task, seed=99)
    resumed = _fit(task, models, _config(verbose=True), tmp_path)
    assert f"resuming seq2seq from epoch 3 of {tmp_path}" in capsys.readouterr().out
    for name, result in uninterrupted.items():
        _assert_same(resumed[name], result)
        state = models[name].state_dict()  # the model ends on its best epoch, as fit's
        assert all(torch.equal(state[k], v) for k, v in result.best_state.items())

    # A finished run returns its result without training.
    with monkeypatch.context() as patch:
        patch.setattr(_Run, "train_epoch", _interrupt(done=0))
        again = _fit(task, _models(task, seed=5), _config(), tmp_path)
    for name, result in uninterrupted.items():
        _assert_same(again[name], result)


def test_a_run_interrupted_before_its_first_validation_resumes_too(
    task: Task, tmp_path: Path
) -> None:
    """No best epoch yet (best_metric -inf, empty best_state): the state still round-trips."""
    config = _config(val_every=3)
    train, val = task.samples.train, task.samples.val
    alone = fit(tiny_sasrec(task, 2, "ce"), train, val, config, "s")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_Run, "train_epoch", _interrupt(done=1))
        with pytest.raises(KeyboardInterrupt):
            fit(tiny_sasrec(task, 2, "ce"), train, val, config, "s", tmp_path)
    assert torch.load(checkpoint_path(tmp_path, "s"), weights_only=True)["best_state"] == {}
    resumed = fit(tiny_sasrec(task, 3, "ce"), train, val, config, "s", tmp_path)
    assert resumed.val_epochs == [2, 3]
    _assert_same(resumed, alone)


def test_the_time_budget_counts_the_time_spent_before(task: Task, tmp_path: Path) -> None:
    config = _config(time_budget_s=1000.0)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_Run, "train_epoch", _interrupt(done=2))
        with pytest.raises(KeyboardInterrupt):
            fit(
                tiny_sasrec(task, 2, "ce"),
                task.samples.train,
                task.samples.val,
                config,
                "s",
                tmp_path,
            )
    path = checkpoint_path(tmp_path, "s")
    state = torch.load(path, weights_only=True)
    state["elapsed_s"] = 999.0  # as if the first two epochs took almost the whole budget
    torch.save(state, path)
    result = fit(
        tiny_sasrec(task, 2, "ce"), task.samples.train, task.samples.val, config, "s", tmp_path
    )
    assert len(result.train_losses) == 2 and result.val_epochs == [0, 1]  # no epoch fits


def test_a_checkpoint_of_another_run_is_refused(task: Task, tmp_path: Path) -> None:
    train, val = task.samples.train, task.samples.val
    fit(tiny_sasrec(task, 2, "ce"), train, val, _config(epochs=1), "sasrec", tmp_path)
    with pytest.raises(ValueError, match=r"another TrainConfig \(epochs: saved 1, now 2; "
                       r"learning_rate: saved 0.003, now 0.001\)"):  # fmt: skip
        fit(tiny_sasrec(task, 2, "ce"), train, val, _config(epochs=2, learning_rate=1e-3),
            "sasrec", tmp_path)  # fmt: skip
    with pytest.raises(ValueError, match="other training or validation samples"):
        fit(tiny_sasrec(task, 2, "ce"), val, val, _config(epochs=1), "sasrec", tmp_path)
    with pytest.raises(ValueError, match="training state of a SASRec, not of sasrec's Tiger"):
        fit(tiny_seq2seq(task, 2), train, val, _config(epochs=1), "sasrec", tmp_path)
    with pytest.raises(ValueError, match=r"states for \['sasrec'\] but not for \['other'\]"):
        fit_together(
            {"sasrec": tiny_sasrec(task, 2, "ce"), "other": tiny_sasrec(task, 3, "ce")},
            train, val, _config(epochs=1), tmp_path,
        )  # fmt: skip
    path = checkpoint_path(tmp_path, "sasrec")
    path.write_bytes(path.read_bytes()[:100])  # a truncated file
    with pytest.raises(ValueError, match="not a readable training state"):
        fit(tiny_sasrec(task, 2, "ce"), train, val, _config(epochs=1), "sasrec", tmp_path)
