"""rqvae_lib.callbacks: CodebookUsageCallback's schedule and its items as a tensor or a loader."""

from __future__ import annotations

import pytest
from helpers import quiet_trainer

from rqvae_lib import CodebookUsageCallback, RqVae, seed_everything
from rqvae_lib.data import SyntheticDataModule


def test_usage_callback_every_n_epochs_from_a_tensor_or_a_loader():
    seed_everything(0)
    data = SyntheticDataModule(num_items=600, dim=32, batch_size=128, seed=0)
    data.setup()
    every = CodebookUsageCallback(data.dataset("all").features, every_n_epochs=2)
    each = CodebookUsageCallback(data.predict_dataloader())
    model = RqVae(32, [64, 32], 8, 16, num_levels=2)
    quiet_trainer(
        4,
        callbacks=[every, each],
    ).fit(model, data)
    assert [h["epoch"] for h in every.history] == [1, 3]
    assert [h["epoch"] for h in each.history] == [0, 1, 2, 3]
    for record in every.history:  # the same statistics, whichever way the items come
        assert record == each.history[record["epoch"]]
    with pytest.raises(ValueError, match="every_n_epochs must be >= 1"):
        CodebookUsageCallback(data.dataset("all").features, every_n_epochs=0)
