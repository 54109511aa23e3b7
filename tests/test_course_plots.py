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
from matplotlib.container import ErrorbarContainer  # noqa: E402
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


def test_prefix_sharing_draws_intervals_and_takes_colours():
    ids = torch.randint(0, 4, (40, 3), generator=torch.Generator().manual_seed(0))
    pairs = np.random.default_rng(0).integers(1, 41, size=(400, 2))
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    df = analysis.pair_prefix_sharing(ids, np.arange(1, 41), pairs, exact=True)
    fig = plots.prefix_sharing(df, colors=["#8c510a", "#999999"], random_label="random (exact)")
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "random (exact)" in labels and any("95% interval" in t for t in labels)
    assert any(isinstance(c, ErrorbarContainer) for c in ax.containers)  # pairs: error bars
    assert ax.patches[0].get_facecolor()[:3] == pytest.approx(matplotlib.colors.to_rgb("#8c510a"))
    assert "(" in ax.get_xticklabels()[0].get_text()  # the lift's interval under the depth
    for fig in (
        plots.prefix_tree_sizes(analysis.prefix_tree_sizes(ids), colors=["r", "g", "b"]),
        plots.category_by_depth(
            {"c": analysis.category_prediction(ids, ["a", "b"] * 20)}, colors=["k"]
        ),
        plots.shared_depth_hist({"a": np.array([0, 1]), "b": np.array([0, 0])}, 3, ["r", "k"]),
    ):
        assert isinstance(fig, Figure)
    plt.close("all")


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


def test_data_figures_take_a_colour():
    fig = plots.category_bar(["a", "a", "b"], color="teal")
    teal = matplotlib.colors.to_rgb("teal")
    assert all(np.allclose(p.get_facecolor()[:3], teal) for p in fig.axes[0].patches)
    plt.close(fig)
    fig = plots.text_length_hist(["a b c", "d e"] * 5, color="slategrey")
    grey = matplotlib.colors.to_rgb("slategrey")
    assert np.allclose(fig.axes[0].patches[0].get_facecolor()[:3], grey)
    plt.close(fig)


@pytest.mark.parametrize("k", [6, 12, 24, 48])
def test_cell_colours_differ_for_every_code(k):
    from rqvae_lib.course.plots import _cell_colors

    colors = _cell_colors(np.arange(k)[:, None], k)
    assert len(np.unique(colors.round(4), axis=0)) == k  # no two codes share a colour
    np.testing.assert_allclose(colors[: min(k, 10)], np.asarray(plt.cm.tab10.colors)[: min(k, 10)])


def test_dead_codes_are_drawn_in_a_colour_no_cell_has(toy):
    points, codebooks = toy
    far = torch.cat([codebooks[0], torch.tensor([[-50.0, -50.0]])])
    codes = torch.cdist(points, far).argmin(1)
    fig = plots.codebook_runs(points, {"one dead": (far, codes)})
    dead = [c for c in fig.axes[0].collections if "dead" in str(c.get_label())][0]
    np.testing.assert_allclose(dead.get_edgecolor()[0][:3], [0, 0, 0])
    np.testing.assert_allclose(dead.get_facecolor()[0][:3], [1, 1, 1])
    plt.close(fig)


def test_encoder_runs_has_a_row_per_upkeep_and_a_line_per_seed():
    history = {"latent norm": [1.0, 2.0], "quantization error": [0.5, 0.1], "codes used": [6, 4]}
    runs = {
        "k-means only": {0.0: [history, history], 2.0: [history]},
        "restarts": {0.0: [history], 2.0: [history]},
    }
    fig = plots.encoder_runs(runs, 6)
    axes = fig.axes
    assert all(ax.get_title() and ax.get_xlabel() and ax.get_ylabel() for ax in axes)
    assert len(axes) == 6 and axes[1].get_yscale() == "log"
    assert len(axes[0].get_lines()) == 3  # two seeds at beta 0, one at beta 2
    legend = [t.get_text() for t in axes[0].get_legend().get_texts()]
    assert legend == ["$\\beta$ = 0", "$\\beta$ = 2"]
    lines = axes[0].get_lines()
    assert not np.allclose(lines[0].get_color(), lines[2].get_color())  # one colour per beta
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


def test_runs_by_level_keeps_a_run_s_colour_from_figure_to_figure():
    colors = {"a": "tab:red", "b": "tab:green"}
    one = plots.runs_by_level({"a": usage_history(5), "b": usage_history(5)}, 16, "x", colors)
    two = plots.runs_by_level({"b": usage_history(5)}, 16, "y", colors)
    first = {line.get_label(): line.get_color() for line in one.axes[0].get_lines()}
    assert first["a"] == "tab:red" and first["b"] == "tab:green"
    assert two.axes[0].get_lines()[0].get_color() == "tab:green"


def test_seed_spread_draws_every_seed_and_the_mean_with_its_standard_deviation():
    records = [
        {"model": m, "seed": s, "row": {"rel. error": v, "unique IDs": 10 * v}}
        for m, vals in {"a": (1.0, 2.0, 3.0), "b": (5.0, 5.0, 5.0)}.items()
        for s, v in zip((42, 1, 2), vals, strict=True)
    ]
    fig = plots.seed_spread(records, ["a", "b"], ["rel. error", "unique IDs"], title="seeds")
    check_figure(fig)
    ax = fig.axes[0]
    dots = [c for c in ax.collections if c.get_offsets().shape[0] == 3]
    assert sorted(dots[0].get_offsets()[:, 1]) == [1.0, 2.0, 3.0]
    bars = ax.containers  # one error bar per model: the mean, ± one standard deviation
    assert [float(b.lines[0].get_ydata()[0]) for b in bars] == [2.0, 5.0]
    spans = [float(np.ptp(b.lines[2][0].get_segments()[0][:, 1])) for b in bars]
    assert spans == pytest.approx([2.0, 0.0])
