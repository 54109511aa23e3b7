"""rqvae_lib.cli: fit (quick start, checkpoint folders, resume), predict, help and errors."""

from __future__ import annotations

import inspect
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import pytorch_lightning as pl
import torch
from helpers import (
    CKPT_DIR,
    QUIET,
    SYNTHETIC,
    cli_fit,
    snapshot,
    truncate,
)
from torch.utils.data import DataLoader

from rqvae_lib import QuantizerConfig, RqVae, add_collision_suffix, batch_inference
from rqvae_lib.checkpoints import CheckpointError
from rqvae_lib.cli import lightning_cli, load_model, main, predict_main
from rqvae_lib.config import REPO_ROOT, TUTORIAL_BATCH_SIZE, TUTORIAL_CONFIG, TUTORIAL_EPOCHS
from rqvae_lib.data import ItemDataModule, SyntheticDataModule
from rqvae_lib.model import RqVaeConfig

CONFIGS = REPO_ROOT / "configs"

pytestmark = pytest.mark.usefixtures("one_thread")


def run_module(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """``python -m rqvae_lib ARGS`` in a fresh process, as a user types it."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # tiny matrices; threads contend on shared CPUs
    return subprocess.run(
        [sys.executable, "-m", "rqvae_lib", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def expected_rows(model: RqVae, loader: DataLoader, suffix: bool) -> pd.DataFrame:
    """What predict must write: batch_inference's IDs keyed by the loader's item ids."""
    ids = batch_inference(model, loader, device="cpu")
    ids = add_collision_suffix(ids) if suffix else ids
    item_ids = torch.cat([batch["item_id"] for batch in loader])
    names = [f"sid_{i}" for i in range(model.quantizer.num_levels)] + ["suffix"] * suffix
    return pd.DataFrame(
        {"item_id": item_ids.numpy(), **dict(zip(names, ids.T.numpy(), strict=True))}
    )


# --- the README's commands --------------------------------------------------------------------
@pytest.mark.slow
def test_quick_start_then_predict(tmp_path: Path, one_thread) -> None:
    """The README's commands: train on the synthetic config, then write every item's ID."""
    start = time.time()
    result = run_module("fit", "--config", str(CONFIGS / "synthetic.yaml"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    print(f"quick start (20 epochs, new process): {time.time() - start:.1f} s")
    ckpt = tmp_path / "artifacts/synthetic/checkpoints/last.ckpt"
    assert (tmp_path / "artifacts/synthetic/version_0/config.yaml").is_file()

    model = RqVae.load_from_checkpoint(ckpt, map_location="cpu")
    loader = SyntheticDataModule(num_items=4096, dim=64, batch_size=256).predict_dataloader()
    output = tmp_path / "ids.csv"
    args = ["--config", str(CONFIGS / "synthetic.yaml"), "--checkpoint", str(ckpt)]
    assert predict_main([*args, "--output", str(output), "--collision_suffix", "true"]) == 0
    written = pd.read_csv(output)
    pd.testing.assert_frame_equal(written, expected_rows(model, loader, suffix=True))
    assert written["item_id"].tolist() == list(range(4096))
    assert not written.duplicated(["sid_0", "sid_1", "sid_2", "suffix"]).any()

    # a save_pretrained folder, Parquet, the data module named on the command line
    folder = load_model(ckpt).save_pretrained(tmp_path / "pretrained")
    output = tmp_path / "ids.parquet"
    args = ["--checkpoint", str(folder), "--output", str(output), "--data", "SyntheticDataModule"]
    assert predict_main(args) == 0
    pd.testing.assert_frame_equal(pd.read_parquet(output), expected_rows(model, loader, False))
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "artifacts",
        "ids.csv",
        "ids.parquet",
        "pretrained",
    ]  # no temporary files left behind


@pytest.mark.slow
def test_predict_on_beauty_matches_batch_inference(
    data_root: Path, beauty_embeddings, tmp_path: Path, monkeypatch, one_thread
) -> None:
    """A few epochs of the Beauty config, then predict: batch_inference's IDs, item for item."""
    monkeypatch.chdir(tmp_path)
    beauty = ["--config", str(CONFIGS / "beauty.yaml"), "--data.init_args.root", str(data_root)]
    lightning_cli(["fit", *beauty, *QUIET, "--trainer.max_epochs", "2"])
    ckpt = tmp_path / "artifacts/beauty/checkpoints/last.ckpt"
    output = tmp_path / "ids.parquet"
    args = [*beauty, "--checkpoint", str(ckpt), "--output", str(output), "--collision_suffix"]
    assert predict_main(args) == 0

    model = RqVae.load_from_checkpoint(ckpt, map_location="cpu")
    assert model.hparams.num_embeddings == 256 and model.hparams.hidden_dim == [512, 256, 128]
    loader = ItemDataModule(root=data_root, split="beauty").predict_dataloader()
    written = pd.read_parquet(output)
    pd.testing.assert_frame_equal(written, expected_rows(model, loader, suffix=True))
    assert written["item_id"].tolist() == list(range(1, 12_102))


def test_beauty_config_is_the_tutorial_config(tmp_path: Path, monkeypatch) -> None:
    """What ``fit --config configs/beauty.yaml`` builds: TUTORIAL_CONFIG's model (the quantizer
    section nested as the CLI nests it), TUTORIAL_BATCH_SIZE Beauty items a batch for TUTORIAL_EPOCHS epochs, and the device Lightning
    finds (accelerator auto)."""
    monkeypatch.chdir(tmp_path)
    cli = lightning_cli(["--config", str(CONFIGS / "beauty.yaml"), *QUIET], run=False)
    assert cli.model.config == RqVaeConfig.from_dict(TUTORIAL_CONFIG)
    assert isinstance(cli.datamodule, ItemDataModule) and cli.datamodule.split == "beauty"
    assert cli.datamodule.batch_size == TUTORIAL_BATCH_SIZE
    assert cli.trainer.max_epochs == TUTORIAL_EPOCHS
    found = "CUDAAccelerator" if torch.cuda.is_available() else "CPUAccelerator"
    assert type(cli.trainer.accelerator).__name__ == found


# --- a folder that already holds checkpoints --------------------------------------------------
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


# --- resuming an interrupted run --------------------------------------------------------------
class Interrupted(Exception):
    """Stands for a killed process."""


class CrashAtEpoch(pl.Callback):
    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        if trainer.current_epoch == self.epoch:
            raise Interrupted(f"stopped at the start of epoch {self.epoch}")


@pytest.mark.slow
def test_resumed_run_ends_like_an_uninterrupted_one(tmp_path: Path, monkeypatch) -> None:
    args = [
        "--trainer.max_epochs",
        "4",
        "--model.quantizer.seed",
        "7",
    ]  # model and data seeds differ
    whole = cli_fit(tmp_path / "whole", monkeypatch, *args)

    crashed = cli_fit(tmp_path / "resumed", monkeypatch, *args, run=False)
    crashed.trainer.callbacks.append(CrashAtEpoch(2))
    with pytest.raises(Interrupted):
        crashed.trainer.fit(crashed.model, crashed.datamodule)
    assert torch.load(CKPT_DIR / "last.ckpt", weights_only=True)["epoch"] == 1

    resumed = cli_fit(tmp_path / "resumed", monkeypatch, *args, "--ckpt_path", "last")
    assert resumed.trainer.current_epoch == whole.trainer.current_epoch == 4
    assert resumed.trainer.global_step == whole.trainer.global_step

    a, b = whole.model.state_dict(), resumed.model.state_dict()
    assert a.keys() == b.keys()
    for key in a:  # codebooks, their buffers (initialized, steps_since_used, ...) and weights
        assert torch.equal(a[key], b[key]), key
    metrics_a, metrics_b = whole.trainer.callback_metrics, resumed.trainer.callback_metrics
    assert {"train_loss", "val_loss", "val_recon_loss"} <= metrics_a.keys()
    assert metrics_a.keys() == metrics_b.keys()
    for name in metrics_a:
        assert torch.equal(metrics_a[name], metrics_b[name]), name


# --- bad checkpoints: a clear error naming the file, and nothing written ----------------------
def fit_error(*args: str) -> str:
    """Run ``fit`` through ``main`` and return the error message it exits with."""
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", SYNTHETIC, *QUIET, *args])
    assert isinstance(exit_info.value.code, str), exit_info.value.code
    return exit_info.value.code


def test_resume_from_another_config_is_an_error(run_copy: Path) -> None:
    before = snapshot(run_copy)
    ckpt = (CKPT_DIR / "last.ckpt").resolve()
    message = fit_error("--model.num_levels", "4", "--ckpt_path", str(ckpt))
    assert str(ckpt) in message and "num_levels=3 there, 4 here" in message
    message = fit_error("--model.hidden_dim", "[32]", "--ckpt_path", "last")
    assert "last.ckpt" in message and "hidden_dim=[128, 64] there, [32] here" in message
    assert snapshot(run_copy) == before


@pytest.mark.parametrize("which", ["explicit", "last"])
def test_resume_from_a_truncated_checkpoint_is_an_error(run_copy: Path, which: str) -> None:
    ckpt = truncate((CKPT_DIR / "last.ckpt").resolve())
    before = snapshot(run_copy)
    message = fit_error("--ckpt_path", str(ckpt) if which == "explicit" else "last")
    assert str(ckpt) in message and "truncated" in message
    assert snapshot(run_copy) == before


def test_resume_from_a_missing_checkpoint_is_an_error(run_copy: Path) -> None:
    before = snapshot(run_copy)
    message = fit_error("--ckpt_path", "artifacts/nope.ckpt")
    assert "artifacts/nope.ckpt does not exist" in message
    assert snapshot(run_copy) == before


# --- predict ----------------------------------------------------------------------------------
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


def test_predict_with_bad_checkpoints_names_them_and_keeps_the_old_output(
    run_copy: Path, capsys
) -> None:
    output = run_copy / "ids.csv"
    output.write_text("an older result\n")
    narrow = RqVae(32, [128, 64], 16, 64, num_levels=2).save_pretrained(run_copy / "narrow")
    truncated = truncate(CKPT_DIR / "last.ckpt")
    cases = {
        "missing.ckpt": "does not exist",
        str(truncated): "truncated",
        str(narrow): "expects features of shape (batch, 32)",  # 64-d items, 32-d model
    }
    for checkpoint, problem in cases.items():
        args = ["--config", SYNTHETIC, "--checkpoint", checkpoint, "--output", str(output)]
        assert predict_main(args) == 1
        err = capsys.readouterr().err
        assert checkpoint in err and problem in err and "Traceback" not in err
        assert output.read_text() == "an older result\n"
    assert sorted(p.name for p in run_copy.iterdir() if p.name.startswith(".ids")) == []


# --- help and errors --------------------------------------------------------------------------
def test_help_lists_every_option_with_its_default(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        lightning_cli(["fit", "--help"])
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for name in list(inspect.signature(RqVae.__init__).parameters)[1:-1]:  # not **options
        assert f"--model.{name}" in text, name
    for name in QuantizerConfig.names():  # the quantizer's options, typed, from the dataclass
        assert f"--model.quantizer.{name}" in text, name
    assert "--model.num_levels NUM_LEVELS (type: int, default: 3)" in text
    assert "--model.quantizer.dead_code_steps DEAD_CODE_STEPS" in text
    assert "--trainer.max_epochs MAX_EPOCHS" in text and "--ckpt_path CKPT_PATH" in text

    with pytest.raises(SystemExit):
        lightning_cli(["fit", "--data.help", "SyntheticDataModule"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--data.num_items NUM_ITEMS (type: int, default: 4096)" in text

    with pytest.raises(SystemExit) as exit_info:
        predict_main(["--help"])
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for option in ("--checkpoint", "--output", "--collision_suffix", "--device", "--data"):
        assert option in text
    assert "(type: bool, default: False)" in text


@pytest.mark.slow
def test_a_wrong_option_is_a_short_message_not_a_traceback(tmp_path: Path) -> None:
    result = run_module(
        "fit", "--config", str(CONFIGS / "synthetic.yaml"), "--model.num_levls", "4", cwd=tmp_path
    )
    assert result.returncode != 0
    assert "num_levls" in result.stderr and "error" in result.stderr.lower()
    assert "Traceback" not in result.stderr and len(result.stderr.splitlines()) < 10
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "args, message",
    [
        (["--model.num_levels", "three"], "num_levels"),  # wrong type: jsonargparse says so
        (["--model.num_levels", "0"], "num_levels must be >= 1"),  # rejected by the model
        (["--trainer.max_epocs", "3"], "max_epocs"),
    ],
)
def test_a_wrong_value_is_a_usage_error(args: list[str], message: str, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        lightning_cli(["fit", "--config", str(CONFIGS / "synthetic.yaml"), *args])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_predict_usage_errors(tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        predict_main(["--checkpoint", "x.ckpt", "--output", "ids.csv", "--colision_suffix", "1"])
    assert exit_info.value.code == 2 and "colision_suffix" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        predict_main(["--checkpoint", "x.ckpt", "--output", "ids.csv"])  # which items?
    assert exit_info.value.code == 2 and "--data" in capsys.readouterr().err
    folder = RqVae(64, 32, 8, 16, num_levels=2).save_pretrained(tmp_path / "m")
    args = ["--data", "SyntheticDataModule", "--checkpoint", str(folder)]
    assert predict_main([*args, "--output", str(tmp_path / "ids.txt")]) == 1
    assert "must end in .csv or .parquet" in capsys.readouterr().err
