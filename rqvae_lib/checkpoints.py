"""Reading Lightning checkpoints, with errors that name the file and the problem.

A missing, truncated or mismatched file raises :class:`CheckpointError` (a ValueError) or
:class:`CheckpointNotFoundError` (a FileNotFoundError) saying which file and what is wrong.
:func:`rqvae_lib.model.load_model` reads a model from a checkpoint or a saved folder with them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: unreadable, truncated, or from another config."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """A checkpoint path that does not exist."""


def read_checkpoint(
    path: str | os.PathLike, model: nn.Module | None = None, weights_only: bool | None = None
) -> dict[str, Any]:
    """Load a Lightning checkpoint on the CPU; with ``model``, also require that it fits ``model``.

    ``weights_only`` is passed to ``torch.load`` (``None``: torch's default, as Lightning does).
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointNotFoundError(f"checkpoint {path} does not exist")
    if path.is_dir():
        raise CheckpointError(f"checkpoint {path} is a folder; expected a Lightning .ckpt file")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=weights_only)
    except Exception as err:  # torch raises RuntimeError, EOFError, UnpicklingError, OSError ...
        reason = (str(err).strip() or type(err).__name__).splitlines()[0]
        if "weights only" in reason.lower():
            problem = "it holds objects that weights_only loading refuses; if you trust the file, "
            problem += "pass --weights_only false"
        else:
            problem = "it is truncated, corrupt or not a checkpoint"
        raise CheckpointError(
            f"checkpoint {path} ({path.stat().st_size} bytes) cannot be read: {problem} ({reason})"
        ) from err
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise CheckpointError(f"checkpoint {path} has no state_dict; it is not an RqVae checkpoint")
    if model is not None:
        check_same_config(path, checkpoint.get("hyper_parameters", {}), dict(model.hparams))
        check_weights(model, checkpoint["state_dict"], path)
    return checkpoint


def check_same_config(
    path: str | os.PathLike, saved: dict[str, Any], expected: dict[str, Any]
) -> None:
    """Raise ``CheckpointError`` listing every model option where ``saved`` differs from ``expected``."""

    def norm(value: Any) -> Any:
        return list(value) if isinstance(value, list | tuple) else value

    diffs = [
        f"{key}={saved[key]!r} there, {expected[key]!r} here"
        for key in sorted(expected)
        if key in saved and norm(saved[key]) != norm(expected[key])
    ]
    if diffs:
        raise CheckpointError(
            f"checkpoint {path} was written with another model config: {'; '.join(diffs)}. Use the "
            "config that wrote it (config.yaml next to its logs), or drop the checkpoint to start anew"
        )


def check_weights(model: nn.Module, state: dict[str, Tensor], path: str | os.PathLike) -> None:
    """``model._check_state_dict`` as a CheckpointError naming ``path``."""
    try:
        model._check_state_dict(state, source=f"checkpoint {path}")
    except ValueError as err:
        raise CheckpointError(str(err)) from err
