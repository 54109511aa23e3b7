"""A training shuffle that depends only on (seed, epoch), so a resumed run sees the same batches."""

from __future__ import annotations

from collections.abc import Iterator, Sized

import torch
from torch.utils.data import RandomSampler


def epoch_permutation(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The permutation of ``range(n)`` for one epoch, drawn on the CPU from ``(seed, epoch)``."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=generator)


class EpochShuffleSampler(RandomSampler):
    """Shuffle with a permutation drawn from ``seed + epoch`` rather than the global RNG.

    Lightning calls ``set_epoch`` at the start of every epoch, and a checkpoint restores the epoch,
    so a run resumed from its last checkpoint sees the batches an uninterrupted run would have.
    It is a ``RandomSampler``, so under DDP Lightning swaps it for a ``DistributedSampler``
    (shuffled by ``seed_everything``'s seed and the epoch: just as reproducible).
    """

    def __init__(self, data_source: Sized, seed: int = 0) -> None:
        super().__init__(data_source)
        self.seed, self.epoch = seed, 0

    def set_epoch(self, epoch: int) -> None:
        """Use the permutation of ``epoch`` from the next ``iter()`` on."""
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        yield from epoch_permutation(len(self.data_source), self.seed, self.epoch).tolist()
