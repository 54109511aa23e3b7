"""Exercises that check themselves: ``check("02-nearest-code", my_nearest_code)``.

In a notebook, the student's answer cell ends with a call to :func:`check`, which prints one of

- *not done yet*: the answer is still the placeholder the cell was committed with (``...``,
  ``None``, or a function whose body is still ``...``);
- *correct*, with a short explanation;
- *not right yet*, with a hint that says what is wrong.

:func:`check` never raises on a student's answer (an error in the student's code becomes a
hint), so a notebook runs top to bottom as committed. It raises only for an unknown exercise id.

An exercise is a checker registered with :func:`exercise` under an id ``"NN-short-name"``
(``NN``: its notebook). The checker receives the answer and returns ``None`` when it is right,
or a hint (a ``str``) when it is wrong; it raises :class:`NotDone` when the answer is still a
placeholder. Each exercise's reference solution and typical wrong answers are in
:mod:`rqvae_lib.exercises_solutions`; the tests run every registered exercise through both.
How the notebooks lay out an exercise is in ``site/CONVENTIONS.md``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

NOT_DONE, CORRECT, WRONG = "not done yet", "correct", "not right yet"


class NotDone(Exception):
    """Raised by a checker when the answer is still the committed placeholder."""


@dataclass(frozen=True)
class Feedback:
    """The outcome of checking one answer: ``status`` is NOT_DONE, CORRECT or WRONG."""

    exercise_id: str
    status: str
    message: str

    @property
    def correct(self) -> bool:
        return self.status == CORRECT

    def __str__(self) -> str:
        return f"[{self.exercise_id}] {self.status.capitalize()}. {self.message}".rstrip()


@dataclass(frozen=True)
class Exercise:
    """One registered exercise.

    Attributes:
        id: ``"NN-short-name"``, NN the notebook's number.
        question: the task in one or two sentences, as the notebook asks it.
        checker: ``checker(answer) -> None | str``: None when right, else a hint.
        placeholder: what the answer cell holds as committed (reported as not done yet).
        explanation: printed with "correct": why the answer is right.
    """

    id: str
    question: str
    checker: Callable[[Any], str | None]
    placeholder: Any = ...
    explanation: str = ""


#: Every exercise, by id; filled by :func:`exercise` when this module is imported.
EXERCISES: dict[str, Exercise] = {}


def exercise(exercise_id: str, *, question: str, placeholder: Any = ..., explanation: str = ""):
    """Decorator: register the decorated function as the checker of ``exercise_id``."""

    def register(checker: Callable[[Any], str | None]) -> Callable[[Any], str | None]:
        if exercise_id in EXERCISES:
            raise ValueError(f"exercise {exercise_id!r} is registered twice")
        EXERCISES[exercise_id] = Exercise(exercise_id, question, checker, placeholder, explanation)
        return checker

    return register


def feedback(exercise_id: str, answer: Any) -> Feedback:
    """Check ``answer`` against exercise ``exercise_id``; never raises on a bad answer."""
    try:
        ex = EXERCISES[exercise_id]
    except KeyError:
        known = ", ".join(sorted(EXERCISES)) or "none"
        raise KeyError(f"no exercise {exercise_id!r}; registered: {known}") from None
    if answer is None or answer is ...:
        return Feedback(
            ex.id, NOT_DONE, "Replace the `...` with your answer, then run the cell again."
        )
    try:
        hint = ex.checker(answer)
    except NotDone as reason:
        return Feedback(ex.id, NOT_DONE, str(reason))
    except Exception as error:  # the student's code failed inside the check
        return Feedback(
            ex.id,
            WRONG,
            f"Your code raised {type(error).__name__}: {error}. Run it on its own to see "
            "the whole traceback.",
        )
    if hint is None:
        return Feedback(ex.id, CORRECT, ex.explanation)
    return Feedback(ex.id, WRONG, hint)


def check(exercise_id: str, answer: Any) -> None:
    """Print whether ``answer`` solves exercise ``exercise_id``: not done yet, correct, or a hint."""
    print(feedback(exercise_id, answer))


# -- helpers for checkers ---------------------------------------------------------------------


def call(fn: Any, *args: Any) -> Any:
    """Call the student's function; a ``...`` body (returns None) or NotImplementedError is
    "not done yet"."""
    if not callable(fn):
        raise _NotAFunction(fn)
    try:
        result = fn(*args)
    except NotImplementedError as error:
        raise NotDone("Your function raises NotImplementedError: write its body.") from error
    if result is None or result is ...:
        raise NotDone("Your function returns None: write its body so that it returns the answer.")
    return result


class _NotAFunction(Exception):
    def __init__(self, value: Any):
        super().__init__(
            f"Pass your function itself, without calling it: check(..., my_function), "
            f"not check(..., my_function(...)); got a {type(value).__name__}."
        )


def _function_exercise(checker: Callable[[Any], str | None]) -> Callable[[Any], str | None]:
    """Turn a _NotAFunction raised by :func:`call` into a hint."""

    def wrapped(answer: Any) -> str | None:
        try:
            return checker(answer)
        except _NotAFunction as error:
            return str(error)

    wrapped.__doc__ = checker.__doc__
    return wrapped


def _unwritten(*args: Any) -> None:
    """The placeholder of a function exercise: a function whose body is ``...``."""


def _shape(x: Any) -> str:
    return str(tuple(x.shape)) if hasattr(x, "shape") else type(x).__name__


def _describe(x: Any) -> str:
    if hasattr(x, "shape"):
        return f"a {type(x).__name__} of shape {tuple(x.shape)}"
    if isinstance(x, (tuple, list)):
        return f"a {type(x).__name__} of {len(x)}"
    return f"a {type(x).__name__}"


# -- notebook 02: the quantizer from scratch --------------------------------------------------


@exercise(
    "02-same-code-perplexity",
    question="A level has K = 256 codes and every item of the catalogue gets the same code. "
    "What is the perplexity of that level? Answer with a number.",
    explanation="One code has p = 1 and the others p = 0, so the entropy is "
    "H = -1 * ln(1) = 0 and the perplexity exp(H) = exp(0) = 1: one code in effective use, "
    "whatever K is.",
)
def _same_code_perplexity(answer: Any) -> str | None:
    if callable(answer):
        return "Answer with a number, such as 12.5, not a function."
    if isinstance(answer, (str, bytes, bool)):
        return f"Answer with a number, such as 12.5; got {answer!r}."
    try:
        value = float(answer)
    except (TypeError, ValueError, RuntimeError):
        return f"Answer with a single number, such as 12.5; got a {type(answer).__name__}."
    if math.isclose(value, 1.0, abs_tol=1e-6):
        return None
    if value == 0:
        return "0 is the entropy H, not the perplexity. The perplexity is exp(H): what is exp(0)?"
    if math.isclose(value, 256, rel_tol=1e-6):
        return (
            "256 (= K) is the perplexity when all 256 codes are used equally often. Here one "
            "code takes every item."
        )
    if math.isclose(value, 1 / 256, rel_tol=1e-3):
        return (
            "1/256 is the share p of each code when all are used equally. Here one code has "
            "p = 1 and the rest p = 0; compute exp(-sum_k p_k ln p_k)."
        )
    if value < 1:
        return (
            "A perplexity is never below 1: it is the effective number of codes in use, "
            "exp(H), and the entropy H is never negative."
        )
    return (
        "Perplexity = exp(H) with H = -sum_k p_k ln p_k over the codes' usage shares p_k. "
        "What are the p_k when every item gets the same code, and what is H then?"
    )


def _nearest_code_cases() -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Random rows and codebooks; N, K and D all differ, so a wrong axis shows in the shape."""
    gen = torch.Generator().manual_seed(2)
    return [
        (torch.randn(40, 3, generator=gen), torch.randn(7, 3, generator=gen)),
        (torch.randn(5, 2, generator=gen) * 3, torch.randn(9, 2, generator=gen)),
    ]


@exercise(
    "02-nearest-code",
    question="Write nearest_code(r, codebook): for r of shape (N, D) and a codebook (K, D), "
    "return the (N,) int64 indices of each row's nearest code (squared Euclidean distance).",
    placeholder=_unwritten,
    explanation="The nearest code is the argmin over k of the squared distances "
    "||r_n - e_k||^2; broadcasting r[:, None, :] - codebook[None, :, :] gives all N x K of "
    "them at once. The square root changes no argmin, so torch.cdist(r, codebook).argmin(1) "
    "gives the same codes.",
)
@_function_exercise
def _nearest_code(answer: Any) -> str | None:
    for r, codebook in _nearest_code_cases():
        (n, d), k = r.shape, len(codebook)
        out = call(answer, r.clone(), codebook.clone())
        if not isinstance(out, torch.Tensor):
            return f"Return a torch tensor of code indices; got a {type(out).__name__}."
        dist = (r[:, None, :].double() - codebook[None, :, :].double()).pow(2).sum(-1)  # (N, K)
        if out.shape == (n, k):
            return (
                f"You returned an (N, K) = {(n, k)} matrix, the distances to every code. "
                "Take the argmin over the codes: .argmin(dim=1)."
            )
        if out.shape == (k,):
            return (
                f"You returned shape ({k},), one value per code: the argmin ran over the rows "
                "(dim=0). Take it over the codes, dim=1, to get one index per row."
            )
        if out.shape == (n, d):
            return (
                "You returned vectors of shape (N, D): the codes themselves. Return their "
                "indices k; codebook[k] gives the vectors."
            )
        if out.shape != (n,):
            return f"Expected one index per row of r, shape ({n},); got {_shape(out)}."
        if out.is_floating_point() or out.is_complex() or out.dtype == torch.bool:
            return f"Return integer indices (torch.long, as argmin gives); got {out.dtype}."
        if out.min() < 0 or out.max() >= k:
            return f"Indices must lie in 0 ... K-1 = {k - 1}; got {out.min()} ... {out.max()}."
        chosen = dist.gather(1, out.long()[:, None])[:, 0]
        best, best_k = dist.min(1)
        wrong = chosen > best + 1e-5 * (1 + best)
        if torch.equal(out.long(), dist.argmax(1)):
            return "You picked the farthest code of each row: use argmin, not argmax."
        if wrong.any():
            i = int(wrong.nonzero()[0])
            return (
                f"{int(wrong.sum())} of {n} rows do not get their nearest code. Row {i} gets "
                f"code {int(out[i])} at squared distance {float(chosen[i]):.3f}, but code "
                f"{int(best_k[i])} is nearer ({float(best[i]):.3f}). The squared distance is "
                "the sum over the D coordinates of (r[n] - codebook[k])**2."
            )
    return None


def _residual_case() -> tuple[torch.Tensor, list[torch.Tensor]]:
    """2-D points and 3 codebooks of 5 codes, each level's codes smaller than the last."""
    gen = torch.Generator().manual_seed(3)
    z = torch.randn(60, 2, generator=gen) * 2
    codebooks = [torch.randn(5, 2, generator=gen) * s for s in (2.0, 0.7, 0.25)]
    return z, codebooks


def _reference_residual(z: torch.Tensor, codebooks: list[torch.Tensor]):
    """IDs and reconstruction from the library's ResidualQuantizer with these codebooks."""
    from .quantizer import ResidualQuantizer

    levels, (size, dim) = len(codebooks), codebooks[0].shape
    library = ResidualQuantizer(levels, size, dim, kmeans_init=False, dead_code_steps=0)
    with torch.no_grad():
        for level, codebook in zip(library.levels, codebooks, strict=True):
            level.embedding.weight.copy_(codebook)
        out = library.eval()(z)
    return out.encoding_indices, out.quantized


@exercise(
    "02-residual-loop",
    question="Write residual_ids(z, codebooks): quantize z (N, D) with the list of L codebooks "
    "(each (K, D)), level by level on the residual, and return the semantic IDs (N, L) and the "
    "reconstruction (N, D), the sum of the chosen codes.",
    placeholder=_unwritten,
    explanation="Level 1 quantizes z; each later level quantizes the residual that the levels "
    "before it left, r = r - codebook[k]. The reconstruction is the sum of the chosen codes, "
    "that is z minus the last residual. Your IDs match rqvae_lib.ResidualQuantizer's.",
)
@_function_exercise
def _residual_loop(answer: Any) -> str | None:
    z, codebooks = _residual_case()
    (n, d), levels = z.shape, len(codebooks)
    out = call(answer, z.clone(), [c.clone() for c in codebooks])
    if isinstance(out, torch.Tensor) or not isinstance(out, (tuple, list)) or len(out) != 2:
        return (
            "Return two things, `return ids, reconstruction`: the IDs (N, L) and the sum of "
            f"the chosen codes (N, D); got {_describe(out)}."
        )
    ids, recon = out
    if not isinstance(ids, torch.Tensor) or not isinstance(recon, torch.Tensor):
        return "Return tensors: the IDs as a (N, L) long tensor, the reconstruction as (N, D)."
    ref_ids, ref_recon = _reference_residual(z, codebooks)
    if ids.shape == (levels, n):
        return (
            f"Your IDs have shape (L, N) = {(levels, n)}: stack the levels along dim 1, "
            "torch.stack(ids, dim=1), to get one row per point."
        )
    if ids.shape != (n, levels):
        return f"Expected IDs of shape (N, L) = {(n, levels)}; got {_shape(ids)}."
    if ids.is_floating_point():
        return f"Return integer IDs (torch.long, as argmin gives); got {ids.dtype}."
    ids = ids.long()
    if not torch.equal(ids[:, 0], ref_ids[:, 0]):
        return (
            "Level 1 already differs from the reference: level 1 picks, for each point z, the "
            "nearest code of the first codebook."
        )
    same_z = torch.stack(
        [(z[:, None] - c[None]).pow(2).sum(-1).argmin(1) for c in codebooks], dim=1
    )
    if not torch.equal(ids, ref_ids):
        if torch.equal(ids, same_z):
            return (
                "Levels 2 and up quantized z again. Each level must quantize the residual "
                "that the levels before it left: after a level, r = r - codebook[k]."
            )
        level = int((ids != ref_ids).any(0).nonzero()[0]) + 1
        return (
            f"The IDs differ from level {level} on, for {int((ids != ref_ids).any(1).sum())} "
            f"of {n} points. Level {level} must quantize the residual r = z - (sum of the "
            f"codes chosen at levels 1 to {level - 1}), with codebook {level}."
        )
    if recon.shape != (n, d):
        return f"The reconstruction must have z's shape (N, D) = {(n, d)}; got {_shape(recon)}."
    recon = recon.detach().to(z.dtype)
    if torch.allclose(recon, ref_recon, atol=1e-5):
        return None
    if torch.allclose(recon, z - ref_recon, atol=1e-5):
        return (
            "Your IDs are right, but you returned the last residual (what is left over). "
            "Return the sum of the chosen codes, z minus that residual."
        )
    last = codebooks[-1][ids[:, -1]]
    if torch.allclose(recon, last, atol=1e-5):
        return (
            "Your IDs are right, but the reconstruction holds only the last level's code. "
            "Add up the chosen codes of all levels."
        )
    return (
        "Your IDs are right, but the reconstruction is not the sum of the chosen codes, "
        "codebooks[0][ids[:, 0]] + codebooks[1][ids[:, 1]] + ..."
    )
