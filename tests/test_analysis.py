"""Unit tests of the notebook helpers (callbacks, training, analysis, plots) on synthetic data."""

from __future__ import annotations

import json

import matplotlib

matplotlib.use("Agg")

import nbformat  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from rqvae_lib.course import analysis, plots  # noqa: E402
from rqvae_lib.data import SyntheticDataModule, make_synthetic_catalogue  # noqa: E402
from rqvae_lib.semantic_ids import add_collision_suffix  # noqa: E402
from rqvae_lib.training import load_or_train, load_run_history, train_model  # noqa: E402
from rqvae_lib.course.tutorial import strip_notebook  # noqa: E402

SMALL = {
    "input_dim": 32,
    "hidden_dim": [64, 32],
    "latent_dim": 8,
    "num_embeddings": 16,
    "num_levels": 3,
    "learning_rate": 3e-3,
}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One small model trained on the synthetic catalogue, saved with load_or_train."""
    tmp = tmp_path_factory.mktemp("run")
    dm = SyntheticDataModule(num_items=1024, dim=32, branching=(4, 4, 4), batch_size=128)
    result = train_model(dm, 3, "test", SMALL, quiet=True, save_dir=tmp / "logs")
    return dm, result, tmp


def test_usage_callback_records_every_epoch(run):
    _, result, _ = run
    assert [h["epoch"] for h in result.history] == [0, 1, 2]
    last = result.history[-1]
    for key in ("usage_l1", "perplexity_l1", "dead_codes_l3", "unique_id_rate", "collision_rate"):
        assert key in last
    assert 0 < last["usage_l1"] <= 1 and last["perplexity_l1"] > 1
    metrics = pd.read_csv(result.metrics_csv)
    assert {"usage_l1", "perplexity_l2", "train_loss", "val_loss"} <= set(metrics.columns)
    assert result.model.training is False


def test_load_or_train_trains_once_then_loads(run, tmp_path):
    dm, _, _ = run
    target = tmp_path / "model"
    model = load_or_train(target, dm, 1, config=SMALL, quiet=True, save_dir=tmp_path / "logs")
    assert (target / "config.json").is_file() and len(load_run_history(target)) == 1
    loaded = load_or_train(target)  # no datamodule needed once saved
    x = dm.synthetic.features[:64]
    assert torch.equal(model.generate_semantic_ids(x), loaded.generate_semantic_ids(x))
    with pytest.raises(FileNotFoundError):
        load_or_train(tmp_path / "missing")


def test_category_prediction_beats_random_on_true_clusters():
    cat = make_synthetic_catalogue(600, 16, (4, 4, 4), seed=1)
    ids = torch.as_tensor(cat.labels)  # a perfect hierarchical ID
    df = analysis.category_prediction(ids, cat.labels[:, 0])
    assert list(df.index) == [1, 2, 3]
    assert (df["accuracy"] == 1.0).all()  # every depth: the other items share the label
    assert df["random_ids"].max() < 0.5
    assert df["majority_label"].max() < 0.5 and (df["items_scored"] == 1.0).all()


def test_category_prediction_leaves_items_alone_under_their_prefix_out():
    # Depth 2: items 0-1 share a prefix (same label), items 2-5 are alone. The old fallback
    # (alone -> the majority label) would have scored the lone items too and pulled the accuracy
    # towards the majority baseline; here they are simply not scored.
    ids = torch.tensor([[0, 0], [0, 0], [0, 1], [0, 2], [1, 3], [1, 4]])
    labels = ["x", "x", "y", "y", "y", "z"]
    df = analysis.category_prediction(ids, labels)
    assert df.loc[2, "items_scored"] == pytest.approx(2 / 6)
    assert df.loc[2, "accuracy"] == 1.0
    assert df.loc[2, "majority_label"] == 0.0  # "y" is the commonest label; the scored are "x"
    # depth 1: every item is scored. In {0,1,2,3} (x, x, y, y) each item's *others* hold more of
    # the other label, and in {4,5} (y, z) each sees only the other: leave-one-out gets all wrong.
    assert df.loc[1, "items_scored"] == 1.0
    assert df.loc[1, "accuracy"] == 0.0


def test_label_spread_counts_prefixes_per_label():
    ids = torch.tensor([[0, 0], [0, 1], [1, 0], [2, 0], [2, 1]])
    spread = analysis.label_spread(ids, ["a", "a", "a", "b", "b"], depth=1)
    assert list(spread.index) == ["a", "b"]
    assert spread.loc["a", "items"] == 3 and spread.loc["a", "prefixes"] == 2
    assert spread.loc["a", "top_prefix_share"] == pytest.approx(2 / 3)
    assert spread.loc["b", "prefixes"] == 1


def test_full_usage_epochs_first_and_from():
    usage = [(0.5, 1.0), (1.0, 0.9), (0.9, 1.0), (1.0, 1.0), (1.0, 1.0)]
    history = [
        {"epoch": e, "usage_l1": a, "usage_l2": b, "usage_l3": 0.5}
        for e, (a, b) in enumerate(usage)
    ]
    df = analysis.full_usage_epochs(history)
    assert df.loc[1, "first_epoch_all_used"] == 2 and df.loc[1, "all_used_from_epoch"] == 4
    assert df.loc[2, "first_epoch_all_used"] == 1 and df.loc[2, "all_used_from_epoch"] == 3
    assert np.isnan(df.loc[3, "first_epoch_all_used"]) and np.isnan(
        df.loc[3, "all_used_from_epoch"]
    )


def test_prefix_tree_and_shared_prefix():
    ids = torch.tensor([[0, 0, 0], [0, 0, 1], [0, 1, 0], [1, 0, 0]])
    sizes = analysis.prefix_tree_sizes(ids)
    assert sorted(sizes[1].tolist()) == [1, 3] and sorted(sizes[2].tolist()) == [1, 1, 2]
    assert analysis.shared_prefix_length(
        ids, np.array([0, 0, 0]), np.array([1, 2, 3])
    ).tolist() == [2, 1, 0]
    summary = analysis.prefix_tree_summary(ids)
    assert summary.loc[3, "prefixes"] == 4


def test_pair_prefix_sharing_finds_planted_structure():
    ids = torch.tensor([[i // 10, i % 10, 0] for i in range(100)])
    item_ids = np.arange(1, 101)  # P5 ids start at 1
    seqs = {u: [1 + 10 * (u % 10) + j for j in range(5)] for u in range(50)}  # same depth-1 block
    pairs = analysis.consecutive_pairs(seqs)
    assert pairs.shape == (200, 2)
    df = analysis.pair_prefix_sharing(ids, item_ids, pairs)
    assert df.loc[1, "pairs"] == 1.0 and df.loc[1, "lift"] > 3


def test_neighbours_and_reconstruction_error():
    cat = make_synthetic_catalogue(300, 16, (3, 3), seed=2)
    ids = torch.as_tensor(cat.labels)
    emb = analysis.embedding_neighbours(cat.features, 0, k=5)
    pre = analysis.prefix_neighbours(ids, cat.features, 0, k=5)
    assert 0 not in emb and 0 not in pre and len(set(pre)) == 5
    table = analysis.neighbour_table(ids, cat.features, [f"item {i}" for i in range(300)], 0, k=3)
    assert table.shape[0] == 3 and (table["id_prefix: shared"] == 2).all()
    near, rand = analysis.neighbour_prefix_depths(ids, cat.features, k=5, sample=50)
    assert near.mean() > rand.mean()
    err = analysis.reconstruction_error(cat.features, cat.features * 0)
    assert err["relative_error"] == pytest.approx(1.0)


def test_plots_return_labelled_figures(run, tmp_path, monkeypatch):
    monkeypatch.setenv("RQVAE_FIGURES", str(tmp_path / "figs"))
    dm, result, _ = run
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


def test_usage_over_epochs_is_linear_with_a_line_at_k_and_early_epochs_visible(run):
    _, result, _ = run
    fig = plots.usage_over_epochs(result.history, 16)
    for ax in fig.axes:
        assert ax.get_yscale() == "linear" and ax.get_ylim()[1] >= 16
        assert ax.get_xscale() == "log" and ax.get_xlim()[0] < 1  # epoch 1 is on the axis
        assert any(np.allclose(line.get_ydata(), 16) for line in ax.get_lines())
        assert any("16" in t.get_text() for t in ax.texts)
        assert ax.get_legend() is not None


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


def test_collision_suffix_makes_ids_unique():
    ids = torch.tensor([[1, 2, 3], [1, 2, 3], [4, 5, 6]])
    assert torch.unique(add_collision_suffix(ids), dim=0).shape[0] == 3


def test_strip_notebook_keeps_outputs_and_counts():
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("print(1)", execution_count=3)
    cell.outputs = [nbformat.v4.new_output("stream", text="1\n")]
    cell.metadata["execution"] = {"iopub.status.busy": "now"}
    nb.cells = [cell]
    nb.metadata["widgets"] = {}
    nb = strip_notebook(nb)
    assert nb.cells[0].execution_count == 3 and nb.cells[0].outputs
    assert "execution" not in nb.cells[0].metadata and "widgets" not in nb.metadata
    assert nb.metadata["kernelspec"]["name"] == "python3"
    json.dumps(nb)  # still plain JSON


def test_tsne_2d_is_seeded_and_reports_progress(capsys):
    x = np.random.default_rng(0).normal(size=(80, 12)).astype(np.float32)
    xy = analysis.tsne_2d(x, seed=3, perplexity=10.0, report_every=500)
    lines = capsys.readouterr().out.splitlines()
    assert xy.shape == (80, 2)
    assert lines and all(line.startswith("t-SNE iteration") for line in lines)
    assert lines[0].startswith("t-SNE iteration 500:")
    np.testing.assert_array_equal(xy, analysis.tsne_2d(x, seed=3, perplexity=10.0, report_every=0))
    assert capsys.readouterr().out == ""
