"""Torch datasets and Lightning data modules: Amazon P5 items, or any feature tensor."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from rqvae_lib.config import data_root
from rqvae_lib.data.amazon import (
    build_item_texts,
    check_split,
    ensure_raw,
    load_items,
    processed_dir,
    top_category,
)
from rqvae_lib.data.embed import DEFAULT_MODEL, load_or_embed
from rqvae_lib.data.sampling import EpochShuffleSampler
from rqvae_lib.data.synthetic import make_synthetic_catalog

#: Values of ``train_test_split``: a seeded split of the items, or all of them.
SUBSETS = ("train", "val", "test", "all")


def split_indices(
    num_items: int,
    subset: str,
    seed: int = 42,
    val_fraction: float = 0.05,
    test_fraction: float = 0.05,
) -> np.ndarray:
    """Sorted row indices of ``subset`` in a seeded permutation: test, then val, then train."""
    if subset not in SUBSETS:
        raise ValueError(f"unknown train_test_split {subset!r}; choose one of {', '.join(SUBSETS)}")
    if subset == "all":
        return np.arange(num_items)
    perm = np.random.default_rng(seed).permutation(num_items)
    n_test, n_val = round(num_items * test_fraction), round(num_items * val_fraction)
    parts = {
        "test": perm[:n_test],
        "val": perm[n_test : n_test + n_val],
        "train": perm[n_test + n_val :],
    }
    return np.sort(parts[subset])


class FeatureDataset(Dataset):
    """Wrap a (num_items, dim) feature tensor as ``{"features", "item_id"}`` dicts."""

    def __init__(self, features: torch.Tensor | np.ndarray, item_ids: torch.Tensor | None = None):
        self.features = torch.as_tensor(features, dtype=torch.float32)
        n = self.features.shape[0]
        self.item_ids = torch.arange(n) if item_ids is None else torch.as_tensor(item_ids)

    def __len__(self) -> int:
        return self.features.shape[0]

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"features": self.features[i], "item_id": self.item_ids[i]}

    @property
    def dim(self) -> int:
        return self.features.shape[1]


class P5AmazonItemDataset(FeatureDataset):
    """The items of an Amazon P5 split as text embeddings, downloaded and cached on first use.

    Each item is ``{"features": float32 (dim,), "item_id": P5 item id}``. Alongside: ``items``
    (the item table rows), ``texts``, ``categories`` (top-level labels) and ``item_ids``.
    ``root=None`` means :func:`rqvae_lib.config.data_root`.
    """

    def __init__(
        self,
        root: str | Path | None = "dataset/amazon",
        split: str = "beauty",
        train_test_split: str = "train",
        model_name: str = DEFAULT_MODEL,
        download: bool = True,
        seed: int = 42,
        val_fraction: float = 0.05,
        test_fraction: float = 0.05,
        show_progress: bool = True,
    ):
        self.root = Path(root) if root is not None else data_root()
        self.split = check_split(split)
        split_indices(0, train_test_split)  # fail on a bad subset name before any work
        ensure_raw(self.split, self.root, download=download)
        items = load_items(self.split, self.root)
        texts = build_item_texts(items)
        emb = load_or_embed(
            texts, processed_dir(self.root, self.split), model_name, show_progress=show_progress
        )
        idx = split_indices(len(items), train_test_split, seed, val_fraction, test_fraction)
        self.train_test_split, self.model_name = train_test_split, model_name
        self.items = items.iloc[idx].reset_index(drop=True)
        self.texts = [texts[i] for i in idx]
        self.categories = top_category(self.items).tolist()
        super().__init__(emb[idx], torch.tensor(self.items["item_id"].to_numpy()))


class ItemDataModule(pl.LightningDataModule):
    """Lightning wrapper: shuffled ``train``, then ``val``, ``test`` and ``all`` (for predict)."""

    def __init__(
        self,
        root: str | Path | None = None,
        split: str = "beauty",
        batch_size: int = 1024,
        num_workers: int = 0,
        model_name: str = DEFAULT_MODEL,
        seed: int = 42,
        download: bool = True,
    ):
        super().__init__()
        self.save_hyperparameters(ignore="seed")  # a 2nd "seed" beside RqVae's breaks hparam logs
        self.root, self.split, self.model_name = root, check_split(split), model_name
        self.batch_size, self.num_workers = batch_size, num_workers
        self.seed, self.download = seed, download
        self.datasets: dict[str, P5AmazonItemDataset] = {}

    def dataset(self, subset: str) -> P5AmazonItemDataset:
        """The dataset of one subset, built on first use (the embeddings come from the cache)."""
        if subset not in self.datasets:
            self.datasets[subset] = P5AmazonItemDataset(
                self.root, self.split, subset, self.model_name, self.download, self.seed
            )
        return self.datasets[subset]

    @property
    def dim(self) -> int:
        """Feature size (384 for MiniLM), known once the embeddings are loaded."""
        return self.dataset("all").dim

    def prepare_data(self) -> None:
        self.dataset("all")  # download and embed once

    def _loader(self, subset: str, shuffle: bool = False) -> DataLoader:
        data = self.dataset(subset)
        sampler = EpochShuffleSampler(data, self.seed) if shuffle else None  # resumable shuffle
        return DataLoader(data, self.batch_size, sampler=sampler, num_workers=self.num_workers)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")

    def predict_dataloader(self) -> DataLoader:
        return self._loader("all")


class SyntheticDataModule(pl.LightningDataModule):
    """Lightning wrapper around :func:`make_synthetic_catalog`: no download, known clusters."""

    def __init__(
        self,
        num_items: int = 4096,
        dim: int = 64,
        branching: tuple[int, ...] = (8, 8, 8),
        batch_size: int = 256,
        seed: int = 0,
        val_fraction: float = 0.1,
        num_workers: int = 0,
    ):
        super().__init__()
        self.save_hyperparameters(ignore="seed")  # a 2nd "seed" beside RqVae's breaks hparam logs
        self.dim, self.seed = dim, seed
        self.catalog = make_synthetic_catalog(num_items, dim, tuple(branching), seed=seed)
        n_val = round(num_items * val_fraction)
        perm = np.random.default_rng(seed).permutation(num_items)
        self.val_idx, self.train_idx = np.sort(perm[:n_val]), np.sort(perm[n_val:])
        self.batch_size, self.num_workers = batch_size, num_workers

    def _loader(self, idx: np.ndarray, shuffle: bool = False) -> DataLoader:
        data = FeatureDataset(self.catalog.features[idx], torch.as_tensor(idx))
        sampler = EpochShuffleSampler(data, self.seed) if shuffle else None  # resumable shuffle
        return DataLoader(data, self.batch_size, sampler=sampler, num_workers=self.num_workers)

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_idx, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_idx)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.val_idx)

    def predict_dataloader(self) -> DataLoader:
        return self._loader(np.arange(len(self.catalog)))
