"""rqvae_lib.plots: the library's figures (sorted code counts, usage over epochs)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from helpers import check_figure, train_small_run  # noqa: E402

from rqvae_lib import plots  # noqa: E402


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One small model trained on the synthetic catalogue by train_model."""
    tmp = tmp_path_factory.mktemp("run")
    dm, result = train_small_run(tmp)
    return dm, result, tmp


def test_sorted_code_counts_figure():
    ids = torch.stack([torch.arange(64) % 16, torch.zeros(64, dtype=torch.long)], 1)
    fig = plots.sorted_code_counts(ids, 16, title="counts")
    check_figure(fig)
    assert len(fig.axes) == 2
    assert "1 of 16 used" in fig.axes[1].get_legend().get_texts()[0].get_text()
    assert any("uniform: 4 items" in t.get_text() for t in fig.axes[0].texts)


def test_usage_over_epochs_is_linear_with_a_line_at_k_and_early_epochs_visible(run):
    _, result, _ = run
    fig = plots.usage_over_epochs(result.history, 16)
    for ax in fig.axes:
        assert ax.get_yscale() == "linear" and ax.get_ylim()[1] >= 16
        assert ax.get_xscale() == "log" and ax.get_xlim()[0] < 1  # epoch 1 is on the axis
        assert any(np.allclose(line.get_ydata(), 16) for line in ax.get_lines())
        assert any("16" in t.get_text() for t in ax.texts)
        assert ax.get_legend() is not None
