"""Reading Lightning checkpoints and saved models, with errors that name the file and the problem.

The command line and the notebooks load models through :func:`load_model`; a missing, truncated
or mismatched file raises :class:`CheckpointError` (a ValueError) or
:class:`CheckpointNotFoundError` (a FileNotFoundError) saying which file and what is wrong.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .model import RqVae


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: unreadable, truncated, or from another config."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """A checkpoint path that does not exist."""


def read_checkpoint(
    path: str | os.PathLike, model: RqVae | None = None, weights_only: bool | None = None
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


def check_weights(model: RqVae, state: dict[str, Tensor], path: str | os.PathLike) -> None:
    """``model._check_state_dict`` as a CheckpointError naming ``path``."""
    try:
        model._check_state_dict(state, source=f"checkpoint {path}")
    except ValueError as err:
        raise CheckpointError(str(err)) from err


def model_from_checkpoint(checkpoint: dict[str, Any], path: str | os.PathLike) -> RqVae:
    """The RqVae a checkpoint describes: built from its own hyperparameters, weights loaded."""
    saved = checkpoint.get("hyper_parameters") or {}
    known = set(RqVae.option_names())
    options = {k: v for k, v in saved.items() if k in known}
    try:
        model = RqVae(**options)
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"checkpoint {path} holds an invalid model config: {err}") from err
    check_weights(model, checkpoint["state_dict"], path)
    model.load_state_dict(checkpoint["state_dict"])
    model.check_finite(f"the model in {path}")
    return model


def load_model(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> RqVae:
    """Load an RqVae in eval mode from a Lightning ``.ckpt`` or a ``save_pretrained`` folder.

    The model's config comes from the file itself. Raises ``CheckpointNotFoundError`` (a
    ``FileNotFoundError``) or ``CheckpointError`` (a ``ValueError``) naming the file and the
    problem: missing, truncated, mismatched or non-finite weights.
    """
    path = Path(path)
    if path.is_dir():
        try:
            return RqVae.from_pretrained(path, map_location)
        except FileNotFoundError as err:
            raise CheckpointNotFoundError(str(err)) from err
        except Exception as err:  # a bad config.json, a truncated model.safetensors, a mismatch
            raise CheckpointError(f"cannot load the model saved in {path}: {err}") from err
    model = model_from_checkpoint(read_checkpoint(path), path)
    return model.to(map_location).eval()
