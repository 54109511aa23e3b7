"""rqvae_lib.retrieval.batches: batches cut from a collated split. A trimmed batch (left padding
cut to its widest row) gives the full-width loss of both models."""

from __future__ import annotations

import pytest
import torch
from retrieval_helpers import shared_task, tiny_sasrec, tiny_seq2seq

from rqvae_lib.retrieval.batches import Collated, full_width_batch, slice_batch

pytestmark = pytest.mark.usefixtures("one_thread")


def test_slice_batch_cuts_padded_inputs_to_the_widest_selected_row() -> None:
    tokens = torch.arange(12).reshape(3, 4)  # left-padded: the rows need 1, 3 and 2 columns
    inputs = {"tokens": tokens, "target": torch.tensor([7, 8, 9])}
    data = Collated(inputs, torch.tensor([1, 3, 2]), ("tokens",))
    batch = slice_batch(data, inputs, torch.tensor([2, 0]))
    assert batch["tokens"].tolist() == [[10, 11], [2, 3]] and batch["target"].tolist() == [9, 7]
    full = full_width_batch(data, torch.device("cpu"))
    assert full["tokens"].equal(tokens[:, -3:]) and full["target"].equal(inputs["target"])


def test_a_trimmed_batch_gives_the_full_width_loss() -> None:
    task = shared_task(0)
    for model in (tiny_seq2seq(task, 1).eval(), tiny_sasrec(task, 2, "ce").eval()):
        data = model.collate(task.samples.train)
        index = torch.arange(10)
        with torch.no_grad():
            trimmed = model.loss(slice_batch(data, data.inputs, index))
            full = {k: v[index] for k, v in full_width_batch(data, torch.device("cpu")).items()}
            assert torch.allclose(trimmed, model.loss(full), atol=1e-5)
