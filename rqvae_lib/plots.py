"""Plots a user of the library wants: training losses, codebook usage, retrieval curves and
scores. Every function returns a matplotlib Figure with labelled axes; the lessons' own figures
are in :mod:`rqvae_lib.course.plots`."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import matplotlib.ticker
import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure

LEVEL_COLORS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple")


def loss_curves(
    metrics_csv: str | os.PathLike | pd.DataFrame,
    colors: Mapping[str, str] | None = None,
    align_chance: float | None = None,
) -> Figure:
    """Loss per epoch from a CSVLogger ``metrics.csv``: totals left, components (log) right.

    ``colors`` maps a metric name (``"train_loss"``, ``"val_recon_loss"``, ...) to a matplotlib
    colour; metrics it leaves out take matplotlib's default cycle. A run with the collaborative
    alignment term gets a third panel for it (an InfoNCE, not a squared error), with a dashed
    line at ``align_chance`` when given (the loss of guessing: log of the batch's items).
    """
    colors = colors or {}
    df = metrics_csv if isinstance(metrics_csv, pd.DataFrame) else pd.read_csv(metrics_csv)
    df = df.groupby("epoch").mean(numeric_only=True)
    aligned = "train_align_loss" in df and df["train_align_loss"].notna().any()
    fig, axes = plt.subplots(1, 3 if aligned else 2, figsize=(16 if aligned else 11, 3.8))
    ax1, ax2 = axes[0], axes[1]
    for key in ("train_loss", "val_loss"):
        if key in df:
            ax1.plot(df.index + 1, df[key], label=key, color=colors.get(key))
    parts = ("train_recon_loss", "val_recon_loss", "train_commitment_loss", "train_embedding_loss")
    for key in parts:
        if key in df:
            ax2.plot(df.index + 1, df[key], label=key, color=colors.get(key))
    ax2.set_yscale("log")
    ax1.set(xlabel="epoch", ylabel="loss (weighted sum of the terms)", title="total loss")
    ax2.set(
        xlabel="epoch",
        ylabel="loss (mean squared error, log scale)",
        title="loss terms (reconstruction before recon_weight)",
    )
    if aligned:
        ax3 = axes[2]
        key = "train_align_loss"
        ax3.plot(df.index + 1, df[key], label=key, color=colors.get(key))
        if align_chance is not None:
            ax3.axhline(align_chance, color="gray", ls="--", label="chance: log(items in batch)")
        ax3.set(xlabel="epoch", ylabel="InfoNCE (nats)", title="alignment term (before its weight)")
    for ax in axes:
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def _log_epoch_axis(ax, last: int) -> None:
    """Epochs on a log scale with plain tick labels, so the first epochs stay visible."""
    ax.set_xscale("log")
    ax.set_xticks([t for t in (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000) if t <= last])
    ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set(xlabel="epoch (log scale)", xlim=(0.9, last * 1.08))


def usage_over_epochs(
    history: Sequence[dict] | Mapping[str, Sequence[dict]],
    num_embeddings: int,
    title: str = "codebook usage during training",
) -> Figure:
    """Per-level codes used (left) and perplexity (right) over training epochs, linear y axes.

    ``history`` is the usage callback's list, or a dict ``{model name: history}`` to compare.
    Both panels have a line at ``num_embeddings`` (every code used; perplexity of a uniform
    level); epochs are on a log scale so that the first few stay visible.
    """
    runs = history if isinstance(history, Mapping) else {"": history}
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.9))
    styles = ("-", "--", ":", "-.")
    last = 1
    for (name, hist), ls in zip(runs.items(), styles, strict=False):
        df, levels = _history_frame(hist)
        last = max(last, int(df["epoch"].max()) + 1)
        for lv in levels:
            label = f"{name} level {lv}".strip()
            color = LEVEL_COLORS[(lv - 1) % len(LEVEL_COLORS)]
            x = df["epoch"] + 1
            ax1.plot(x, df[f"usage_l{lv}"] * num_embeddings, ls=ls, color=color, label=label)
            ax2.plot(x, df[f"perplexity_l{lv}"], ls=ls, color=color, label=label)
    _uniform_line(ax1, num_embeddings, f"all {num_embeddings} codes")
    _uniform_line(ax2, num_embeddings, f"{num_embeddings}: every code equally used")
    ax1.set(ylabel=f"codes used (of {num_embeddings})", title="codes used per level")
    ax2.set(ylabel="perplexity (effective number of codes)", title="perplexity per level")
    for ax in (ax1, ax2):
        _log_epoch_axis(ax, last)
        ax.set_ylim(0, num_embeddings * 1.12)
        ax.legend(fontsize=8, loc="lower right")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


# --- helpers for per-level usage histories (also used by the lessons' figures) ----------------
def _history_frame(history: Sequence[dict]) -> tuple[pd.DataFrame, list[int]]:
    df = pd.DataFrame(list(history))
    levels = sorted(int(c[len("usage_l") :]) for c in df.columns if c.startswith("usage_l"))
    return df, levels


def _uniform_line(ax, value: float, text: str) -> None:
    """A dotted grey line at ``value`` with its value written on the axis (readable anywhere)."""
    ax.axhline(value, color="grey", ls=":", lw=1.2)
    ax.annotate(
        text,
        xy=(1.0, value),
        xycoords=("axes fraction", "data"),
        xytext=(-4, 3),
        textcoords="offset points",
        ha="right",
        va="bottom",
        fontsize=8,
        color="0.35",
    )


def sorted_code_counts(ids, num_embeddings: int, title: str = "") -> Figure:
    """Items per code, codes sorted from most to least used: one step line per level, one axis.

    A shared axis lets the levels be compared at a glance (a flat line at the dotted uniform
    share ``num_items / num_embeddings`` is a perfectly even level); the legend gives each
    level's codes used.
    """
    ids = np.asarray(torch.as_tensor(ids))
    fig, ax = plt.subplots(figsize=(7.5, 3.8))
    uniform = len(ids) / num_embeddings
    top = 0
    for lv in range(ids.shape[1]):
        counts = np.sort(np.bincount(ids[:, lv], minlength=num_embeddings))[::-1]
        used = int((counts > 0).sum())
        ax.step(
            np.arange(1, num_embeddings + 1),
            counts,
            where="mid",
            lw=1.8,
            color=LEVEL_COLORS[lv % len(LEVEL_COLORS)],
            label=f"level {lv + 1}: {used} of {num_embeddings} codes used",
        )
        top = max(top, int(counts.max()))
    _uniform_line(ax, uniform, f"uniform: {uniform:.0f} items per code")
    ax.set(
        xlabel="code rank (1 = most used)",
        ylabel="items assigned to the code",
        xlim=(0, num_embeddings + 1),
        ylim=(0, top * 1.12),
    )
    ax.legend(fontsize=8, loc="upper right")
    ax.set_title("items per code, each level's codes sorted by use", fontsize=10)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def retrieval_curves(
    records: Sequence[Mapping], metric: str = "recall@10", title: str = ""
) -> Figure:
    """Training loss (left) and validation ``metric`` (right) per epoch of retrieval records."""
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.8))
    for r in records:
        epochs = range(1, len(r["train_losses"]) + 1)
        ax1.plot(epochs, r["train_losses"], marker=".", label=r.get("label", r["name"]))
        values = [v[metric][0] for v in r["val"]]
        ax2.plot(r["val_epochs"], values, marker="o", label=r.get("label", r["name"]))
    ax1.set(xlabel="epoch", ylabel="training loss (nats per token)", title="training loss")
    ax2.set(xlabel="epoch", ylabel=f"validation {metric}", title=f"validation {metric}")
    for ax in (ax1, ax2):
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def metric_bars(
    frame: pd.DataFrame,
    metrics: Sequence[str],
    title: str = "",
    errors: pd.DataFrame | None = None,
) -> Figure:
    """Grouped bars of float ``metrics`` columns, one group per row (``frame.index`` labels);
    ``errors`` (same index and columns, e.g. standard errors) draws ± error bars."""
    fig, ax = plt.subplots(figsize=(9, 3.8))
    width = 0.8 / len(metrics)
    x = np.arange(len(frame))
    for i, m in enumerate(metrics):
        yerr = None if errors is None else errors.loc[frame.index, m].to_numpy(dtype=float)
        bars = ax.bar(
            x + i * width, frame[m].to_numpy(dtype=float), width, label=m, yerr=yerr, capsize=2
        )
        ax.bar_label(bars, fmt="%.3f", fontsize=7)
    ax.set_xticks(x + width * (len(metrics) - 1) / 2, frame.index, rotation=15, ha="right")
    ax.set(ylabel="test score (mean over users)", title=title)
    ax.legend()
    fig.tight_layout()
    return fig
