"""rqvae_lib.data.amazon: raw P5 files (paths, pinned checksums), items, texts and sequences."""

from __future__ import annotations

import dataclasses
import gzip
import os

import pytest

from rqvae_lib.data import (
    SPLITS,
    P5AmazonItemDataset,
    build_item_texts,
    ensure_raw,
    item_text,
    leave_one_out,
    load_items,
    load_user_sequences,
    raw_file,
    top_category,
    verify_checksums,
)
from rqvae_lib.data import amazon as amazon_module

# ---------------------------------------------------------------- parsing, on the tiny fixture
# (``p5_root``, so it runs anywhere; the real Beauty and Toys numbers are checked at the end)


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


# ---------------------------------------------------------------- raw files, checked at load


def _truncate_plain(path) -> None:
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    path.write_text("".join(lines[: len(lines) // 2]), encoding="utf-8")


def _truncate_gz_content(path) -> None:
    """A valid .gz holding only the first half of the lines: it parses, with users missing."""
    lines = gzip.decompress(path.read_bytes()).splitlines(keepends=True)
    path.write_bytes(gzip.compress(b"".join(lines[: len(lines) // 2])))


def _cut_gz_bytes(path) -> None:
    """A .gz cut off mid-stream, as an interrupted copy leaves it."""
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _edit_one_byte(path) -> None:
    """Change one character of the content (``.gz`` recompressed) so it still parses."""
    data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    edited = data.replace(b"Tiny Product 12,", b"Tiny Product 99,", 1)  # item.csv
    edited = edited.replace(b"1 1 2 3 4 5\n", b"1 1 2 3 4 9\n", 1)  # sequential_data.txt
    assert edited != data and len(edited) == len(data)
    path.write_bytes(gzip.compress(edited) if path.suffix == ".gz" else edited)


LOADERS = {"items": load_items, "sequences": load_user_sequences}
DAMAGES = [
    ("sequences", "p5/sequential_data.txt", _truncate_gz_content),
    ("sequences", "p5/sequential_data.txt", _cut_gz_bytes),
    ("sequences", "p5/sequential_data.txt", _edit_one_byte),
    ("items", "p5/datamaps.json", _cut_gz_bytes),
    ("items", "meta/item.csv", _truncate_plain),
    ("items", "meta/item.csv", _edit_one_byte),
    ("items", "meta/item_id_mapping.csv", _truncate_plain),
]


@pytest.mark.parametrize(
    ("loader", "relpath", "damage"), DAMAGES, ids=[f"{r}-{d.__name__[1:]}" for _, r, d in DAMAGES]
)
def test_damaged_raw_file_is_refused_at_load(p5_root, p5_tiny, loader, relpath, damage):
    LOADERS[loader]("tiny", p5_root)  # loads (and caches the checksum of) the good copy
    path = p5_tiny.path(relpath)
    damage(path)
    pinned = next(f.sha256 for f in p5_tiny.files if f.relpath == relpath)
    with pytest.raises(ValueError) as err:
        LOADERS[loader]("tiny", p5_root)
    message = str(err.value)
    assert relpath.split("/")[-1] in message and pinned in message
    assert "got " in message and "Put it by hand at" in message  # how to get a good copy
    assert str(p5_root / "tiny" / "raw" / relpath) in message
    with pytest.raises(ValueError, match=pinned):
        verify_checksums("tiny", p5_root)


def test_each_raw_file_is_hashed_once_while_unchanged(p5_root, p5_tiny, monkeypatch):
    hashed = []
    real = amazon_module._sha256
    monkeypatch.setattr(amazon_module, "_sha256", lambda path: hashed.append(path) or real(path))
    load_items("tiny", p5_root)
    load_user_sequences("tiny", p5_root)
    assert len(hashed) == 4  # datamaps, item.csv, item_id_mapping.csv, sequential_data.txt
    load_items("tiny", p5_root)
    load_user_sequences("tiny", p5_root)
    assert len(verify_checksums("tiny", p5_root)) == 6
    assert len(hashed) == 6  # only the two files no loader reads were new
    item_csv = p5_tiny.path("meta/item.csv")
    stat = item_csv.stat()
    os.utime(item_csv, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))  # "touched"
    load_items("tiny", p5_root)
    assert len(hashed) == 7 and hashed[-1].name == "item.csv"


def test_files_without_a_pinned_sha256_are_not_checked(p5_root, p5_tiny, monkeypatch):
    unpinned = tuple(
        dataclasses.replace(f, sha256=None) if f.relpath == "meta/item.csv" else f
        for f in p5_tiny.files
    )
    monkeypatch.setitem(SPLITS, "tiny", unpinned)
    _edit_one_byte(p5_tiny.path("meta/item.csv"))
    items = load_items("tiny", p5_root)
    assert items.set_index("item_id").loc[12, "title"] == "Tiny Product 99"  # loaded as edited
    assert "meta/item.csv" not in verify_checksums("tiny", p5_root)
    assert len(verify_checksums("tiny", p5_root)) == 5


# ---------------------------------------------------------------- finding the raw files


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


# ---------------------------------------------------------------- the real Beauty and Toys files
# (read from $RQVAE_SHARED_DATA; skipped without it)


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
