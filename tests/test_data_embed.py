"""rqvae_lib.data.embed: the embedding cache (key, sidecar checks, recompute) and load_or_embed."""

from __future__ import annotations

import hashlib
import json
import os

import numpy as np
import pytest

from rqvae_lib.data import cache_path, load_or_embed
from rqvae_lib.data import embed as embed_module
from rqvae_lib.data.amazon import processed_dir
from rqvae_lib.data.embed import sidecar_path
from rqvae_lib.io import sha256_file

# ---------------------------------------------------------------- the real Beauty embeddings


def test_embeddings_cached_and_reloaded(beauty_embeddings, beauty_texts, data_root, monkeypatch):
    assert beauty_embeddings.shape == (12_101, 384) and beauty_embeddings.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(beauty_embeddings, axis=1), 1.0, atol=1e-4)
    assert cache_path(beauty_texts, processed_dir(data_root, "beauty")).is_file()

    def no_model(*args, **kwargs):
        raise AssertionError("the cache should have been used")

    monkeypatch.setattr(embed_module, "embed_texts", no_model)
    again = load_or_embed(beauty_texts, processed_dir(data_root, "beauty"))
    np.testing.assert_array_equal(again, beauty_embeddings)


# ---------------------------------------------------------------- the cache, with a fake model


def test_cache_key_changes_with_text_or_model(tmp_path):
    texts = ["Title: Gloom", "Title: Glow; Brand: OPI", "Brand: COKA"]
    key = cache_path(texts, tmp_path)
    assert key.name.startswith("embeddings-all-MiniLM-L6-v2-")
    edited = [texts[0] + "!"] + texts[1:]
    assert cache_path(edited, tmp_path) != key
    assert cache_path(texts[:2], tmp_path) != key
    assert cache_path(texts, tmp_path, "sentence-transformers/sentence-t5-base") != key
    assert cache_path(list(texts), tmp_path) == key


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


def _file_sha256(path) -> str:
    """The file's sha256, computed here with hashlib (not with the library's sha256_file)."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_cache_has_a_sidecar_and_is_reused(tmp_path, fake_embed):
    first = load_or_embed(TEXTS, tmp_path)
    path = cache_path(TEXTS, tmp_path)
    assert fake_embed == [12] and path.is_file()
    assert _sidecar(tmp_path) == {
        "shape": [12, DIM],
        "dtype": "float32",
        "sha256": _file_sha256(path),
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
    assert _sidecar(tmp_path)["sha256"] == _file_sha256(path)  # both files rewritten
    np.testing.assert_array_equal(load_or_embed(TEXTS, tmp_path), _expected())
    assert fake_embed == [12, 12]


def test_cache_without_sidecar_is_checked_then_adopted(tmp_path, fake_embed):
    path = cache_path(TEXTS, tmp_path)
    np.save(path, _expected())  # as an older version wrote it
    emb = load_or_embed(TEXTS, tmp_path)
    assert fake_embed == [] and sidecar_path(path).is_file()
    np.testing.assert_array_equal(emb, _expected())
    assert _sidecar(tmp_path)["sha256"] == _file_sha256(path)
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
