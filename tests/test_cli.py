"""The command line: the README's quick start, predict matching batch_inference, help and errors."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from torch.utils.data import DataLoader

from rqvae_lib import QuantizerConfig, RqVae, add_collision_suffix, batch_inference
from rqvae_lib.cli import lightning_cli, load_model, predict_main
from rqvae_lib.config import REPO_ROOT, TUTORIAL_CONFIG
from rqvae_lib.data import ItemDataModule, SyntheticDataModule

CONFIGS = REPO_ROOT / "configs"
QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]


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


def test_beauty_config_is_the_tutorial_config() -> None:
    config = yaml.safe_load((CONFIGS / "beauty.yaml").read_text())
    model = {**config["model"], **config["model"].pop("quantizer")}  # the CLI nests these
    assert {k: model[k] for k in TUTORIAL_CONFIG} == TUTORIAL_CONFIG
    assert config["data"]["init_args"]["batch_size"] == 1024
    assert config["trainer"]["accelerator"] == "auto"


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
