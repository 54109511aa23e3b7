"""rqvae_lib.retrieval.collaborative: SASRec item vectors from the training parts only, cached."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from rqvae_lib.data.amazon import LeaveOneOut
from rqvae_lib.retrieval import collaborative as collab
from rqvae_lib.retrieval.experiment import CPU_BUDGET, load_retrieval_data

pytestmark = pytest.mark.usefixtures("one_thread")
CONFIG = replace(CPU_BUDGET.sasrec_config(seed=0, verbose=False), epochs=2, device="cpu")


def test_the_training_only_split_holds_no_held_out_position() -> None:
    split = LeaveOneOut({1: [5, 6, 7], 2: [8], 3: [9, 9]}, {1: 3, 2: 4, 3: 5}, {1: 1, 2: 2, 3: 6})
    inner = collab.training_only_split(split)
    assert inner.train == {1: [5, 6], 2: [8], 3: [9]}
    assert inner.val == inner.test == {1: 7, 3: 9}  # each user's last training item


def test_no_validation_or_test_interaction_reaches_the_embeddings(
    p5_root, tmp_path, monkeypatch
) -> None:
    data = load_retrieval_data("tiny", p5_root)
    split, seen = data.sequences, []
    real_fit = collab.fit

    def spy(model, train, val, *args, **kwargs):
        seen.extend([train, val])
        return real_fit(model, train, val, *args, **kwargs)

    monkeypatch.setattr(collab, "fit", spy)
    first = collab.collaborative_embeddings(split, data.item_ids, CONFIG, "tiny", tmp_path / "a")
    assert seen
    for samples in seen:  # every sample is a window of its user's training part, nothing more
        for user, history, target in zip(samples.users, samples.histories, samples.targets,
                                          strict=True):  # fmt: skip
            assert _is_window(split.train[user], list(history), target), (user, history, target)
    # other validation and test items, the same training parts: the same vectors, exactly
    moved = LeaveOneOut(split.train, {u: data.item_ids[0] for u in split.val},
                        {u: data.item_ids[1] for u in split.test})  # fmt: skip
    second = collab.collaborative_embeddings(moved, data.item_ids, CONFIG, "tiny", tmp_path / "b")
    assert second.fingerprint == first.fingerprint
    assert torch.equal(second.vectors, first.vectors)
    assert first.vectors.shape[0] == len(data.item_ids) and first.vectors.isfinite().all()
    trained = {i for items in split.train.values() for i in items}
    assert first.known.tolist() == [i in trained for i in data.item_ids]


def _is_window(items: list[int], history: list[int], target: int) -> bool:
    """``history`` then ``target`` appear together in ``items``, in order, with nothing between."""
    n = len(history)
    return any(items[end] == target and items[end - n : end] == history
               for end in range(n, len(items)))  # fmt: skip


def test_the_cache_is_read_back_and_refused_for_another_split(p5_root, tmp_path) -> None:
    data = load_retrieval_data("tiny", p5_root)
    first = collab.collaborative_embeddings(data.sequences, data.item_ids, CONFIG, "tiny", tmp_path)
    files = list(tmp_path.glob("collaborative-tiny-*-seed0.safetensors"))
    assert len(files) == 1 and first.fingerprint[:16] in files[0].name
    again = collab.collaborative_embeddings(data.sequences, data.item_ids, CONFIG, "tiny", tmp_path)
    assert torch.equal(again.vectors, first.vectors) and torch.equal(again.known, first.known)
    user = next(iter(data.sequences.train))
    train = {**data.sequences.train, user: data.sequences.train[user][:-1]}
    other = LeaveOneOut(train, data.sequences.val, data.sequences.test)
    assert collab.split_fingerprint(other) != first.fingerprint
    files[0].rename(tmp_path / files[0].name.replace(first.fingerprint[:16],
                                                      collab.split_fingerprint(other)[:16]))  # fmt: skip
    with pytest.raises(ValueError, match="another training split"):
        collab.collaborative_embeddings(other, data.item_ids, CONFIG, "tiny", tmp_path)
