"""rqvae_lib.model: RqVae (shapes, options, training, bad input) and its save, load and checkpoints."""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from helpers import (
    CKPT_DIR,
    NAN,
    QUANTIZER_CASES,
    TINY_DIM,
    Features,
    feature_loader,
    quiet_trainer,
    snapshot,
    tiny,
    truncate,
)
from torch.utils.data import DataLoader

import rqvae_lib
import rqvae_lib.io
import rqvae_lib.pretrained
from rqvae_lib import (
    ResidualQuantizer,
    RqVae,
    VectorQuantizer,
    batch_inference,
    codebook_maintenance,
    codebook_stats,
    seed_everything,
)
from rqvae_lib.checkpoints import CheckpointError
from rqvae_lib.data import SyntheticDataModule
from rqvae_lib.data.synthetic import make_synthetic_catalogue
from rqvae_lib.model import load_model

REFERENCE_METRICS = {
    "train_loss",
    "train_recon_loss",
    "train_commitment_loss",
    "train_embedding_loss",
    "val_loss",
    "val_recon_loss",
}

pytestmark = pytest.mark.usefixtures("one_thread")


def trainer(tmp_path=None, epochs: int = 2, **kw) -> pl.Trainer:
    return quiet_trainer(epochs, default_root_dir=tmp_path, **kw)


# --- the model ---------------------------------------------------------------------------
def test_reference_defaults_and_shapes():
    model = RqVae()
    h = model.hparams
    assert (
        h.input_dim,
        h.hidden_dim,
        h.latent_dim,
        h.num_embeddings,
        h.commitment_cost,
        h.learning_rate,
    ) == (768, 512, 256, 1024, 0.25, 1e-3)
    assert model.quantizer.num_embeddings == 1024 and model.quantizer.num_levels == 3
    x = torch.randn(10, 768)
    reconstructed, commitment, embedding, ids = model(x)
    assert reconstructed.shape == (10, 768) and commitment.dim() == 0 and embedding.dim() == 0
    assert ids.shape == (10, 3) and ids.dtype == torch.int64
    assert model.encode(x).shape == (10, 256)
    assert model.generate_semantic_ids(x).shape == (10, 3)
    single = RqVae(768, 512, 256, 1024, num_levels=1)
    assert single.generate_semantic_ids(x).shape == (10, 1)


def test_training_logs_exactly_the_reference_metrics(tmp_path, catalogue):
    model = RqVae(32, 64, 16, 16, num_levels=2)
    loader = DataLoader(Features(catalogue.features), batch_size=128, shuffle=True)
    t = trainer(tmp_path, epochs=1)
    t.fit(model, loader, DataLoader(Features(catalogue.features[:256]), batch_size=128))
    assert set(t.logged_metrics) == REFERENCE_METRICS
    config = model.configure_optimizers()
    assert isinstance(config["optimizer"], torch.optim.Adam)
    scheduler = config["lr_scheduler"]["scheduler"]
    assert isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)
    assert (scheduler.factor, scheduler.patience, config["lr_scheduler"]["monitor"]) == (
        0.5,
        5,
        "val_loss",
    )


@pytest.mark.slow
def test_basic_training_example_runs_without_a_validation_loader(catalogue):
    """The reference's ``trainer.fit(model, dataloader)``, with ``accelerator='auto'`` for ``gpus=1``."""
    model = RqVae(input_dim=32, hidden_dim=64, latent_dim=16, num_embeddings=64, learning_rate=1e-3)
    dataloader = DataLoader(Features(catalogue.features), batch_size=32, shuffle=True)
    t = pl.Trainer(
        max_epochs=7,
        accelerator="auto",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
    )
    before = model.generate_semantic_ids(catalogue.features)
    t.fit(model, dataloader)
    assert t.current_epoch == 7 and "train_loss" in t.logged_metrics
    assert t.lr_scheduler_configs[0].monitor == "train_loss"
    assert not torch.equal(before, model.generate_semantic_ids(catalogue.features))


def test_epoch_losses_are_the_batch_weighted_means_of_the_steps():
    """Logged once per epoch from sums kept on the device: the same means as per-step logging."""

    class Steps(pl.Callback):
        def __init__(self) -> None:
            self.losses: list[tuple[float, int]] = []

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            self.losses.append((float(outputs["loss"]), batch["features"].shape[0]))

    seed_everything(0)
    data = SyntheticDataModule(num_items=700, dim=32, batch_size=128, seed=0)  # a short last batch
    steps = Steps()
    trainer = quiet_trainer(
        1,
        callbacks=[steps],
    )
    trainer.fit(RqVae(32, [64, 32], 8, 16, num_levels=2), data)
    total = sum(n for _, n in steps.losses)
    expected = sum(loss * n for loss, n in steps.losses) / total
    assert len(steps.losses) == 5 and steps.losses[-1][1] < 128
    assert float(trainer.callback_metrics["train_loss"]) == pytest.approx(expected, rel=1e-6)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="host synchronisation is a GPU matter")
def test_a_training_step_on_the_gpu_never_waits_for_the_device():
    """After the first step (k-means init reads the batch), no step copies anything to the host."""
    model = RqVae(64, [128, 64], 16, 32, num_levels=3, balance_rate=1e-3).cuda().train()
    x = torch.nn.functional.normalize(torch.randn(512, 64, device="cuda"), dim=1)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step() -> None:
        with codebook_maintenance(model):
            loss = model._losses({"features": x})[0]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    step()
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(20):  # dead-code restarts and the balancing bias included
            step()
    finally:
        torch.cuda.set_sync_debug_mode("default")


def test_same_seed_same_semantic_ids(catalogue):
    ids = []
    for _ in range(2):
        seed_everything(7)
        model = RqVae(32, 64, 16, 16, num_levels=2, seed=7)
        trainer(epochs=1).fit(
            model, DataLoader(Features(catalogue.features), batch_size=128, shuffle=True)
        )
        ids.append(model.generate_semantic_ids(catalogue.features))
    assert torch.equal(*ids)


def test_generate_semantic_ids_never_changes_codebooks(catalogue):
    model = RqVae(32, 64, 16, 16).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.generate_semantic_ids(catalogue.features)
    model(catalogue.features)  # a bare forward in training mode, with gradients
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_forward_after_fit_leaves_the_trained_codebooks_alone(tmp_path, catalogue):
    """Lightning leaves the model in training mode after fit; a forward pass must not re-seed
    dead codes or move the balancing bias, and save_pretrained must save the trained model."""
    seed_everything(0)
    model = RqVae(32, 64, 16, 16, num_levels=2, dead_code_steps=1, balance_rate=0.05)
    trainer(epochs=1).fit(
        model, DataLoader(Features(catalogue.features), batch_size=128, shuffle=True)
    )
    assert model.training  # as Lightning leaves it
    ids = model.generate_semantic_ids(catalogue.features)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    shifted = catalogue.features[:1024].roll(1, dims=1)  # inference data unlike the training data
    for _ in range(3):
        model(shifted)[1].backward()
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    model.save_pretrained(tmp_path / "m")
    assert torch.equal(
        RqVae.from_pretrained(tmp_path / "m").generate_semantic_ids(catalogue.features), ids
    )


def test_default_model_does_not_collapse_and_plain_ste_does():
    """Anisotropic catalogue (like sentence embeddings): k-means init + dead-code restart keep every
    level busy and IDs unique; the same model without them collapses to a handful of codes."""
    cat = make_synthetic_catalogue(num_items=2048, dim=64, branching=(16, 8, 8), noise=0.5, seed=0)
    loader = DataLoader(Features(cat.features), batch_size=256, shuffle=True)
    stats = {}
    for name, opts in {
        "default": {},
        "plain": {"kmeans_init": False, "dead_code_steps": 0},
    }.items():
        seed_everything(0)
        model = RqVae(64, [128, 64], 16, 32, num_levels=3, **opts)
        trainer(epochs=15).fit(model, loader)
        stats[name] = codebook_stats(model.generate_semantic_ids(cat.features), 32)
        stats[name + "+dedup"] = codebook_stats(
            model.generate_semantic_ids(cat.features, deduplicate=True), 32
        )
    default, plain = stats["default"], stats["plain"]
    assert min(default["perplexity_per_level"]) > 0.6 * 32, default
    assert default["unique_id_rate"] > 0.75, default
    assert stats["default+dedup"]["collision_rate"] < 0.05, stats["default+dedup"]
    # without the techniques every level collapses to one or two codes
    assert max(plain["perplexity_per_level"][:2]) < 2 and plain["unique_id_rate"] < 0.05, plain
    assert stats["plain+dedup"]["unique_id_rate"] < 0.1


def test_cosine_schedule_decays_to_zero_over_the_fit(catalogue):
    model = RqVae(32, 64, 16, 16, num_levels=2, lr_schedule="cosine", learning_rate=3e-3)
    t = trainer(epochs=2)
    t.fit(model, DataLoader(Features(catalogue.features), batch_size=128, shuffle=True))
    config = t.lr_scheduler_configs[0]
    assert isinstance(config.scheduler, torch.optim.lr_scheduler.CosineAnnealingLR)
    assert config.interval == "step" and config.scheduler.T_max == 2 * 8
    assert t.optimizers[0].param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(
        ValueError, match="lr_schedule must be one of 'plateau', 'cosine', got 'linear'"
    ):
        RqVae(lr_schedule="linear")


def test_reference_usage_examples_as_written(tmp_path, monkeypatch):
    """'Basic Training' and 'Semantic ID Generation' from the reference, with its constructor
    arguments, on 768-d features (sentence-T5's width), 1 epoch instead of 100, and
    ``accelerator="auto"`` for ``gpus=1``."""
    monkeypatch.chdir(tmp_path)
    dataset = Features(make_synthetic_catalogue(num_items=256, dim=768, seed=3).features)
    dataloader = DataLoader(dataset, batch_size=32, shuffle=True)
    model = RqVae(
        input_dim=768, hidden_dim=512, latent_dim=256, num_embeddings=1024, learning_rate=1e-3
    )
    trainer = pl.Trainer(max_epochs=1, accelerator="auto", logger=False, enable_checkpointing=False)
    trainer.fit(model, dataloader)
    trainer.save_checkpoint("checkpoints/rqvae.ckpt")

    model = RqVae.load_from_checkpoint("checkpoints/rqvae.ckpt")
    model.eval()
    with torch.no_grad():
        features = torch.randn(10, 768)
        semantic_ids = model.generate_semantic_ids(features)
    assert semantic_ids.shape == (10, 3) and semantic_ids.dtype == torch.int64
    trained = trainer.lightning_module
    for vq, saved in zip(trained.quantizer.levels, model.quantizer.levels, strict=True):
        assert torch.equal(vq.embedding.weight, saved.embedding.weight)  # trained codebooks
        assert bool(saved.initialized)


# --- options ---------------------------------------------------------------------------------
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
        RqVae(TINY_DIM, **{"hidden_dim": 16, "latent_dim": 4, "num_embeddings": 8, **options})


# --- bad input, non-finite values and 16-bit training ------------------------------------
@pytest.mark.parametrize(
    ("features", "error", "message"),
    [
        (torch.randn(32), ValueError, r"shape \(batch, 32\), got \(32,\)"),
        (torch.randn(4, 31), ValueError, r"shape \(batch, 32\), got \(4, 31\)"),
        (torch.ones(4, 32, dtype=torch.long), TypeError, r"floating-point.*torch.int64"),
        (torch.tensor([[float("nan")] * 32, [0.0] * 32]), ValueError, r"NaN or inf in 1 of 2 rows"),
        (torch.full((3, 32), float("inf")), ValueError, r"NaN or inf in 3 of 3 rows"),
        (torch.empty(0, 32), ValueError, "empty batch"),
        ([[0.0] * 32], TypeError, "torch.Tensor"),
    ],
)
def test_bad_features_say_what_was_expected(trained, features, error, message):
    for call in (trained, trained.encode, trained.generate_semantic_ids):
        with pytest.raises(error, match=message):
            call(features)


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
        quiet_trainer(1, precision=precision).fit(model, feature_loader(features))


def test_bf16_mixed_precision_trains_on_cpu(features):
    model = tiny(0)
    try:
        trainer = quiet_trainer(1, precision="bf16-mixed")
    except (ValueError, RuntimeError) as err:  # pragma: no cover - depends on the Lightning build
        pytest.skip(f"this Lightning cannot run bf16-mixed on the CPU: {err}")
    trainer.fit(model, feature_loader(features))
    assert trainer.global_step == 4
    model.check_finite()
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert model.dtype == torch.float32
    ids = model.eval().generate_semantic_ids(features)
    assert ids.shape == (256, 2) and len(torch.unique(ids[:, 0])) > 1


def test_float64_features_are_a_type_error_except_for_generate_semantic_ids(features):
    model = tiny(0)
    x64 = features.double()
    with pytest.raises(TypeError, match=r"torch\.float32 .*got torch\.float64"):
        model(x64)
    with pytest.raises(TypeError, match=r"torch\.float64"):
        quiet_trainer(1).fit(model, feature_loader(x64))
    model.eval()
    assert torch.equal(model.generate_semantic_ids(x64), model.generate_semantic_ids(features))
    assert torch.equal(
        batch_inference(model, feature_loader(x64), device="cpu"),
        model.generate_semantic_ids(features),
    )


# --- save_pretrained / from_pretrained ---------------------------------------------------
def test_save_pretrained_round_trip_gives_identical_ids(tmp_path, trained, catalogue):
    trained.save_pretrained(tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == [
        "config.json",
        "model.safetensors",
    ]
    loaded = RqVae.from_pretrained(tmp_path / "m")
    assert loaded.hparams == trained.hparams
    assert torch.equal(
        loaded.generate_semantic_ids(catalogue.features),
        trained.generate_semantic_ids(catalogue.features),
    )


def test_from_pretrained_rejects_a_config_that_does_not_match(tmp_path, trained):
    trained.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "latent_dim": 8}))
    with pytest.raises(ValueError, match=r"model\.safetensors does not match.*latent_dim.*: 8"):
        RqVae.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({**config, "layers": 3}))
    with pytest.raises(ValueError, match=r"unknown keys \['layers'\]"):
        RqVae.from_pretrained(tmp_path)
    with pytest.raises(FileNotFoundError, match="save_pretrained"):
        RqVae.from_pretrained(tmp_path / "nowhere")


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

    real_save_file = rqvae_lib.pretrained.save_file

    def crash_after_weights(state, path, *args, **kwargs):
        real_save_file(state, path, *args, **kwargs)
        raise OSError("disk full (simulated, after the weights were written)")

    monkeypatch.setattr(rqvae_lib.pretrained, "save_file", crash_after_weights)
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


def test_weights_from_another_save_are_refused(tmp_path):
    a = tiny(0).save_pretrained(tmp_path / "a")
    b = tiny(1).save_pretrained(tmp_path / "b")
    shutil.copy(b / "model.safetensors", a / "model.safetensors")  # same shapes, other values
    with pytest.raises(ValueError, match=r"sha256.*different saves"):
        RqVae.from_pretrained(a)
    with pytest.raises(CheckpointError, match="sha256"):
        load_model(a)


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


# --- Lightning checkpoints and load_model -----------------------------------------------------
def test_lightning_checkpoint_round_trip_gives_identical_ids(tmp_path, catalogue):
    seed_everything(0)
    model = RqVae(32, [64, 32], 16, 32, num_levels=3)
    t = trainer(tmp_path, epochs=2, enable_checkpointing=True)
    t.fit(model, DataLoader(Features(catalogue.features), batch_size=128, shuffle=True))
    path = t.checkpoint_callback.best_model_path
    loaded = RqVae.load_from_checkpoint(path)
    assert torch.equal(
        loaded.generate_semantic_ids(catalogue.features),
        model.eval().generate_semantic_ids(catalogue.features),
    )
    with pytest.raises(
        ValueError, match=r"does not match.*saved shape \(32, 16\), model expects \(64, 16\)"
    ):
        RqVae.load_from_checkpoint(path, num_embeddings=64)


def test_load_from_a_truncated_checkpoint_names_the_file(tmp_path, features):
    model = tiny(0)
    trainer = quiet_trainer(1)
    trainer.fit(model, feature_loader(features))
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
