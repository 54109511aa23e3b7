"""rqvae_lib.config: display_path, seed_everything, and the tutorial preset (test_cli.py checks
configs/beauty.yaml against it, through the command line's own parser)."""

from __future__ import annotations

import pytest

from rqvae_lib.config import REPO_ROOT, TUTORIAL_CONFIG, display_path
from rqvae_lib.model import RqVae, RqVaeConfig


def test_display_path_never_shows_this_machines_layout(tmp_path, monkeypatch) -> None:
    assert display_path(REPO_ROOT / "artifacts" / "rqvae-beauty") == "artifacts/rqvae-beauty"
    monkeypatch.setenv("RQVAE_DATA_ROOT", str(tmp_path))
    assert display_path(tmp_path) == "$RQVAE_DATA_ROOT"
    assert display_path(tmp_path / "beauty") == "$RQVAE_DATA_ROOT/beauty"
    monkeypatch.delenv("RQVAE_DATA_ROOT")
    assert display_path(tmp_path / "beauty") == ".../beauty"


def test_tutorial_preset_overrides_only_known_options_and_builds_a_model() -> None:
    config = RqVaeConfig.from_dict(TUTORIAL_CONFIG)
    model = RqVae(**TUTORIAL_CONFIG)
    assert model.config == config
    assert RqVae.from_config(config).config == config
    with pytest.raises(TypeError, match="unknown RqVae option"):
        RqVaeConfig.from_dict({**TUTORIAL_CONFIG, "n_levels": 3})


def test_seed_everything_switches_deterministic_kernels_both_ways() -> None:
    """A budget with deterministic=False (the GPU one) really runs without them, even after an
    earlier seed_everything() switched them on (notebook 06 seeds first, then trains)."""
    import torch

    from rqvae_lib.config import seed_everything

    try:
        seed_everything(0)
        assert torch.are_deterministic_algorithms_enabled()
        seed_everything(0, deterministic=False)
        assert not torch.are_deterministic_algorithms_enabled()
    finally:
        seed_everything(0)
