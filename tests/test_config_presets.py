"""The presets are declared once: the command line's config and the lessons read the same values."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from rqvae_lib.config import REPO_ROOT, TUTORIAL_CONFIG
from rqvae_lib.model import RqVae, RqVaeConfig
from rqvae_lib.quantizer import QuantizerConfig


def _yaml_model_config(path: Path) -> RqVaeConfig:
    """The RqVaeConfig that ``python -m rqvae_lib fit --config path`` builds."""
    model = dict(yaml.safe_load(path.read_text())["model"])
    quantizer = QuantizerConfig(**model.pop("quantizer", {}))
    return RqVae(**model, quantizer=quantizer).config


def test_beauty_yaml_is_the_tutorial_preset() -> None:
    """configs/beauty.yaml trains exactly TUTORIAL_CONFIG: a value changed in one place but not
    the other fails here, naming the option."""
    from_yaml = _yaml_model_config(REPO_ROOT / "configs" / "beauty.yaml").as_dict()
    preset = RqVaeConfig.from_dict(TUTORIAL_CONFIG).as_dict()
    assert {k: v for k, v in from_yaml.items() if preset[k] != v} == {}


def test_tutorial_preset_overrides_only_known_options_and_builds_a_model() -> None:
    config = RqVaeConfig.from_dict(TUTORIAL_CONFIG)
    model = RqVae(**TUTORIAL_CONFIG)
    assert model.config == config
    assert RqVae.from_config(config).config == config
    with pytest.raises(TypeError, match="unknown RqVae option"):
        RqVaeConfig.from_dict({**TUTORIAL_CONFIG, "n_levels": 3})

