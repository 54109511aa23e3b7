"""The in-memory training path: the same batches as the DataLoader path, the same training,
its DDP shards, the usage callback's schedule, and no host synchronisation on a GPU."""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch
from helpers import quiet_trainer
from torch.utils.data import DataLoader

from rqvae_lib import CodebookUsageCallback, RqVae, codebook_maintenance, seed_everything
from rqvae_lib.data import FeatureDataset, SyntheticDataModule
from rqvae_lib.data.loaders import InMemoryBatches
from rqvae_lib.data.sampling import EpochShuffleSampler


@pytest.fixture(scope="module")
def features() -> torch.Tensor:
    return torch.nn.functional.normalize(
        torch.randn(700, 16, generator=torch.Generator().manual_seed(0)), dim=1
    )


def test_in_memory_batches_equal_the_dataloader_batches(features):
    dataset = FeatureDataset(features)
    sampler = EpochShuffleSampler(dataset, seed=5)
    loader = DataLoader(dataset, batch_size=128, sampler=sampler)
    fast = InMemoryBatches(features, batch_size=128, shuffle=True, seed=5)
    assert len(fast) == len(loader) == 6
    for epoch in (0, 1, 7):
        sampler.set_epoch(epoch)
        fast.sampler.set_epoch(epoch)  # what Lightning calls
        slow_batches, fast_batches = list(loader), list(fast)
        assert len(slow_batches) == len(fast_batches)
        for a, b in zip(slow_batches, fast_batches, strict=True):
            assert torch.equal(a["features"], b["features"])
            assert torch.equal(a["item_id"], b["item_id"])
    sampler.set_epoch(0)
    fast.set_epoch(1)
    assert not torch.equal(next(iter(loader))["item_id"], next(iter(fast))["item_id"])


def test_ddp_shards_cover_each_global_batch_in_order(features):
    """Rank r takes the r-th contiguous part of every global batch of the one-process order."""
    whole = list(InMemoryBatches(features, batch_size=256, shuffle=True, seed=3))
    ranks = [
        list(InMemoryBatches(features, batch_size=128, shuffle=True, seed=3, rank=r, world_size=2))
        for r in range(2)
    ]
    assert len(ranks[0]) == len(ranks[1]) == len(whole) == 3
    for step, batch in enumerate(whole):
        parts = [ranks[r][step]["item_id"] for r in range(2)]
        assert torch.equal(torch.cat(parts), batch["item_id"])
        assert abs(len(parts[0]) - len(parts[1])) <= 1


def _fit(in_memory: bool) -> RqVae:
    seed_everything(0)
    data = SyntheticDataModule(num_items=600, dim=32, batch_size=128, seed=0, in_memory=in_memory)
    model = RqVae(32, [64, 32], 8, 16, num_levels=2, balance_rate=0.01, dead_code_steps=2)
    quiet_trainer(3, deterministic=True).fit(model, data)
    return model


def test_the_fast_path_trains_exactly_like_the_dataloader_path():
    fast, slow = _fit(in_memory=True), _fit(in_memory=False)
    for key, value in slow.state_dict().items():
        assert torch.equal(fast.state_dict()[key], value), key


def test_usage_callback_every_n_epochs_from_a_tensor_or_a_loader(features):
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
        CodebookUsageCallback(features, every_n_epochs=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="host synchronisation is a GPU matter")
def test_a_training_step_on_the_gpu_never_waits_for_the_device():
    """After the first step (k-means init reads the batch), no step copies anything to the host."""
    model = RqVae(64, [128, 64], 16, 32, num_levels=3, balance_rate=1e-3).cuda().train()
    x = torch.nn.functional.normalize(torch.randn(512, 64, device="cuda"), dim=1)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step() -> None:
        with codebook_maintenance(model):
            loss = model._losses({"features": x})[0]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    step()
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(20):  # dead-code restarts and the balancing bias included
            step()
    finally:
        torch.cuda.set_sync_debug_mode("default")


def test_epoch_losses_are_the_batch_weighted_means_of_the_steps():
    """Logged once per epoch from sums kept on the device: the same means as per-step logging."""

    class Steps(pl.Callback):
        def __init__(self) -> None:
            self.losses: list[tuple[float, int]] = []

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            self.losses.append((float(outputs["loss"]), batch["features"].shape[0]))

    seed_everything(0)
    data = SyntheticDataModule(num_items=700, dim=32, batch_size=128, seed=0)  # a short last batch
    steps = Steps()
    trainer = quiet_trainer(
        1,
        callbacks=[steps],
    )
    trainer.fit(RqVae(32, [64, 32], 8, 16, num_levels=2), data)
    total = sum(n for _, n in steps.losses)
    expected = sum(loss * n for loss, n in steps.losses) / total
    assert len(steps.losses) == 5 and steps.losses[-1][1] < 128
    assert float(trainer.callback_metrics["train_loss"]) == pytest.approx(expected, rel=1e-6)
