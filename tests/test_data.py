"""The data half: item table, texts, sequences, embeddings, datasets.

Parsing is tested on the tiny P5-layout fixture (``p5_root``), so it runs anywhere; the tests that
check the real Beauty and Toys numbers use the shared files and skip without them.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from rqvae_lib.data import (
    FeatureDataset,
    ItemDataModule,
    P5AmazonItemDataset,
    SyntheticDataModule,
    build_item_texts,
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

# ---------------------------------------------------------------- parsing, on the tiny fixture


def test_item_table_joins_through_the_asin(p5_root, p5_tiny):
    items = load_items("tiny", p5_root)
    assert items["item_id"].tolist() == list(range(1, 31)) and items["asin"].is_unique
    assert dict(zip(items["item_id"], items["asin"], strict=True)) == p5_tiny.asins
    # item.csv numbers its rows by sorted ASIN, so its local ids are not the P5 ids
    twelve = items.iloc[11]  # ASIN 0123456789: local id 1; the leading zero is kept
    assert (twelve.item_id, twelve.asin, twelve.title) == (12, "0123456789", "Tiny Product 12")
    first = items.iloc[0]
    assert (first.asin, first.brand, first.price) == ("B00TINY001", "OPI", 12.0)
    assert first.title == "Nail Lacquer, Simmer and Shimmer, 0.5-Fluid Ounce"
    assert first.categories == ["Makeup", "Nails", "Nail Polish"]


def test_html_entities_are_unescaped_until_stable(p5_root):
    items = load_items("tiny", p5_root).set_index("item_id")
    assert items.loc[2, "brand"] == "Kirk's Soap"  # escaped twice: Kirk&amp;#39;s Soap
    assert items.loc[2, "title"] == 'Castile "Pure" Soap Bar'
    assert items.loc[2, "categories"][0] == "Bath & Body"
    assert items.loc[8, "brand"] == "L'Oreal Paris"
    assert not items["brand"].dropna().str.contains("&#|&amp;|&quot;").any()
    assert not items["title"].dropna().str.contains("&#|&amp;|&quot;").any()


def test_missing_values_and_the_real_brand_unknown(p5_root):
    items = load_items("tiny", p5_root).set_index("item_id")
    assert items.loc[3, "title"] is None  # the literal "unknown"
    assert items.loc[4, "brand"] is None and items.loc[5, "brand"] is None  # "unknown" and ""
    assert items.loc[6, "brand"] == "Unknown"  # capital U: a real brand
    assert items.loc[5, "price"] is None and items.loc[6, "price"] is None  # "" and "unknown"
    assert items.loc[7, "categories"] == []
    assert items["brand"].map(lambda b: b is None or isinstance(b, str)).all()
    assert items["price"].map(lambda p: p is None or isinstance(p, float)).all()


def test_item_texts_and_top_category(p5_root):
    items = load_items("tiny", p5_root)
    texts = build_item_texts(items)
    assert len(texts) == len(items) == 30 and all(texts)
    assert texts[0] == (
        "Title: Nail Lacquer, Simmer and Shimmer, 0.5-Fluid Ounce; Brand: OPI; "
        "Categories: Makeup, Nails, Nail Polish; Price: $12.00"
    )
    assert texts[2].startswith("Brand: COKA;")  # no title
    assert texts[6] == "Title: Gloom"  # no brand, categories or price
    assert item_text({"title": "Gloom", "brand": None, "categories": [], "price": None}) == (
        "Title: Gloom"
    )
    tops = top_category(items)
    assert tops.iloc[0] == "Makeup" and tops.iloc[6] == "(none)"
    assert top_category(items, level=2).iloc[0] == "Makeup > Nails"
    assert tops.value_counts().to_dict() == {
        "Skin Care": 5,
        "Hair Care": 5,
        "Makeup": 5,
        "Bath & Body": 5,
        "Tools & Accessories": 5,
        "Fragrance": 4,
        "(none)": 1,
    }


def test_fixture_sequences_and_leave_one_out(p5_root, p5_tiny):
    sequences = load_user_sequences("tiny", p5_root)  # read from the gzipped copy
    assert sequences == p5_tiny.sequences and len(sequences) == 24
    assert sequences[1] == [1, 2, 3, 4, 5]
    split = leave_one_out(sequences)
    assert (split.train[1], split.val[1], split.test[1]) == ([1, 2, 3], 4, 5)
    assert len(split.val) == len(split.test) == 24
    for user, seq in sequences.items():
        assert split.train[user] + [split.val[user], split.test[user]] == seq
    assert leave_one_out({7: [1, 2]}) == ({7: [1, 2]}, {}, {})


def test_fixture_files_match_their_pins(p5_root):
    assert len(verify_checksums("tiny", p5_root)) == 6


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


# ---------------------------------------------------------------- the real Beauty and Toys files


def test_beauty_counts(beauty_items, beauty_texts, data_root):
    assert len(beauty_items) == 12_101
    assert beauty_items["item_id"].tolist() == list(range(1, 12_102))
    assert beauty_items["asin"].is_unique
    assert len(load_user_sequences("beauty", data_root)) == 22_363
    first = beauty_items.iloc[0]
    assert (first.item_id, first.asin) == (1, "B004756YJA")
    fourth = beauty_items.iloc[3]  # local id 1 in item.csv: joined through the ASIN
    assert (fourth.item_id, fourth.asin, fourth.brand, fourth.price) == (
        4,
        "7806397051",
        "COKA",
        5.04,
    )
    assert beauty_texts[0] == (
        "Title: OPI Nail Lacquer, Simmer and Shimmer, 0.5-Fluid Ounce; Brand: OPI; "
        "Categories: Makeup, Nails, Nail Polish; Price: $12.00"
    )


def test_shared_files_match_pinned_checksums(data_root):
    assert len(verify_checksums("beauty", data_root)) == 6


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


def test_top_level_category_counts(beauty_items):
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


def test_beauty_texts_and_sequence_counts(beauty_items, beauty_texts, data_root):
    assert len(beauty_texts) == len(beauty_items) and all(beauty_texts)
    sequences = load_user_sequences("beauty", data_root)
    assert sequences[1] == [1, 2, 3, 4, 5]
    assert sum(map(len, sequences.values())) == 198_502
    split = leave_one_out(sequences)
    assert len(split.val) == len(split.test) == 22_363


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
    again = load_or_embed(beauty_texts, processed_dir(data_root, "beauty"))
    np.testing.assert_array_equal(again, beauty_embeddings)


def test_cache_key_changes_with_text_or_model(tmp_path):
    texts = ["Title: Gloom", "Title: Glow; Brand: OPI", "Brand: COKA"]
    key = cache_path(texts, tmp_path)
    assert key.name.startswith("embeddings-all-MiniLM-L6-v2-")
    edited = [texts[0] + "!"] + texts[1:]
    assert cache_path(edited, tmp_path) != key
    assert cache_path(texts[:2], tmp_path) != key
    assert cache_path(texts, tmp_path, "sentence-transformers/sentence-t5-base") != key
    assert cache_path(list(texts), tmp_path) == key


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


def test_ensure_raw_links_shared_data(tmp_path, monkeypatch, p5_tiny):
    shared = p5_tiny.folder.parent  # holds amazon-tiny/, as $RQVAE_SHARED_DATA holds amazon-beauty/
    monkeypatch.setenv("RQVAE_SHARED_DATA", str(shared))
    raw = ensure_raw("tiny", tmp_path / "data", download=False)
    assert raw.resolve() == p5_tiny.folder.resolve()
    assert raw_file(tmp_path / "data", "tiny", "p5/datamaps.json").name == "datamaps.json.gz"
    assert len(load_items("tiny", tmp_path / "data")) == 30
