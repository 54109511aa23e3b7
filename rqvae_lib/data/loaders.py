"""Batches as slices of one in-memory tensor: no per-item collation, and a resumable shuffle.

When the features fit in memory (they do for every catalogue here, and for millions of items on
a GPU), a batch is ``features[rows]`` on the training device, with ``rows`` a slice of a
permutation drawn from ``(seed, epoch)``: the same permutation as
:class:`~rqvae_lib.data.sampling.EpochShuffleSampler`, so a DataLoader over the same data gives
the same batches. Under DDP every rank walks the same global batches and takes its own
contiguous part of each, so the ranks together see exactly what one process would.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from torch import Tensor

from rqvae_lib.data.sampling import epoch_permutation


class InMemoryBatches:
    """An iterable of ``{"features", "item_id"}`` batches sliced from tensors on ``device``.

    ``batch_size`` is per process, as with a DataLoader under DDP; the global batch is
    ``batch_size * world_size``. Lightning calls ``sampler.set_epoch`` (this object is its own
    sampler) at the start of every epoch, and a checkpoint restores the epoch, so a resumed run
    sees the batches an uninterrupted run would have.
    """

    def __init__(
        self,
        features: Tensor,
        item_ids: Tensor | None = None,
        batch_size: int = 1024,
        shuffle: bool = False,
        seed: int = 0,
        device: str | torch.device | None = None,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside world_size {world_size}")
        device = torch.device(device) if device is not None else features.device
        self.features = features.to(device)
        n = features.shape[0]
        self.item_ids = (torch.arange(n) if item_ids is None else item_ids).to(device)
        self.batch_size, self.shuffle, self.seed = batch_size, shuffle, seed
        self.rank, self.world_size, self.epoch = rank, world_size, 0
        self.sampler, self.batch_sampler = self, None  # where Lightning looks for set_epoch

    def set_epoch(self, epoch: int) -> None:
        """Use the permutation of ``epoch`` from the next ``iter()`` on."""
        self.epoch = epoch

    def __len__(self) -> int:
        return math.ceil(self.features.shape[0] / (self.batch_size * self.world_size))

    def __iter__(self) -> Iterator[dict[str, Tensor]]:
        n = self.features.shape[0]
        if self.shuffle:
            order = epoch_permutation(n, self.seed, self.epoch).to(self.features.device)
        else:
            order = None
        step = self.batch_size * self.world_size
        for start in range(0, n, step):
            stop = min(start + step, n)
            if order is None and self.world_size == 1:
                yield {
                    "features": self.features[start:stop],
                    "item_id": self.item_ids[start:stop],
                }
                continue
            rows = order[start:stop] if order is not None else torch.arange(start, stop)
            rows = torch.tensor_split(rows, self.world_size)[self.rank]  # this rank's part
            yield {"features": self.features[rows], "item_id": self.item_ids[rows]}
