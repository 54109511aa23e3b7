"""The data half on the real Amazon files: item table, texts, sequences, embeddings, datasets."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from rqvae_lib.data import (
    FeatureDataset,
    ItemDataModule,
    P5AmazonItemDataset,
    SyntheticDataModule,
    cache_path,
    ensure_raw,
    item_text,
    leave_one_out,
    load_items,
    load_or_embed,
    load_user_sequences,
    raw_file,
    split_indices,
    top_category,
    verify_checksums,
)
from rqvae_lib.data import embed as embed_module
from rqvae_lib.data.amazon import processed_dir

# ---------------------------------------------------------------- the item table and its text


def test_beauty_counts(beauty_items, data_root):
    assert len(beauty_items) == 12_101
    assert beauty_items["item_id"].tolist() == list(range(1, 12_102))
    assert beauty_items["asin"].is_unique
    assert len(load_user_sequences("beauty", data_root)) == 22_363


def test_shared_files_match_pinned_checksums(data_root):
    assert len(verify_checksums("beauty", data_root)) == 6


def test_known_first_items(beauty_items):
    first = beauty_items.iloc[0]
    assert (first.item_id, first.asin) == (1, "B004756YJA")
    assert first.title == "OPI Nail Lacquer, Simmer and Shimmer, 0.5-Fluid Ounce"
    assert beauty_items.iloc[1].asin == "B004ZT0SSG"
    fourth = beauty_items.iloc[3]  # local id 1 in item.csv: joined through the ASIN
    assert (fourth.item_id, fourth.asin, fourth.brand) == (4, "7806397051", "COKA")
    assert fourth.categories == ["Makeup", "Face", "Concealers & Neutralizers"]
    assert fourth.price == 5.04


def test_html_entities_are_unescaped(beauty_items):
    brands = beauty_items["brand"].dropna()
    assert (brands == "L'Oreal Paris").sum() == 291
    assert "Kirk's Soap" in set(brands)  # escaped twice in the file: Kirk&amp;#39;s Soap
    assert not brands.str.contains("&#|&amp;|&reg;").any()
    assert not beauty_items["title"].dropna().str.contains("&#39;|&amp;|&quot;").any()


def test_missing_values(beauty_items):
    assert beauty_items["price"].isna().sum() == 585
    assert beauty_items["title"].isna().sum() == 7  # the literal "unknown"
    # 2,080 "unknown" plus 18 empty brands are missing; capital "Unknown" is a real value
    assert beauty_items["brand"].isna().sum() == 2_098
    assert (beauty_items["brand"] == "Unknown").sum() == 20
    assert beauty_items["brand"].map(lambda b: b is None or isinstance(b, str)).all()


def test_top_level_categories(beauty_items):
    counts = top_category(beauty_items).value_counts().to_dict()
    assert counts == {
        "Skin Care": 3814,
        "Hair Care": 3262,
        "Makeup": 2627,
        "Tools & Accessories": 1222,
        "Bath & Body": 684,
        "Fragrance": 492,
    }
    assert top_category(beauty_items, level=2).iloc[0] == "Makeup > Nails"


def test_item_text_template(beauty_items, beauty_texts):
    assert beauty_texts[0] == (
        "Title: OPI Nail Lacquer, Simmer and Shimmer, 0.5-Fluid Ounce; Brand: OPI; "
        "Categories: Makeup, Nails, Nail Polish; Price: $12.00"
    )
    sparse = {"title": "Gloom", "brand": None, "categories": [], "price": None}
    assert item_text(sparse) == "Title: Gloom"
    assert len(beauty_texts) == len(beauty_items) and all(beauty_texts)


def test_user_sequences_and_leave_one_out(data_root):
    sequences = load_user_sequences("beauty", data_root)
    assert sequences[1] == [1, 2, 3, 4, 5]
    assert sum(map(len, sequences.values())) == 198_502
    split = leave_one_out(sequences)
    assert (split.train[1], split.val[1], split.test[1]) == ([1, 2, 3], 4, 5)
    assert len(split.val) == len(split.test) == 22_363
    assert leave_one_out({7: [1, 2]}).train == {7: [1, 2]}


def test_toys_loads_without_brand_or_price(data_root, shared_data):
    if not (shared_data / "amazon-toys").is_dir():
        pytest.skip("no amazon-toys in the shared data")
    items = load_items("toys", data_root)
    assert len(items) == 11_924
    assert items["brand"].isna().all() and items["price"].isna().all()
    assert (
        items.iloc[0].asin == "B001RNFQNK"
        and items.iloc[0].title == "Hasbro Electronic Catch Phrase"
    )
    assert (top_category(items) == "(none)").sum() == 345
    assert len(verify_checksums("toys", data_root)) == 8


# ---------------------------------------------------------------- embeddings and their cache


def test_embeddings_cached_and_reloaded(beauty_embeddings, beauty_texts, data_root, monkeypatch):
    assert beauty_embeddings.shape == (12_101, 384) and beauty_embeddings.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(beauty_embeddings, axis=1), 1.0, atol=1e-4)
    assert cache_path(beauty_texts, processed_dir(data_root, "beauty")).is_file()

    def no_model(*args, **kwargs):
        raise AssertionError("the cache should have been used")

    monkeypatch.setattr(embed_module, "embed_texts", no_model)
    start = time.perf_counter()
    again = load_or_embed(beauty_texts, processed_dir(data_root, "beauty"))
    assert time.perf_counter() - start < 5
    np.testing.assert_array_equal(again, beauty_embeddings)


def test_cache_key_changes_with_text_or_model(beauty_texts, tmp_path):
    key = cache_path(beauty_texts, tmp_path)
    assert key.name.startswith("embeddings-all-MiniLM-L6-v2-")
    edited = [beauty_texts[0] + "!"] + beauty_texts[1:]
    assert cache_path(edited, tmp_path) != key
    assert cache_path(beauty_texts, tmp_path, "sentence-transformers/sentence-t5-base") != key
    assert cache_path(list(beauty_texts), tmp_path) == key


# ---------------------------------------------------------------- datasets and splits


def test_split_sizes_disjoint_and_deterministic():
    parts = {s: split_indices(12_101, s, seed=42) for s in ("train", "val", "test")}
    assert [len(parts[s]) for s in ("train", "val", "test")] == [10_891, 605, 605]
    union = np.concatenate(list(parts.values()))
    assert len(np.unique(union)) == 12_101
    assert np.array_equal(split_indices(12_101, "val", seed=42), parts["val"])
    assert not np.array_equal(split_indices(12_101, "val", seed=1), parts["val"])


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


def test_data_module(data_root, beauty_embeddings):
    dm = ItemDataModule(root=data_root, split="beauty", batch_size=1024)
    dm.prepare_data()
    assert dm.dim == 384
    assert len(dm.train_dataloader().dataset) == 10_891
    assert len(dm.val_dataloader().dataset) == len(dm.test_dataloader().dataset) == 605
    predict = next(iter(dm.predict_dataloader()))
    assert predict["item_id"][:3].tolist() == [1, 2, 3]


def test_feature_dataset_and_synthetic_module():
    data = FeatureDataset(torch.randn(10, 4))
    assert data[3]["features"].shape == (4,) and int(data[3]["item_id"]) == 3
    dm = SyntheticDataModule(num_items=200, dim=8, batch_size=16, seed=0, val_fraction=0.1)
    assert len(dm.train_dataloader().dataset) == 180 and len(dm.val_dataloader().dataset) == 20
    assert next(iter(dm.train_dataloader()))["features"].shape == (16, 8)


# ---------------------------------------------------------------- error paths


def test_unknown_split_lists_known_ones(tmp_path):
    with pytest.raises(ValueError, match="known splits: beauty, toys, sports"):
        P5AmazonItemDataset(root=tmp_path, split="bauty")


def test_unknown_subset_lists_choices(tmp_path):
    with pytest.raises(ValueError, match="choose one of train, val, test, all"):
        P5AmazonItemDataset(root=tmp_path, split="beauty", train_test_split="training")


def test_missing_file_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.delenv("RQVAE_SHARED_DATA", raising=False)
    with pytest.raises(FileNotFoundError) as err:
        raw_file(tmp_path, "beauty", "meta/item.csv")
    message = str(err.value)
    assert str(tmp_path / "beauty" / "raw" / "meta" / "item.csv") in message
    assert "download('beauty'" in message
    assert "https://raw.githubusercontent.com/HSandz/MARCO/" in message
    with pytest.raises(FileNotFoundError, match="p5/sequential_data.txt"):
        P5AmazonItemDataset(root=tmp_path, split="beauty", download=False)


def test_derived_and_unpinned_files_say_so(tmp_path):
    with pytest.raises(FileNotFoundError, match="derived"):
        raw_file(tmp_path, "toys", "meta/item.csv")
    with pytest.raises(FileNotFoundError, match="no public copy with a pinned sha256"):
        raw_file(tmp_path, "sports", "p5/datamaps.json")


def test_ensure_raw_links_shared_data(tmp_path, monkeypatch, shared_data):
    monkeypatch.setenv("RQVAE_SHARED_DATA", str(shared_data))
    raw = ensure_raw("beauty", tmp_path, download=False)
    assert raw.resolve() == (shared_data / "amazon-beauty").resolve()
    assert raw_file(tmp_path, "beauty", "p5/datamaps.json").name == "datamaps.json.gz"
