"""Silent wrong answers, now loud: each test here pins one defect that used to give a plausible
but wrong result (old weights, an all-zero ID, a default option, a deleted run) and now raises
or warns with a message that says what is wrong and what to do."""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from pathlib import Path

import pandas as pd
import pytest
import pytorch_lightning as pl
import torch
from helpers import snapshot
from torch.utils.data import DataLoader, Dataset, TensorDataset

import rqvae_lib
import rqvae_lib.io
import rqvae_lib.model
from rqvae_lib import (
    ResidualQuantizer,
    RqVae,
    VectorQuantizer,
    batch_inference,
    evaluate_quantization,
    evaluate_reconstruction,
    load_or_train,
    seed_everything,
    train_model,
)
from rqvae_lib.checkpoints import CheckpointError
from rqvae_lib.cli import lightning_cli, main, predict_main
from rqvae_lib.config import REPO_ROOT
from rqvae_lib.data import FeatureDataModule, SyntheticDataModule
from rqvae_lib.data.datasets import FeatureDataset, split_indices
from rqvae_lib.data.synthetic import make_synthetic_catalogue
from rqvae_lib.training import save_run

QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]
CKPT_DIR = Path("artifacts/synthetic/checkpoints")  # configs/synthetic.yaml's ModelCheckpoint
DIM = 16

pytestmark = pytest.mark.usefixtures("one_thread")


class Features(Dataset):
    """Rows of a tensor as ``{"features": row}`` dicts, keeping their dtype."""

    def __init__(self, x: torch.Tensor, key: str = "features") -> None:
        self.x, self.key = x, key

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict:
        return {self.key: self.x[i]}


def tiny(seed: int = 0, **options) -> RqVae:
    """A 16-d model (2 levels of 8 codes unless ``options`` say otherwise), seeded random weights."""
    seed_everything(seed)
    shape = {"hidden_dim": 16, "latent_dim": 4, "num_embeddings": 8, "num_levels": 2}
    return RqVae(DIM, **{**shape, **options})


def quiet_trainer(epochs: int = 1, **kw) -> pl.Trainer:
    kw.setdefault("accelerator", "cpu")
    return pl.Trainer(
        max_epochs=epochs,
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        **kw,
    )


@pytest.fixture(scope="module")
def features() -> torch.Tensor:
    return make_synthetic_catalogue(num_items=256, dim=DIM, branching=(4, 4), seed=3).features


def loader(x: torch.Tensor, batch_size: int = 64) -> DataLoader:
    return DataLoader(Features(x), batch_size=batch_size)


# --- 1. save_pretrained: no silent overwrite, no half-written folder ---------------------------
def test_save_pretrained_never_mixes_or_loses_models(tmp_path, features, monkeypatch):
    old, new = tiny(0), tiny(1)
    old_ids, new_ids = old.generate_semantic_ids(features), new.generate_semantic_ids(features)
    assert not torch.equal(old_ids, new_ids)  # so the checks below can tell them apart
    parent = tmp_path / "models"
    folder = old.save_pretrained(parent / "m")
    before = snapshot(folder)

    with pytest.raises(FileExistsError, match="overwrite=True"):
        new.save_pretrained(folder)
    assert snapshot(folder) == before

    real_save_file = rqvae_lib.model.save_file

    def crash_after_weights(state, path, *args, **kwargs):
        real_save_file(state, path, *args, **kwargs)
        raise OSError("disk full (simulated, after the weights were written)")

    monkeypatch.setattr(rqvae_lib.model, "save_file", crash_after_weights)
    with pytest.raises(OSError, match="simulated"):
        new.save_pretrained(folder, overwrite=True)
    assert snapshot(folder) == before
    assert torch.equal(RqVae.from_pretrained(folder).generate_semantic_ids(features), old_ids)
    assert [p.name for p in parent.iterdir()] == ["m"]  # no temporary folder left behind

    monkeypatch.undo()
    new.save_pretrained(folder, overwrite=True)
    assert torch.equal(RqVae.from_pretrained(folder).generate_semantic_ids(features), new_ids)
    assert [p.name for p in parent.iterdir()] == ["m"]
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]


def test_a_failed_swap_keeps_the_old_model_in_place(tmp_path, features, monkeypatch):
    old, new = tiny(0), tiny(1)
    old_ids = old.generate_semantic_ids(features)
    parent = tmp_path / "models"
    folder = old.save_pretrained(parent / "m")
    real_replace, calls = rqvae_lib.io.os.replace, []

    def second_rename_fails(src, dst):  # 1st: old folder aside; 2nd: new folder into place
        calls.append(dst)
        if len(calls) == 2:
            raise OSError("rename failed (simulated)")
        return real_replace(src, dst)

    monkeypatch.setattr(rqvae_lib.io.os, "replace", second_rename_fails)
    with pytest.raises(OSError, match="simulated"):
        new.save_pretrained(folder, overwrite=True)
    monkeypatch.undo()
    assert [p.name for p in parent.iterdir()] == ["m"]
    assert torch.equal(RqVae.from_pretrained(folder).generate_semantic_ids(features), old_ids)


# --- 2. weights and config from different saves ----------------------------------------------
def test_weights_from_another_save_are_refused(tmp_path):
    a = tiny(0).save_pretrained(tmp_path / "a")
    b = tiny(1).save_pretrained(tmp_path / "b")
    shutil.copy(b / "model.safetensors", a / "model.safetensors")  # same shapes, other values
    with pytest.raises(ValueError, match=r"sha256.*different saves"):
        RqVae.from_pretrained(a)
    with pytest.raises(CheckpointError, match="sha256"):
        rqvae_lib.model.load_model(a)


# --- 3. every option, the class name and the version are stored, and required ----------------
def test_config_json_holds_every_option_and_a_missing_one_is_refused(tmp_path):
    folder = tiny(0, use_cosine=True, balance_rate=0.01).save_pretrained(tmp_path / "m")
    config = json.loads((folder / "config.json").read_text())
    assert config["class_name"] == "RqVae"
    assert config["library_version"] == rqvae_lib.__version__
    assert (
        config["weights_sha256"]
        == hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()
    )
    assert set(RqVae.option_names()) <= set(config)
    assert config["use_cosine"] is True and config["balance_rate"] == 0.01

    for key in ("use_cosine", "class_name", "weights_sha256"):
        (folder / "config.json").write_text(
            json.dumps({k: v for k, v in config.items() if k != key})
        )
        with pytest.raises(ValueError, match=rf"missing \['{key}'\]"):
            RqVae.from_pretrained(folder)  # not a default use_cosine=False model
    (folder / "config.json").write_text(json.dumps({**config, "class_name": "OtherModel"}))
    with pytest.raises(ValueError, match="holds a OtherModel, not a RqVae"):
        RqVae.from_pretrained(folder)


# --- 4. load_or_train never replaces a model; make_trainer never deletes logs ----------------
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


# --- 5. non-finite weights, inputs and 16-bit training ---------------------------------------
def test_non_finite_weights_and_inputs_raise_instead_of_giving_code_zero(tmp_path, features):
    model = tiny(0).eval()
    with torch.no_grad():
        model.encoder.net[0].weight[0, 0] = float("nan")  # one bad weight: every latent is NaN
    with pytest.raises(ValueError, match="NaN or inf"):
        model.generate_semantic_ids(features)
    with pytest.raises(FloatingPointError, match=r"encoder\..*weight"):
        model.save_pretrained(tmp_path / "m")
    assert not (tmp_path / "m").exists()

    vq = VectorQuantizer(8, 4, kmeans_init=False).eval()
    x = torch.randn(5, 4)
    x[2, 1] = float("nan")
    with pytest.raises(ValueError, match="NaN or inf"):
        vq(x)
    x[2, 1] = float("inf")
    with pytest.raises(ValueError, match="NaN or inf"):
        ResidualQuantizer(2, 8, 4, kmeans_init=False)(x)


@pytest.mark.parametrize("precision", ["16-true", "bf16-true"])
def test_training_with_16_bit_weights_is_refused(features, precision):
    model = tiny(0)
    with pytest.raises(ValueError, match=rf"precision='{precision}'.*32-true"):
        quiet_trainer(precision=precision).fit(model, loader(features))


def test_bf16_mixed_precision_trains_on_cpu(features):
    model = tiny(0)
    try:
        trainer = quiet_trainer(precision="bf16-mixed")
    except (ValueError, RuntimeError) as err:  # pragma: no cover - depends on the Lightning build
        pytest.skip(f"this Lightning cannot run bf16-mixed on the CPU: {err}")
    trainer.fit(model, loader(features))
    assert trainer.global_step == 4
    model.check_finite()
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert model.dtype == torch.float32
    ids = model.eval().generate_semantic_ids(features)
    assert ids.shape == (256, 2) and len(torch.unique(ids[:, 0])) > 1


# --- 6. float64 features ----------------------------------------------------------------------
def test_float64_features_are_a_type_error_except_for_generate_semantic_ids(features):
    model = tiny(0)
    x64 = features.double()
    with pytest.raises(TypeError, match=r"torch\.float32 .*got torch\.float64"):
        model(x64)
    with pytest.raises(TypeError, match=r"torch\.float64"):
        quiet_trainer().fit(model, loader(x64))
    model.eval()
    assert torch.equal(model.generate_semantic_ids(x64), model.generate_semantic_ids(features))
    assert torch.equal(
        batch_inference(model, loader(x64), device="cpu"), model.generate_semantic_ids(features)
    )


# --- 7. constructor arguments -----------------------------------------------------------------
NAN = float("nan")
QUANTIZER_CASES = [
    ({"dead_code_steps": -1}, ValueError, "dead_code_steps"),
    ({"dead_code_steps": NAN}, TypeError, "dead_code_steps"),
    ({"dead_code_steps": 2.5}, TypeError, "dead_code_steps"),
    ({"balance_rate": -0.1}, ValueError, "balance_rate"),
    ({"balance_rate": NAN}, ValueError, "balance_rate"),
    ({"commitment_cost": -1.0}, ValueError, "commitment_cost"),
    ({"commitment_cost": NAN}, ValueError, "commitment_cost"),
    ({"commitment_cost": "0.25"}, TypeError, "commitment_cost"),
    ({"kmeans_init": "false"}, TypeError, "kmeans_init"),
    ({"use_cosine": "no"}, TypeError, "use_cosine"),
    ({"seed": -1}, ValueError, "seed"),
    ({"dead_code_step": 5}, TypeError, "dead_code_step"),  # a typo: not silently ignored
]
MODEL_CASES = [
    ({"hidden_dim": "64"}, TypeError, "hidden_dim"),
    ({"hidden_dim": 64.0}, TypeError, "hidden_dim"),
    ({"hidden_dim": [64, "32"]}, TypeError, "hidden_dim"),
    ({"latent_dim": "8"}, TypeError, "latent_dim"),
    ({"num_embeddings": 0}, ValueError, "num_embeddings"),
    ({"recon_weight": -1.0}, ValueError, "recon_weight"),
    ({"recon_weight": NAN}, ValueError, "recon_weight"),
    ({"learning_rate": math.inf}, ValueError, "learning_rate"),
    ({"quantizer": {"balance_rate": -1.0}}, ValueError, "balance_rate"),
    ({"quantizer": {"kmeans_init": "false"}}, TypeError, "kmeans_init"),
]


@pytest.mark.parametrize(("options", "error", "name"), MODEL_CASES + QUANTIZER_CASES)
def test_rqvae_refuses_bad_options_naming_them(options, error, name):
    with pytest.raises(error, match=name):
        RqVae(DIM, **{"hidden_dim": 16, "latent_dim": 4, "num_embeddings": 8, **options})


@pytest.mark.parametrize(("options", "error", "name"), QUANTIZER_CASES)
def test_quantizers_validate_their_options_as_rqvae_does(options, error, name):
    with pytest.raises(error, match=name):
        VectorQuantizer(8, 4, **options)
    with pytest.raises(error, match=name):
        ResidualQuantizer(2, 8, 4, **options)


def test_quantizer_sizes_are_validated():
    with pytest.raises(TypeError, match="num_embeddings"):
        VectorQuantizer("8", 4)
    with pytest.raises(ValueError, match="embedding_dim"):
        VectorQuantizer(8, 0)
    with pytest.raises(TypeError, match="num_levels"):
        ResidualQuantizer(2.0, 8, 4)


# --- 8. split fractions -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("val", "test", "message"),
    [
        (0.5, 0.5, r"val_fraction \+ test_fraction must be below 1"),
        (0.7, 0.6, r"val_fraction \+ test_fraction must be below 1"),
        (1.0, 0.0, r"val_fraction \+ test_fraction must be below 1"),
        (-0.1, 0.05, "val_fraction must be >= 0"),
        (0.05, -0.2, "test_fraction must be >= 0"),
        (NAN, 0.05, "val_fraction must be finite"),
    ],
)
def test_split_fractions_that_leave_no_training_items_are_refused(val, test, message):
    for subset in ("train", "all"):
        with pytest.raises(ValueError, match=message):
            split_indices(100, subset, val_fraction=val, test_fraction=test)
    with pytest.raises(ValueError, match=message):
        FeatureDataModule(torch.randn(20, 4), val_fraction=val, test_fraction=test)
    if test in (0.0, 0.05):  # SyntheticDataModule has no test split: its test_fraction is 0
        with pytest.raises(ValueError, match=message):
            SyntheticDataModule(num_items=64, dim=8, val_fraction=val)


def test_valid_fractions_still_split_every_item_once():
    parts = [split_indices(101, s, 3, 0.2, 0.3) for s in ("train", "val", "test")]
    assert sorted(sum((p.tolist() for p in parts), [])) == list(range(101))
    assert min(len(p) for p in parts) > 0


# --- 9. evaluation on loaders of the wrong kind -----------------------------------------------
EVALUATORS = {
    "batch_inference": batch_inference,
    "batch_inference_dedup": lambda m, dl, device: batch_inference(m, dl, device, deduplicate=True),
    "evaluate_reconstruction": evaluate_reconstruction,
    "evaluate_quantization": evaluate_quantization,
}


@pytest.mark.parametrize("evaluate", EVALUATORS.values(), ids=EVALUATORS.keys())
def test_evaluation_on_a_bad_loader_says_what_is_wrong(evaluate, features):
    model = tiny(0)
    empty = DataLoader(FeatureDataset(torch.empty(0, DIM)), batch_size=8)
    with pytest.raises(ValueError, match="no batches"):
        evaluate(model, empty, device="cpu")
    tuples = DataLoader(TensorDataset(features), batch_size=64)
    with pytest.raises(TypeError, match=r"got list.*FeatureDataset"):
        evaluate(model, tuples, device="cpu")
    wrong_key = DataLoader(Features(features, key="embedding"), batch_size=64)
    with pytest.raises(KeyError, match=r"'features' key, got keys \['embedding'\]"):
        evaluate(model, wrong_key, device="cpu")


# --- 10. a truncated Lightning checkpoint -----------------------------------------------------
def test_load_from_a_truncated_checkpoint_names_the_file(tmp_path, features):
    model = tiny(0)
    trainer = quiet_trainer()
    trainer.fit(model, loader(features))
    path = tmp_path / "run.ckpt"
    trainer.save_checkpoint(path)
    loaded = RqVae.load_from_checkpoint(path, map_location="cpu").eval()
    assert torch.equal(
        loaded.generate_semantic_ids(features), model.eval().generate_semantic_ids(features)
    )

    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError) as info:
        RqVae.load_from_checkpoint(path, map_location="cpu")
    message = str(info.value)  # once a bare "[Errno 22] Invalid argument", naming nothing
    assert message.startswith(f"checkpoint {path} (") and "it is truncated, corrupt" in message
    assert isinstance(info.value, ValueError) and not isinstance(info.value, OSError)


# --- 11. deduplicate cannot make every ID unique ------------------------------------------------
def test_deduplicated_ids_warn_with_the_number_of_items_still_sharing_an_id(features):
    model = tiny(0, num_levels=1, num_embeddings=4, kmeans_init=False, dead_code_steps=0).eval()
    assert model.quantizer.num_levels == 1  # one prefix (the empty one) for 4 codes
    with pytest.warns(UserWarning, match=r"deduplicate: (\d+) items still share") as record:
        ids = model.generate_semantic_ids(features[:20], deduplicate=True)
    _, counts = torch.unique(ids, dim=0, return_counts=True)
    shared = int(counts[counts > 1].sum())
    assert shared >= 16
    assert any(f"deduplicate: {shared} items" in str(w.message) for w in record)
    with pytest.warns(UserWarning, match=f"deduplicate: {shared} items"):
        batched = batch_inference(model, loader(features[:20], 8), "cpu", deduplicate=True)
    assert torch.equal(batched, ids)


# --- 12 and 13. the command line --------------------------------------------------------------
def readme_dir(tmp_path: Path, monkeypatch) -> Path:
    """A working directory with the repository's configs/, so commands read as in the README."""
    shutil.copytree(REPO_ROOT / "configs", tmp_path / "configs")
    monkeypatch.chdir(tmp_path)
    return tmp_path


SMALL_DATA = ["--data.init_args.num_items", "512"]
SMALL_FIT = [
    "fit",
    "--config",
    "configs/synthetic.yaml",
    *QUIET,
    "--trainer.max_epochs",
    "1",
    "--trainer.accelerator",
    "cpu",
    *SMALL_DATA,
]


def checkpoint_weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


def test_fit_into_a_used_checkpoint_folder_needs_resume_or_overwrite(tmp_path, monkeypatch):
    readme_dir(tmp_path, monkeypatch)
    first = lightning_cli(SMALL_FIT)
    last = CKPT_DIR / "last.ckpt"
    first_weights = checkpoint_weights(last)
    before = snapshot(tmp_path / "artifacts")

    with pytest.raises(SystemExit) as exit_info:
        main([*SMALL_FIT, "--seed_everything", "7"])
    message = exit_info.value.code
    assert isinstance(message, str), message
    assert "already holds checkpoints" in message and "last.ckpt" in message
    assert "--ckpt_path last" in message and "--overwrite true" in message
    assert snapshot(tmp_path / "artifacts") == before  # the first run's checkpoints untouched

    second = lightning_cli([*SMALL_FIT, "--seed_everything", "7", "--overwrite", "true"])
    names = sorted(p.name for p in CKPT_DIR.iterdir())
    assert "last.ckpt" in names and not any("-v1" in n for n in names), names
    new_weights = checkpoint_weights(last)
    own = second.model.state_dict()
    assert new_weights.keys() == own.keys()
    assert all(torch.equal(new_weights[k], own[k].cpu()) for k in own)
    assert not all(torch.equal(new_weights[k], first_weights[k]) for k in own)
    assert not all(
        torch.equal(a, b)
        for a, b in zip(first.model.state_dict().values(), own.values(), strict=True)
    )

    # the README's predict command now uses the newest run
    readme = [
        "--config",
        "configs/synthetic.yaml",
        "--checkpoint",
        str(last),
        "--output",
        "ids.csv",
    ]
    assert predict_main(readme) == 0
    written = pd.read_csv("ids.csv")
    items = SyntheticDataModule(num_items=4096, dim=64, batch_size=256).predict_dataloader()
    expected = batch_inference(second.model, items, device="cpu")
    assert written["item_id"].tolist() == list(range(4096))
    assert torch.equal(torch.tensor(written[["sid_0", "sid_1", "sid_2"]].to_numpy()), expected)


def test_continuing_another_folders_checkpoint_does_not_leave_a_stale_last_ckpt(
    tmp_path, monkeypatch
):
    readme_dir(tmp_path, monkeypatch)
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(tmp_path / "configs", elsewhere / "configs")
    monkeypatch.chdir(elsewhere)
    lightning_cli([*SMALL_FIT, "--seed_everything", "3"])  # some other run's checkpoint
    monkeypatch.chdir(tmp_path)
    lightning_cli(SMALL_FIT)  # an earlier run in this folder

    start = str(elsewhere / CKPT_DIR / "last.ckpt")
    try:
        cli = lightning_cli([*SMALL_FIT, "--trainer.max_epochs", "2", "--ckpt_path", start])
    except CheckpointError as err:  # refusing, like a fresh fit, is a fix too
        assert "--overwrite" in str(err)
        return
    names = sorted(p.name for p in CKPT_DIR.iterdir())
    assert "last-v1.ckpt" not in names, names
    saved, own = checkpoint_weights(CKPT_DIR / "last.ckpt"), cli.model.state_dict()
    assert all(torch.equal(saved[k], own[k].cpu()) for k in own)


def test_predict_takes_the_model_config_from_the_checkpoint(tmp_path, monkeypatch):
    readme_dir(tmp_path, monkeypatch)
    cli = lightning_cli([*SMALL_FIT, "--model.num_levels", "2"])  # a command-line override
    written_config = Path(cli.trainer.log_dir) / "config.yaml"
    assert written_config.is_file()
    ckpt = str(CKPT_DIR / "last.ckpt")
    items = SyntheticDataModule(num_items=512, dim=64, batch_size=256).predict_dataloader()
    expected = batch_inference(cli.model, items, device="cpu")
    assert expected.shape == (512, 2)

    # fit's own config.yaml (every section, its data section and the override included), then
    # the README's config, whose model section says num_levels: 3: both use the checkpoint's 2
    for config, extra in ((str(written_config), []), ("configs/synthetic.yaml", SMALL_DATA)):
        args = ["--config", config, *extra, "--checkpoint", ckpt, "--output", "ids.csv"]
        assert predict_main(args) == 0, config
        written = pd.read_csv("ids.csv")
        assert list(written.columns) == ["item_id", "sid_0", "sid_1"], config
        assert torch.equal(torch.tensor(written[["sid_0", "sid_1"]].to_numpy()), expected)
