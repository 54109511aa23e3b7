"""rqvae_lib.training: train_model, save_run, load_or_train and the run history."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from helpers import SMALL_RUN_CONFIG, snapshot, tiny

from rqvae_lib import RqVae, load_or_train, seed_everything, train_model
from rqvae_lib.data import FeatureDataModule
from rqvae_lib.training import load_run_history, save_run

pytestmark = pytest.mark.usefixtures("one_thread")


def test_usage_callback_records_every_epoch(small_run):
    _, result, _ = small_run
    assert [h["epoch"] for h in result.history] == [0, 1, 2]
    last = result.history[-1]
    for key in ("usage_l1", "perplexity_l1", "dead_codes_l3", "unique_id_rate", "collision_rate"):
        assert key in last
    assert 0 < last["usage_l1"] <= 1 and last["perplexity_l1"] > 1
    metrics = pd.read_csv(result.metrics_csv)
    assert {"usage_l1", "perplexity_l2", "train_loss", "val_loss"} <= set(metrics.columns)
    assert result.model.training is False


def test_load_or_train_trains_once_then_loads(small_run, tmp_path):
    dm, _, _ = small_run
    target = tmp_path / "model"
    model = load_or_train(
        target, dm, 1, config=SMALL_RUN_CONFIG, quiet=True, save_dir=tmp_path / "logs"
    )
    assert (target / "config.json").is_file() and len(load_run_history(target)) == 1
    loaded = load_or_train(target)  # no datamodule needed once saved
    x = dm.synthetic.features[:64]
    assert torch.equal(model.generate_semantic_ids(x), loaded.generate_semantic_ids(x))
    with pytest.raises(FileNotFoundError):
        load_or_train(tmp_path / "missing")


@pytest.mark.parametrize("damage", ["bad_json", "no_weights"])
def test_load_or_train_leaves_an_unloadable_model_untouched(tmp_path, features, damage):
    folder = tiny(0).save_pretrained(tmp_path / "model")
    if damage == "bad_json":
        (folder / "config.json").write_text('{"input_dim": 16, ')
    else:
        (folder / "model.safetensors").unlink()
    before = snapshot(folder)
    datamodule = FeatureDataModule(features, batch_size=64)
    error = ValueError if damage == "bad_json" else FileNotFoundError
    with pytest.raises(error, match="left untouched"):
        load_or_train(folder, datamodule, max_epochs=1, save_dir=tmp_path / "logs", quiet=True)
    assert snapshot(folder) == before
    assert not (tmp_path / "logs").exists()  # it did not start training


def test_training_twice_under_one_name_keeps_both_runs(tmp_path, features):
    config = {"hidden_dim": 16, "latent_dim": 4, "num_embeddings": 8, "num_levels": 2}
    runs = []
    for seed in (0, 1):
        seed_everything(seed)
        datamodule = FeatureDataModule(features, batch_size=64)
        runs.append(
            train_model(datamodule, 1, "same", config, quiet=True, save_dir=tmp_path / "logs")
        )
    logs = tmp_path / "logs" / "same"
    assert sorted(p.name for p in logs.iterdir()) == ["version_0", "version_1"]
    for version, run in zip(("version_0", "version_1"), runs, strict=True):
        assert run.metrics_csv == logs / version / "metrics.csv" and run.metrics_csv.is_file()
        assert (logs / version / "checkpoints" / "last.ckpt").is_file()

    saved = save_run(runs[0], tmp_path / "saved")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        save_run(runs[1], saved)
    save_run(runs[1], saved, overwrite=True)
    assert torch.equal(
        RqVae.from_pretrained(saved).generate_semantic_ids(features),
        runs[1].model.generate_semantic_ids(features),
    )
