"""Argument checks shared by every constructor: each error names the parameter and the value."""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping
from typing import Any

import torch


def check_int(name: str, value: Any, minimum: int | None = None) -> int:
    """``value`` as an int, or a TypeError/ValueError naming ``name`` (no strings, floats or bools)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {value!r} ({type(value).__name__})")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def check_float(name: str, value: Any, minimum: float | None = None) -> float:
    """``value`` as a finite float, or a TypeError/ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {value!r} ({type(value).__name__})")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def check_bool(name: str, value: Any) -> bool:
    """``value`` as a bool; strings such as ``"false"`` are refused rather than read as True."""
    if isinstance(value, bool) or type(value).__name__ == "bool_":  # numpy's bool too
        return bool(value)
    if isinstance(value, numbers.Integral) and value in (0, 1):
        return bool(value)
    raise TypeError(f"{name} must be True or False, got {value!r} ({type(value).__name__})")


def check_choice(name: str, value: Any, choices: Iterable[str]) -> str:
    """``value`` if it is one of ``choices``, else a ValueError listing them."""
    choices = tuple(choices)
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return value


def all_finite(t: torch.Tensor) -> bool:
    """Whether every value of ``t`` is finite; one reduction in the usual case.

    A finite sum proves there is no NaN or inf (either would make the sum non-finite); only an
    infinite or NaN sum, which can also come from overflow, needs the elementwise check.
    """
    return bool(torch.isfinite(t.sum())) or bool(torch.isfinite(t).all())


#: What a model with NaN or inf weights usually means, and what to try.
DIVERGED = "training diverged (try a lower learning_rate, or check the inputs' scale)"


def check_finite_state(state: Mapping[str, torch.Tensor], where: str, hint: str = DIVERGED) -> None:
    """Raise FloatingPointError naming the tensors of ``state`` that hold NaN or inf.

    Such weights give one ID, or one recommendation, for everything; every model's save and
    load goes through this check (:mod:`rqvae_lib.pretrained`), and RqVae's training epochs.
    """
    bad = [name for name, t in state.items() if t.is_floating_point() and not all_finite(t)]
    if bad:
        raise FloatingPointError(
            f"{where} has non-finite values in {', '.join(bad[:5])}"
            + (f" (and {len(bad) - 5} more)" if len(bad) > 5 else "")
            + f": {hint}"
        )
