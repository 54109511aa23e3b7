"""rqvae_lib.retrieval.id_tables: the seeded ID tables, their shared fits, balanced last levels,
new items joining without moving a known ID, their measures and their cache."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from retrieval_helpers import TINY_CONFIG, catalogue

from rqvae_lib import baselines, training
from rqvae_lib.evaluate import codebook_stats
from rqvae_lib.model import RqVae
from rqvae_lib.retrieval import cold_start_split, known_item_mask
from rqvae_lib.retrieval import id_tables as it
from rqvae_lib.semantic_ids import deduplicate

pytestmark = pytest.mark.usefixtures("one_thread")


def spy_fits(monkeypatch) -> dict[str, list]:
    """Count the RQ-VAE trainings (their datamodules) and RQ-KMeans fits (rows and centroids)."""
    seen: dict[str, list] = {"train_model": [], "rq_kmeans_fit": [], "centroids": []}
    real_train, real_fit = training.train_model, baselines.rq_kmeans_fit

    def train_spy(datamodule, *args, **kwargs):
        seen["train_model"].append(datamodule)
        return real_train(datamodule, *args, **kwargs)

    def fit_spy(x, *args, **kwargs):
        seen["rq_kmeans_fit"].append(torch.as_tensor(x))
        seen["centroids"].append(real_fit(x, *args, **kwargs))
        return seen["centroids"][-1]

    monkeypatch.setattr(training, "train_model", train_spy)
    monkeypatch.setattr(baselines, "rq_kmeans_fit", fit_spy)
    return seen


def full_prefixes_only(ids: torch.Tensor, codes: int) -> bool:
    """Whether every item sharing its whole ID sits in a prefix that uses all ``codes`` last codes."""
    rows = [tuple(r) for r in ids.tolist()]
    for row in rows:
        if rows.count(row) > 1:
            last = {r[-1] for r in rows if r[:-1] == row[:-1]}
            if len(last) < codes:
                return False
    return True


def test_every_table_shares_its_quantizer_fit_and_is_measured(fixture_root, tmp_path, monkeypatch):
    """All five tables for every item; each quantizer fitted once, its two tables one level apart."""
    features, item_ids = catalogue(fixture_root)
    seen = spy_fits(monkeypatch)
    model_dir = tmp_path / "rqvae"
    tables = it.fit_id_tables(
        it.ID_TABLES, features, item_ids, seed=0, rqvae_epochs=2, model_dir=model_dir,
        config=TINY_CONFIG,
    )  # fmt: skip
    assert list(tables) == list(it.ID_TABLES)
    assert len(seen["train_model"]) == 1 and len(seen["rq_kmeans_fit"]) == 1
    for table in tables.values():
        assert table.ids.shape == (30, 2) and table.ids.dtype == torch.long
        assert 0 <= table.ids.min() and table.ids.max() < 8
        assert torch.equal(table.item_ids, item_ids.long())
        stats = codebook_stats(table.ids, 8)
        assert table.measures["perplexity"] == stats["perplexity"]
        assert table.measures["collision_rate"] == stats["collision_rate"]
        assert table.measures == it.table_measures(table.ids, 8, table.measures["relative_error"])
    for balanced, plain in (("rqvae", "rqvae-plain"), ("rq-kmeans-balanced", "rq-kmeans")):
        assert balanced in it.BALANCED_TABLES and plain not in it.BALANCED_TABLES
        b, p = tables[balanced], tables[plain]
        assert torch.equal(b.ids[:, 0], p.ids[:, 0])  # only the last level differs
        assert (b.ids != p.ids).any()  # here some items shared a whole ID and were told apart
        assert b.measures["collision_rate"] <= p.measures["collision_rate"]
        assert b.measures["relative_error"] == p.measures["relative_error"] > 0
        assert full_prefixes_only(b.ids, 8)  # collisions stay only where no code is left
    # the balanced last levels are deduplicate() of the nearest codes, under each quantizer
    model = RqVae.from_pretrained(model_dir).eval()
    with torch.no_grad():
        z = model.encode(features)
        assert torch.equal(tables["rqvae-plain"].ids, model.latents_to_ids(z))
        assert torch.equal(
            tables["rqvae"].ids, deduplicate(model.quantizer, z, model.latents_to_ids(z))
        )
        rq = it.kmeans_quantizer(seen["centroids"][0]).eval()
        assert torch.equal(
            tables["rq-kmeans-balanced"].ids, deduplicate(rq, features, tables["rq-kmeans"].ids)
        )
    assert math.isnan(tables["random"].measures["relative_error"])
    g = torch.Generator().manual_seed(0)
    assert torch.equal(tables["random"].ids, torch.randint(0, 8, (30, 2), generator=g))


def test_the_kmeans_quantizer_looks_up_rq_kmeans_codes() -> None:
    """The quantizer built from RQ-KMeans' centroids picks exactly rq_kmeans_encode's codes."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 6)).astype(np.float32)
    centroids = baselines.rq_kmeans_fit(x, 3, 8, 0)
    rq = it.kmeans_quantizer(centroids).eval()
    assert (rq.num_levels, rq.num_embeddings, rq.embedding_dim) == (3, 8, 6)
    queries = torch.from_numpy(rng.normal(size=(500, 6)).astype(np.float32))
    ids, recon = baselines.rq_kmeans_encode(queries, centroids)
    with torch.no_grad():
        out = rq(queries)
        assert torch.equal(out.encoding_indices, ids)
        assert torch.allclose(rq.decode_ids(ids), recon, atol=1e-5)
    assert all(level.is_initialized for level in rq.levels)  # no k-means on a first batch


def test_new_items_never_move_a_known_id(fixture_root, tmp_path, monkeypatch) -> None:
    """Known items' IDs are the tables of the known items alone; new items only join."""
    features, item_ids = catalogue(fixture_root)
    new_items = sorted(item_ids.tolist())[::4]  # 8 new items, spread over the catalogue
    known = torch.as_tensor(known_item_mask(item_ids.numpy(), new_items))
    seen = spy_fits(monkeypatch)
    options = dict(rqvae_epochs=2, model_dir=tmp_path / "rqvae", config=TINY_CONFIG)
    names = ["rqvae", "rqvae-plain", "rq-kmeans-balanced", "rq-kmeans"]
    cold = it.fit_id_tables(names, features, item_ids, 0, new_items, **options)
    alone = it.fit_id_tables(names, features[known], item_ids[known], 0, (), **options)
    assert len(seen["train_model"]) == 1  # the second fit reloads the same RQ-VAE
    assert torch.equal(seen["rq_kmeans_fit"][0], seen["rq_kmeans_fit"][1])  # the same rows
    for name in names:
        assert torch.equal(cold[name].ids[known], alone[name].ids)
        assert torch.equal(cold[name].item_ids[known], alone[name].item_ids)
    for balanced, plain in (("rqvae", "rqvae-plain"), ("rq-kmeans-balanced", "rq-kmeans")):
        assert torch.equal(cold[balanced].ids[:, 0], cold[plain].ids[:, 0])
        assert (cold[balanced].ids != cold[plain].ids)[~known].any()  # some new items moved
        assert full_prefixes_only(cold[balanced].ids, 8)  # a new item takes a free code
    # the measures are those of the whole table, new items included
    assert (
        cold["rqvae"].measures["perplexity"] == codebook_stats(cold["rqvae"].ids, 8)["perplexity"]
    )


@pytest.mark.parametrize("table", ["rqvae", "rq-kmeans"])
def test_the_table_is_fitted_on_known_items_only_and_covers_every_item(
    fixture_root, tmp_path, monkeypatch, table
) -> None:
    """No row a fit sees is a new item's; the cache holds the new items and refuses others."""
    features, item_ids = catalogue(fixture_root)
    cold = cold_start_split({}, item_ids.tolist(), fraction=0.2, seed=3)
    new_rows = features[torch.as_tensor(~known_item_mask(item_ids.numpy(), cold.new_items))]
    seen = spy_fits(monkeypatch)
    directory = tmp_path / "tables"
    options = dict(root=fixture_root, directory=directory, config=TINY_CONFIG)
    ids, ids_items, _ = it.seeded_id_tables(
        "tiny", [table], 0, cold.new_items, cold.seed, rqvae_epochs=2, **options
    )[table]
    rows = seen["rq_kmeans_fit"] + [
        dm.dataset(s).features
        for dm in seen["train_model"]
        for s in ("train", "val", "test", "all")
    ]
    assert len(seen["train_model"]) == (table == "rqvae")  # one fit, of this table's kind
    assert len(seen["rq_kmeans_fit"]) == (table == "rq-kmeans")
    for x in rows:  # no row the fit saw is a new item's embedding
        assert len(x) and torch.cdist(x.double(), new_rows.double()).min() > 1e-6
    assert ids.shape == (30, 2) and torch.equal(ids_items, item_ids)  # every item, new ones too
    assert 0 <= ids.min() and ids.max() < 8
    path = directory / f"seeded-ids-tiny-{table}-seed0-new6-split3.safetensors"
    assert path.is_file()
    again = it.seeded_id_tables("tiny", [table], 0, cold.new_items, cold.seed, **options)[table]
    assert len(seen["train_model"]) + len(seen["rq_kmeans_fit"]) == 1  # read from the cache
    assert torch.equal(again.ids, ids)
    other = sorted(item_ids.tolist())[:6]
    with pytest.raises(ValueError, match="other new items"):
        it.seeded_id_tables("tiny", [table], 0, other, cold.seed, **options)
    if table == "rqvae":  # the known items' IDs are the balanced table of the known items alone
        model = RqVae.from_pretrained(directory / "seeded-rqvae-tiny-seed0-new6-split3").eval()
        known = torch.as_tensor(known_item_mask(item_ids.numpy(), cold.new_items))
        with torch.no_grad():
            alone = model.latents_to_ids(model.encode(features[known]), deduplicate=True)
        assert torch.equal(ids[known], alone)


def test_random_ids_and_bad_arguments() -> None:
    """Random IDs are drawn from the seed alone; bad tables and new items are refused."""
    features, item_ids = torch.randn(10, 4), torch.arange(1, 11)
    config = dict(TINY_CONFIG, input_dim=4)
    table = it.fit_id_tables(["random"], features, item_ids, 5, {3}, config=config)["random"]
    g = torch.Generator().manual_seed(5)
    assert torch.equal(table.ids, torch.randint(0, 8, (10, 2), generator=g))
    assert torch.equal(table.item_ids, item_ids)
    warm = it.fit_id_tables(["random"], features, item_ids, 5, (), config=config)["random"]
    assert torch.equal(warm.ids, table.ids)  # no new items: the warm table, the same draw
    for tables in (["kmeans"], [], ["random", "rqvae-balanced"]):
        with pytest.raises(ValueError, match="tables"):
            it.fit_id_tables(tables, features, item_ids, 0, config=config)
    with pytest.raises(ValueError, match="new_items"):
        it.fit_id_tables(["random"], features, item_ids, 0, {3, 42}, config=config)


def test_the_cache_round_trips_and_the_seed_decides(fixture_root, tmp_path, monkeypatch) -> None:
    """A second call reads the files; a refit with the same seed is identical, another differs."""
    options = dict(rqvae_epochs=2, root=fixture_root, config=TINY_CONFIG)
    first = it.seeded_id_tables("tiny", it.ID_TABLES, 0, directory=tmp_path / "a", **options)
    assert (tmp_path / "a" / "seeded-rqvae-tiny-seed0").is_dir()
    assert all(
        (tmp_path / "a" / f"seeded-ids-tiny-{name}-seed0.safetensors").is_file()
        for name in it.ID_TABLES
    )

    def no_fit(*args, **kwargs):
        raise AssertionError("the tables should have been read from the cache")

    with monkeypatch.context() as m:
        m.setattr(it, "fit_id_tables", no_fit)
        cached = it.seeded_id_tables("tiny", it.ID_TABLES[::-1], 0, directory=tmp_path / "a")
    assert list(cached) == list(it.ID_TABLES[::-1])
    for name in it.ID_TABLES:
        assert torch.equal(cached[name].ids, first[name].ids)
        assert torch.equal(cached[name].item_ids, first[name].item_ids)
        # NaN == NaN as JSON: the measures, the random table's NaN error included, come back
        assert json.dumps(cached[name].measures) == json.dumps(first[name].measures)
    assert math.isnan(cached["random"].measures["relative_error"])
    refit = it.seeded_id_tables("tiny", it.ID_TABLES, 0, directory=tmp_path / "b", **options)
    for name in it.ID_TABLES:
        assert torch.equal(refit[name].ids, first[name].ids)
        assert json.dumps(refit[name].measures) == json.dumps(first[name].measures)
    other = it.seeded_id_tables("tiny", ["rqvae", "random"], 1, directory=tmp_path / "b", **options)
    assert not torch.equal(other["rqvae"].ids, first["rqvae"].ids)
    assert not torch.equal(other["random"].ids, first["random"].ids)
    assert other["rqvae"].measures != first["rqvae"].measures


def test_the_collaborative_table_trains_with_the_term_on_its_targets(
    fixture_root, tmp_path, monkeypatch
) -> None:
    """rqvae-collab: its own RQ-VAE, trained with COLLAB_OPTIONS on the given vectors (new items
    without one), last level balanced; the content RQ-VAE keeps the term off."""
    features, item_ids = catalogue(fixture_root)
    new_items = sorted(item_ids.tolist())[::5]
    known = torch.as_tensor(known_item_mask(item_ids.numpy(), new_items))
    vectors = torch.randn(len(item_ids), 3, generator=torch.Generator().manual_seed(0))
    targets = SimpleNamespace(vectors=vectors, item_ids=item_ids, known=known)
    given = []
    real_set = RqVae.set_collaborative

    def spy(model, *args):
        given.append(args)
        return real_set(model, *args)

    monkeypatch.setattr(RqVae, "set_collaborative", spy)
    config = dict(TINY_CONFIG, align_dim=3)
    dirs = dict(model_dir=tmp_path / "content", collab_model_dir=tmp_path / "collab")
    tables = it.fit_id_tables(
        ["rqvae", "rqvae-collab"], features, item_ids, 0, new_items, rqvae_epochs=2,
        config=config, collaborative=targets, **dirs,
    )  # fmt: skip
    assert len(given) == 1  # only the collaborative RQ-VAE gets targets
    assert given[0][0] is vectors and given[0][2] is known
    content = RqVae.from_pretrained(tmp_path / "content").eval()
    aligned = RqVae.from_pretrained(tmp_path / "collab").eval()
    assert content.config.align_weight == 0.0
    assert aligned.config.align_weight == it.COLLAB_OPTIONS["align_weight"] > 0
    assert aligned.config.align_temperature == it.COLLAB_OPTIONS["align_temperature"]
    assert aligned.config.align_dim == 3  # the config given overrides COLLAB_OPTIONS
    assert "rqvae-collab" in it.BALANCED_TABLES
    assert full_prefixes_only(tables["rqvae-collab"].ids, 8)
    with torch.no_grad():
        z = aligned.encode(features)
        alone = aligned.latents_to_ids(z[known], deduplicate=True)
    assert torch.equal(tables["rqvae-collab"].ids[known], alone)  # new items only join
    assert not torch.equal(tables["rqvae-collab"].ids, tables["rqvae"].ids)
    with pytest.raises(ValueError, match="collaborative="):
        it.fit_id_tables(["rqvae-collab"], features, item_ids, 0, config=config)


def test_the_collaborative_table_learns_its_vectors_from_the_training_parts(
    fixture_root, tmp_path, monkeypatch
) -> None:
    """seeded_id_tables needs the sequences for rqvae-collab, and hands the collaborative
    embeddings of their training parts, with the table's seed, to the fit."""
    from rqvae_lib.retrieval import collaborative
    from rqvae_lib.retrieval.experiment import load_retrieval_data

    options = dict(root=fixture_root, directory=tmp_path / "tables", rqvae_epochs=1)
    config = dict(TINY_CONFIG, input_dim=8)
    with pytest.raises(ValueError, match="sequences="):
        it.seeded_id_tables("tiny", ["rqvae-collab"], 0, config=config, **options)
    data = load_retrieval_data("tiny", fixture_root)
    calls = []

    def fake_embeddings(split, ids, sasrec, name):
        calls.append((split, sasrec.seed, name))
        vectors = torch.randn(len(ids), 64, generator=torch.Generator().manual_seed(1))
        return SimpleNamespace(vectors=vectors, item_ids=torch.as_tensor(ids), known=None)

    monkeypatch.setattr(collaborative, "collaborative_embeddings", fake_embeddings)
    table = it.seeded_id_tables(
        "tiny", ["rqvae-collab"], 2, config=config, sequences=data.sequences, **options
    )["rqvae-collab"]
    assert calls == [(data.sequences, 2, "tiny")]
    assert table.ids.shape == (30, 2)
    assert (tmp_path / "tables" / "seeded-rqvae-collab-tiny-seed2").is_dir()
    assert (tmp_path / "tables" / "seeded-ids-tiny-rqvae-collab-seed2.safetensors").is_file()


def test_joint_features_put_unit_text_and_collaborative_halves_side_by_side() -> None:
    features = torch.tensor([[3.0, 4.0], [0.0, 2.0], [1.0, 0.0]])
    item_ids = torch.tensor([10, 11, 12])
    collaborative = SimpleNamespace(  # another order; item 12 has a vector but is not known
        vectors=torch.tensor([[0.0, 5.0, 0.0], [2.0, 0.0, 0.0], [1.0, 1.0, 1.0]]),
        item_ids=torch.tensor([11, 10, 12]),
        known=torch.tensor([True, True, False]),
    )
    joint = it.joint_features(features, item_ids, collaborative, weight=0.5)
    expected = torch.tensor([[0.6, 0.8, 0.5, 0.0, 0.0],
                             [0.0, 1.0, 0.0, 0.5, 0.0],
                             [1.0, 0.0, 0.0, 0.0, 0.0]])  # fmt: skip
    assert torch.allclose(joint, expected)
    everyone = SimpleNamespace(vectors=collaborative.vectors, item_ids=collaborative.item_ids,
                               known=None)  # fmt: skip
    assert it.joint_features(features, item_ids, everyone)[2, 2:].norm().item() == (
        pytest.approx(1.0)
    )


def test_the_joint_rq_kmeans_table_fits_the_known_items_joint_rows(
    fixture_root, monkeypatch
) -> None:
    """rq-kmeans-collab: RQ-KMeans fitted on the joint rows of the known training items, codes
    of every item's joint row, last level balanced with new items joining."""
    features, item_ids = catalogue(fixture_root)
    new_items = sorted(item_ids.tolist())[::5]
    known = torch.as_tensor(known_item_mask(item_ids.numpy(), new_items))
    vectors = torch.randn(len(item_ids), 3, generator=torch.Generator().manual_seed(0))
    targets = SimpleNamespace(vectors=vectors, item_ids=item_ids, known=known)
    seen = spy_fits(monkeypatch)
    table = it.fit_id_tables(["rq-kmeans-collab"], features, item_ids, 0, new_items,
                             config=TINY_CONFIG, collaborative=targets)["rq-kmeans-collab"]  # fmt: skip
    joint = it.joint_features(features, item_ids, targets)
    assert len(seen["rq_kmeans_fit"]) == 1 and seen["rq_kmeans_fit"][0].shape[1] == 11
    fitted_rows = {tuple(r) for r in seen["rq_kmeans_fit"][0].tolist()}
    known_rows = {tuple(r) for r in joint[known].tolist()}
    assert fitted_rows <= known_rows and len(fitted_rows) < len(known_rows)  # train part only
    nearest = baselines.rq_kmeans_encode(joint, seen["centroids"][0])[0]
    assert torch.equal(table.ids[:, 0], nearest[:, 0])
    assert full_prefixes_only(table.ids, 8) and "rq-kmeans-collab" in it.BALANCED_TABLES
    assert table.measures["relative_error"] > 0
    with pytest.raises(ValueError, match="collaborative="):
        it.fit_id_tables(["rq-kmeans-collab"], features, item_ids, 0, config=TINY_CONFIG)
