"""Paths, seeds and the fast-mode switch shared by the library, notebooks and scripts."""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import torch

#: Repository root (the folder that holds ``rqvae_lib/``).
REPO_ROOT = Path(__file__).resolve().parent.parent

#: The seed every notebook, test and script uses unless told otherwise.
DEFAULT_SEED = 42


def data_root() -> Path:
    """Where datasets live: ``$RQVAE_DATA_ROOT``, else ``<repo>/data``."""
    return Path(os.environ.get("RQVAE_DATA_ROOT", REPO_ROOT / "data")).expanduser()


def artifacts_dir() -> Path:
    """Where trained models, logs and semantic-ID tables go: ``$RQVAE_ARTIFACTS`` or ``<repo>/artifacts``."""
    path = Path(os.environ.get("RQVAE_ARTIFACTS", REPO_ROOT / "artifacts")).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def display_path(path: str | os.PathLike) -> str:
    """``path`` as notebooks and benchmark records show it: relative to the repository, never a
    machine's own layout.

    Inside the repository: the relative path. Elsewhere: the environment variable that set it
    (``$RQVAE_DATA_ROOT``, ...) or, failing that, only its last part.
    """
    path = Path(path).expanduser().resolve()
    try:
        return path.relative_to(REPO_ROOT).as_posix() or "."
    except ValueError:
        pass
    for var in ("RQVAE_DATA_ROOT", "RQVAE_ARTIFACTS", "RQVAE_FIGURES"):
        value = os.environ.get(var)
        if value and Path(value).expanduser().resolve() in (path, *path.parents):
            rest = path.relative_to(Path(value).expanduser().resolve()).as_posix()
            return f"${var}" + ("" if rest == "." else f"/{rest}")
    return f".../{path.name}"


def fast_mode() -> bool:
    """True when ``RQVAE_FAST=1`` or ``CI`` is set: shrink epochs and sample sizes, skip nothing."""
    flag = os.environ.get("RQVAE_FAST")
    if flag is not None:
        return flag.strip().lower() not in ("", "0", "false", "no")
    return bool(os.environ.get("CI"))


def seed_everything(seed: int = DEFAULT_SEED, deterministic: bool = True) -> int:
    """Seed Python, NumPy and torch, and switch torch's deterministic kernels on (where it has
    them) or, with ``deterministic=False``, off: a faster GPU run must not inherit an earlier
    call's setting."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    os.environ.setdefault("PYTHONHASHSEED", str(seed))
    torch.use_deterministic_algorithms(deterministic, warn_only=True)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    return seed


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``None`` means CUDA when available, else CPU; asking for CUDA without it is a clear error."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(
            f"device={str(device)!r} was requested but CUDA is not available on this machine; "
            "pass device=None (auto) or device='cpu'."
        )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise RuntimeError(
            f"device={str(device)!r} was requested but MPS is not available; pass device=None or 'cpu'."
        )
    return device


#: The preset the notebooks, CLI config and benchmarks train: TIGER's RQ-VAE *shape* (encoder
#: 512-256-128, a 32-d latent, 3 levels of 256 codes, beta 0.25) on 384-d all-MiniLM-L6-v2
#: embeddings, with *this project's* training recipe, not the paper's (notebook 03 sets them side
#: by side): a heavy reconstruction weight, Adam with a per-step cosine decay from 3e-3 and a small
#: usage-balancing code bias: a point chosen from the sweeps of ``benchmarks/quality.py`` where
#: the perplexity and error targets are met together (the measurements are in
#: benchmarks/RESULTS.md). ``RqVae``'s keyword defaults (k-means init, dead-code restarts after
#: 10 steps) complete it.
TUTORIAL_CONFIG: dict = {
    "input_dim": 384,
    "hidden_dim": [512, 256, 128],
    "latent_dim": 32,
    "num_embeddings": 256,
    "num_levels": 3,
    "commitment_cost": 0.25,
    "learning_rate": 3e-3,
    "recon_weight": 384.0,
    "lr_schedule": "cosine",
    "balance_rate": 5e-4,
}

#: The tutorial recipe's batch size (TIGER's) and epochs, declared beside TUTORIAL_CONFIG: the
#: notebooks, ``configs/beauty.yaml`` (checked by the tests) and the benchmarks use them.
TUTORIAL_BATCH_SIZE = 1024
TUTORIAL_EPOCHS = 100
