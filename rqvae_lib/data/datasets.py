"""Torch datasets and Lightning data modules: Amazon P5 items, or any feature tensor."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from rqvae_lib.checks import check_bool, check_float, check_int
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
from rqvae_lib.data.loaders import InMemoryBatches
from rqvae_lib.data.sampling import EpochShuffleSampler
from rqvae_lib.data.synthetic import make_synthetic_catalogue

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
    check_fractions(val_fraction, test_fraction)
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


def check_fractions(val_fraction: float, test_fraction: float) -> None:
    """Each fraction in [0, 1) and their sum below 1, so the training subset is never empty."""
    val = check_float("val_fraction", val_fraction, 0.0)
    test = check_float("test_fraction", test_fraction, 0.0)
    if val + test >= 1:
        raise ValueError(
            f"val_fraction + test_fraction must be below 1 so that some items are left to train "
            f"on, got {val} + {test} = {val + test}"
        )


class FeatureDataset(Dataset):
    """Wrap a (num_items, dim) feature tensor as ``{"features", "item_id"}`` dicts."""

    def __init__(self, features: torch.Tensor | np.ndarray, item_ids: torch.Tensor | None = None):
        features = torch.as_tensor(features)
        if features.dim() != 2:
            raise ValueError(
                f"expected features of shape (num_items, dim), got {tuple(features.shape)}"
            )
        if not features.is_floating_point():
            raise TypeError(f"expected floating-point features, got {features.dtype}")
        self.features = features.float()
        n = self.features.shape[0]
        self.item_ids = torch.arange(n) if item_ids is None else torch.as_tensor(item_ids)
        if self.item_ids.shape != (n,):
            raise ValueError(f"expected {n} item ids, got shape {tuple(self.item_ids.shape)}")

    def __len__(self) -> int:
        return self.features.shape[0]

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"features": self.features[i], "item_id": self.item_ids[i]}

    @property
    def dim(self) -> int:
        return self.features.shape[1]

    def subset(self, idx: np.ndarray) -> FeatureDataset:
        """The rows ``idx`` as a dataset of the same kind, sharing nothing that needs reloading."""
        part = copy.copy(self)
        index = torch.as_tensor(idx, dtype=torch.long)
        part.features, part.item_ids = self.features[index], self.item_ids[index]
        return part


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
        split_indices(0, train_test_split, seed, val_fraction, test_fraction)  # fail before work
        items, texts, emb = load_item_embeddings(
            self.root, self.split, model_name, download, show_progress
        )
        self.train_test_split, self.model_name = "all", model_name
        self.items, self.texts = items, texts
        self.categories = top_category(items).tolist()
        super().__init__(emb, torch.tensor(items["item_id"].to_numpy()))
        if train_test_split != "all":
            idx = split_indices(len(items), train_test_split, seed, val_fraction, test_fraction)
            part = self.subset(idx)
            self.__dict__.update(part.__dict__)
            self.train_test_split = train_test_split

    def subset(self, idx: np.ndarray) -> P5AmazonItemDataset:
        part = super().subset(idx)
        part.items = self.items.iloc[idx].reset_index(drop=True)
        part.texts = [self.texts[i] for i in idx]
        part.categories = [self.categories[i] for i in idx]
        return part


def load_item_embeddings(
    root: str | Path,
    split: str,
    model_name: str = DEFAULT_MODEL,
    download: bool = True,
    show_progress: bool = True,
) -> tuple:
    """``(items, texts, embeddings)`` of a split: raw files fetched if needed, embeddings cached."""
    ensure_raw(split, root, download=download)
    items = load_items(split, root)
    texts = build_item_texts(items)
    emb = load_or_embed(texts, processed_dir(root, split), model_name, show_progress=show_progress)
    return items, texts, emb


class FeatureDataModule(pl.LightningDataModule):
    """Any ``(num_items, dim)`` feature matrix as a Lightning DataModule.

    ``train``, ``val`` and ``test`` are a seeded split of the rows; ``all`` (every row, in order)
    is what ``predict_dataloader`` yields. Adding a dataset is one method: subclass and override
    :meth:`load_catalogue`. With ``in_memory=True`` (the default) batches are slices of one
    tensor on the training device (:class:`~rqvae_lib.data.loaders.InMemoryBatches`); with
    ``False``, a DataLoader with a resumable shuffle (for data that does not fit in memory).
    Following Lightning's contract, ``prepare_data`` only downloads and caches, and
    ``setup`` loads the catalogue once; the four subsets are views of it.
    """

    def __init__(
        self,
        features: torch.Tensor | np.ndarray | None = None,
        item_ids: torch.Tensor | None = None,
        batch_size: int = 1024,
        seed: int = 42,
        val_fraction: float = 0.05,
        test_fraction: float = 0.05,
        in_memory: bool = True,
        num_workers: int = 0,
    ):
        super().__init__()
        self.batch_size = check_int("batch_size", batch_size, 1)
        self.num_workers = check_int("num_workers", num_workers, 0)
        self.seed = check_int("seed", seed, 0)
        check_fractions(val_fraction, test_fraction)
        self.val_fraction, self.test_fraction = val_fraction, test_fraction
        self.in_memory = check_bool("in_memory", in_memory)
        self._features, self._item_ids = features, item_ids
        self.catalogue: FeatureDataset | None = None
        self.datasets: dict[str, FeatureDataset] = {}

    def load_catalogue(self) -> FeatureDataset:
        """Every item, in order. Subclasses load their data here (called once, by ``setup``)."""
        if self._features is None:
            raise ValueError(
                "FeatureDataModule needs features=...; or subclass it and override load_catalogue()"
            )
        return FeatureDataset(self._features, self._item_ids)

    def setup(self, stage: str | None = None) -> None:
        if self.catalogue is None:
            self.catalogue = self.load_catalogue()

    def dataset(self, subset: str) -> FeatureDataset:
        """The dataset of one subset (``train``, ``val``, ``test`` or ``all``), a view of the catalogue."""
        if subset not in self.datasets:
            self.setup()
            n = len(self.catalogue)
            idx = split_indices(n, subset, self.seed, self.val_fraction, self.test_fraction)
            self.datasets[subset] = (
                self.catalogue if subset == "all" else self.catalogue.subset(idx)
            )
        return self.datasets[subset]

    @property
    def dim(self) -> int:
        """Feature size (384 for MiniLM), known once the catalogue is loaded."""
        return self.dataset("all").dim

    def _loader(self, subset: str, shuffle: bool = False, shard: bool = True):
        data = self.dataset(subset)
        if len(data) == 0:
            raise ValueError(
                f"the {subset!r} subset is empty ({len(self.dataset('all'))} items, "
                f"val_fraction={self.val_fraction}, test_fraction={self.test_fraction})"
            )
        if not self.in_memory:
            sampler = EpochShuffleSampler(data, self.seed) if shuffle else None  # resumable
            return DataLoader(data, self.batch_size, sampler=sampler, num_workers=self.num_workers)
        trainer = getattr(self, "trainer", None)
        rank, world, device = 0, 1, None
        if trainer is not None:
            device = trainer.strategy.root_device
            if shard:
                rank, world = trainer.global_rank, trainer.world_size
        return InMemoryBatches(
            data.features, data.item_ids, self.batch_size, shuffle, self.seed, device, rank, world
        )

    def train_dataloader(self):
        return self._loader("train", shuffle=True)

    def val_dataloader(self):
        return self._loader("val")

    def test_dataloader(self):
        return self._loader("test")

    def predict_dataloader(self):
        """Every item in catalogue order, unsharded (for batch_inference and ``predict``)."""
        return self._loader("all", shard=False)


class ItemDataModule(FeatureDataModule):
    """An Amazon P5 split: ``prepare_data`` downloads and embeds once, ``setup`` loads the cache."""

    def __init__(
        self,
        root: str | Path | None = None,
        split: str = "beauty",
        batch_size: int = 1024,
        num_workers: int = 0,
        model_name: str = DEFAULT_MODEL,
        seed: int = 42,
        download: bool = True,
        in_memory: bool = True,
        val_fraction: float = 0.05,
        test_fraction: float = 0.05,
    ):
        super().__init__(
            None, None, batch_size, seed, val_fraction, test_fraction, in_memory, num_workers
        )
        self.save_hyperparameters(ignore="seed")  # a 2nd "seed" beside RqVae's breaks hparam logs
        self.root, self.split, self.model_name = root, check_split(split), model_name
        self.download = download

    def prepare_data(self) -> None:
        """Download the raw files and compute the embedding cache, if not there yet.

        Once per instance: Lightning calls it at the start of every fit, and the catalogue
        loaded by ``setup`` already proves the files and the cache are there.
        """
        if self.catalogue is None and not getattr(self, "_prepared", False):
            load_item_embeddings(self._root(), self.split, self.model_name, self.download)
            self._prepared = True

    def _root(self) -> Path:
        return Path(self.root) if self.root is not None else data_root()

    def load_catalogue(self) -> P5AmazonItemDataset:
        return P5AmazonItemDataset(
            self._root(),
            self.split,
            "all",
            self.model_name,
            self.download,
            self.seed,
            self.val_fraction,
            self.test_fraction,
            show_progress=False,
        )


class SyntheticDataModule(FeatureDataModule):
    """Lightning wrapper around :func:`make_synthetic_catalogue`: no download, known clusters.

    There is no test split: ``test_dataloader`` yields the validation items.
    """

    def __init__(
        self,
        num_items: int = 4096,
        dim: int = 64,
        branching: tuple[int, ...] = (8, 8, 8),
        batch_size: int = 256,
        seed: int = 0,
        val_fraction: float = 0.1,
        num_workers: int = 0,
        in_memory: bool = True,
    ):
        super().__init__(None, None, batch_size, seed, val_fraction, 0.0, in_memory, num_workers)
        self.save_hyperparameters(ignore="seed")  # a 2nd "seed" beside RqVae's breaks hparam logs
        self.synthetic = make_synthetic_catalogue(num_items, dim, tuple(branching), seed=seed)

    def load_catalogue(self) -> FeatureDataset:
        return FeatureDataset(self.synthetic.features, torch.arange(len(self.synthetic)))

    def test_dataloader(self):
        return self._loader("val")
