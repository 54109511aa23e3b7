"""The model half of rqvae_lib: shapes, losses, training, save/load, metrics and bad input."""

from __future__ import annotations

import json

import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from helpers import quiet_trainer
from torch.utils.data import DataLoader

from rqvae_lib import (
    Decoder,
    Encoder,
    ResidualQuantizer,
    RqVae,
    VectorQuantizer,
    batch_inference,
    codebook_maintenance,
    codebook_stats,
    evaluate_quantization,
    evaluate_reconstruction,
    seed_everything,
)
from rqvae_lib.data.synthetic import make_synthetic_catalogue
from rqvae_lib.semantic_ids import deduplicate

REFERENCE_METRICS = {
    "train_loss",
    "train_recon_loss",
    "train_commitment_loss",
    "train_embedding_loss",
    "val_loss",
    "val_recon_loss",
}


class Features(torch.utils.data.Dataset):
    """Any tensor as a dataset of ``{'features': row}``, the shape the reference examples use."""

    def __init__(self, x: torch.Tensor) -> None:
        self.x = x

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict:
        return {"features": self.x[i]}


def trainer(tmp_path=None, epochs: int = 2, **kw) -> pl.Trainer:
    return quiet_trainer(epochs, default_root_dir=tmp_path, **kw)


@pytest.fixture(scope="module")
def catalogue():
    return make_synthetic_catalogue(num_items=1024, dim=32, branching=(8, 8, 4), seed=1)


@pytest.fixture(scope="module")
def trained(catalogue):
    seed_everything(0)
    model = RqVae(32, [64, 32], 16, 32, num_levels=3)
    trainer(epochs=3).fit(
        model, DataLoader(Features(catalogue.features), batch_size=128, shuffle=True)
    )
    return model.eval()


# --- components --------------------------------------------------------------------------
def test_encoder_decoder_accept_one_width_or_tigers_list():
    x = torch.randn(5, 384)
    assert Encoder(384, 512, 32)(x).shape == (5, 32)
    enc, dec = Encoder(384, [512, 256, 128], 32), Decoder(32, [512, 256, 128], 384)
    widths = [m.out_features for m in enc.net if isinstance(m, torch.nn.Linear)]
    assert widths == [512, 256, 128, 32]
    assert [m.out_features for m in dec.net if isinstance(m, torch.nn.Linear)] == [
        128,
        256,
        512,
        384,
    ]
    assert dec(enc(x)).shape == (5, 384)


def test_vector_quantizer_outputs_losses_and_straight_through_gradient():
    vq = VectorQuantizer(16, 4, commitment_cost=0.25, kmeans_init=False, dead_code_steps=0)
    z = torch.randn(10, 4, requires_grad=True)
    quantized, commitment, embedding, idx = vq(z)
    assert idx.shape == (10,) and idx.dtype == torch.int64
    codes = vq.embedding.weight[idx]
    torch.testing.assert_close(quantized, codes)  # forward value is the chosen code
    torch.testing.assert_close(embedding, F.mse_loss(codes, z.detach()))
    torch.testing.assert_close(commitment, 0.25 * F.mse_loss(z.detach(), codes))
    # nearest code really is the nearest
    assert torch.equal(idx, torch.cdist(z.detach(), vq.embedding.weight).argmin(1))
    # straight-through: d quantized / d z is the identity
    (quantized * torch.arange(4.0)).sum().backward()
    torch.testing.assert_close(z.grad, torch.arange(4.0).expand(10, 4))
    # the codebook loss trains the codebook only; the commitment loss trains the encoder only
    z.grad = None
    embedding.backward()
    assert z.grad is None and vq.embedding.weight.grad.abs().sum() > 0
    vq.embedding.weight.grad = None
    _, commitment, _, _ = vq(z)
    commitment.backward()
    assert vq.embedding.weight.grad is None and z.grad.abs().sum() > 0


def test_residual_quantizer_quantizes_what_earlier_levels_left():
    rq = ResidualQuantizer(3, 8, 4, kmeans_init=False, dead_code_steps=0)
    assert rq.num_levels == 3 and rq.num_embeddings == 8 and len(rq.levels) == 3
    z = torch.randn(20, 4)
    quantized, commitment, embedding, ids = rq(z)
    assert ids.shape == (20, 3) and ids.dtype == torch.int64
    residual = z.clone()
    for level, vq in enumerate(rq.levels):
        assert torch.equal(ids[:, level], vq.nearest(residual))
        residual = residual - vq.embedding.weight[ids[:, level]]
    torch.testing.assert_close(quantized, rq.decode_ids(ids))
    # the losses are the sum over levels of each level's loss on its own residual
    residual, commit_sum, embed_sum = z.clone(), 0.0, 0.0
    for level, vq in enumerate(rq.levels):
        codes = vq.embedding.weight[ids[:, level]]
        commit_sum += 0.25 * F.mse_loss(residual, codes)
        embed_sum += F.mse_loss(codes, residual)
        residual = residual - codes
    torch.testing.assert_close(commitment, commit_sum)
    torch.testing.assert_close(embedding, embed_sum)


def test_kmeans_init_uses_first_training_batch_and_inference_never_updates():
    vq = VectorQuantizer(8, 2, seed=3)
    assert not bool(vq.initialized)
    x = torch.cat(
        [
            torch.randn(50, 2) * 0.01 + torch.tensor(c)
            for c in [(5, 5), (-5, 5), (5, -5), (-5, -5)] * 2
        ]
    )
    with codebook_maintenance(vq), torch.no_grad():
        vq.train()(x)  # no gradients: no update, as in generate_semantic_ids
    assert not bool(vq.initialized)
    vq.train()(x)  # a bare forward with gradients, as after trainer.fit: no update either
    assert not bool(vq.initialized)
    with codebook_maintenance(vq):  # what training_step does
        vq(x)
    assert bool(vq.initialized)
    centres = {tuple(round(v) for v in row) for row in vq.embedding.weight.tolist()}
    assert {(5, 5), (-5, 5), (5, -5), (-5, -5)} <= centres


def test_dead_codes_are_restarted_from_current_inputs():
    vq = VectorQuantizer(4, 2, kmeans_init=False, dead_code_steps=2, seed=0)
    with torch.no_grad():
        vq.embedding.weight.copy_(torch.tensor([[0.0, 0.0], [100, 100], [200, 200], [300, 300]]))
    x = torch.randn(64, 2)
    with codebook_maintenance(vq):
        for _ in range(2):
            vq(x)
    weight = vq.embedding.weight.detach()
    assert int(vq.num_restarts) == 1
    # the three far-away codes now sit on input points
    for row in weight[1:]:
        assert (x - row).norm(dim=1).min() < 1e-6
    assert len(torch.unique(vq(x).encoding_indices)) > 1


def test_balance_rate_evens_out_code_usage_and_the_bias_is_saved():
    """Bias-based balancing: over-used codes get a larger distance bias until usage evens out."""
    torch.manual_seed(0)
    x = torch.cat([torch.randn(900, 2) * 0.3 - 0.5, torch.randn(100, 2) * 0.3 + 0.5])
    codes = torch.tensor([[-0.5, -0.5], [-0.3, -0.7], [0.5, 0.5], [0.7, 0.3]])

    def perplexity(vq):
        with torch.no_grad():
            counts = torch.bincount(vq(x).encoding_indices, minlength=4).float()
        p = counts / counts.sum()
        return float(torch.exp(-(p[p > 0] * p[p > 0].log()).sum()))

    vq = VectorQuantizer(4, 2, kmeans_init=False, dead_code_steps=0, balance_rate=0.05)
    with torch.no_grad():
        vq.embedding.weight.copy_(codes)
    before = perplexity(vq)
    with codebook_maintenance(vq):
        for _ in range(200):
            vq(x)
    after = perplexity(vq)
    assert before < 2.8 and after > 3.9, (before, after)  # 4 is perfectly even
    assert abs(float(vq.code_bias.mean())) < 1e-6 and float(vq.code_bias[2:].max()) < 0
    # the bias is a buffer: inference never moves it, and a reloaded quantizer assigns the same
    bias = vq.code_bias.clone()
    with torch.no_grad():
        ids = vq.eval()(x).encoding_indices
    assert torch.equal(vq.code_bias, bias)
    copy = VectorQuantizer(4, 2, balance_rate=0.05)
    copy.load_state_dict(vq.state_dict())
    assert torch.equal(copy.eval()(x).encoding_indices, ids)
    # off by default: the bias stays zero
    plain = VectorQuantizer(4, 2, kmeans_init=False, dead_code_steps=0)
    with codebook_maintenance(plain):
        plain(x)
    assert not plain.code_bias.any()


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


# --- save and load -----------------------------------------------------------------------
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


# --- evaluation --------------------------------------------------------------------------
def test_codebook_stats_by_hand():
    ids = torch.tensor([[0, 0], [0, 0], [0, 1], [1, 2]])
    s = codebook_stats(ids, num_embeddings=4)
    assert s["unique_codes_per_level"] == [2, 3] and s["unique_codes"] == 5
    assert s["usage_rate_per_level"] == [0.5, 0.75] and s["usage_rate"] == 5 / 8
    assert s["perplexity_per_level"][0] == pytest.approx(2 ** (0.75 * 0.415 + 0.25 * 2), rel=1e-2)
    assert s["perplexity_per_level"][1] == pytest.approx(2**1.5, rel=1e-4)
    assert s["perplexity"] == pytest.approx(sum(s["perplexity_per_level"]) / 2)
    assert (s["unique_ids"], s["collision_rate"], s["max_items_per_id"]) == (3, 0.5, 2)


def test_evaluation_functions(trained, catalogue):
    loader = DataLoader(Features(catalogue.features), batch_size=100)
    ids = batch_inference(trained, loader)  # device=None: CPU here
    assert ids.shape == (1024, 3) and ids.device.type == "cpu"
    assert torch.equal(ids, trained.generate_semantic_ids(catalogue.features))
    rec = evaluate_reconstruction(trained, loader, device="cpu")
    x_hat = trained(catalogue.features)[0]
    assert rec["mse"] == pytest.approx(
        float(((x_hat - catalogue.features) ** 2).sum(1).mean()), rel=1e-4
    )
    assert rec["rmse"] == pytest.approx(rec["mse"] ** 0.5) and 0 < rec["relative_error"] < 1
    q = evaluate_quantization(trained, loader)
    assert q == codebook_stats(ids, 32)
    assert {"usage_rate", "unique_codes", "perplexity"} <= set(q)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without CUDA")
def test_asking_for_cuda_without_it_is_a_clear_error(trained, catalogue):
    with pytest.raises(RuntimeError, match="CUDA is not available.*device=None"):
        batch_inference(
            trained, DataLoader(Features(catalogue.features), batch_size=100), device="cuda"
        )


# --- bad input ---------------------------------------------------------------------------
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


# --- it must not collapse ----------------------------------------------------------------
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


def test_deduplicate_breaks_ties_at_the_last_level_only():
    torch.manual_seed(0)
    rq = ResidualQuantizer(2, 8, 4, kmeans_init=False, dead_code_steps=0)
    z = torch.randn(6, 4) * 1e-4 + 0.5  # six near-identical items: one shared ID
    ids = rq(z).encoding_indices
    assert len(torch.unique(ids, dim=0)) == 1
    unique = deduplicate(rq, z, ids)
    assert torch.equal(unique[:, 0], ids[:, 0]) and len(torch.unique(unique, dim=0)) == 6
    # items placed exactly on distinct codes: nothing collides, so nothing moves
    with torch.no_grad():
        for vq in rq.levels:
            vq.embedding.weight.copy_(
                torch.eye(8, 4) * 3 if vq is rq.levels[0] else torch.randn(8, 4)
            )
    exact = rq.decode_ids(torch.tensor([[i, i] for i in range(4)]))
    ids = rq(exact).encoding_indices
    assert len(torch.unique(ids, dim=0)) == 4
    assert torch.equal(deduplicate(rq, exact, ids), ids)


def test_deduplicate_warns_and_counts_when_a_prefix_holds_more_items_than_codes():
    torch.manual_seed(0)
    rq = ResidualQuantizer(2, 4, 4, kmeans_init=False, dead_code_steps=0)
    z = torch.randn(6, 4) * 1e-4 + 0.5  # six items, one prefix, only four last-level codes
    ids = rq(z).encoding_indices
    with pytest.warns(UserWarning, match=r"deduplicate: 3 items still share a full ID"):
        unique = deduplicate(rq, z, ids)
    assert len(torch.unique(unique, dim=0)) == 4


def test_deduplicate_uses_the_code_bias_as_lookup_does():
    rq = ResidualQuantizer(1, 4, 2, kmeans_init=False, dead_code_steps=0)
    with torch.no_grad():
        rq.levels[0].embedding.weight.copy_(torch.tensor([[0.0, 0], [1, 0], [0, 1], [5, 5]]))
        rq.levels[0].code_bias.copy_(torch.tensor([0.0, 10.0, 0.0, 0.0]))
    z = torch.tensor([[0.9, 0.0], [0.9, 0.0]])  # nearest code 1, but its bias sends them to 0
    ids = rq(z).encoding_indices
    assert ids[:, 0].tolist() == [0, 0]
    # a balanced assignment under the biased cost: code 0 and the next cheapest, code 2
    assert sorted(deduplicate(rq, z, ids)[:, 0].tolist()) == [0, 2]


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


def test_cosine_codebooks_compare_directions_only():
    vq = VectorQuantizer(8, 4, kmeans_init=False, dead_code_steps=0, use_cosine=True)
    z = torch.randn(16, 4)
    quantized, _, _, idx = vq(z * 5.0)  # scale does not matter, only direction
    assert torch.equal(idx, vq(z).encoding_indices)
    torch.testing.assert_close(quantized.norm(dim=1), torch.ones(16))
    similarity = F.normalize(z, dim=1) @ F.normalize(vq.embedding.weight, dim=1).t()
    assert torch.equal(idx, similarity.argmax(1))
    model = RqVae(32, 64, 16, 16, num_levels=2, use_cosine=True)
    assert model.generate_semantic_ids(torch.randn(5, 32)).shape == (5, 2)


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
