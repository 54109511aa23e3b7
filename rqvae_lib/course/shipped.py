"""Trained models shipped with the repository, so that a lesson loads in seconds what took minutes.

Each lives in ``models/<name>/``: the files as the library saved them under ``artifacts/`` (a
``save_pretrained`` folder, or one cached file) and ``record.json``, which says what made them
(the command, the data, the seed, the date, the training) with each file's sha256 and size and
the metrics it gave. :func:`install` copies a shipped model into its place under
``artifacts/`` when nothing is there yet, after checking every checksum, so the library's own
loaders (``load_or_train``, ``collaborative_embeddings``) find it as if it had been trained
here. Set ``RQVAE_RETRAIN=1`` to train everything from scratch instead; fast mode (CI) always
trains, so the training code keeps running. :func:`probe` is a small fixed check of a model's
outputs, recorded when it is shipped and recomputed by the tests.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from rqvae_lib.config import REPO_ROOT, artifacts_dir, fast_mode
from rqvae_lib.io import atomic_dir, atomic_write, atomic_write_text, sha256_file

#: Where the shipped models live.
MODELS_DIR = REPO_ROOT / "models"
#: Set to 1 to train every model from scratch instead of installing the shipped ones.
RETRAIN_ENV = "RQVAE_RETRAIN"
RECORD_NAME = "record.json"
#: The size limit of one shipped model (all its files together), in bytes.
MAX_BYTES = 5 * 2**20
#: The keys every record holds.
RECORD_KEYS = ("name", "target", "kind", "files", "command", "data", "seed", "date", "training")


def retrain_requested() -> bool:
    """True when ``RQVAE_RETRAIN`` asks to train from scratch, or in fast mode (CI)."""
    return os.environ.get(RETRAIN_ENV, "0") not in ("", "0") or fast_mode()


def read_record(name: str, models_dir: str | Path | None = None) -> dict[str, Any]:
    """The ``record.json`` of shipped model ``name``, with every key of :data:`RECORD_KEYS`."""
    path = Path(models_dir or MODELS_DIR) / name / RECORD_NAME
    if not path.is_file():
        raise FileNotFoundError(f"no shipped model {name!r}: {path} does not exist")
    record = json.loads(path.read_text())
    missing = [k for k in RECORD_KEYS if k not in record]
    if missing:
        raise ValueError(f"{path} lacks {missing}")
    return record


def verify(name: str, models_dir: str | Path | None = None) -> dict[str, Any]:
    """Check every file of shipped model ``name`` against its record (sha256 and size) and the
    size limit; return the record."""
    folder = Path(models_dir or MODELS_DIR) / name
    record = read_record(name, models_dir)
    total = 0
    for file, meta in record["files"].items():
        path = folder / file
        if not path.is_file():
            raise FileNotFoundError(f"shipped model {name!r} lacks {file}")
        if sha256_file(path) != meta["sha256"]:
            raise ValueError(f"{path} does not match its record's sha256: the file changed")
        total += path.stat().st_size
    if total > MAX_BYTES:
        raise ValueError(f"shipped model {name!r} holds {total:,} bytes, over {MAX_BYTES:,}")
    return record


def install(
    names: Sequence[str], models_dir: str | Path | None = None, verbose: bool = True
) -> dict[str, str]:
    """Copy each shipped model into its place under ``artifacts/`` unless one is there already.

    Returns name -> what happened: ``"installed"``, ``"present"`` (something is in its place:
    it is used as it is) or ``"retrain"`` (:func:`retrain_requested`: nothing is copied, the
    notebook trains it). A shipped file whose checksum fails is an error, never copied.
    """
    out = {}
    for name in names:
        record = verify(name, models_dir)
        target = artifacts_dir() / record["target"]
        if retrain_requested():
            out[name] = "retrain"
        elif target.exists():
            out[name] = "present"
        else:
            source = Path(models_dir or MODELS_DIR) / name
            if record["kind"] == "folder":
                with atomic_dir(target) as tmp:
                    for file in record["files"]:
                        shutil.copy2(source / file, tmp / file)
            else:
                (file,) = record["files"]
                atomic_write(target, lambda tmp, s=source / file: shutil.copy2(s, tmp))
            out[name] = "installed"
        if verbose:
            how = {"retrain": "not used (RQVAE_RETRAIN=1 or fast mode): trained here",
                   "present": f"already in {record['target']}: used as it is",
                   "installed": f"installed in artifacts/{record['target']}"}[out[name]]  # fmt: skip
            print(f"shipped {name} ({record['training']}, seed {record['seed']}, "
                  f"{record['date']}): {how}")  # fmt: skip
    return out


def probe(model: torch.nn.Module) -> dict[str, Any]:
    """A fixed check of an RQ-VAE's outputs: its semantic IDs for 256 seeded random inputs (a
    list of rows) and its relative reconstruction error on them."""
    from rqvae_lib.evaluate import reconstruction_error

    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, model.config.input_dim, generator=g)
    model = model.eval()
    with torch.no_grad():
        ids = model.generate_semantic_ids(x).cpu().contiguous()
        reconstruction = model(x)[0]  # the decoder's output from the quantized latent
    return {"ids": ids.tolist(),
            "relative_error": reconstruction_error(x, reconstruction)["relative_error"]}  # fmt: skip


def ship(
    name: str,
    target: str,
    command: str,
    data: str,
    seed: int,
    training: str,
    metrics: Mapping[str, Any] | None = None,
    models_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Copy ``artifacts/<target>`` (a folder or a file) into ``models/<name>/`` with its record.

    An RQ-VAE folder also gets its :func:`probe`. The copy is written whole (a temporary
    folder renamed into place) and checked against the size limit before it replaces anything.
    """
    source = artifacts_dir() / target
    if not source.exists():
        raise FileNotFoundError(f"nothing to ship at {source}: train it first")
    kind = "folder" if source.is_dir() else "file"
    paths = sorted(p for p in source.iterdir() if p.is_file()) if kind == "folder" else [source]
    total = sum(p.stat().st_size for p in paths)
    if total > MAX_BYTES:
        raise ValueError(f"{source} holds {total:,} bytes, over the {MAX_BYTES:,} limit")
    record: dict[str, Any] = {
        "name": name, "target": target, "kind": kind,
        "files": {p.name: {"sha256": sha256_file(p), "bytes": p.stat().st_size} for p in paths},
        "command": command, "data": data, "seed": seed, "date": time.strftime("%Y-%m-%d"),
        "training": training, "metrics": dict(metrics or {}),
    }  # fmt: skip
    if kind == "folder" and (source / "config.json").is_file():
        from rqvae_lib.model import RqVae

        if json.loads((source / "config.json").read_text()).get("class_name") == "RqVae":
            record["probe"] = probe(RqVae.from_pretrained(source))
    with atomic_dir(Path(models_dir or MODELS_DIR) / name, overwrite=True) as tmp:
        for p in paths:
            shutil.copy2(p, tmp / p.name)
        atomic_write_text(tmp / RECORD_NAME, json.dumps(record, indent=2) + "\n")
    return record


def shipped_names(models_dir: str | Path | None = None) -> list[str]:
    """Every shipped model: the folders of ``models/`` that hold a record."""
    root = Path(models_dir or MODELS_DIR)
    return (
        sorted(p.name for p in root.iterdir() if (p / RECORD_NAME).is_file())
        if root.is_dir()
        else []
    )
