"""Shared helpers for the benchmarks: data, the ResidualVQ peer, timing and table printing."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import Tensor, nn

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from rqvae_lib.config import TUTORIAL_CONFIG  # noqa: E402
from rqvae_lib.modules import Decoder, Encoder  # noqa: E402

#: TIGER's RQ-VAE shape as the notebooks use it (TUTORIAL_CONFIG's shape keys): 384 -> 512-256-128
#: -> 32, 3 levels x 256 codes.
SHAPE_KEYS = ("hidden_dim", "latent_dim", "num_embeddings", "num_levels")
TIGER_SHAPE = {k: TUTORIAL_CONFIG[k] for k in SHAPE_KEYS}


def setup_env() -> None:
    """Quiet logs and the bundled sentence encoder loaded offline.

    The raw data comes from the data root, from ``$RQVAE_SHARED_DATA`` when it is set, or from
    the download (``rqvae_lib.data.amazon.ensure_raw``).
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import logging
    import warnings

    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")


def load_features(split: str) -> tuple[Tensor, list[str]] | None:
    """All items of an Amazon split as (MiniLM embeddings, top-level categories); None if absent."""
    from rqvae_lib.data import P5AmazonItemDataset
    from rqvae_lib.data.amazon import check_split, ensure_raw

    try:
        ensure_raw(check_split(split), _data_root(), download=False)
    except (FileNotFoundError, ValueError):
        return None
    ds = P5AmazonItemDataset(None, split, "all", download=False, show_progress=False)
    return ds.features, list(ds.categories)


def _data_root() -> Path:
    from rqvae_lib.config import data_root

    return data_root()


def machine() -> str:
    """One line naming the CPU (and GPU), thread count, torch version and today's date."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = f", GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""
    return (
        f"{cpu}, {torch.get_num_threads()} torch threads{gpu}; torch {torch.__version__}; "
        f"{date.today().isoformat()}"
    )


def load() -> str:
    """The 1-minute load average, to note next to timings on a shared machine."""
    try:
        return f"{os.getloadavg()[0]:.1f}"
    except OSError:
        return "?"


def git_rev() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True)
        return out.stdout.decode().strip() or "?"
    except OSError:
        return "?"


@contextmanager
def timer() -> Iterator[list[float]]:
    """``with timer() as t: ...`` then ``t[0]`` holds the elapsed seconds."""
    out = [0.0]
    start = time.perf_counter()
    yield out
    out[0] = time.perf_counter() - start


def markdown_table(rows: Sequence[dict], columns: Sequence[str]) -> str:
    """Rows of dicts as a markdown table with the given columns, in order."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(r.get(c, "")) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def trainer(epochs: int, device: str) -> pl.Trainer:
    """A quiet Lightning trainer: no logger, checkpoints, progress bar or sanity checks."""
    return pl.Trainer(
        max_epochs=epochs,
        accelerator="gpu" if device == "cuda" else "cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )


class ResidualVQPeer(pl.LightningModule):
    """The same Encoder/Decoder around vector-quantize-pytorch's ResidualVQ (the maintained peer).

    k-means init and dead-code threshold 2, EMA codebooks; trained with Adam at the same
    learning rate and the same ``recon + commitment`` loss shape as ``RqVae``.
    """

    def __init__(
        self,
        input_dim: int = 384,
        hidden_dim: int | list[int] = (512, 256, 128),
        latent_dim: int = 32,
        num_embeddings: int = 256,
        num_levels: int = 3,
        learning_rate: float = 1e-3,
        commitment_weight: float = 0.25,
    ) -> None:
        super().__init__()
        from vector_quantize_pytorch import ResidualVQ

        self.learning_rate = learning_rate
        self.encoder = Encoder(input_dim, list(hidden_dim), latent_dim)
        self.decoder = Decoder(latent_dim, list(hidden_dim), input_dim)
        self.quantizer = ResidualVQ(
            dim=latent_dim,
            num_quantizers=num_levels,
            codebook_size=num_embeddings,
            kmeans_init=True,
            threshold_ema_dead_code=2,
            commitment_weight=commitment_weight,
        )

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Return ``(reconstructed, semantic_ids (batch, levels), commitment_loss)``."""
        quantized, ids, commit = self.quantizer(self.encoder(x)[:, None, :])
        return self.decoder(quantized[:, 0]), ids[:, 0], commit.sum()

    @torch.no_grad()
    def generate_semantic_ids(self, x: Tensor) -> Tensor:
        _, ids, _ = self.quantizer(self.encoder(x)[:, None, :])
        return ids[:, 0]

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        x = batch["features"]
        reconstructed, _, commit = self(x)
        return F.mse_loss(reconstructed, x) + commit

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.learning_rate)


def mlp_flops(module: nn.Module) -> int:
    """Forward FLOPs per item of the Linear layers in ``module`` (2 per multiply-add)."""
    return sum(
        2 * m.in_features * m.out_features for m in module.modules() if isinstance(m, nn.Linear)
    )


def matmul_gflops(device: torch.device, n: int = 2048, seconds: float = 2.0) -> float:
    """Float32 GFLOP/s of an ``n x n`` matmul on ``device``: the best of 4 timed windows."""
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    for _ in range(3):
        a @ b
    sync(device)
    best = 0.0
    for _ in range(4):
        reps, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds / 4:
            a @ b
            reps += 1
            if device.type == "cuda" and reps % 10:
                continue
            sync(device)
        sync(device)
        best = max(best, 2 * n**3 * reps / (time.perf_counter() - start) / 1e9)
    return best


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def as_numpy(x: Tensor | np.ndarray) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, Tensor) else np.asarray(x)
