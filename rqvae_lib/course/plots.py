"""The lessons' figures, and ``save_figure`` for the notebooks' ``figures/`` folder.

Every function returns a matplotlib Figure with labelled axes. The library's own plots
(:mod:`rqvae_lib.plots`) are re-exported here, so a notebook reads every figure from one place.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure

from rqvae_lib.config import REPO_ROOT
from rqvae_lib.io import atomic_write
from rqvae_lib.plots import (  # noqa: F401  (re-exported: the notebooks' one place for figures)
    LEVEL_COLORS,
    _history_frame,
    _log_epoch_axis,
    _uniform_line,
    loss_curves,
    metric_bars,
    retrieval_curves,
    sorted_code_counts,
    usage_over_epochs,
)


def figures_dir() -> Path:
    """Where notebooks write their PNG figures: ``$RQVAE_FIGURES`` or ``<repo>/figures``."""
    path = Path(os.environ.get("RQVAE_FIGURES", REPO_ROOT / "figures")).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def save_figure(fig: Figure, name: str, dpi: int = 110) -> Path:
    """Write ``fig`` to ``figures/<name>.png`` atomically (temp file, then rename)."""
    path = figures_dir() / f"{name}.png"
    save = {"dpi": dpi, "bbox_inches": "tight", "metadata": {"Software": None}, "format": "png"}
    return atomic_write(path, lambda tmp: fig.savefig(tmp, **save)) or path


def category_bar(
    categories: Sequence[str], top: int = 15, what: str = "categories", color: Any = "tab:blue"
) -> Figure:
    """Horizontal bar chart of the ``top`` most common labels; ``what`` names them (title, axis)."""
    counts = pd.Series(list(categories)).value_counts().head(top)[::-1]
    fig, ax = plt.subplots(figsize=(7, 0.3 * len(counts) + 1.2))
    ax.barh(counts.index, counts.values, color=color)
    ax.set(
        xlabel="items (count)",
        ylabel=what,
        title=f"the {len(counts)} largest {what}, by number of items",
    )
    fig.tight_layout()
    return fig


def text_length_hist(texts: Sequence[str], bins: int = 50, color: Any = "tab:blue") -> Figure:
    """Histogram of item text lengths in words, with the median marked."""
    words = np.array([len(t.split()) for t in texts])
    fig, ax = plt.subplots(figsize=(7, 3.4))
    ax.hist(words, bins=bins, color=color)
    ax.axvline(np.median(words), color="k", ls="--", label=f"median {np.median(words):.0f} words")
    ax.set(xlabel="words per item text", ylabel="items (count)", title="item text length")
    ax.legend()
    fig.tight_layout()
    return fig


def projection_scatter(
    xy: np.ndarray, labels: Sequence[str], top: int = 8, method: str = "t-SNE"
) -> Figure:
    """2-D projection of embeddings, coloured by label (the ``top`` commonest; rest grey).

    The legend sits outside the axes, so it hides no point.
    """
    labels = pd.Series(list(labels))
    keep = labels.value_counts().index[:top]
    fig, ax = plt.subplots(figsize=(9, 6))
    other = ~labels.isin(keep).to_numpy()
    if other.any():
        ax.scatter(xy[other, 0], xy[other, 1], s=4, c="lightgrey", label="other")
    for i, name in enumerate(keep):
        m = (labels == name).to_numpy()
        ax.scatter(xy[m, 0], xy[m, 1], s=4, color=plt.cm.tab10(i % 10), label=name)
    ax.set(
        xlabel=f"{method} 1 (no units)",
        ylabel=f"{method} 2 (no units)",
        title=f"{method} of item embeddings",
    )
    ax.legend(markerscale=3, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    return fig


def prefix_tree_sizes(
    sizes: Mapping[int, np.ndarray], colors: Sequence[str] | None = None
) -> Figure:
    """Distribution of items per prefix, one curve per depth (log-log histogram).

    ``colors``: one colour per depth (default: matplotlib's colour cycle).
    """
    fig, ax = plt.subplots(figsize=(7, 3.8))
    top = max(int(s.max()) for s in sizes.values())
    bins = np.unique(np.logspace(0, np.log10(top + 1), 30).astype(int))
    for i, (depth, s) in enumerate(sizes.items()):
        ax.hist(
            s,
            bins=bins,
            histtype="step",
            lw=2,
            label=f"depth {depth} ({len(s)} prefixes)",
            **({"color": colors[i]} if colors is not None else {}),
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set(
        xlabel="items sharing the prefix (log scale)",
        ylabel="number of prefixes (log scale)",
        title="prefix-tree sizes: items per prefix, by depth",
    )
    ax.legend()
    fig.tight_layout()
    return fig


def category_by_depth(
    results: pd.DataFrame | Mapping[str, pd.DataFrame], colors: Sequence[str] | None = None
) -> Figure:
    """Category prediction accuracy from the ID prefix at each depth, with its two baselines.

    ``results`` is :func:`rqvae_lib.course.analysis.category_prediction`'s table, or a dict of them
    (one colour each): the semantic ID (solid), the labels shuffled among the scored items
    (dashed: same groups, no meaning) and always guessing the commonest label (dotted). The x
    tick labels give the share of items scored at each depth (items alone under their prefix are
    not). ``colors``: one per table (default: tab10).
    """
    runs = results if isinstance(results, Mapping) else {"category": results}
    fig, ax = plt.subplots(figsize=(9.5, 4.2))
    for i, (name, df) in enumerate(runs.items()):
        color = plt.cm.tab10(i) if colors is None else colors[i]
        ax.plot(df.index, df["accuracy"], "o-", color=color, label=f"{name}: semantic ID prefix")
        ax.plot(
            df.index,
            df["random_ids"],
            "s--",
            color=color,
            alpha=0.6,
            label=f"{name}: random labels",
        )
        ax.plot(
            df.index,
            df["majority_label"],
            ":",
            color=color,
            lw=2,
            alpha=0.8,
            label=f"{name}: always the commonest label",
        )
    first = next(iter(runs.values()))
    ax.set_xticks(
        list(first.index),
        [f"{d}\n({share:.0%} of items scored)" for d, share in first["items_scored"].items()],
    )
    ax.set(
        xlabel="prefix depth (levels of the ID)",
        ylabel="accuracy (share of scored items)",
        ylim=(0, 1.02),
        title="an item's category, voted by the other items under its ID prefix",
    )
    ax.legend(fontsize=7.5, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    return fig


def prefix_sharing(
    df: pd.DataFrame,
    pairs: str = "consecutive reviews of one user",
    colors: Sequence[str] | None = None,
    random_label: str = "random pairs",
) -> Figure:
    """Bars (log scale): share of item pairs vs random pairs whose IDs agree on the prefix at
    each depth, each bar labelled with its value and each depth with the lift between them.

    ``df`` is :func:`rqvae_lib.course.analysis.pair_prefix_sharing`'s table; ``pairs`` names the pairs.
    Where it has ``pairs_low`` and ``pairs_high`` (``exact=True``), the pairs' bars get those
    95% intervals as error bars and the lift its interval. ``colors``: (pairs, random pairs).
    """
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    x = np.arange(len(df))
    colors = list(colors) if colors is not None else [None, None]
    errors = None
    if {"pairs_low", "pairs_high"} <= set(df.columns):
        errors = np.vstack([df["pairs"] - df["pairs_low"], df["pairs_high"] - df["pairs"]])
    groups = [
        ax.bar(
            x - 0.2,
            df["pairs"],
            0.4,
            label=pairs + (" (95% interval)" if errors is not None else ""),
            color=colors[0],
            yerr=errors,
            capsize=4 if errors is not None else 0,
        ),
        ax.bar(x + 0.2, df["random_pairs"], 0.4, label=random_label, color=colors[1]),
    ]
    tops = [df["pairs_high"].to_numpy() if errors is not None else None, None]
    for group, top_of in zip(groups, tops, strict=True):
        for j, rect in enumerate(group):
            value = rect.get_height()
            if value > 0:
                ax.annotate(
                    f"{100 * value:.2g}%",
                    (rect.get_x() + rect.get_width() / 2, value if top_of is None else top_of[j]),
                    xytext=(0, 2),
                    textcoords="offset points",
                    ha="center",
                    va="bottom",
                    fontsize=8,
                )
    lifts = df["pairs"] / df["random_pairs"].replace(0.0, np.nan)
    ticks = [
        f"depth {d}" + (f"\n{lift:.0f}x as often" if np.isfinite(lift) else "")
        for d, lift in zip(df.index, lifts, strict=True)
    ]
    if {"lift_low", "lift_high"} <= set(df.columns):
        ticks = [
            t + (f"\n({_short(low)}-{_short(high)})" if np.isfinite(low) else "")
            for t, low, high in zip(ticks, df["lift_low"], df["lift_high"], strict=True)
        ]
    ax.set_xticks(x, ticks)
    ax.set_yscale("log")
    top = float(np.nanmax(df[["pairs", "random_pairs"]].to_numpy()))
    if errors is not None:
        top = max(top, float(df["pairs_high"].max()))
    ax.set_ylim(top=top * 5)
    ax.set(
        xlabel="shared ID prefix",
        ylabel="fraction of pairs (log scale)",
        title="how often two items share their ID prefix",
    )
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    return fig


def _short(value: float) -> str:
    """A lift for a tick label: no decimals from 10 up, one below."""
    return f"{value:.0f}" if value >= 10 else f"{value:.1f}"


def shared_depth_hist(
    groups: Mapping[str, np.ndarray], num_levels: int, colors: Sequence[str] | None = None
) -> Figure:
    """Grouped bars: how many leading codes item pairs share, per kind of pair.

    ``colors``: one per kind of pair (default: matplotlib's colour cycle).
    """
    fig, ax = plt.subplots(figsize=(7, 3.8))
    width = 0.8 / len(groups)
    x = np.arange(num_levels + 1)
    for i, (name, depths) in enumerate(groups.items()):
        frac = np.bincount(depths, minlength=num_levels + 1) / len(depths)
        ax.bar(
            x + (i - (len(groups) - 1) / 2) * width,
            frac,
            width,
            label=name,
            **({"color": colors[i]} if colors is not None else {}),
        )
    ax.set_xticks(x)
    ax.set(
        xlabel="leading codes shared with the query item",
        ylabel="fraction of pairs",
        title="shared ID prefix: embedding neighbours vs random items",
    )
    ax.legend()
    fig.tight_layout()
    return fig


def table_figure(df: pd.DataFrame, title: str = "") -> Figure:
    """A DataFrame drawn as a table (for the README and slides); columns sized to their text."""
    cells = df.astype(str).values
    chars = [max([len(str(c))] + [len(v) for v in cells[:, j]]) for j, c in enumerate(df.columns)]
    label_chars = max(len(str(i)) for i in df.index)
    widths = [0.1 * c + 0.2 for c in chars]
    fig, ax = plt.subplots(figsize=(sum(widths) + 0.1 * label_chars + 0.4, 0.3 * len(df) + 0.8))
    ax.axis("off")
    total = sum(widths) + 0.1 * label_chars + 0.2
    table = ax.table(
        cellText=cells,
        colLabels=list(map(str, df.columns)),
        rowLabels=list(map(str, df.index)),
        colWidths=[w / total for w in widths],
        loc="center",
        cellLoc="center",
    )
    table.auto_set_font_size(False)
    table.set_fontsize(9)
    table.scale(1, 1.3)
    if title:
        ax.set_title(title)
    return fig


# --- the 2-D toy of notebook 02: codebooks as Voronoi cells ------------------------------------
def _grid(points: np.ndarray, codebooks: Sequence[np.ndarray], resolution: int, margin: float):
    """A ``resolution`` x ``resolution`` grid over the points and first-level codes, plus margin."""
    cloud = np.concatenate([points, codebooks[0]]) if len(codebooks) else points
    lo, hi = cloud.min(0), cloud.max(0)
    pad = margin * (hi - lo).max()
    xs = np.linspace(lo[0] - pad, hi[0] + pad, resolution)
    ys = np.linspace(lo[1] - pad, hi[1] + pad, resolution)
    gx, gy = np.meshgrid(xs, ys)
    return np.stack([gx.ravel(), gy.ravel()], 1), (xs[0], xs[-1], ys[0], ys[-1])


def _residual_ids(x: np.ndarray, codebooks: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Residual quantization of the rows of ``x``: the indices ``(N, L)`` and the sum of codes."""
    residual, total, ids = x.astype(np.float64), np.zeros(x.shape), []
    for codebook in codebooks:
        c = np.asarray(codebook, dtype=np.float64)
        idx = ((residual[:, None, :] - c[None]) ** 2).sum(-1).argmin(1)
        residual, total = residual - c[idx], total + c[idx]
        ids.append(idx)
    return np.stack(ids, 1), total


def _code_palette(num_embeddings: int) -> np.ndarray:
    """(P, 3) distinct RGB colours for the codes: tab10 up to 10 codes; beyond, tab10's colours,
    then their light tab20 partners, then tab20b and tab20c (60 in all, cycled after that)."""
    if num_embeddings <= 10:
        return np.asarray(plt.cm.tab10.colors)
    tab20 = np.asarray(plt.cm.tab20.colors)
    palette = np.concatenate([tab20[0::2], tab20[1::2]])  # the first 10 are tab10's
    if num_embeddings > 20:
        palette = np.concatenate([palette, plt.cm.tab20b.colors, plt.cm.tab20c.colors])
    return palette


def _cell_colors(ids: np.ndarray, num_embeddings: int) -> np.ndarray:
    """RGB per row: the hue from the first code, lighter or darker with each finer code."""
    palette = _code_palette(num_embeddings)
    base = palette[ids[:, 0] % len(palette)]
    shade = np.zeros(len(ids))
    for level in range(1, ids.shape[1]):
        shade += (ids[:, level] / max(num_embeddings - 1, 1) - 0.5) * 0.7 / 2 ** (level - 1)
    white, black = np.ones_like(base), np.zeros_like(base)
    s = shade[:, None]
    return np.where(s > 0, base + s * (white - base), base + (-s) * (black - base) * 0.8)


def _boundaries(labels: np.ndarray) -> np.ndarray:
    """True on grid pixels where the cell label changes (drawn as cell borders)."""
    edge = np.zeros(labels.shape, dtype=bool)
    edge[1:, :] |= labels[1:, :] != labels[:-1, :]
    edge[:, 1:] |= labels[:, 1:] != labels[:, :-1]
    return edge


def _draw_cells(
    ax, ids: np.ndarray, num_embeddings: int, extent, resolution: int, fine_alpha: float = 0.5
) -> None:
    colors = _cell_colors(ids, num_embeddings).reshape(resolution, resolution, 3)
    ax.imshow(colors, origin="lower", extent=extent, alpha=0.45, aspect="auto")
    key = sum(ids[:, i] * num_embeddings ** (ids.shape[1] - 1 - i) for i in range(ids.shape[1]))
    fine = _boundaries(key.reshape(resolution, resolution))
    coarse = _boundaries(ids[:, 0].reshape(resolution, resolution))
    for edge, alpha in ((fine, fine_alpha), (coarse, 1.0)):
        rgba = np.zeros((resolution, resolution, 4))
        rgba[edge, 3] = alpha
        ax.imshow(rgba, origin="lower", extent=extent, aspect="auto", interpolation="nearest")


def residual_cells(
    points, codebooks: Sequence, resolution: int = 300, title: str = "", margin: float = 0.08
) -> Figure:
    """How a residual quantizer cuts the plane, coarse to fine, for 2-D ``points``.

    ``codebooks`` is a list of ``(K, 2)`` arrays, one per level. Panel 1: level 1's nearest-code
    (Voronoi) cells with the points and the codes. Panel 2 (with two levels or more): what level 2
    sees, the residuals ``r1 = z - e1`` of all points around 0, and level 2's cells. Then one panel
    per depth ``l``: the plane coloured by the first ``l`` codes of the ID (hue: level-1 code,
    shade: finer codes), level-1 borders in black, and the reconstructions ``e1 + ... + el``.
    """
    pts = np.asarray(torch.as_tensor(points, dtype=torch.float64))
    books = [np.asarray(torch.as_tensor(c, dtype=torch.float64).detach()) for c in codebooks]
    k, levels = len(books[0]), len(books)
    grid, extent = _grid(pts, books, resolution, margin)
    point_ids, _ = _residual_ids(pts, books)
    panels = 1 + (levels >= 2) + (levels - 1)
    fig, axes = plt.subplots(1, panels, figsize=(4.6 * panels, 4.6), squeeze=False)
    axes = list(axes[0])

    ax = axes.pop(0)  # level 1: plain Voronoi cells
    _draw_cells(ax, _residual_ids(grid, books[:1])[0], k, extent, resolution)
    ax.scatter(*pts.T, s=6, c=_cell_colors(point_ids[:, :1], k), edgecolors="none", label="points")
    ax.scatter(*books[0].T, marker="X", s=90, c="k", edgecolors="w", label=f"level-1 codes ({k})")
    ax.set(
        xlabel="$z_1$",
        ylabel="$z_2$",
        title=f"level 1: {k} cells",
        xlim=extent[:2],
        ylim=extent[2:],
    )
    ax.legend(fontsize=8, loc="upper left")

    if levels >= 2:  # level 2 works on the residuals, which all sit around 0
        ax = axes.pop(0)
        _, q1 = _residual_ids(pts, books[:1])
        res = pts - q1
        rgrid, rextent = _grid(res, books[1:2], resolution, margin)
        _draw_cells(ax, _residual_ids(rgrid, books[1:2])[0], k, rextent, resolution)
        ax.scatter(*res.T, s=6, c="0.25", edgecolors="none", label="residuals $r_1 = z - e_1$")
        ax.scatter(*books[1].T, marker="X", s=90, c="k", edgecolors="w", label="level-2 codes")
        ax.axhline(0, color="0.5", lw=0.5)
        ax.axvline(0, color="0.5", lw=0.5)
        ax.set(
            xlabel="$r_1$, first coordinate",
            ylabel="$r_1$, second coordinate",
            title="level 2 quantizes the residuals",
        )
        ax.legend(fontsize=8, loc="upper left")

    for depth in range(2, levels + 1):  # the partition by the first `depth` codes
        ax = axes.pop(0)
        ids, _ = _residual_ids(grid, books[:depth])
        cells = len(np.unique(ids, axis=0))  # cells on the grid: many borders are drawn lighter
        _draw_cells(ax, ids, k, extent, resolution, fine_alpha=0.5 if cells <= 60 else 0.2)
        _, recon = _residual_ids(pts, books[:depth])
        centres = np.unique(recon, axis=0)
        ax.scatter(*pts.T, s=4, c="0.35", edgecolors="none", label="points")
        ax.scatter(
            *centres.T,
            marker=".",
            s=float(np.clip(1600 / len(centres), 2, 40)),  # many reconstructions: smaller dots
            c="k",
            label=f"reconstructions $e_1+\\dots+e_{depth}$ ({len(centres)} used)",
        )
        ax.set(
            xlabel="$z_1$",
            ylabel="$z_2$",
            title=f"levels 1-{depth}: up to {k}$^{depth}$ = {k**depth} cells",
            xlim=extent[:2],
            ylim=extent[2:],
        )
        ax.legend(fontsize=8, loc="upper left")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def codebook_runs(
    points, runs: Mapping[str, tuple], resolution: int = 250, margin: float = 0.08
) -> Figure:
    """One panel per run: a single codebook's Voronoi cells over 2-D ``points``.

    ``runs`` maps a name to ``(codebook (K, 2), codes (N,))``, the codes being each point's
    nearest code. Used codes are black crosses, dead codes (no point) white circles.
    """
    pts = np.asarray(torch.as_tensor(points, dtype=torch.float64))
    books = {
        n: np.asarray(torch.as_tensor(c, dtype=torch.float64).detach())
        for n, (c, _) in runs.items()
    }
    cloud = np.concatenate([pts, *books.values()])
    grid, extent = _grid(cloud, [], resolution, margin)
    fig, axes = plt.subplots(1, len(runs), figsize=(4.3 * len(runs), 4.3), squeeze=False)
    for ax, (name, (_, codes)) in zip(axes[0], runs.items(), strict=True):
        book = books[name]
        k = len(book)
        codes = np.asarray(torch.as_tensor(codes))
        used = np.bincount(codes, minlength=k) > 0
        _draw_cells(ax, _residual_ids(grid, [book])[0], k, extent, resolution)
        ax.scatter(
            *pts.T, s=5, c=_cell_colors(codes[:, None], k), edgecolors="none", label="points"
        )
        ax.scatter(
            *book[used].T,
            marker="X",
            s=80,
            c="k",
            edgecolors="w",
            label=f"used codes ({used.sum()})",
        )
        ax.scatter(
            *book[~used].T,
            marker="o",
            s=40,
            facecolors="white",
            edgecolors="black",  # black on white: no cell colour has it
            label=f"dead codes ({(~used).sum()})",
        )
        ax.set(xlabel="$z_1$", ylabel="$z_2$", title=name, xlim=extent[:2], ylim=extent[2:])
        ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    return fig


def toy_losses(history: Mapping[str, Sequence[float]]) -> Figure:
    """Training losses of the toy quantizer, one curve per named series, against the step."""
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    for name, values in history.items():
        ax.plot(np.arange(1, len(values) + 1), values, label=name)
    ax.set_yscale("log")
    ax.set(xlabel="step", ylabel="loss (log scale)", title="training the toy quantizer")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def encoder_runs(
    runs: Mapping[str, Mapping[float, Sequence[Mapping[str, Sequence[float]]]]],
    num_embeddings: int,
    metrics: Sequence[str] = ("latent norm", "quantization error", "codes used"),
) -> Figure:
    """The toy with an encoder (notebook 02): one row per codebook upkeep, one column per metric.

    ``runs[upkeep][beta]`` is a list of per-seed histories, each mapping a metric name to its
    value at every step. One colour per commitment weight beta (a sequential palette: beta is
    ordered), one thin line per seed; the y axis of "quantization error" is logarithmic and
    "codes used" has a line at ``num_embeddings``.
    """
    rows, cols = len(runs), len(metrics)
    fig, axes = plt.subplots(
        rows, cols, figsize=(4.4 * cols, 2.9 * rows), squeeze=False, sharex=True
    )
    for i, (upkeep, by_beta) in enumerate(runs.items()):
        colors = plt.cm.plasma(np.linspace(0.05, 0.8, len(by_beta)))
        for j, metric in enumerate(metrics):
            ax = axes[i, j]
            for color, (beta, histories) in zip(colors, by_beta.items(), strict=True):
                for s, history in enumerate(histories):
                    values = np.asarray(history[metric], dtype=float)
                    label = f"$\\beta$ = {beta:g}" if s == 0 else None
                    ax.plot(np.arange(1, len(values) + 1), values, color=color, lw=1.1, label=label)
            if metric == "quantization error":
                ax.set_yscale("log")
            if metric == "codes used":
                ax.axhline(num_embeddings, color="0.5", ls=":", lw=1)
                ax.set_ylim(0, num_embeddings + 1)
            ax.set(title=f"{upkeep}: {metric}", xlabel="step", ylabel=metric)
        axes[i, 0].legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    return fig


def early_usage(history: Sequence[dict], num_embeddings: int, last_epoch: int = 20) -> Figure:
    """One run's first ``last_epoch`` epochs, linear axes: codes used per level (left) and
    perplexity per level (right), each with a line at ``num_embeddings``."""
    df, levels = _history_frame(history)
    df = df[df["epoch"] + 1 <= last_epoch]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.9))
    for lv in levels:
        color = LEVEL_COLORS[(lv - 1) % len(LEVEL_COLORS)]
        x = df["epoch"] + 1
        ax1.plot(
            x, df[f"usage_l{lv}"] * num_embeddings, "o-", ms=3, color=color, label=f"level {lv}"
        )
        ax2.plot(x, df[f"perplexity_l{lv}"], "o-", ms=3, color=color, label=f"level {lv}")
    _uniform_line(ax1, num_embeddings, f"all {num_embeddings} codes")
    _uniform_line(ax2, num_embeddings, f"{num_embeddings}: every code equally used")
    ax1.set(
        xlabel="epoch",
        ylabel=f"codes used (of {num_embeddings})",
        title="codes used, first epochs",
    )
    ax2.set(xlabel="epoch", ylabel="perplexity (effective codes)", title="perplexity, first epochs")
    for ax in (ax1, ax2):
        ax.set(xlim=(0.5, last_epoch + 0.5), ylim=(0, num_embeddings * 1.1))
        ax.set_xticks(range(1, last_epoch + 1, 2 if last_epoch > 10 else 1))
        ax.legend(fontsize=8, loc="lower right")
    fig.suptitle(f"the default model's first {last_epoch} epochs")
    fig.tight_layout()
    return fig


def runs_by_level(
    runs: Mapping[str, Sequence[dict]],
    num_embeddings: int,
    title: str = "",
    colors: Mapping[str, Any] | None = None,
) -> Figure:
    """Several training runs compared level by level, linear axes, epoch 1 onwards.

    Top row: codes used per level; bottom row: perplexity per level; one curve per run, a line
    at ``num_embeddings`` in every panel. Epochs are on a log scale so that the first epochs stay
    visible; the y axes are linear. The legend sits below the panels, off the data. ``colors``
    maps a run's name to its colour, so that one run keeps its colour from figure to figure.
    """
    frames = {name: _history_frame(h) for name, h in runs.items()}
    levels = next(iter(frames.values()))[1]
    last = max(int(df["epoch"].max()) + 1 for df, _ in frames.values())
    fig, axes = plt.subplots(2, len(levels), figsize=(4.2 * len(levels), 6.4), squeeze=False)
    styles = ("-", "--", "-.", ":", (0, (5, 1)), (0, (1, 1)))
    for i, (name, (df, _)) in enumerate(frames.items()):
        x = df["epoch"] + 1
        for j, lv in enumerate(levels):
            color = (colors or {}).get(name, plt.cm.tab10(i % 10))
            kw = {"color": color, "ls": styles[i % len(styles)], "lw": 1.6}
            axes[0, j].plot(x, df[f"usage_l{lv}"] * num_embeddings, label=name, **kw)
            axes[1, j].plot(x, df[f"perplexity_l{lv}"], label=name, **kw)
    for j, lv in enumerate(levels):
        top, bottom = axes[0, j], axes[1, j]
        _uniform_line(top, num_embeddings, f"all {num_embeddings}")
        _uniform_line(bottom, num_embeddings, f"{num_embeddings} = uniform")
        top.set(ylabel=f"codes used (of {num_embeddings})", title=f"level {lv}: codes used")
        bottom.set(ylabel="perplexity (effective codes)", title=f"level {lv}: perplexity")
        for ax in (top, bottom):
            # log-scaled epochs: the first few epochs, where codes die or come back, stay visible
            _log_epoch_axis(ax, last)
            ax.set_ylim(0, num_embeddings * 1.12)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 4), fontsize=9)
    if title:
        fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.045 * ((len(labels) + 3) // 4) + 0.02, 1, 1))
    return fig


def seed_spread(
    records: Sequence[Mapping],
    models: Sequence[str],
    metrics: Sequence[str],
    colors: Mapping[str, Any] | None = None,
    title: str = "",
) -> Figure:
    """One panel per metric: every seed's value as a dot, the mean ± one standard deviation as a bar.

    ``records`` are seed records with ``model``, ``seed`` and a ``row`` of metrics (see
    ``rqvae_lib.course.ablation``); models are drawn in the order given.
    """
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.3 * len(metrics), 3.9), squeeze=False)
    for ax, metric in zip(axes[0], metrics, strict=True):
        for i, model in enumerate(models):
            values = np.array([r["row"][metric] for r in records if r["model"] == model], float)
            if not len(values):
                continue
            color = (colors or {}).get(model, plt.cm.tab10(i % 10))
            jitter = np.linspace(-0.12, 0.12, len(values)) if len(values) > 1 else np.zeros(1)
            ax.scatter(i + jitter, values, s=14, color=color, alpha=0.7, zorder=3)
            sd = values.std(ddof=1) if len(values) > 1 else 0.0
            ax.errorbar(
                i, values.mean(), yerr=sd, fmt="_", ms=18, mew=2, capsize=5, color=color, zorder=4
            )
        ax.set_xticks(range(len(models)))
        ax.set_xticklabels(models, rotation=40, ha="right", fontsize=8)
        ax.set(title=metric, ylabel=metric, xlabel="model")
        ax.grid(axis="y", alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
