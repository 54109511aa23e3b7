"""Notebook 04's controlled comparison: the RQ-VAE with one switch changed at a time, over seeds.

Each variant is ``TUTORIAL_CONFIG`` with a few options changed. :func:`train_variant` trains
(or loads) one variant from one seed and scores it; ``benchmarks/ablation.py`` runs every
variant over several seeds and writes one JSON line per run, which :func:`seed_summary` turns
into the mean and spread that the notebook shows beside its own seed.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytorch_lightning as pl
import torch
from torch import Tensor

from ..baselines import rq_kmeans_encode, rq_kmeans_fit
from ..config import artifacts_dir, seed_everything
from ..evaluate import (
    batch_inference,
    codebook_stats,
    evaluate_reconstruction,
    reconstruction_error,
)
from ..model import RqVae
from ..retrieval.metrics import mean_sem
from ..training import METRICS_NAME, load_or_train, load_run_history
from .analysis import comparison_row, history_table

#: The seed of every notebook's own runs; the benchmark adds more seeds beside it.
NOTEBOOK_SEED = 42
_NO_BALANCE = {"balance_rate": 0.0}
#: Variant name -> the options it changes in ``TUTORIAL_CONFIG`` ("default" changes none).
VARIANTS: dict[str, dict] = {
    "plain": {"kmeans_init": False, "dead_code_steps": 0, **_NO_BALANCE},
    "k-means": {"kmeans_init": True, "dead_code_steps": 0, **_NO_BALANCE},
    "restarts": {"kmeans_init": False, "dead_code_steps": 10, **_NO_BALANCE},
    "k-means+restarts": {"kmeans_init": True, "dead_code_steps": 10, **_NO_BALANCE},
    "default": {},
    "plain, recon_weight=1": {
        "kmeans_init": False,
        "dead_code_steps": 0,
        "recon_weight": 1.0,
        **_NO_BALANCE,
    },
}
#: The training-free baseline scored beside the variants.
RQ_KMEANS = "RQ-KMeans"
#: One fixed colour per model, so that a model looks the same in every figure of the notebook.
COLORS: dict[str, str] = {
    "plain": "tab:gray",
    "k-means": "tab:purple",
    "restarts": "tab:orange",
    "k-means+restarts": "tab:blue",
    "default": "tab:green",
    "plain, recon_weight=1": "tab:red",
    RQ_KMEANS: "tab:brown",
}
#: The epochs at which a run's usage history is kept in the seed record.
SNAPSHOT_EPOCHS = (1, 2, 5, 10, 20, 50, 100)
#: The table rows whose spread over seeds the notebook reports.
SEED_METRICS = (
    "perplexity L1",
    "perplexity L2",
    "perplexity L3",
    "unique IDs",
    "collision rate",
    "max items/ID",
    "rel. error",
)


@dataclass
class VariantRun:
    """One trained variant: the model, its per-epoch usage history, its IDs and table row."""

    model: RqVae | None
    history: list[dict]
    ids: Tensor
    row: dict
    seconds: float


def variant_dir(name: str, epochs: int, seed: int = NOTEBOOK_SEED) -> Path:
    """Where a variant's model is saved: ``artifacts/rqvae-04-<name>-<epochs>ep[-seed<n>]``."""
    slug = name.replace(" ", "").replace(",", "-")
    suffix = "" if seed == NOTEBOOK_SEED else f"-seed{seed}"
    return artifacts_dir() / f"rqvae-04-{slug}-{epochs}ep{suffix}"


def score(name: str, model: RqVae, datamodule: pl.LightningDataModule) -> tuple[Tensor, dict]:
    """The IDs of the whole catalogue and the comparison row (test items for the error)."""
    ids = batch_inference(model, datamodule.predict_dataloader())
    stats = codebook_stats(ids, model.quantizer.num_embeddings)
    recon = evaluate_reconstruction(model, datamodule.test_dataloader())
    return ids, comparison_row(name, stats, recon)


def train_variant(
    name: str,
    datamodule: pl.LightningDataModule,
    epochs: int,
    seed: int = NOTEBOOK_SEED,
    quiet: bool = True,
) -> VariantRun:
    """Train ``VARIANTS[name]`` for ``epochs`` from ``seed_everything(seed)``, or load it if saved.

    Every variant starts from the same point of the seeded random stream, so two variants of
    one seed differ only in their options.
    """
    if name not in VARIANTS:
        raise KeyError(f"unknown variant {name!r}; choose one of {sorted(VARIANTS)}")
    directory = variant_dir(name, epochs, seed)
    seed_everything(seed)
    model = load_or_train(directory, datamodule, epochs, quiet=quiet, **VARIANTS[name])
    info = json.loads((directory / "train_info.json").read_text())
    ids, row = score(name, model, datamodule)
    return VariantRun(model, load_run_history(directory), ids, row, float(info["seconds"]))


def rq_kmeans_run(
    datamodule: pl.LightningDataModule, num_levels: int, num_embeddings: int, seed: int
) -> VariantRun:
    """RQ-KMeans fitted on the training split with ``seed``, scored like the variants."""
    start = time.perf_counter()
    centroids = rq_kmeans_fit(
        datamodule.dataset("train").features,
        num_levels=num_levels,
        num_embeddings=num_embeddings,
        seed=seed,
    )
    ids, _ = rq_kmeans_encode(datamodule.dataset("all").features, centroids)
    test_x = datamodule.dataset("test").features
    _, test_recon = rq_kmeans_encode(test_x, centroids)
    stats = codebook_stats(ids, num_embeddings)
    row = comparison_row(RQ_KMEANS, stats, reconstruction_error(test_x, test_recon))
    return VariantRun(None, [], ids, row, time.perf_counter() - start)


def usage_snapshot(history: list[dict], num_embeddings: int) -> dict[str, dict]:
    """Codes used and perplexity per level at :data:`SNAPSHOT_EPOCHS` (epoch -> column -> value)."""
    if not history:
        return {}
    table = history_table(history, SNAPSHOT_EPOCHS, num_embeddings)
    return {str(epoch): row for epoch, row in table.to_dict(orient="index").items()}


def loss_terms(directory: str | Path, epochs: tuple[int, ...] = (1, 10, 100)) -> pd.DataFrame:
    """The training loss's three terms at some epochs of a saved run, as the optimiser saw them.

    ``recon_weight x reconstruction`` (the weighted reconstruction term), ``commitment`` and
    ``codebook`` (the embedding loss), and the reconstruction term's share of the total.
    """
    directory = Path(directory)
    weight = json.loads((directory / "config.json").read_text())["recon_weight"]
    metrics = pd.read_csv(directory / METRICS_NAME).groupby("epoch").first()  # train, val rows
    metrics.index = metrics.index + 1  # Lightning counts epochs from 0
    rows = metrics.loc[[e for e in epochs if e in metrics.index]]
    out = pd.DataFrame(index=rows.index)
    out["weighted reconstruction"] = weight * rows["train_recon_loss"]
    out["commitment"] = rows["train_commitment_loss"]
    out["codebook"] = rows["train_embedding_loss"]
    out["reconstruction share"] = out["weighted reconstruction"] / out.sum(axis=1)
    return out


def read_records(path: str | Path) -> list[dict]:
    """The JSON lines of ``benchmarks/ablation.py`` (one per variant and seed)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"no seed record at {path}: run `python benchmarks/ablation.py` to write it"
        )
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def seed_summary(records: list[dict], metrics: tuple[str, ...] = SEED_METRICS) -> pd.DataFrame:
    """Per model: the seeds run, and mean, sample standard deviation, min and max per metric.

    One row per (model, metric); columns ``seeds``, ``mean``, ``sd``, ``min``, ``max``.
    """
    frame = pd.DataFrame([{"model": r["model"], "seed": r["seed"], **r["row"]} for r in records])
    rows = []
    for model, group in frame.groupby("model", sort=False):
        for metric in metrics:
            values = group[metric].to_numpy(dtype=float)
            rows.append(
                {
                    "model": model,
                    "metric": metric,
                    "seeds": len(values),
                    "mean": values.mean(),
                    "sd": values.std(ddof=1) if len(values) > 1 else np.nan,
                    "min": values.min(),
                    "max": values.max(),
                }
            )
    return pd.DataFrame(rows).set_index(["model", "metric"])


def paired_difference(records: list[dict], a: str, b: str, metric: str) -> dict:
    """``a - b`` on ``metric``, seed by seed (the same seed: the same start and data order).

    Returns the seeds both models ran, the mean difference, its standard error over those
    seeds, and ``beyond_noise``: whether the mean is more than twice its standard error (with 3
    seeds a rough screen, not a significance test).
    """
    by_seed = {m: {r["seed"]: r["row"][metric] for r in records if r["model"] == m} for m in (a, b)}
    seeds = sorted(set(by_seed[a]) & set(by_seed[b]))
    if len(seeds) < 2:
        raise ValueError(f"{a!r} and {b!r} share {len(seeds)} seed(s): need 2 or more")
    mean, se = mean_sem(torch.tensor([by_seed[a][s] - by_seed[b][s] for s in seeds], dtype=float))
    return {"seeds": len(seeds), "difference": mean, "se": se, "beyond_noise": abs(mean) > 2 * se}


def differences_table(
    records: list[dict], pairs: list[tuple[str, str]], metrics: tuple[str, ...]
) -> pd.DataFrame:
    """One row per (pair, metric): the paired difference ``a - b``, its standard error, and
    whether it exceeds twice that (see :func:`paired_difference`)."""
    rows = []
    for a, b in pairs:
        for metric in metrics:
            d = paired_difference(records, a, b, metric)
            rows.append(
                {
                    "comparison": f"{a} - {b}",
                    "metric": metric,
                    "difference": d["difference"],
                    "± se": d["se"],
                    "seeds": d["seeds"],
                    "beyond 2 se": "yes" if d["beyond_noise"] else "no (within noise)",
                }
            )
    return pd.DataFrame(rows).set_index(["comparison", "metric"])


def mean_sd_table(
    summary: pd.DataFrame, models: list[str], digits: dict | None = None
) -> pd.DataFrame:
    """``mean ± sd`` strings, one column per model and one row per metric, for printing."""
    digits = digits or {"collision rate": 3, "rel. error": 3}
    cols = {}
    for model in models:
        sub = summary.loc[model]
        cols[model] = {
            m: f"{r['mean']:.{digits.get(m, 0)}f} ± {r['sd']:.{digits.get(m, 0)}f}"
            for m, r in sub.iterrows()
        }
    table = pd.DataFrame(cols)
    table.loc["seeds"] = [int(summary.loc[m]["seeds"].iloc[0]) for m in models]
    return table
