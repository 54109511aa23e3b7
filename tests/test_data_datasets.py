"""rqvae_lib.data.datasets: split_indices, FeatureDataset, P5AmazonItemDataset and the data modules."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import NAN
from torch.utils.data import DataLoader

from rqvae_lib.data import (
    FeatureDataModule,
    FeatureDataset,
    ItemDataModule,
    P5AmazonItemDataset,
    SyntheticDataModule,
    split_indices,
)
from rqvae_lib.data import embed as embed_module

pytestmark = pytest.mark.usefixtures("one_thread")


# ---------------------------------------------------------------- on the tiny P5 fixture
def test_dataset_on_the_fixture_lines_up_with_the_item_table(p5_root, monkeypatch):
    def fake_embed(texts, *args, **kwargs):
        return np.array([[len(t), i] for i, t in enumerate(texts)], dtype=np.float32)

    monkeypatch.setattr(embed_module, "embed_texts", fake_embed)
    dataset = P5AmazonItemDataset(p5_root, "tiny", "all", download=False, show_progress=False)
    assert len(dataset) == 30 and dataset.dim == 2
    assert dataset.categories[0] == "Makeup" and dataset.texts[6] == "Title: Gloom"
    row = 6
    assert int(dataset[row]["item_id"]) == dataset.items.iloc[row].item_id == 7
    assert dataset[row]["features"].tolist() == [len("Title: Gloom"), row]
    train = P5AmazonItemDataset(p5_root, "tiny", "train", download=False, show_progress=False)
    assert len(train) == len(split_indices(30, "train")) < 30
    assert set(train.item_ids.tolist()) < set(dataset.item_ids.tolist())


# ---------------------------------------------------------------- splits
def test_split_sizes_disjoint_and_deterministic():
    parts = {s: split_indices(12_101, s, seed=42) for s in ("train", "val", "test")}
    assert [len(parts[s]) for s in ("train", "val", "test")] == [10_891, 605, 605]
    union = np.concatenate(list(parts.values()))
    assert len(np.unique(union)) == 12_101
    assert np.array_equal(split_indices(12_101, "val", seed=42), parts["val"])
    assert not np.array_equal(split_indices(12_101, "val", seed=1), parts["val"])


@pytest.mark.parametrize(
    ("val", "test", "message"),
    [
        (0.5, 0.5, r"val_fraction \+ test_fraction must be below 1"),
        (0.7, 0.6, r"val_fraction \+ test_fraction must be below 1"),
        (1.0, 0.0, r"val_fraction \+ test_fraction must be below 1"),
        (-0.1, 0.05, "val_fraction must be >= 0"),
        (0.05, -0.2, "test_fraction must be >= 0"),
        (NAN, 0.05, "val_fraction must be finite"),
    ],
)
def test_split_fractions_that_leave_no_training_items_are_refused(val, test, message):
    for subset in ("train", "all"):
        with pytest.raises(ValueError, match=message):
            split_indices(100, subset, val_fraction=val, test_fraction=test)
    with pytest.raises(ValueError, match=message):
        FeatureDataModule(torch.randn(20, 4), val_fraction=val, test_fraction=test)
    if test in (0.0, 0.05):  # SyntheticDataModule has no test split: its test_fraction is 0
        with pytest.raises(ValueError, match=message):
            SyntheticDataModule(num_items=64, dim=8, val_fraction=val)


def test_valid_fractions_still_split_every_item_once():
    parts = [split_indices(101, s, 3, 0.2, 0.3) for s in ("train", "val", "test")]
    assert sorted(sum((p.tolist() for p in parts), [])) == list(range(101))
    assert min(len(p) for p in parts) > 0


# ---------------------------------------------------------------- on the real Beauty files
def test_reference_example(data_root, beauty_embeddings):
    dataset = P5AmazonItemDataset(root=data_root, split="beauty", train_test_split="train")
    assert len(dataset) == 10_891
    batch = next(iter(DataLoader(dataset, batch_size=32, shuffle=True)))
    assert batch["features"].shape == (32, 384) and batch["features"].dtype == torch.float32
    assert batch["item_id"].shape == (32,)
    assert len(dataset.items) == len(dataset.texts) == len(dataset.categories) == len(dataset)
    row = 10  # the dataset's rows line up with its item table and the cached embeddings
    item_id = int(dataset[row]["item_id"])
    assert dataset.items.iloc[row].item_id == item_id
    np.testing.assert_array_equal(dataset[row]["features"].numpy(), beauty_embeddings[item_id - 1])


def test_all_subsets_cover_the_catalogue(data_root, beauty_embeddings):
    ids = {
        s: set(P5AmazonItemDataset(data_root, "beauty", s).item_ids.tolist())
        for s in ("train", "val", "test", "all")
    }
    assert len(ids["all"]) == 12_101
    assert ids["train"] | ids["val"] | ids["test"] == ids["all"]
    assert not ids["train"] & ids["val"] and not ids["val"] & ids["test"]


def _num_items(loader) -> int:
    """Items behind a loader: a DataLoader's dataset, or the rows of in-memory batches."""
    return len(loader.dataset) if hasattr(loader, "dataset") else loader.features.shape[0]


def test_data_module(data_root, beauty_embeddings):
    dm = ItemDataModule(root=data_root, split="beauty", batch_size=1024)
    dm.prepare_data()
    assert dm.dim == 384
    assert _num_items(dm.train_dataloader()) == 10_891
    assert _num_items(dm.val_dataloader()) == _num_items(dm.test_dataloader()) == 605
    predict = next(iter(dm.predict_dataloader()))
    assert predict["item_id"][:3].tolist() == [1, 2, 3]


def test_feature_dataset_and_synthetic_module():
    data = FeatureDataset(torch.randn(10, 4))
    assert data[3]["features"].shape == (4,) and int(data[3]["item_id"]) == 3
    dm = SyntheticDataModule(num_items=200, dim=8, batch_size=16, seed=0, val_fraction=0.1)
    assert _num_items(dm.train_dataloader()) == 180 and _num_items(dm.val_dataloader()) == 20
    assert next(iter(dm.train_dataloader()))["features"].shape == (16, 8)


# ---------------------------------------------------------------- error paths
def test_unknown_split_lists_known_ones(tmp_path):
    with pytest.raises(ValueError, match="known splits: beauty, toys, sports"):
        P5AmazonItemDataset(root=tmp_path, split="bauty")


def test_unknown_subset_lists_choices(tmp_path):
    with pytest.raises(ValueError, match="choose one of train, val, test, all"):
        P5AmazonItemDataset(root=tmp_path, split="beauty", train_test_split="training")
