"""Helpers the test modules share: quiet trainers, small models and data, figure checks."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import Any

import pytest
import pytorch_lightning as pl
import torch
from matplotlib.figure import Figure
from torch.utils.data import DataLoader, Dataset

from rqvae_lib import RqVae, seed_everything
from rqvae_lib.cli import lightning_cli
from rqvae_lib.config import REPO_ROOT
from rqvae_lib.data import SyntheticDataModule
from rqvae_lib.data.synthetic import SyntheticCatalogue, make_synthetic_catalogue
from rqvae_lib.training import TrainRun, train_model


def quiet_trainer(epochs: int = 2, **kw: Any) -> pl.Trainer:
    """A CPU Trainer with no logger, checkpoints, progress bar or model summary (unless given)."""
    kw.setdefault("logger", False)
    kw.setdefault("enable_checkpointing", False)
    kw.setdefault("enable_progress_bar", False)
    kw.setdefault("enable_model_summary", False)
    return pl.Trainer(max_epochs=epochs, accelerator="cpu", devices=1, **kw)


def snapshot(root: Path) -> dict[str, str]:
    """Every file and folder under ``root`` with a hash of its content."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        if p.is_file()
        else "dir"
        for p in sorted(root.rglob("*"))
    }


def truncate(path: Path) -> Path:
    """Cut ``path`` to half its size, as an interrupted copy leaves it."""
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return path


# --- small models and data ------------------------------------------------------------------
class Features(Dataset):
    """Rows of a tensor as ``{key: row}`` dicts (``{"features": row}``, as the reference's
    examples use), keeping their dtype."""

    def __init__(self, x: torch.Tensor, key: str = "features") -> None:
        self.x, self.key = x, key

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict:
        return {self.key: self.x[i]}


TINY_DIM = 16


def tiny(seed: int = 0, **options) -> RqVae:
    """A 16-d model (2 levels of 8 codes unless ``options`` say otherwise), seeded random weights."""
    seed_everything(seed)
    shape = {"hidden_dim": 16, "latent_dim": 4, "num_embeddings": 8, "num_levels": 2}
    return RqVae(TINY_DIM, **{**shape, **options})


def tiny_features() -> torch.Tensor:
    """256 synthetic 16-d items in 4 x 4 clusters: the inputs of :func:`tiny` models."""
    return make_synthetic_catalogue(num_items=256, dim=TINY_DIM, branching=(4, 4), seed=3).features


def feature_loader(x: torch.Tensor, batch_size: int = 64) -> DataLoader:
    """The rows of ``x`` as ``{"features": row}`` batches, in order."""
    return DataLoader(Features(x), batch_size=batch_size)


def small_catalogue() -> SyntheticCatalogue:
    """1,024 synthetic 32-d items in an 8 x 8 x 4 hierarchy."""
    return make_synthetic_catalogue(num_items=1024, dim=32, branching=(8, 8, 4), seed=1)


def fit_small_rqvae(catalogue: SyntheticCatalogue) -> RqVae:
    """A 3-level RqVae of 32 codes trained 3 epochs on ``catalogue``, in eval mode."""
    seed_everything(0)
    model = RqVae(32, [64, 32], 16, 32, num_levels=3)
    quiet_trainer(3).fit(
        model, DataLoader(Features(catalogue.features), batch_size=128, shuffle=True)
    )
    return model.eval()


SMALL_RUN_CONFIG = {
    "input_dim": 32,
    "hidden_dim": [64, 32],
    "latent_dim": 8,
    "num_embeddings": 16,
    "num_levels": 3,
    "learning_rate": 3e-3,
}


def train_small_run(tmp: Path) -> tuple[SyntheticDataModule, TrainRun]:
    """One small model trained 3 epochs on the synthetic catalogue by ``train_model``, logs in
    ``tmp/logs``: its data module and its run (history, metrics CSV, model)."""
    dm = SyntheticDataModule(num_items=1024, dim=32, branching=(4, 4, 4), batch_size=128)
    result = train_model(dm, 3, "test", SMALL_RUN_CONFIG, quiet=True, save_dir=tmp / "logs")
    return dm, result


# --- invalid options both RqVae and the quantizers refuse ------------------------------------
NAN = float("nan")
QUANTIZER_CASES = [
    ({"dead_code_steps": -1}, ValueError, "dead_code_steps"),
    ({"dead_code_steps": NAN}, TypeError, "dead_code_steps"),
    ({"dead_code_steps": 2.5}, TypeError, "dead_code_steps"),
    ({"balance_rate": -0.1}, ValueError, "balance_rate"),
    ({"balance_rate": NAN}, ValueError, "balance_rate"),
    ({"commitment_cost": -1.0}, ValueError, "commitment_cost"),
    ({"commitment_cost": NAN}, ValueError, "commitment_cost"),
    ({"commitment_cost": "0.25"}, TypeError, "commitment_cost"),
    ({"kmeans_init": "false"}, TypeError, "kmeans_init"),
    ({"use_cosine": "no"}, TypeError, "use_cosine"),
    ({"seed": -1}, ValueError, "seed"),
    ({"dead_code_step": 5}, TypeError, "dead_code_step"),  # a typo: not silently ignored
]


# --- the command line on configs/synthetic.yaml ----------------------------------------------
SYNTHETIC = str(REPO_ROOT / "configs" / "synthetic.yaml")
QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]
CKPT_DIR = Path("artifacts/synthetic/checkpoints")  # the config's ModelCheckpoint dirpath


def cli_fit(workdir: Path, monkeypatch: pytest.MonkeyPatch, *args: str, run: bool = True):
    """``python -m rqvae_lib fit --config configs/synthetic.yaml ARGS`` inside ``workdir``."""
    workdir.mkdir(exist_ok=True)
    monkeypatch.chdir(workdir)
    return lightning_cli((["fit"] if run else []) + ["--config", SYNTHETIC, *QUIET, *args], run=run)


def finished_synthetic_run(workdir: Path) -> Path:
    """A finished 1-epoch run of the synthetic config in ``workdir`` (with artifacts/...)."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        cli_fit(workdir, monkeypatch, "--trainer.max_epochs", "1")
        torch.set_num_threads(threads)
    return workdir


def working_copy(run: Path, workdir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private copy of the folder ``run`` at ``workdir``, made the working directory."""
    shutil.copytree(run, workdir)
    monkeypatch.chdir(workdir)
    return workdir


# --- figures ---------------------------------------------------------------------------------
def usage_history(epochs: int, levels: int = 3, k: int = 16) -> list[dict]:
    """A made-up usage history: at epoch ``e`` level ``lv`` uses ``min(k, 1 + e * lv)`` codes."""
    rows = []
    for e in range(epochs):
        row = {"epoch": e, "step": 10 * (e + 1)}
        for lv in range(1, levels + 1):
            used = min(k, 1 + e * lv)
            row[f"usage_l{lv}"] = used / k
            row[f"perplexity_l{lv}"] = used * 0.9
            row[f"dead_codes_l{lv}"] = float(k - used)
        rows.append(row)
    return rows


def check_figure(fig: Figure) -> None:
    """A Figure with a title, and every panel with axis labels, a title and y tick labels."""
    assert isinstance(fig, Figure)
    assert fig._suptitle is not None and fig._suptitle.get_text()
    for ax in fig.axes:
        assert ax.get_xlabel() and ax.get_ylabel() and ax.get_title()
        assert [t.get_text() for t in ax.get_yticklabels() if t.get_text()], "y tick labels"
