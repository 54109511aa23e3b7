"""A split as row-aligned tensors, and batches cut from it: what a retrieval model's ``collate``
returns and its ``loss`` reads, below both the models and the training loop."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor


class Collated(NamedTuple):
    """A split as tensors: ``inputs`` rows align with the samples; ``padded`` names the inputs
    that are left-padded (B, S) and may be cut to the widest row of a batch (``widths``)."""

    inputs: dict[str, Tensor]
    widths: Tensor  # (N,) int64 on the CPU: columns each row needs, counted from the right
    padded: tuple[str, ...]


def slice_batch(
    data: Collated, device_inputs: dict[str, Tensor], index: Tensor
) -> dict[str, Tensor]:
    """Rows ``index`` of every input, left-padded inputs cut to the widest row among them."""
    width = int(data.widths[index].max())  # on the CPU: no wait for the device
    rows = index.to(next(iter(device_inputs.values())).device, non_blocking=True)
    return {
        name: value[rows, -width:] if name in data.padded else value[rows]
        for name, value in device_inputs.items()
    }


def full_width_batch(data: Collated, device: torch.device) -> dict[str, Tensor]:
    """Every row of ``data`` as one batch on ``device`` (for a model's ``loss`` on samples)."""
    inputs = {name: value.to(device) for name, value in data.inputs.items()}
    return slice_batch(data, inputs, torch.arange(len(data.widths)))
