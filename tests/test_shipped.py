"""rqvae_lib.course.shipped: the trained models shipped in models/, and installing them.

Every shipped model is checked as it is committed: its record, each file's sha256 and size, the
size limit, that it loads, and that it gives its recorded outputs (an RQ-VAE's probe: the IDs
and the error on fixed seeded inputs; the SASRec vectors' fingerprint of the training parts).
"""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open

from rqvae_lib.course import shipped
from rqvae_lib.model import RqVae

NAMES = shipped.shipped_names()


def test_models_are_shipped() -> None:
    assert {"seeded-rqvae-beauty-seed0", "seeded-rqvae-collab-beauty-seed0",
            "collaborative-beauty-seed0"} <= set(NAMES)  # fmt: skip


@pytest.mark.parametrize("name", NAMES)
def test_each_shipped_model_matches_its_record_and_gives_its_recorded_outputs(name) -> None:
    record = shipped.verify(name)  # every file's sha256, the size limit
    folder = shipped.MODELS_DIR / name
    assert record["name"] == name and record["seed"] == 0 and record["command"].startswith("python")
    assert sum(m["bytes"] for m in record["files"].values()) <= shipped.MAX_BYTES
    if record["kind"] == "folder":
        model = RqVae.from_pretrained(folder)  # checks the weights against config.json
        got, want = shipped.probe(model), record["probe"]
        # Random probe inputs put a few latents within 1e-5 (relative) of two codes, so another
        # CPU's summation order could flip one: at least 99% of the 768 codes must agree (all
        # did across 1 and 2 threads here), and the error to 1e-5.
        same = torch.tensor(got["ids"]) == torch.tensor(want["ids"])
        assert same.shape == (256, model.config.num_levels) and same.float().mean() >= 0.99
        assert got["relative_error"] == pytest.approx(want["relative_error"], rel=1e-5)
        assert set(record["metrics"]) == {"perplexity", "collision_rate", "relative_error"}
    else:
        (file,) = record["files"]
        with safe_open(str(folder / file), "pt") as f:
            meta = f.metadata()
            vectors = f.get_tensor("vectors")
        assert meta["fingerprint"].startswith(record["data"].split("fingerprint ")[1][:16])
        assert meta["split"] == "training parts only" and torch.isfinite(vectors).all()


def _fake_shipped(tmp_path, monkeypatch):
    """A models/ folder holding one small RQ-VAE shipped from a temp artifacts/ folder."""
    monkeypatch.setenv("RQVAE_ARTIFACTS", str(tmp_path / "artifacts"))
    monkeypatch.setenv("RQVAE_FAST", "0")
    monkeypatch.delenv(shipped.RETRAIN_ENV, raising=False)
    from rqvae_lib.config import artifacts_dir

    torch.manual_seed(0)
    model = RqVae(input_dim=8, hidden_dim=[16], latent_dim=4, num_levels=2, num_embeddings=4)
    model.save_pretrained(artifacts_dir() / "retrieval" / "tiny-model")
    models = tmp_path / "models"
    record = shipped.ship("tiny", "retrieval/tiny-model", "python train.py", "synthetic", 0,
                          "untrained", {"relative_error": 1.0}, models)  # fmt: skip
    return models, record, artifacts_dir()


def test_ship_then_install_puts_the_model_back_and_refuses_a_changed_file(tmp_path, monkeypatch):
    models, record, artifacts = _fake_shipped(tmp_path, monkeypatch)
    assert record["kind"] == "folder" and set(record["files"]) == {
        "config.json",
        "model.safetensors",
    }
    assert json.loads((models / "tiny" / shipped.RECORD_NAME).read_text()) == record
    assert shipped.shipped_names(models) == ["tiny"]
    target = artifacts / "retrieval" / "tiny-model"
    # something in its place is used as it is
    assert shipped.install(["tiny"], models, verbose=False) == {"tiny": "present"}
    import shutil

    shutil.rmtree(target)
    assert shipped.install(["tiny"], models, verbose=False) == {"tiny": "installed"}
    assert shipped.probe(RqVae.from_pretrained(target))["ids"] == record["probe"]["ids"]
    shutil.rmtree(target)
    monkeypatch.setenv(shipped.RETRAIN_ENV, "1")  # retrain: nothing is copied
    assert shipped.install(["tiny"], models, verbose=False) == {"tiny": "retrain"}
    assert not target.exists()
    monkeypatch.setenv(shipped.RETRAIN_ENV, "0")
    monkeypatch.setenv("RQVAE_FAST", "1")  # fast mode trains too
    assert shipped.install(["tiny"], models, verbose=False) == {"tiny": "retrain"}
    monkeypatch.setenv("RQVAE_FAST", "0")
    with open(models / "tiny" / "model.safetensors", "ab") as f:
        f.write(b"0")
    with pytest.raises(ValueError, match="does not match its record"):
        shipped.install(["tiny"], models, verbose=False)
    assert not target.exists()


def test_install_prints_what_it_did_and_errors_name_the_fix(tmp_path, monkeypatch, capsys):
    models, _, _ = _fake_shipped(tmp_path, monkeypatch)
    shipped.install(["tiny"], models)
    assert "shipped tiny (untrained, seed 0" in capsys.readouterr().out
    with pytest.raises(FileNotFoundError, match="no shipped model 'other'"):
        shipped.install(["other"], models)
    with pytest.raises(FileNotFoundError, match="train it first"):
        shipped.ship("x", "retrieval/missing", "c", "d", 0, "t", None, models)
