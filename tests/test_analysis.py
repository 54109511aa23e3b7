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

from rqvae_lib import analysis, plots  # noqa: E402
from rqvae_lib.data import SyntheticDataModule, make_synthetic_catalog  # noqa: E402
from rqvae_lib.semantic_ids import add_collision_suffix  # noqa: E402
from rqvae_lib.training import load_or_train, load_run_history, train_model  # noqa: E402
from rqvae_lib.tutorial import strip_notebook  # noqa: E402

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
    x = dm.catalog.features[:64]
    assert torch.equal(model.generate_semantic_ids(x), loaded.generate_semantic_ids(x))
    with pytest.raises(FileNotFoundError):
        load_or_train(tmp_path / "missing")


def test_category_prediction_beats_random_on_true_clusters():
    cat = make_synthetic_catalog(600, 16, (4, 4, 4), seed=1)
    ids = torch.as_tensor(cat.labels)  # a perfect hierarchical ID
    df = analysis.category_prediction(ids, cat.labels[:, 0])
    assert list(df.index) == [1, 2, 3]
    assert df.loc[1, "accuracy"] == 1.0
    assert df["random_ids"].max() < 0.5


def test_prefix_tree_and_shared_prefix():
    ids = torch.tensor([[0, 0, 0], [0, 0, 1], [0, 1, 0], [1, 0, 0]])
    sizes = analysis.prefix_tree_sizes(ids)
    assert sorted(sizes[1].tolist()) == [1, 3] and sorted(sizes[2].tolist()) == [1, 1, 2]
    assert analysis.shared_prefix_length(
        ids, np.array([0, 0, 0]), np.array([1, 2, 3])
    ).tolist() == [2, 1, 0]
    summary = analysis.prefix_tree_summary(ids)
    assert summary.loc[3, "prefixes"] == 4


def test_copurchase_sharing_finds_planted_structure():
    ids = torch.tensor([[i // 10, i % 10, 0] for i in range(100)])
    item_ids = np.arange(1, 101)  # P5 ids start at 1
    seqs = {u: [1 + 10 * (u % 10) + j for j in range(5)] for u in range(50)}  # same depth-1 block
    pairs = analysis.copurchase_pairs(seqs)
    assert pairs.shape == (200, 2)
    df = analysis.copurchase_sharing(ids, item_ids, pairs)
    assert df.loc[1, "co_purchased"] == 1.0 and df.loc[1, "lift"] > 3


def test_neighbours_and_reconstruction_error():
    cat = make_synthetic_catalog(300, 16, (3, 3), seed=2)
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
    figs = [
        plots.loss_curves(result.metrics_csv),
        plots.code_frequencies({"x": ids, "y": ids}, 16),
        plots.usage_over_epochs({"run": result.history}),
        plots.category_bar(cat),
        plots.text_length_hist(["a b c", "d e"] * 5),
        plots.projection_scatter(np.random.default_rng(0).normal(size=(200, 2)), cat),
        plots.prefix_tree_sizes(analysis.prefix_tree_sizes(ids)),
        plots.category_by_depth({"top": pred}),
        plots.prefix_sharing(
            pd.DataFrame({"co_purchased": [0.5, 0.1], "random_pairs": [0.1, 0.01]}, index=[1, 2])
        ),
        plots.shared_depth_hist({"nn": np.array([0, 1, 2]), "random": np.array([0, 0, 1])}, 3),
    ]
    for fig in figs:
        assert isinstance(fig, Figure)
        for ax in fig.axes:
            assert ax.get_xlabel() and ax.get_ylabel()
    path = plots.save_figure(figs[0], "loss")
    assert path.name == "loss.png" and path.stat().st_size > 1000
    assert isinstance(plots.table_figure(pd.DataFrame({"a": [1]})), Figure)


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
