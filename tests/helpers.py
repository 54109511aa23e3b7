"""Helpers the test modules share."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytorch_lightning as pl


def quiet_trainer(epochs: int = 2, **kw: Any) -> pl.Trainer:
    """A CPU Trainer with no logger, checkpoints, progress bar or model summary (unless given)."""
    kw.setdefault("logger", False)
    kw.setdefault("enable_checkpointing", False)
    kw.setdefault("enable_progress_bar", False)
    kw.setdefault("enable_model_summary", False)
    return pl.Trainer(max_epochs=epochs, accelerator="cpu", devices=1, **kw)


def snapshot(root: Path) -> dict[str, str]:
    """Every file and folder under ``root`` with a hash of its content."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        if p.is_file()
        else "dir"
        for p in sorted(root.rglob("*"))
    }
