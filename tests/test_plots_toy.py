"""The 2-D toy figures of notebook 02: each returns a labelled Figure and draws what it says."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from rqvae_lib.course import plots  # noqa: E402
from rqvae_lib.course.plots import _residual_ids  # noqa: E402


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
