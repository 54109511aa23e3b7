"""Interrupted runs: resuming from last.ckpt ends where an uninterrupted run ends, bit for bit;
a checkpoint from another config, a truncated one or a missing one is a clear error that
names the file and writes nothing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from helpers import snapshot

from rqvae_lib import RqVae
from rqvae_lib.cli import lightning_cli, load_model, main, predict_main
from rqvae_lib.config import REPO_ROOT

SYNTHETIC = str(REPO_ROOT / "configs" / "synthetic.yaml")
QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]
CKPT_DIR = Path("artifacts/synthetic/checkpoints")  # the config's ModelCheckpoint dirpath

pytestmark = pytest.mark.usefixtures("one_thread")


class Interrupted(Exception):
    """Stands for a killed process."""


class CrashAtEpoch(pl.Callback):
    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        if trainer.current_epoch == self.epoch:
            raise Interrupted(f"stopped at the start of epoch {self.epoch}")


def fit(workdir: Path, monkeypatch: pytest.MonkeyPatch, *args: str, run: bool = True):
    """``python -m rqvae_lib fit --config configs/synthetic.yaml ARGS`` inside ``workdir``."""
    workdir.mkdir(exist_ok=True)
    monkeypatch.chdir(workdir)
    return lightning_cli((["fit"] if run else []) + ["--config", SYNTHETIC, *QUIET, *args], run=run)


@pytest.mark.slow
def test_resumed_run_ends_like_an_uninterrupted_one(tmp_path: Path, monkeypatch) -> None:
    args = [
        "--trainer.max_epochs",
        "4",
        "--model.quantizer.seed",
        "7",
    ]  # model and data seeds differ
    whole = fit(tmp_path / "whole", monkeypatch, *args)

    crashed = fit(tmp_path / "resumed", monkeypatch, *args, run=False)
    crashed.trainer.callbacks.append(CrashAtEpoch(2))
    with pytest.raises(Interrupted):
        crashed.trainer.fit(crashed.model, crashed.datamodule)
    assert torch.load(CKPT_DIR / "last.ckpt", weights_only=True)["epoch"] == 1

    resumed = fit(tmp_path / "resumed", monkeypatch, *args, "--ckpt_path", "last")
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
@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished 1-epoch run of the synthetic config: its folder (with artifacts/...)."""
    workdir = tmp_path_factory.mktemp("run")
    with pytest.MonkeyPatch.context() as monkeypatch:
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        fit(workdir, monkeypatch, "--trainer.max_epochs", "1")
        torch.set_num_threads(threads)
    return workdir


@pytest.fixture
def run_copy(trained_run: Path, tmp_path: Path, monkeypatch) -> Path:
    """A private copy of the trained run, as the working directory."""
    workdir = tmp_path / "run"
    shutil.copytree(trained_run, workdir)
    monkeypatch.chdir(workdir)
    return workdir


def truncate(path: Path) -> Path:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return path


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


def test_load_model_reads_both_formats_and_names_bad_files(run_copy: Path) -> None:
    ckpt = CKPT_DIR / "last.ckpt"
    model = load_model(ckpt)
    folder = model.save_pretrained(run_copy / "pretrained")
    features = torch.randn(64, 64)
    reference = RqVae.load_from_checkpoint(ckpt, map_location="cpu").eval()
    expected = reference.generate_semantic_ids(features)
    assert torch.equal(model.generate_semantic_ids(features), expected)
    assert torch.equal(load_model(folder).generate_semantic_ids(features), expected)

    with pytest.raises(FileNotFoundError, match="missing.ckpt does not exist"):
        load_model(run_copy / "missing.ckpt")
    with pytest.raises(FileNotFoundError, match="config.json not found"):
        load_model(run_copy)  # a folder without save_pretrained's files
    with pytest.raises(ValueError, match=r"last\.ckpt .* truncated"):
        load_model(truncate(ckpt))
    with pytest.raises(ValueError, match="pretrained"):
        load_model(truncate(folder / "model.safetensors"))

    other = model.save_pretrained(run_copy / "other")
    config = json.loads((other / "config.json").read_text())
    (other / "config.json").write_text(json.dumps({**config, "num_levels": 2}))
    with pytest.raises(ValueError, match=r"other.*does not match the model config"):
        load_model(other)


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
