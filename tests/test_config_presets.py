"""The presets in rqvae_lib.config say what they are: TIGER's shape, this project's recipe."""

from __future__ import annotations

import rqvae_lib.config as config
from rqvae_lib.config import TIGER_PAPER_RQVAE, TUTORIAL_CONFIG
from rqvae_lib.model import RqVae


def test_tutorial_config_has_the_shape_the_paper_states() -> None:
    assert TUTORIAL_CONFIG["hidden_dim"] == [512, 256, 128]
    assert TIGER_PAPER_RQVAE["encoder layers"].startswith("512, 256, 128")
    assert str(TUTORIAL_CONFIG["latent_dim"]) == TIGER_PAPER_RQVAE["latent dim"] == "32"
    levels, codes = TUTORIAL_CONFIG["num_levels"], TUTORIAL_CONFIG["num_embeddings"]
    assert TIGER_PAPER_RQVAE["levels x codes"].startswith(f"{levels} x {codes}")
    assert str(TUTORIAL_CONFIG["commitment_cost"]) == TIGER_PAPER_RQVAE["beta (commitment)"]


def test_tutorial_config_builds_a_model_and_the_old_name_is_gone() -> None:
    model = RqVae(**TUTORIAL_CONFIG)
    assert model.hparams.recon_weight == TUTORIAL_CONFIG["recon_weight"]
    # The training recipe is this project's, not the paper's: the name must not claim more.
    assert "Adagrad" in TIGER_PAPER_RQVAE["optimizer"] and model.hparams.lr_schedule == "cosine"
    assert not hasattr(config, "TIGER_CONFIG")
