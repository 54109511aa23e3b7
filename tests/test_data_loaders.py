"""rqvae_lib.data.loaders: InMemoryBatches give the DataLoader's batches, training and DDP shards."""

from __future__ import annotations

import pytest
import torch
from helpers import quiet_trainer
from torch.utils.data import DataLoader

from rqvae_lib import RqVae, seed_everything
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
