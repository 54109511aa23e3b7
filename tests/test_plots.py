"""rqvae_lib.plots: the library's figures (sorted code counts, usage over epochs)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from helpers import check_figure  # noqa: E402

from rqvae_lib import plots  # noqa: E402


def test_sorted_code_counts_figure():
    ids = torch.stack([torch.arange(64) % 16, torch.zeros(64, dtype=torch.long)], 1)
    fig = plots.sorted_code_counts(ids, 16, title="counts")
    check_figure(fig)
    assert len(fig.axes) == 1  # every level on one shared axis
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert legend == ["level 1: 16 of 16 codes used", "level 2: 1 of 16 codes used"]
    assert any("uniform: 4 items" in t.get_text() for t in fig.axes[0].texts)
    # a step line per level: the most used code of level 2 holds all 64 items, level 1 4 each
    lines = [line for line in fig.axes[0].lines if line.get_label().startswith("level")]
    assert [max(line.get_ydata()) for line in lines] == [4, 64]


def test_usage_over_epochs_is_linear_with_a_line_at_k_and_early_epochs_visible(small_run):
    _, result, _ = small_run
    fig = plots.usage_over_epochs(result.history, 16)
    for ax in fig.axes:
        assert ax.get_yscale() == "linear" and ax.get_ylim()[1] >= 16
        assert ax.get_xscale() == "log" and ax.get_xlim()[0] < 1  # epoch 1 is on the axis
        assert any(np.allclose(line.get_ydata(), 16) for line in ax.get_lines())
        assert any("16" in t.get_text() for t in ax.texts)
        assert ax.get_legend() is not None


def test_metric_bars_draw_each_rows_error_bar_by_its_label():
    import pandas as pd
    from matplotlib.container import BarContainer

    # Means and standard errors indexed by model name; the bars in the order of the means' rows.
    means = pd.DataFrame({"recall@10": [0.25, 0.5]}, index=pd.Index(["a", "b"], name="model"))
    errors = pd.DataFrame({"recall@10": [0.01, 0.03]}, index=pd.Index(["a", "b"], name="model"))
    fig = plots.metric_bars(means.iloc[::-1], ["recall@10"], errors=errors)
    (bars,) = [c for c in fig.axes[0].containers if isinstance(c, BarContainer)]
    assert [b.get_height() for b in bars] == [0.5, 0.25]
    assert bars.errorbar is not None  # drawn, in the bars' order (b first)
    segments = bars.errorbar.lines[2][0].get_segments()
    assert [round(float(s[1][1] - s[0][1]), 6) for s in segments] == [0.06, 0.02]
    plain = plots.metric_bars(means, ["recall@10"])
    (bars,) = [c for c in plain.axes[0].containers if isinstance(c, BarContainer)]
    assert bars.errorbar is None


def test_retrieval_curves_plot_each_records_losses_and_validated_epochs():
    records = [
        {"name": "a", "train_losses": [3.0, 2.0, 1.5], "val_epochs": [2, 3],
         "val": [{"recall@10": [0.1, 0.01]}, {"recall@10": [0.3, 0.02]}]},
        {"name": "b", "label": "B (label)", "train_losses": [2.5], "val_epochs": [1],
         "val": [{"recall@10": [0.2, 0.01], "ndcg@10": [0.1, 0.01]}]},
    ]  # fmt: skip
    fig = plots.retrieval_curves(records, title="curves")
    check_figure(fig)
    losses, recall = fig.axes
    assert [list(line.get_xdata()) for line in losses.get_lines()] == [[1, 2, 3], [1]]
    assert [list(line.get_ydata()) for line in losses.get_lines()] == [[3.0, 2.0, 1.5], [2.5]]
    assert [list(line.get_xdata()) for line in recall.get_lines()] == [[2, 3], [1]]
    assert [list(line.get_ydata()) for line in recall.get_lines()] == [[0.1, 0.3], [0.2]]
    assert [t.get_text() for t in recall.get_legend().get_texts()] == ["a", "B (label)"]
    assert "recall@10" in recall.get_ylabel()


def test_loss_curves_take_a_colour_per_metric_and_default_the_rest():
    import matplotlib.colors as mcolors
    import pandas as pd

    metrics = pd.DataFrame(
        {
            "epoch": [0, 1],
            "train_loss": [1.0, 0.5],
            "val_loss": [1.1, 0.6],
            "train_recon_loss": [0.5, 0.2],
            "val_recon_loss": [0.6, 0.3],
        }
    )
    fig = plots.loss_curves(metrics, colors={"train_loss": "tab:purple", "val_recon_loss": "k"})
    lines = [line for ax in fig.axes for line in ax.lines]
    colour = {line.get_label(): mcolors.to_hex(line.get_color()) for line in lines}
    assert colour["train_loss"] == mcolors.to_hex("tab:purple")
    assert colour["val_recon_loss"] == mcolors.to_hex("k")
    assert colour["val_loss"] not in (colour["train_loss"], colour["val_recon_loss"])


def test_loss_curves_give_the_alignment_term_its_own_panel_with_chance():
    import math

    import pandas as pd

    metrics = pd.DataFrame({"epoch": [0, 1], "train_loss": [1.0, 0.5],
                            "train_recon_loss": [0.5, 0.2], "train_align_loss": [6.9, 5.0]})  # fmt: skip
    fig = plots.loss_curves(metrics, align_chance=math.log(1024))
    assert len(fig.axes) == 3
    third = fig.axes[2]
    assert [line.get_label() for line in third.lines] == [
        "train_align_loss",
        "chance: log(items in batch)",
    ]
    assert list(third.lines[0].get_ydata()) == [6.9, 5.0]
    assert third.lines[1].get_ydata()[0] == math.log(1024)
    assert len(plots.loss_curves(metrics.drop(columns="train_align_loss")).axes) == 2
