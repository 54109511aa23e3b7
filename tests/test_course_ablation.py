"""rqvae_lib.course.ablation: notebook 04's variants, their seed records and summaries."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from rqvae_lib.config import TUTORIAL_CONFIG
from rqvae_lib.course import ablation
from rqvae_lib.model import RqVaeConfig


def _record(model: str, seed: int, **row) -> dict:
    return {"model": model, "seed": seed, "epochs": 100, "row": {"model": model, **row}}


def test_variants_change_one_switch_at_a_time_from_the_tutorial_config() -> None:
    v = ablation.VARIANTS
    assert v["default"] == {}

    def diff(a: str, b: str) -> set[str]:
        x = RqVaeConfig.from_dict({**TUTORIAL_CONFIG, **v[a]}).as_dict()
        y = RqVaeConfig.from_dict({**TUTORIAL_CONFIG, **v[b]}).as_dict()
        return {k for k in x if x[k] != y[k]}

    assert diff("default", "k-means+restarts") == {"balance_rate"}  # the tutorial has both on

    assert diff("plain", "k-means") == {"kmeans_init"}
    assert diff("plain", "restarts") == {"dead_code_steps"}
    assert diff("k-means+restarts", "default") == {"balance_rate"}
    assert diff("plain", "plain, recon_weight=1") == {"recon_weight"}
    assert set(ablation.COLORS) == {*v, ablation.RQ_KMEANS}
    assert len(set(ablation.COLORS.values())) == len(ablation.COLORS)  # no two share a colour


def test_variant_dir_keeps_the_notebook_seed_s_folder_and_names_other_seeds(tmp_path, monkeypatch):
    monkeypatch.setenv("RQVAE_ARTIFACTS", str(tmp_path))
    assert ablation.variant_dir("plain, recon_weight=1", 100).name == (
        "rqvae-04-plain-recon_weight=1-100ep"
    )
    assert ablation.variant_dir("k-means+restarts", 15, seed=2).name == (
        "rqvae-04-k-means+restarts-15ep-seed2"
    )
    with pytest.raises(KeyError, match="unknown variant"):
        ablation.train_variant("nope", None, 1)


def test_seed_summary_gives_mean_and_sample_standard_deviation_per_model_and_metric() -> None:
    records = [
        _record("a", 42, **{"rel. error": 0.30, "unique IDs": 100}),
        _record("a", 1, **{"rel. error": 0.32, "unique IDs": 104}),
        _record("a", 2, **{"rel. error": 0.34, "unique IDs": 108}),
        _record("b", 42, **{"rel. error": 0.5, "unique IDs": 7}),
    ]
    summary = ablation.seed_summary(records, ("rel. error", "unique IDs"))
    a = summary.loc[("a", "rel. error")]
    assert a["seeds"] == 3 and a["mean"] == pytest.approx(0.32) and a["sd"] == pytest.approx(0.02)
    assert (a["min"], a["max"]) == (0.30, 0.34)
    assert summary.loc[("a", "unique IDs")]["sd"] == pytest.approx(4.0)
    assert np.isnan(summary.loc[("b", "rel. error")]["sd"])  # one seed: no spread to show
    table = ablation.mean_sd_table(summary.drop(index="b"), ["a"])
    assert table.loc["rel. error", "a"] == "0.320 ± 0.020" and table.loc["seeds", "a"] == 3


def test_paired_difference_pairs_by_seed_and_screens_against_twice_its_standard_error() -> None:
    records = [
        *(_record("a", s, x=v) for s, v in ((42, 10.0), (1, 12.0), (2, 14.0))),
        *(_record("b", s, x=v) for s, v in ((42, 9.0), (1, 11.5), (2, 12.5), (7, 0.0))),
        *(_record("c", s, x=v) for s, v in ((42, 13.0), (1, 8.0), (2, 15.0))),
    ]
    d = ablation.paired_difference(records, "a", "b", "x")  # seed 7 has no partner: left out
    assert d["seeds"] == 3 and d["difference"] == pytest.approx(1.0)
    assert d["se"] == pytest.approx(np.std([1.0, 0.5, 1.5], ddof=1) / np.sqrt(3))
    assert d["beyond_noise"]  # 1.0 against 2 x 0.29
    assert not ablation.paired_difference(records, "c", "a", "x")["beyond_noise"]  # 0 ± 2.1
    table = ablation.differences_table(records, [("a", "b"), ("c", "a")], ("x",))
    assert list(table["beyond 2 se"]) == ["yes", "no (within noise)"]
    with pytest.raises(ValueError, match="need 2 or more"):
        ablation.paired_difference([_record("a", 1, x=1), _record("b", 1, x=2)], "a", "b", "x")


def test_read_records_names_the_script_that_writes_them(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="benchmarks/ablation.py"):
        ablation.read_records(tmp_path / "missing.jsonl")
    path = tmp_path / "r.jsonl"
    path.write_text(json.dumps(_record("a", 1, x=1)) + "\n\n")
    assert ablation.read_records(path)[0]["seed"] == 1


def test_usage_snapshot_keeps_the_listed_epochs_of_a_history() -> None:
    history = [
        {"epoch": e, "usage_l1": (e + 1) / 16, "perplexity_l1": float(e + 1)} for e in range(25)
    ]
    snap = ablation.usage_snapshot(history, 16)
    assert list(snap) == ["1", "2", "5", "10", "20"]  # epochs past the history are left out
    assert snap["10"] == {"codes used L1": 10, "perplexity L1": 10.0}
    assert ablation.usage_snapshot([], 16) == {}


def test_loss_terms_weigh_the_reconstruction_as_the_optimiser_does(tmp_path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"recon_weight": 384.0}))
    (tmp_path / "metrics.csv").write_text(
        "epoch,step,train_loss,train_recon_loss,train_commitment_loss,train_embedding_loss,"
        "val_loss\n"
        "0,10,,,,,0.9\n"
        "0,10,0.884,0.001,0.1,0.4,\n"
        "1,21,0.784,0.001,0.1,0.3,\n"
    )
    terms = ablation.loss_terms(tmp_path, epochs=(1, 2, 50))
    assert list(terms.index) == [1, 2]
    assert terms.loc[1, "weighted reconstruction"] == pytest.approx(0.384)
    assert terms.loc[2, "codebook"] == pytest.approx(0.3)
    assert terms.loc[1, "reconstruction share"] == pytest.approx(0.384 / 0.884)


@pytest.mark.slow
def test_train_variant_is_seeded_and_loads_what_it_saved(tmp_path, monkeypatch, one_thread):
    """Two variants from one seed start from the same weights; a second call loads the first's
    model (the same IDs), and a different seed gives a different model."""
    from rqvae_lib.data import SyntheticDataModule

    monkeypatch.setenv("RQVAE_ARTIFACTS", str(tmp_path))
    dm = SyntheticDataModule(num_items=300, dim=16, branching=(4, 4), batch_size=64)
    options = dict(hidden_dim=16, latent_dim=4, num_embeddings=8, num_levels=2)
    monkeypatch.setattr(
        ablation, "VARIANTS", {k: {**v, **options} for k, v in ablation.VARIANTS.items()}
    )
    first = ablation.train_variant("restarts", dm, 2, seed=3)
    again = ablation.train_variant("restarts", dm, 2, seed=3)
    other = ablation.train_variant("restarts", dm, 2, seed=4)
    assert torch.equal(first.ids, again.ids) and first.row == again.row
    assert not torch.equal(
        first.model.quantizer.levels[0].embedding.weight,
        other.model.quantizer.levels[0].embedding.weight,
    )
    assert first.row["model"] == "restarts" and len(first.history) == 2
