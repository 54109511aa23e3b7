"""rqvae_lib.course.plots: the lessons' figures, each a labelled Figure that draws what it says."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from helpers import check_figure, usage_history  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from rqvae_lib.course import analysis, plots  # noqa: E402
from rqvae_lib.course.plots import _residual_ids  # noqa: E402


# --- notebook 01 and 05: data and semantic-ID figures --------------------------------------
def test_plots_return_labelled_figures(small_run, tmp_path, monkeypatch):
    monkeypatch.setenv("RQVAE_FIGURES", str(tmp_path / "figs"))
    dm, result, _ = small_run
    ids = torch.randint(0, 16, (200, 3))
    cat = ["a"] * 120 + ["b"] * 80
    pred = analysis.category_prediction(ids, cat)
    sharing = pd.DataFrame(
        {"pairs": [0.5, 0.1], "random_pairs": [0.1, 0.0], "lift": [5.0, np.nan]}, index=[1, 2]
    )
    figs = [
        plots.loss_curves(result.metrics_csv),
        plots.sorted_code_counts(ids, 16),
        plots.usage_over_epochs({"run": result.history}, 16),
        plots.category_bar(cat, what="sub-categories"),
        plots.text_length_hist(["a b c", "d e"] * 5),
        plots.projection_scatter(np.random.default_rng(0).normal(size=(200, 2)), cat),
        plots.prefix_tree_sizes(analysis.prefix_tree_sizes(ids)),
        plots.category_by_depth({"top": pred}),
        plots.prefix_sharing(sharing),
        plots.shared_depth_hist({"nn": np.array([0, 1, 2]), "random": np.array([0, 0, 1])}, 3),
    ]
    for fig in figs:
        assert isinstance(fig, Figure)
        for ax in fig.axes:
            assert ax.get_xlabel() and ax.get_ylabel()
            assert ax.get_title() or fig.get_suptitle()
    assert "sub-categories" in figs[3].axes[0].get_title()
    path = plots.save_figure(figs[0], "loss")
    assert path.name == "loss.png" and path.stat().st_size > 1000
    assert isinstance(plots.table_figure(pd.DataFrame({"a": [1]})), Figure)


def test_category_by_depth_draws_the_majority_baseline_and_coverage():
    ids = torch.tensor([[0, 0], [0, 0], [0, 1], [1, 2]])
    pred = analysis.category_prediction(ids, ["a", "a", "b", "b"])
    fig = plots.category_by_depth({"cat": pred})
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any("commonest label" in t for t in labels) and any("random" in t for t in labels)
    assert "items scored" in ax.get_xticklabels()[1].get_text()
    # the legend sits outside the axes: it hides no data
    renderer = fig.canvas.get_renderer()
    assert ax.get_legend().get_window_extent(renderer).x0 >= ax.get_window_extent(renderer).x1


# --- notebook 02: the 2-D toy figures -------------------------------------------------------
@pytest.fixture
def toy():
    gen = torch.Generator().manual_seed(0)
    points = torch.randn(200, 2, generator=gen) + torch.tensor([3.0, 2.0])
    codebooks = [
        points[:4].clone(),
        0.3 * torch.randn(4, 2, generator=gen),
        0.1 * torch.randn(4, 2),
    ]
    return points, codebooks


def _labelled(fig: Figure) -> list:
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert axes
    for ax in axes:
        assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel()
        assert ax.get_legend() is not None
    return axes


def test_residual_ids_match_a_direct_nearest_code_loop(toy):
    points, codebooks = toy
    ids, recon = _residual_ids(points.numpy(), [c.numpy() for c in codebooks])
    residual, total = points.double(), torch.zeros(200, 2, dtype=torch.float64)
    for level, c in enumerate(codebooks):
        k = torch.cdist(residual, c.double()).argmin(1)
        assert np.array_equal(ids[:, level], k.numpy())
        residual, total = residual - c.double()[k], total + c.double()[k]
    np.testing.assert_allclose(recon, total.numpy())


def test_residual_cells_has_one_panel_per_depth_plus_the_residuals(toy):
    points, codebooks = toy
    fig = plots.residual_cells(points, codebooks, resolution=40, title="toy")
    axes = _labelled(fig)
    assert len(axes) == 4  # level 1, level-2 residuals, depths 2 and 3
    assert "4 cells" in axes[0].get_title()
    assert "64" in axes[3].get_title()
    plt.close(fig)
    fig = plots.residual_cells(points, codebooks[:1], resolution=40)
    assert len(_labelled(fig)) == 1
    plt.close(fig)


def test_codebook_runs_counts_used_and_dead_codes(toy):
    points, codebooks = toy
    far = torch.cat([codebooks[0], torch.tensor([[-50.0, -50.0]])])  # the fifth code wins nothing
    codes = torch.cdist(points, far).argmin(1)
    fig = plots.codebook_runs(points, {"one dead": (far, codes), "none dead": (far[:4], codes)})
    axes = _labelled(fig)
    assert [ax.get_title() for ax in axes] == ["one dead", "none dead"]
    labels = [t.get_text() for t in axes[0].get_legend().get_texts()]
    assert "used codes (4)" in labels and "dead codes (1)" in labels
    labels = [t.get_text() for t in axes[1].get_legend().get_texts()]
    assert "dead codes (0)" in labels
    plt.close(fig)


def test_toy_losses_draws_one_curve_per_series():
    fig = plots.toy_losses({"a": [1.0, 0.5, 0.25], "b": [2.0, 1.0, 0.9]})
    (ax,) = _labelled(fig)
    assert len(ax.get_lines()) == 2 and ax.get_yscale() == "log"
    np.testing.assert_array_equal(ax.get_lines()[0].get_xdata(), [1, 2, 3])
    plt.close(fig)


# --- notebook 04: codebook usage over training ---------------------------------------------
def test_early_usage_figure_is_linear_and_zoomed():
    fig = plots.early_usage(usage_history(30), 16, last_epoch=20)
    check_figure(fig)
    for ax in fig.axes:
        assert ax.get_yscale() == "linear"
        assert ax.get_xlim()[1] <= 21 and ax.get_ylim()[1] >= 16
        assert ax.get_legend() is not None
        assert any("16" in t.get_text() for t in ax.texts)  # the labelled line at K
        assert all(len(line.get_xdata()) <= 20 for line in ax.get_lines()[:3])


def test_runs_by_level_figure_has_a_legend_off_the_panels():
    fig = plots.runs_by_level({"a": usage_history(10), "b": usage_history(10)}, 16, title="runs")
    check_figure(fig)
    assert len(fig.axes) == 6
    assert all(ax.get_yscale() == "linear" and ax.get_legend() is None for ax in fig.axes)
    assert fig.axes[0].get_xscale() == "log" and fig.axes[0].get_xlim()[0] < 1  # epoch 1 shown
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["a", "b"]
    # the figure legend sits below every panel
    legend_top = fig.legends[0].get_window_extent(fig.canvas.get_renderer()).y1
    assert all(ax.get_window_extent().y0 > legend_top for ax in fig.axes)
    np.testing.assert_allclose(fig.axes[0].get_lines()[0].get_ydata()[:2], [1, 2])
