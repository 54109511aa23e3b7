"""Damaged data is caught where it is read: raw files against their pinned sha256 at load time,
the embedding cache against its JSON sidecar, and a read-only cache folder before any embedding."""

from __future__ import annotations

import dataclasses
import gzip
import json
import os

import numpy as np
import pytest

from rqvae_lib.data import SPLITS, load_items, load_or_embed, load_user_sequences, verify_checksums
from rqvae_lib.data import amazon as amazon_module
from rqvae_lib.data import embed as embed_module
from rqvae_lib.data.embed import cache_path, sidecar_path
from rqvae_lib.io import sha256_file

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


# ---------------------------------------------------------------- the embedding cache


TEXTS = [f"Title: Tiny Product {i}; Brand: Acme" for i in range(12)]
DIM = 6


@pytest.fixture
def fake_embed(monkeypatch):
    """Replace the model with a deterministic (n, 6) float32 embedder; count its calls."""
    calls = []

    def embed(texts, model_name=embed_module.DEFAULT_MODEL, *args, **kwargs):
        calls.append(len(texts))
        return np.array([[len(t) + j / 10 for j in range(DIM)] for t in texts], dtype=np.float32)

    monkeypatch.setattr(embed_module, "embed_texts", embed)
    return calls


def _expected() -> np.ndarray:
    return np.array([[len(t) + j / 10 for j in range(DIM)] for t in TEXTS], dtype=np.float32)


def _sidecar(tmp_path) -> dict:
    return json.loads(sidecar_path(cache_path(TEXTS, tmp_path)).read_text())


def test_cache_has_a_sidecar_and_is_reused(tmp_path, fake_embed):
    first = load_or_embed(TEXTS, tmp_path)
    path = cache_path(TEXTS, tmp_path)
    assert fake_embed == [12] and path.is_file()
    assert _sidecar(tmp_path) == {
        "shape": [12, DIM],
        "dtype": "float32",
        "sha256": sha256_file(path),
        "model": embed_module.DEFAULT_MODEL,
    }
    again = load_or_embed(TEXTS, tmp_path)
    assert fake_embed == [12]  # read from the cache, no second embedding
    np.testing.assert_array_equal(first, _expected())
    np.testing.assert_array_equal(again, _expected())
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [path.name, sidecar_path(path).name]
    )


def _truncate(path) -> None:
    path.write_bytes(path.read_bytes()[:-100])


def _flip_a_byte(path) -> None:
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF  # inside the float data: the array still loads, with one wrong value
    path.write_bytes(bytes(data))


def _wrong_width(path) -> None:
    with open(path, "wb") as fh:
        np.save(fh, np.zeros((len(TEXTS), DIM - 1), dtype=np.float32))


def _garbage_sidecar(path) -> None:
    sidecar_path(path).write_text("{not json")


def _sidecar_says_other_shape(path) -> None:
    side = sidecar_path(path)
    meta = json.loads(side.read_text())
    side.write_text(json.dumps(meta | {"shape": [len(TEXTS), DIM + 1]}))


def _other_model_in_sidecar(path) -> None:
    side = sidecar_path(path)
    side.write_text(json.dumps(json.loads(side.read_text()) | {"model": "sentence-t5-base"}))


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (_truncate, "does not match"),
        (_flip_a_byte, "does not match"),
        (_wrong_width, "does not match"),
        (_garbage_sidecar, "unreadable sidecar"),
        (_sidecar_says_other_shape, "sidecar says"),
        (_other_model_in_sidecar, "was made with model"),
    ],
    ids=["truncated", "flipped-byte", "wrong-width", "garbage-sidecar", "shape", "model"],
)
def test_damaged_cache_is_reported_and_recomputed(tmp_path, fake_embed, damage, reason):
    load_or_embed(TEXTS, tmp_path)
    path = cache_path(TEXTS, tmp_path)
    damage(path)
    with pytest.warns(UserWarning) as record:
        emb = load_or_embed(TEXTS, tmp_path)
    [warning] = [str(w.message) for w in record]
    assert str(path) in warning and reason in warning and "\n" not in warning
    assert fake_embed == [12, 12]
    np.testing.assert_array_equal(emb, _expected())
    assert _sidecar(tmp_path)["sha256"] == sha256_file(path)  # both files rewritten
    np.testing.assert_array_equal(load_or_embed(TEXTS, tmp_path), _expected())
    assert fake_embed == [12, 12]


def test_cache_without_sidecar_is_checked_then_adopted(tmp_path, fake_embed):
    path = cache_path(TEXTS, tmp_path)
    np.save(path, _expected())  # as an older version wrote it
    emb = load_or_embed(TEXTS, tmp_path)
    assert fake_embed == [] and sidecar_path(path).is_file()
    np.testing.assert_array_equal(emb, _expected())
    assert _sidecar(tmp_path)["sha256"] == sha256_file(path)
    load_or_embed(TEXTS, tmp_path)
    assert fake_embed == []


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"\x93NUMPY\x01\x00", "cannot be read"),  # truncated in its header
        (None, r"shape \(11, 6\), not \(12, dim\)"),  # one row short
    ],
    ids=["truncated", "wrong-rows"],
)
def test_bad_cache_without_sidecar_is_recomputed(tmp_path, fake_embed, content, reason):
    path = cache_path(TEXTS, tmp_path)
    if content is None:
        np.save(path, _expected()[:-1])
    else:
        path.write_bytes(content)
    with pytest.warns(UserWarning, match=reason) as record:
        emb = load_or_embed(TEXTS, tmp_path)
    assert str(path) in str(record[0].message)
    assert fake_embed == [12] and sidecar_path(path).is_file()
    np.testing.assert_array_equal(emb, _expected())


def test_cache_is_hashed_once_while_unchanged(tmp_path, fake_embed, monkeypatch):
    hashed = []
    monkeypatch.setattr(embed_module, "sha256_file", lambda p: hashed.append(p) or sha256_file(p))
    load_or_embed(TEXTS, tmp_path)  # computes, writes, hashes the new file for its sidecar
    for _ in range(3):
        load_or_embed(TEXTS, tmp_path)
    assert len(hashed) == 1
    path = cache_path(TEXTS, tmp_path)
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))  # "touched"
    load_or_embed(TEXTS, tmp_path)
    assert len(hashed) == 2 and fake_embed == [12]


def test_unwritable_cache_folder_fails_before_embedding(tmp_path, fake_embed):
    blocked = tmp_path / "processed"
    blocked.write_text("a file where the cache folder should be")
    with pytest.raises(PermissionError, match="cannot write the embedding cache to .*processed"):
        load_or_embed(TEXTS, blocked)
    assert fake_embed == []  # failed before any embedding


def test_read_only_folder_is_fine_when_the_cache_is_good(tmp_path, fake_embed, monkeypatch):
    load_or_embed(TEXTS, tmp_path)

    def refuse(folder, what="results"):
        raise PermissionError(f"cannot write {what} to {folder}")

    monkeypatch.setattr(embed_module, "check_writable", refuse)
    np.testing.assert_array_equal(load_or_embed(TEXTS, tmp_path), _expected())
    _flip_a_byte(cache_path(TEXTS, tmp_path))  # now a recompute is needed: refused up front
    with pytest.warns(UserWarning), pytest.raises(PermissionError, match="embedding cache"):
        load_or_embed(TEXTS, tmp_path)
    assert fake_embed == [12]
