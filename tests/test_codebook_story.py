"""Helpers of notebook 04 (codebook usage, one factor at a time): RQ-KMeans fitted on one split,
history tables and the figures, on small synthetic inputs."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from rqvae_lib.course import analysis, plots  # noqa: E402
from rqvae_lib.baselines import rq_kmeans  # noqa: E402


def _history(epochs: int, levels: int = 3, k: int = 16) -> list[dict]:
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


def _check_figure(fig: Figure) -> None:
    assert isinstance(fig, Figure)
    assert fig._suptitle is not None and fig._suptitle.get_text()
    for ax in fig.axes:
        assert ax.get_xlabel() and ax.get_ylabel() and ax.get_title()
        assert [t.get_text() for t in ax.get_yticklabels() if t.get_text()], "y tick labels"


def test_rq_kmeans_fit_encode_matches_the_baseline_on_the_same_items():
    x = torch.randn(300, 8, generator=torch.Generator().manual_seed(0))
    centroids = analysis.rq_kmeans_fit(x, num_levels=2, num_embeddings=8, seed=3)
    assert [c.shape for c in centroids] == [(8, 8), (8, 8)]
    ids, recon = analysis.rq_kmeans_encode(x, centroids)
    base_ids, base_recon = rq_kmeans(x, num_levels=2, num_embeddings=8, seed=3)
    # k-means labels are each point's nearest final centroid: the same IDs, the same sums
    assert torch.equal(ids, base_ids)
    assert torch.allclose(recon, base_recon, atol=1e-5)


def test_rq_kmeans_encode_new_items_and_error_falls_with_depth():
    gen = torch.Generator().manual_seed(1)
    train, test = torch.randn(400, 6, generator=gen), torch.randn(50, 6, generator=gen)
    centroids = analysis.rq_kmeans_fit(train, num_levels=3, num_embeddings=16, seed=0)
    ids, recon = analysis.rq_kmeans_encode(test, centroids)
    assert ids.shape == (50, 3) and ids.dtype == torch.int64 and recon.shape == (50, 6)
    assert int(ids.max()) < 16
    errors = [
        analysis.reconstruction_error(test, analysis.rq_kmeans_encode(test, centroids[:d])[1])[
            "relative_error"
        ]
        for d in (1, 2, 3)
    ]
    assert errors[0] > errors[1] > errors[2]


def test_history_table_reports_codes_and_perplexity_at_chosen_epochs():
    table = analysis.history_table(_history(5), [1, 3, 99], 16)
    assert list(table.index) == [1, 3]  # epochs not in the history are left out
    assert table.loc[1, "codes used L1"] == 1 and table.loc[3, "codes used L2"] == 5
    assert table.loc[3, "perplexity L3"] == pytest.approx(7 * 0.9, abs=0.05)


def test_sorted_code_counts_figure():
    ids = torch.stack([torch.arange(64) % 16, torch.zeros(64, dtype=torch.long)], 1)
    fig = plots.sorted_code_counts(ids, 16, title="counts")
    _check_figure(fig)
    assert len(fig.axes) == 2
    assert "1 of 16 used" in fig.axes[1].get_legend().get_texts()[0].get_text()
    assert any("uniform: 4 items" in t.get_text() for t in fig.axes[0].texts)


def test_early_usage_figure_is_linear_and_zoomed():
    fig = plots.early_usage(_history(30), 16, last_epoch=20)
    _check_figure(fig)
    for ax in fig.axes:
        assert ax.get_yscale() == "linear"
        assert ax.get_xlim()[1] <= 21 and ax.get_ylim()[1] >= 16
        assert ax.get_legend() is not None
        assert any("16" in t.get_text() for t in ax.texts)  # the labelled line at K
        assert all(len(line.get_xdata()) <= 20 for line in ax.get_lines()[:3])


def test_runs_by_level_figure_has_a_legend_off_the_panels():
    fig = plots.runs_by_level({"a": _history(10), "b": _history(10)}, 16, title="runs")
    _check_figure(fig)
    assert len(fig.axes) == 6
    assert all(ax.get_yscale() == "linear" and ax.get_legend() is None for ax in fig.axes)
    assert fig.axes[0].get_xscale() == "log" and fig.axes[0].get_xlim()[0] < 1  # epoch 1 shown
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["a", "b"]
    # the figure legend sits below every panel
    legend_top = fig.legends[0].get_window_extent(fig.canvas.get_renderer()).y1
    assert all(ax.get_window_extent().y0 > legend_top for ax in fig.axes)
    np.testing.assert_allclose(fig.axes[0].get_lines()[0].get_ydata()[:2], [1, 2])
