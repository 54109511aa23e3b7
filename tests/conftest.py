"""Shared fixtures: a data root holding the real Amazon files, Beauty's cached embeddings, and a
tiny P5-layout copy (``p5_tiny``, ``p5_root``) for the tests that must run without the real data.

The real files are read from ``$RQVAE_SHARED_DATA`` (``make test`` sets it where a local copy
exists), never copied into the repository; without it the tests of the real counts skip. The data root is ``$RQVAE_DATA_ROOT`` when set, so the embedding
cache written there is reused by later runs and by the notebooks; else a fresh temp folder.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from p5_fixture import TINY, P5Fixture, build_p5_fixture

from rqvae_lib.data import SPLITS, build_item_texts, link_local_copy, load_items, load_or_embed
from rqvae_lib.data.amazon import missing_files, processed_dir

os.environ.setdefault("HF_HUB_OFFLINE", "1")
SHARED_DATA = Path(os.environ.get("RQVAE_SHARED_DATA", "")).expanduser()


def _shared(split: str) -> Path:
    if not os.environ.get("RQVAE_SHARED_DATA"):
        return Path("$RQVAE_SHARED_DATA (not set)") / f"amazon-{split}"
    return SHARED_DATA / f"amazon-{split}"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The folder holding ``amazon-beauty/`` (and maybe ``amazon-toys/``); skip if absent."""
    if not _shared("beauty").is_dir():
        pytest.skip(
            f"real Amazon data not found at {_shared('beauty')}; set RQVAE_SHARED_DATA to the "
            "folder that holds amazon-beauty/"
        )
    return SHARED_DATA


@pytest.fixture(scope="session")
def data_root(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``$RQVAE_DATA_ROOT`` or a temp folder, with ``<split>/raw`` linked to the shared files."""
    env = os.environ.get("RQVAE_DATA_ROOT")
    root = Path(env).expanduser() if env else tmp_path_factory.mktemp("data_root")
    for split in ("beauty", "toys"):
        if _shared(split).is_dir() and missing_files(split, root):
            link_local_copy(split, root, _shared(split))
    return root


@pytest.fixture(scope="session")
def beauty_items(data_root: Path):
    return load_items("beauty", data_root)


@pytest.fixture(scope="session")
def beauty_texts(beauty_items) -> list[str]:
    return build_item_texts(beauty_items)


@pytest.fixture(scope="session")
def beauty_embeddings(data_root: Path, beauty_texts: list[str]) -> np.ndarray:
    """Beauty's MiniLM embeddings: computed at most once per data root, then read from the cache."""
    return load_or_embed(beauty_texts, processed_dir(data_root, "beauty"))


@pytest.fixture
def p5_tiny(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> P5Fixture:
    """A tiny P5 folder at ``<tmp>/shared/amazon-tiny``, registered as split "tiny" for one test."""
    fixture = build_p5_fixture(tmp_path / "shared" / f"amazon-{TINY}")
    monkeypatch.setitem(SPLITS, TINY, fixture.files)
    return fixture


@pytest.fixture
def p5_root(p5_tiny: P5Fixture, tmp_path: Path) -> Path:
    """A data root whose ``tiny/raw`` links to :func:`p5_tiny`'s folder."""
    root = tmp_path / "data"
    link_local_copy(TINY, root, p5_tiny.folder)
    return root


@pytest.fixture
def fixture_root(p5_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The P5 fixture with seeded random 8-d "text embeddings" and artifacts in a temp folder."""
    from rqvae_lib.data import embed as embed_module

    def fake_embed(texts, *args, **kwargs):
        return np.random.default_rng(0).normal(size=(len(texts), 8)).astype(np.float32)

    monkeypatch.setattr(embed_module, "embed_texts", fake_embed)
    monkeypatch.setenv("RQVAE_ARTIFACTS", str(tmp_path / "artifacts"))
    return p5_root


@pytest.fixture(scope="session")
def catalogue():
    """The small synthetic catalogue of the model tests (helpers.small_catalogue)."""
    from helpers import small_catalogue

    return small_catalogue()


@pytest.fixture(scope="session")
def trained(catalogue):
    """A small RqVae trained on ``catalogue`` once per session; tests must not change it."""
    from helpers import fit_small_rqvae

    return fit_small_rqvae(catalogue)


@pytest.fixture(scope="session")
def features():
    """A few normalized feature rows of the tiny model's width (helpers.tiny_features)."""
    from helpers import tiny_features

    return tiny_features()


@pytest.fixture(scope="session")
def small_run(tmp_path_factory: pytest.TempPathFactory):
    """``(datamodule, TrainRun, log folder)``: a small model trained by train_model, once."""
    from helpers import train_small_run

    tmp = tmp_path_factory.mktemp("small_run")
    dm, result = train_small_run(tmp)
    return dm, result, tmp


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished 1-epoch run of the synthetic config: its folder (with artifacts/...)."""
    from helpers import finished_synthetic_run

    return finished_synthetic_run(tmp_path_factory.mktemp("run"))


@pytest.fixture
def run_copy(trained_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private copy of the trained run, as the working directory (tests may change it)."""
    from helpers import working_copy

    return working_copy(trained_run, tmp_path / "run", monkeypatch)


@pytest.fixture
def one_thread():
    """Tiny matrices on a shared CPU: extra threads only contend, so use one."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
