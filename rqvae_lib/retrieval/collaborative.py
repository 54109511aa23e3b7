"""Collaborative item embeddings: what users do with an item, as a vector, from the training split
only.

LETTER ([Wang et al., 2024](https://arxiv.org/abs/2405.07314)) aligns an RQ-VAE's quantized
latents with item embeddings from a trained sequential recommender, so that items bought by the
same people move under shared prefixes. Those embeddings must not see a validation or test
interaction, or the IDs would carry the held-out items into the retriever trained on them. Here
they come from SASRec (softmax cross-entropy) trained on each user's **training part alone**
(:func:`training_only_split`: its last training item selects the epoch, the earlier ones train),
and are cached with a fingerprint of that training part (:func:`collaborative_embeddings`). An
item absent from every training part (a new item) has no collaborative embedding: ``known`` is
False for it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import Tensor

from rqvae_lib.config import artifacts_dir
from rqvae_lib.data.amazon import LeaveOneOut
from rqvae_lib.io import atomic_write
from rqvae_lib.retrieval.experiment import CPU_BUDGET, sasrec_model
from rqvae_lib.retrieval.sequences import build_samples
from rqvae_lib.retrieval.train import TrainConfig, fit


class CollaborativeEmbeddings(NamedTuple):
    """Item vectors (num_items, d) aligned with ``item_ids``, which of them were trained, and the
    fingerprint of the training part they came from."""

    vectors: Tensor
    known: Tensor  # (num_items,) bool: the item occurs in some user's training part
    item_ids: Tensor
    fingerprint: str


def training_only_split(split: LeaveOneOut) -> LeaveOneOut:
    """Leave-one-out of the training parts alone: each user's last training item is held out to
    select the epoch (as ``val``, and as ``test`` so that the split is complete), the items
    before it train; the split's own validation and test items appear nowhere. A user with fewer
    than two training items keeps them for training."""
    inner = LeaveOneOut({}, {}, {})
    for user, items in split.train.items():
        if len(items) < 2:
            inner.train[user] = list(items)
            continue
        inner.train[user], inner.val[user], inner.test[user] = items[:-1], items[-1], items[-1]
    return inner


def split_fingerprint(split: LeaveOneOut) -> str:
    """SHA-256 of the training parts (users and items in order): what the embeddings depend on."""
    text = json.dumps(sorted((int(u), [int(i) for i in s]) for u, s in split.train.items()))
    return hashlib.sha256(text.encode()).hexdigest()


def collaborative_embeddings(
    split: LeaveOneOut,
    item_ids: Sequence[int] | Tensor,
    config: TrainConfig | None = None,
    name: str = "beauty",
    directory: str | Path | None = None,
) -> CollaborativeEmbeddings:
    """SASRec's item vectors for ``item_ids``, trained on ``split``'s training parts only.

    ``config`` defaults to the CPU budget's SASRec training (``CPU_BUDGET.sasrec_config()``); it
    selects its epoch on each user's last training item (:func:`training_only_split`). The
    result is cached in ``<directory>/collaborative-<name>-<fingerprint[:16]>-seed<seed>
    .safetensors`` (directory: ``artifacts/collaborative``), written whole, with the full
    fingerprint, the seed and the epochs in its metadata; a file whose fingerprint differs from
    the split's is refused.
    """
    config = CPU_BUDGET.sasrec_config(verbose=False) if config is None else config
    directory = Path(directory) if directory is not None else artifacts_dir() / "collaborative"
    fingerprint = split_fingerprint(split)
    item_ids = torch.as_tensor(item_ids).long().view(-1)
    path = directory / f"collaborative-{name}-{fingerprint[:16]}-seed{config.seed}.safetensors"
    if path.is_file():
        with safe_open(str(path), "pt") as f:
            if f.metadata()["fingerprint"] != fingerprint:
                raise ValueError(f"{path} came from another training split; delete it to retrain")
            tensors = {key: f.get_tensor(key) for key in f.keys()}  # noqa: SIM118
        if not torch.equal(tensors["item_ids"], item_ids):
            raise ValueError(f"{path} holds other items; delete it to retrain")
        return CollaborativeEmbeddings(
            tensors["vectors"], tensors["known"].bool(), item_ids, fingerprint
        )
    inner = build_samples(training_only_split(split))
    model = sasrec_model(item_ids.tolist(), "ce", config.seed)
    fit(model, inner.train, inner.val, config, "collaborative-sasrec")
    with torch.no_grad():
        rows = model.item_index(item_ids.tolist(), device=model.device)
        vectors = model.item_emb.weight[rows].float().cpu().contiguous()
    trained = {int(i) for items in split.train.values() for i in items}
    known = torch.tensor([int(i) in trained for i in item_ids.tolist()], dtype=torch.bool)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {"vectors": vectors, "known": known.to(torch.uint8), "item_ids": item_ids}
    meta = {"fingerprint": fingerprint, "seed": str(config.seed), "epochs": str(config.epochs),
            "split": "training parts only"}  # fmt: skip
    atomic_write(path, lambda tmp: save_file(tensors, str(tmp), meta))
    return CollaborativeEmbeddings(vectors, known, item_ids, fingerprint)
