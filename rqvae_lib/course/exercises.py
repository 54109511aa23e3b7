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
placeholder. A function exercise also names the library functions that compute its answer
(``library=``): an answer that *is* one of them, or whose code calls one, is *not right yet*
whatever it returns, since the exercise is to write it. Each exercise's reference solution and
typical wrong answers live with the tests (``tests/exercise_answers.py``), outside the installed
package, so a student who installs it cannot import the answers; the tests run every registered
exercise through both.
How the notebooks lay out an exercise is in ``site/CONVENTIONS.md``.

For grading (:mod:`rqvae_lib.course.grading`): when the environment variable named by
:data:`GRADE_LOG` (``RQVAE_GRADE_LOG``) holds a file path, :func:`check` also appends one JSON
line per call to that file, ``{"exercise": id, "status": ..., "message": ...}``; a file that
cannot be written is skipped silently, and the printed feedback is the same either way.
"""

from __future__ import annotations

import builtins
import functools
import inspect
import json
import math
import os
import sys
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch

NOT_DONE, CORRECT, WRONG = "not done yet", "correct", "not right yet"
#: The environment variable naming a file to which :func:`check` appends one JSON line per call.
GRADE_LOG = "RQVAE_GRADE_LOG"


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
        library: the library functions that compute the answer, as ``"module:qualname"``
            (``"rqvae_lib.data.amazon:item_text"``); an answer that is one of them, or calls
            one, is wrong (:func:`library_use`).
    """

    id: str
    question: str
    checker: Callable[[Any], str | None]
    placeholder: Any = ...
    explanation: str = ""
    library: tuple[str, ...] = ()


#: Every exercise, by id; filled by :func:`exercise` when this module is imported.
EXERCISES: dict[str, Exercise] = {}


def exercise(
    exercise_id: str,
    *,
    question: str,
    placeholder: Any = ...,
    explanation: str = "",
    library: tuple[str, ...] = (),
):
    """Decorator: register the decorated function as the checker of ``exercise_id``.

    ``library`` names the library functions that compute the answer (``"module:qualname"``).
    """

    def register(checker: Callable[[Any], str | None]) -> Callable[[Any], str | None]:
        if exercise_id in EXERCISES:
            raise ValueError(f"exercise {exercise_id!r} is registered twice")
        EXERCISES[exercise_id] = Exercise(
            exercise_id, question, checker, placeholder, explanation, tuple(library)
        )
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
    if ex.library and callable(answer):
        hint = _library_hint(answer, ex.library)
        if hint is not None:
            return Feedback(ex.id, WRONG, hint)
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
    result = feedback(exercise_id, answer)
    print(result)
    _log_for_grading(result)


def _log_for_grading(result: Feedback) -> None:
    """Append ``result`` as a JSON line to the file named by ``$RQVAE_GRADE_LOG``, if any; a
    grading run reads it. Never raises: a file that cannot be written is skipped."""
    path = os.environ.get(GRADE_LOG)
    if not path:
        return
    line = {"exercise": result.exercise_id, "status": result.status, "message": result.message}
    try:
        with open(path, "a", encoding="utf-8") as log:
            log.write(json.dumps(line) + "\n")
            log.flush()
    except (OSError, ValueError):  # unwritable, a folder, a bad path: the printout is enough
        pass


# -- answers that are the library's own function ---------------------------------------------


def _library_objects(paths: tuple[str, ...]) -> tuple[dict[int, str], dict[str, str]]:
    """The declared functions: ``{id(object): dotted name}`` for those already imported, and
    ``{short name: dotted name}`` for all. A module not imported yet holds no object that an
    answer could be, so nothing is imported here."""
    objects, names = {}, {}
    for path in paths:
        module_name, _, qualname = path.partition(":")
        dotted = f"{module_name}.{qualname}"
        names[qualname.rsplit(".", 1)[-1]] = dotted
        obj = sys.modules.get(module_name)
        for part in qualname.split("."):
            obj = getattr(obj, part, None)
        if obj is not None:
            objects[id(obj)] = dotted
    return objects, names


def _unwrap(obj: Any) -> Any:
    """The function behind a bound method, a functools.partial or a decorator's wrapper."""
    for _ in range(8):
        if isinstance(obj, functools.partial):
            obj = obj.func
        elif inspect.ismethod(obj):
            obj = obj.__func__
        elif inspect.isfunction(obj) and inspect.isfunction(getattr(obj, "__wrapped__", None)):
            obj = obj.__wrapped__
        else:
            break
    return obj


def _code_objects(code: types.CodeType) -> Iterator[types.CodeType]:
    """``code`` and every code object nested in it (inner functions, lambdas, comprehensions)."""
    yield code
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _code_objects(const)


def library_use(answer: Any, library: tuple[str, ...]) -> tuple[str, bool] | None:
    """Which of the ``library`` functions (``"module:qualname"``) ``answer`` is or calls.

    Returns ``(dotted name, True)`` when the answer *is* the function (also through a bound
    method, a partial or a wrapper), ``(dotted name, False)`` when its code names it: a global
    of the answer bound to it, or an attribute or imported name spelled like it
    (``rqvae_lib.data.item_text(row)``), in the answer's code or any code nested in it, or in a
    helper function of the answer's own module that it calls. ``None`` when it does neither.
    Names are read from the compiled code (``co_names``), so a local variable, a string or a
    comment never counts.
    """
    objects, names = _library_objects(library)
    answer = _unwrap(answer)
    if id(answer) in objects:
        return objects[id(answer)], True
    module = getattr(answer, "__module__", None)
    seen: set[int] = set()

    def uses(fn: Any) -> str | None:
        fn = _unwrap(fn)
        code = getattr(fn, "__code__", None)
        if not isinstance(code, types.CodeType) or id(fn) in seen:
            return None
        seen.add(id(fn))
        scope = getattr(fn, "__globals__", {})
        values = []
        for cell in getattr(fn, "__closure__", None) or ():
            try:
                values.append(cell.cell_contents)
            except ValueError:  # an empty cell
                continue
        for c in _code_objects(code):
            for name in c.co_names:
                if name in scope:
                    values.append(scope[name])
                elif name in names and not hasattr(builtins, name):
                    return names[name]  # an attribute, or a name imported inside the code
        for value in values:
            target = _unwrap(value)
            if id(target) in objects:
                return objects[id(target)]
            if inspect.isfunction(target) and target.__module__ == module:  # a helper of theirs
                if found := uses(target):
                    return found
        return None

    found = uses(answer)
    return None if found is None else (found, False)


def _library_hint(answer: Any, library: tuple[str, ...]) -> str | None:
    """The hint for an answer that is, or calls, one of the library's own functions."""
    try:
        use = library_use(answer, library)
    except Exception:  # never let the inspection itself fail a check
        return None
    if use is None:
        return None
    dotted, itself = use
    short = dotted.rsplit(".", 1)[-1]
    if itself:
        return (
            f"That is the library's own {short} ({dotted}); write it yourself: the exercise is "
            "to compute the answer without it. The check compares your function with it."
        )
    return (
        f"Your function calls the library's own {short} ({dotted}); write it yourself, without "
        "it: the exercise is to compute the answer with plain Python or torch. The check "
        "compares your function with it."
    )


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


# -- notebook 01: the data ----------------------------------------------------------------------


def _one_number(answer: Any) -> float | str:
    """A number answer as a float, or a hint when it is not one number."""
    if callable(answer):
        return "Answer with a number, such as 0.5, not a function."
    if isinstance(answer, torch.Tensor) and answer.numel() != 1:
        return f"Answer with one number; got {_describe(answer)}."
    if isinstance(answer, (str, bytes, bool)):
        return f"Answer with a number, such as 0.5; got {answer!r}."
    try:
        return float(answer)
    except (TypeError, ValueError, RuntimeError):
        return f"Answer with one number, such as 0.5; got a {type(answer).__name__}."


def _item_rows() -> list:
    """Rows like those of ``load_items``: one complete, then each with a field missing."""
    import pandas as pd

    rows = [
        ("OPI Nail Lacquer, Simmer and Shimmer", "OPI", ["Makeup", "Nails", "Nail Polish"], 12.0),
        ("Rose Water Toner", "Heritage", ["Skin Care", "Face"], 7.5),
        ("Clip-in Hair Extensions", None, ["Hair Care", "Styling Products"], None),
        ("Paraffin Spa Bath", "Dr. Scholl's", ["Skin Care", "Hands & Nails"], float("nan")),
        ("Eyelid Adhesive Tapes", float("nan"), [], 4.783),
    ]
    return [
        pd.Series({"title": t, "brand": b, "categories": c, "price": p}, dtype=object)
        for t, b, c, p in rows
    ]


@exercise(
    "01-item-text",
    library=("rqvae_lib.data.amazon:item_text", "rqvae_lib.data.amazon:build_item_texts"),
    question="Write my_item_text(row): the text of one item (a row of the item table, with "
    "title, brand, categories and price) in the template 'Title: ...; Brand: ...; Categories: "
    "a, b, c; Price: $12.00', leaving out every field that is missing (None or NaN, or an "
    "empty list of categories).",
    placeholder=_unwritten,
    explanation="Each present field becomes 'Name: value', the categories joined by ', ' and the "
    "price with two decimals, and the parts are joined by '; '. A missing field is left out "
    "rather than written as 'None' or 'nan', which the sentence encoder would read as words. "
    "rqvae_lib.data.item_text is the same function.",
)
@_function_exercise
def _item_text(answer: Any) -> str | None:
    from rqvae_lib.data.amazon import item_text

    for row in _item_rows():
        want = item_text(row)
        got = call(answer, row.copy())
        if not isinstance(got, str):
            return f"Return the text as one str; got {_describe(got)}."
        if got.strip() == want:
            continue
        missing = [f for f in ("Brand", "Categories", "Price") if f"{f}:" not in want]
        written = [f for f in missing if f"{f}:" in got]
        if written:
            return (
                f"This row has no {written[0].lower()}, and your text writes it anyway: {got!r}. "
                "Leave a missing field out (test it with pd.isna(value), or for the categories "
                "len(value) == 0), so that no 'None' or 'nan' reaches the encoder."
            )
        fields = {"Title": "a title", "Brand": "a brand", "Categories": "categories"}
        fields["Price"] = "a price"
        left_out = [name for f, name in fields.items() if f"{f}:" in want and f"{f}:" not in got]
        if left_out:
            return (
                f"This row has {left_out[0]}, and your text leaves it out: expected {want!r}, "
                f"got {got!r}."
            )
        if "[" in got or " > " in got:
            return (
                "Join the categories with ', ' (', '.join(row['categories'])), not as a Python "
                f"list or a path: expected {want!r}."
            )
        if "Price:" in want and want.split("Price: ")[1] not in got:
            return (
                'Write the price with a dollar sign and two decimals, f"${price:.2f}": '
                f"expected {want!r}, got {got!r}."
            )
        if "; " in want and "; " not in got:
            return f"Separate the fields with '; ' (a semicolon and a space): expected {want!r}."
        return f"For this row the text should be {want!r}; yours is {got!r}."
    return None


@exercise(
    "01-mean-cosine",
    question="The embeddings have unit length and their mean vector has norm 0.65. What is the "
    "average cosine similarity x_i . x_j over all pairs of items (i, j), each item paired with "
    "every item, itself included? Answer with a number.",
    explanation="The average of x_i . x_j over all pairs is (1/n sum_i x_i) . (1/n sum_j x_j), "
    "the squared norm of the mean: 0.65^2, about 0.42. Two items picked at random are about as "
    "similar as two vectors 65 degrees apart: a narrow cone. (The n pairs of an item with itself "
    "change this by about 1/n, nothing for 12,101 items.)",
)
def _mean_cosine(answer: Any) -> str | None:
    value = _one_number(answer)
    if isinstance(value, str):
        return value
    if abs(value - 0.65**2) <= 0.008:
        return None
    if math.isclose(value, 0.65, abs_tol=0.006):
        return (
            "0.65 is the norm of the mean vector itself. Write the average over all pairs, "
            "(1/n^2) sum_i sum_j x_i . x_j, as the dot product of two averages."
        )
    if math.isclose(value, 0.65**0.5, abs_tol=0.006):
        return "Not the square root: the average dot product is the mean vector dotted with itself."
    if math.isclose(value, 1 - 0.65**2, abs_tol=0.008) or math.isclose(value, 0.35, abs_tol=0.006):
        return "Close, but that is one minus it: what is the mean vector dotted with itself?"
    if value == 0:
        return (
            "0 would be the answer for directions spread evenly over the sphere, whose mean "
            "is near 0. Here the mean has norm 0.65."
        )
    if value == 1:
        return "1 would need every embedding to be the same vector, whose mean has norm 1."
    return (
        "Write the average over all n^2 pairs, (1/n^2) sum_i sum_j x_i . x_j, as "
        "((1/n) sum_i x_i) . ((1/n) sum_j x_j): the mean vector dotted with itself."
    )


# -- notebook 02: the quantizer from scratch --------------------------------------------------


#: Exercise 02-two-code-perplexity: usage shares (3/4, 1/4), the entropy in nats, its perplexity.
_TWO_CODE_SHARES = (0.75, 0.25)
_TWO_CODE_ENTROPY = -sum(p * math.log(p) for p in _TWO_CODE_SHARES)  # 0.5623 nats
_TWO_CODE_PERPLEXITY = math.exp(_TWO_CODE_ENTROPY)  # 1.7548


@exercise(
    "02-two-code-perplexity",
    question="A level has K = 256 codes. Three quarters of the items get one code and the "
    "remaining quarter a second one; the other 254 codes are dead. What is the perplexity of that "
    "level? Answer with a number (two decimals are enough).",
    explanation="The shares are p = 3/4 and 1/4 on the two codes in use and 0 on the dead ones, "
    "which add nothing to the entropy: H = -(0.75 ln 0.75 + 0.25 ln 0.25) = 0.562 nats, and the "
    "perplexity exp(H) = 1.75. About 1.75 codes in effective use: more than 1 (one code takes "
    "every item), fewer than 2 (two codes used equally), whatever K is.",
)
def _two_code_perplexity(answer: Any) -> str | None:
    value = _one_number(answer)
    if isinstance(value, str):
        return value
    if math.isclose(value, _TWO_CODE_PERPLEXITY, abs_tol=0.005):  # 1.75 passes, 1.7 or 1.8 not
        return None
    if math.isclose(value, _TWO_CODE_ENTROPY, abs_tol=0.005):
        return "That is the entropy H (in nats). The perplexity is exp(H)."
    if math.isclose(value, _TWO_CODE_ENTROPY / math.log(2), abs_tol=0.005):
        return (
            "That is the entropy in bits (log base 2). The perplexity is 2 to that power, which "
            "is the same number as exp of the entropy in nats."
        )
    if math.isclose(value, 2.0, abs_tol=0.005):
        return (
            "2 would be two codes used equally often. Here one code takes three times as many "
            "items as the other: compute H = -sum_k p_k ln p_k with p = 0.75 and 0.25."
        )
    if math.isclose(value, 1.0, abs_tol=0.005):
        return (
            "1 would be one code taking every item. Here a quarter of the items are on a second "
            "code: compute H = -sum_k p_k ln p_k with p = 0.75 and 0.25, then exp(H)."
        )
    if math.isclose(value, 256, rel_tol=1e-3) or math.isclose(value, 254, rel_tol=1e-3):
        return (
            "256 (= K) is the perplexity when all 256 codes are used equally. The dead codes have "
            "p = 0 and add nothing to H: only the two codes in use count."
        )
    if math.isclose(value, 1 / sum(p * p for p in _TWO_CODE_SHARES), abs_tol=0.005):
        return (
            "1.6 is 1 / sum_k p_k^2, another 'effective number' of codes. The perplexity is exp(H), "
            "with H = -sum_k p_k ln p_k."
        )
    one_term = [math.exp(-p * math.log(p)) for p in _TWO_CODE_SHARES]  # 1.24 and 1.41
    if any(math.isclose(value, v, abs_tol=0.005) for v in one_term):
        return "You left one code out: H sums -p_k ln p_k over both codes in use, 0.75 and 0.25."
    if math.isclose(value, 2**_TWO_CODE_ENTROPY, abs_tol=0.005) or math.isclose(
        value, math.exp(_TWO_CODE_ENTROPY / math.log(2)), abs_tol=0.005
    ):
        return (
            "The bases are mixed: take exp of the entropy in nats (ln), or 2 to the power of the "
            "entropy in bits (log2), which give the same number."
        )
    if math.isclose(value, _TWO_CODE_PERPLEXITY, abs_tol=0.03):
        return (
            "Close, but more than 0.005 off: keep three decimals of H = -sum_k p_k ln p_k before "
            "taking exp(H), and round only the perplexity."
        )
    if value < 1:
        return (
            "A perplexity is never below 1: it is exp(H), and the entropy H = -sum_k p_k ln p_k "
            "is never negative (each -p ln p is positive for 0 < p < 1)."
        )
    return (
        "Perplexity = exp(H) with H = -sum_k p_k ln p_k over the codes' usage shares p_k: here "
        "p = 0.75 and 0.25 on the two codes in use and 0 on the dead ones, which add nothing."
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
    library=("rqvae_lib.quantizer:VectorQuantizer.nearest", "rqvae_lib.quantizer:VectorQuantizer"),
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
    from rqvae_lib.quantizer import ResidualQuantizer

    levels, (size, dim) = len(codebooks), codebooks[0].shape
    library = ResidualQuantizer(levels, size, dim, kmeans_init=False, dead_code_steps=0)
    with torch.no_grad():
        for level, codebook in zip(library.levels, codebooks, strict=True):
            level.embedding.weight.copy_(codebook)
        out = library.eval()(z)
    return out.encoding_indices, out.quantized


@exercise(
    "02-residual-loop",
    library=("rqvae_lib.quantizer:ResidualQuantizer",),
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


def _vq_losses_case() -> tuple[torch.Tensor, torch.Tensor]:
    """Residuals (N, D) and a codebook (K, D); N, K and D all differ."""
    gen = torch.Generator().manual_seed(5)
    return torch.randn(50, 3, generator=gen), torch.randn(7, 3, generator=gen)


def _vq_losses_grads(answer: Any, r: torch.Tensor, codebook: torch.Tensor, which: int):
    """Backpropagate loss ``which`` (0: codebook, 1: commitment) of the student's function from
    fresh leaves; return the gradients of r and of the codebook (None when none reached it)."""
    r_leaf, book_leaf = r.clone().requires_grad_(), codebook.clone().requires_grad_()
    loss = call(answer, r_leaf, book_leaf, 0.25)[which]
    if not loss.requires_grad:
        return None, None
    loss.backward()
    grads = (r_leaf.grad, book_leaf.grad)
    return tuple(g if g is not None and g.abs().sum() > 0 else None for g in grads)


@exercise(
    "02-vq-losses",
    library=("rqvae_lib.quantizer:VectorQuantizer", "rqvae_lib.quantizer:ResidualQuantizer"),
    question="Write my_vq_losses(r, codebook, beta): for one level, with r (N, D) the vectors it "
    "quantizes and a codebook (K, D), return (codebook_loss, commitment_loss): "
    "||sg[r] - e||^2 and beta * ||r - sg[e]||^2, e the nearest code of each row, each squared "
    "norm averaged over the rows and the D coordinates, with .detach() as sg.",
    placeholder=_unwritten,
    explanation="The two losses have the same value up to beta; only the stop-gradients tell "
    "them apart. The codebook loss sends its gradient to the codes only (r is detached), pulling "
    "each code towards the vectors it wins; the commitment loss sends its gradient to r only "
    "(e is detached), pulling the encoder's output towards its code.",
)
@_function_exercise
def _vq_losses(answer: Any) -> str | None:
    r, codebook = _vq_losses_case()
    (n, d), beta = r.shape, 0.25
    out = call(answer, r.clone(), codebook.clone(), beta)
    if isinstance(out, torch.Tensor) or not isinstance(out, (tuple, list)) or len(out) != 2:
        return (
            "Return two things, `return codebook_loss, commitment_loss`, each a scalar tensor; "
            f"got {_describe(out)}."
        )
    if not all(isinstance(x, torch.Tensor) for x in out):
        return "Return torch tensors (for example the .mean() of a tensor), not Python numbers."
    if any(x.numel() != 1 for x in out):
        return (
            f"Each loss must be a single number; got shapes {_shape(out[0])} and {_shape(out[1])}. "
            "Average the squared differences over the rows and the coordinates: .mean()."
        )
    got_book, got_commit = (float(x) for x in out)
    e = codebook[(r[:, None, :] - codebook[None, :, :]).pow(2).sum(-1).argmin(1)]  # (N, D)
    want = float((e - r).pow(2).mean())

    def near(a: float, b: float) -> bool:
        return math.isclose(a, b, rel_tol=1e-4, abs_tol=1e-7)

    if not (near(got_book, want) and near(got_commit, beta * want)):
        if near(got_book, beta * want) and near(got_commit, want):
            return (
                "The two losses are swapped: return (codebook_loss, commitment_loss), with beta "
                "on the commitment loss."
            )
        if near(got_book, want) and near(got_commit, want):
            return "The commitment loss is missing its factor beta: beta * ||r - sg[e]||^2."
        if near(got_book, want * d) or near(got_book, want * n * d):
            return (
                "You summed the squared differences. Average them over the rows and the D "
                "coordinates, as torch.nn.functional.mse_loss does: .pow(2).mean()."
            )
        return (
            f"The codebook loss should be {want:.4f} here, yours is {got_book:.4f}: pick e = "
            "codebook[k] with k the nearest code of each row of r (squared distance), then "
            "average (e - r)**2 over all N x D entries."
        )
    to_r, to_book = _vq_losses_grads(answer, r, codebook, 0)
    if to_book is None:
        return (
            "The codebook loss does not reach the codebook. It must train the codes: take e = "
            "codebook[k] without .detach(), and detach r instead."
        )
    if to_r is not None:
        return (
            "The values are right, but the codebook loss also sends a gradient to r: it would "
            "move the encoder too. Write it with sg[r], that is r.detach()."
        )
    to_r, to_book = _vq_losses_grads(answer, r, codebook, 1)
    if to_r is None:
        return (
            "The commitment loss does not reach r. It must train the encoder: keep r as it is "
            "and detach the code, e.detach()."
        )
    if to_book is not None:
        return (
            "The values are right, but the commitment loss also sends a gradient to the "
            "codebook. Write it with sg[e], that is e.detach(), so that only r moves."
        )
    return None


# -- notebook 03: training ----------------------------------------------------------------------


@exercise(
    "03-training-steps",
    question="The training split holds 10,891 items, a batch holds 1024 and the last, smaller "
    "batch of each epoch is kept. How many optimizer steps does a 100-epoch run take? Answer "
    "with a number.",
    explanation="An epoch takes ceil(10,891 / 1024) = 11 batches, the last one with 651 items, "
    "and each batch is one optimizer step: 11 x 100 = 1,100 steps. Steps are the clock of the "
    "cosine schedule (it decays per step) and of the dead-code restarts: dead_code_steps=10 "
    "means about one epoch here.",
)
def _training_steps(answer: Any) -> str | None:
    value = _one_number(answer)
    if isinstance(value, str):
        return value
    if value == 1100:
        return None
    if value == 1000:
        return (
            "10,891 / 1024 is 10.6: ten full batches and one of 651 items, which is kept and "
            "is a step too."
        )
    if value == 11:
        return "11 is one epoch. The run has 100 of them."
    if value == 100:
        return "100 is the number of epochs; each epoch takes several batches, one step each."
    if 1063 <= value <= 1064:
        return (
            "A step is one batch, and a batch never spans two epochs: count the batches of one "
            "epoch first (the last one smaller), then multiply by the epochs."
        )
    if value == 10891 * 100:
        return "That is how many items the run sees. A step takes a whole batch of them."
    return (
        "Count the batches of one epoch, ceil(10,891 / 1024), the last one smaller; each batch "
        "is one optimizer step. Then multiply by the number of epochs."
    )


@exercise(
    "03-mean-baseline",
    question="A decoder that ignores the semantic ID and outputs the same vector for every item "
    "does best with the mean of the embeddings, m. The embeddings have unit length and ||m|| = "
    "0.65 (notebook 01). What relative error sum ||x - m||^2 / sum ||x||^2 does it get? "
    "Answer with a number.",
    explanation="sum_i ||x_i - m||^2 = sum_i ||x_i||^2 - n ||m||^2, and sum_i ||x_i||^2 = n for "
    "unit vectors, so the relative error is 1 - ||m||^2 = 1 - 0.65^2, about 0.58. Predicting 0 "
    "gives 1; the mean already explains 42% of the squared norm, because the embeddings sit in a "
    "narrow cone. A model's error is worth reading against this baseline, not against 1.",
)
def _mean_baseline(answer: Any) -> str | None:
    value = _one_number(answer)
    if isinstance(value, str):
        return value
    if abs(value - (1 - 0.65**2)) <= 0.008:
        return None
    if value == 1:
        return (
            "1 is the relative error of predicting 0 for every item. The mean is a better "
            "constant: expand ||x - m||^2 = ||x||^2 - 2 x . m + ||m||^2 and sum over the items."
        )
    if math.isclose(value, 0.65**2, abs_tol=0.008):
        return (
            "0.42 = ||m||^2 is the share the mean explains. The relative error is what is "
            "left: sum ||x - m||^2 over sum ||x||^2."
        )
    if math.isclose(value, 0.35, abs_tol=0.006):
        return "Square the norm: sum_i ||x_i - m||^2 = sum_i ||x_i||^2 - n ||m||^2."
    if value == 0:
        return "0 would be a perfect reconstruction; one vector for every item cannot do that."
    return (
        "Expand ||x_i - m||^2 = ||x_i||^2 - 2 x_i . m + ||m||^2 and sum over the n items: "
        "sum_i x_i = n m, and every ||x_i||^2 is 1."
    )


def _collision_cases() -> list[torch.Tensor]:
    """ID tables: a hand-made one (one ID shared by 3 items, one by 2, ids that share a first
    code only) and a random one with many collisions."""
    hand = torch.tensor(
        [[1, 2, 3], [1, 2, 3], [1, 2, 3], [1, 2, 4], [0, 5, 5], [0, 5, 5], [2, 2, 2],
         [3, 0, 1], [3, 1, 0], [4, 4, 4]]
    )  # fmt: skip
    gen = torch.Generator().manual_seed(6)
    return [hand, torch.randint(0, 3, (60, 3), generator=gen), torch.arange(12).reshape(4, 3)]


@exercise(
    "03-collision-rate",
    library=("rqvae_lib.evaluate:codebook_stats",),
    question="Write my_collision_rate(ids): for a table of semantic IDs (N, L), one row per item, "
    "return the share of the N items whose full ID (all L codes) is also the ID of at least one "
    "other item: a number between 0 and 1.",
    placeholder=_unwritten,
    explanation="Count how many items hold each distinct ID (torch.unique(ids, dim=0, "
    "return_inverse=True, return_counts=True)); an item is in a collision when its ID's count is "
    "above 1. An ID shared by 3 items puts all 3 in a collision, so the rate is not "
    "1 - distinct IDs / N, which counts only the 2 extra ones. rqvae_lib.codebook_stats reports "
    "it as collision_rate.",
)
@_function_exercise
def _collision_rate(answer: Any) -> str | None:
    for ids in _collision_cases():
        value = _one_number(call(answer, ids.clone()))
        if isinstance(value, str):
            return value.replace("Answer with", "Return")
        n = len(ids)
        _, inverse, counts = torch.unique(ids, dim=0, return_inverse=True, return_counts=True)
        want = float((counts[inverse] > 1).float().mean())
        if math.isclose(value, want, abs_tol=1e-6):
            continue
        if math.isclose(value, 1 - len(counts) / n, abs_tol=1e-6):
            return (
                "1 - (distinct IDs) / N counts only the extra items: an ID held by 3 items "
                "adds 2 to it, but all 3 items collide. Count, for each item, how many items "
                "share its ID."
            )
        if math.isclose(value, want * n, abs_tol=1e-6):
            return f"That is the number of items in a collision; divide by N = {n} for a share."
        if math.isclose(value, float((counts > 1).float().mean()), abs_tol=1e-6):
            return (
                "That is the share of distinct IDs that are shared. The question counts items: "
                "the share of the N rows whose ID appears more than once."
            )
        _, inv1, c1 = torch.unique(ids[:, 0], return_inverse=True, return_counts=True)
        if math.isclose(value, float((c1[inv1] > 1).float().mean()), abs_tol=1e-6):
            return (
                "You compared the first codes only. Two items collide when their whole IDs, "
                "all L codes, are equal: compare rows (torch.unique(ids, dim=0, ...))."
            )
        return (
            f"For ids = {ids.tolist()} the collision rate is {want:.4f}, not {value:.4g}: the "
            "share of rows whose whole row appears at least twice in the table."
        )
    return None


# -- notebook 04: codebook usage --------------------------------------------------------------


def _usage_count_cases() -> list[torch.Tensor]:
    """Items per code of a few levels: an uneven one with dead codes, one code taking every
    item, and an even one with no dead code."""
    gen = torch.Generator().manual_seed(4)
    uneven = torch.randint(0, 6, (40,), generator=gen) * torch.randint(0, 4, (40,), generator=gen)
    one_code = torch.zeros(12, dtype=torch.long)
    one_code[3] = 50
    return [uneven, one_code, torch.full((7,), 3, dtype=torch.long)]


def _as_number(out: Any) -> float | str:
    """The student's result as a float, or a hint when it is not one number."""
    if isinstance(out, torch.Tensor) and out.numel() != 1:
        return f"Return one number; got {_describe(out)}."
    if isinstance(out, (str, bytes, bool)):
        return f"Return one number; got {out!r}."
    try:
        return float(out)
    except (TypeError, ValueError, RuntimeError):
        return f"Return one number; got {_describe(out)}."


@exercise(
    "04-dead-fraction",
    library=("rqvae_lib.evaluate:codebook_stats",),
    question="Write my_dead_fraction(counts): counts (K,) holds how many items each of a level's "
    "K codes got; return the fraction of the K codes that are dead (no item uses them), a "
    "number between 0 and 1.",
    placeholder=_unwritten,
    explanation="A dead code has count 0, so the fraction is (counts == 0).sum() / K, that is "
    "(counts == 0).float().mean(). One minus it is the level's usage: the fraction of codes in "
    "use.",
)
@_function_exercise
def _dead_fraction(answer: Any) -> str | None:
    for counts in _usage_count_cases():
        value = _as_number(call(answer, counts.clone()))
        if isinstance(value, str):
            return value
        k, dead = len(counts), int((counts == 0).sum())
        if math.isclose(value, dead / k, abs_tol=1e-6):
            continue
        if math.isclose(value, 1 - dead / k, abs_tol=1e-6):
            return (
                "That is the fraction of codes in use (the usage). A dead code is one that no "
                "item uses: its count is 0."
            )
        if math.isclose(value, dead, abs_tol=1e-6):
            return (
                f"That is the number of dead codes ({dead} of these {k}); divide it by K, the "
                "number of codes, to get a fraction."
            )
        if math.isclose(value, dead / float(counts.sum()), abs_tol=1e-6):
            return (
                "You divided by the number of items, counts.sum(). The fraction is over the "
                "codes: divide by K = len(counts)."
            )
        if math.isclose(value, float((counts <= 1).float().mean()), abs_tol=1e-6):
            return "A code that one item uses is alive: dead means a count of exactly 0."
        return (
            f"For counts = {counts.tolist()} the answer is {dead}/{k}, not {value:.4g}: count "
            "the codes whose count is 0 and divide by K."
        )
    return None


def _entropy(counts: torch.Tensor) -> float:
    p = counts.double() / counts.sum()
    p = p[p > 0]
    return float(-(p * p.log()).sum())


@exercise(
    "04-perplexity",
    library=("rqvae_lib.evaluate:perplexity", "rqvae_lib.evaluate:codebook_stats"),
    question="Write my_perplexity(counts): from a level's usage counts (K,) (items per code), "
    "return its perplexity exp(H), with H = -sum_k p_k ln p_k, p_k = counts[k] / counts.sum(), "
    "and 0 ln 0 taken as 0.",
    placeholder=_unwritten,
    explanation="Dead codes have p_k = 0 and add nothing to H, so the perplexity depends only on "
    "how the items spread over the codes in use: K when all K are used equally, 1 when one code "
    "takes every item. rqvae_lib.evaluate.perplexity computes the same (with a tiny epsilon in "
    "the log instead of leaving the zeros out).",
)
@_function_exercise
def _perplexity(answer: Any) -> str | None:
    for counts in _usage_count_cases():
        value = _as_number(call(answer, counts.clone()))
        if isinstance(value, str):
            return value
        h = _entropy(counts)
        if math.isclose(value, math.exp(h), rel_tol=1e-4):
            continue
        if math.isnan(value):
            return (
                "You got nan: a dead code has p = 0, and 0 * log(0) = 0 * (-inf) is nan in "
                "floating point. Leave the dead codes out (p = p[p > 0]) before the sum."
            )
        if math.isclose(value, h, rel_tol=1e-4, abs_tol=1e-6):
            return "That is the entropy H. The perplexity is exp(H)."
        if math.isclose(value, h / math.log(2), rel_tol=1e-4, abs_tol=1e-6):
            return "That is the entropy in bits. The perplexity is exp(H) (or 2 ** H in bits)."
        if math.isclose(value, math.exp(-h), rel_tol=1e-4):
            return "Mind the sign: H = -sum_k p_k ln p_k is never negative, so exp(H) >= 1."
        if math.isclose(value, int((counts > 0).sum()), rel_tol=1e-6):
            return (
                "That is the number of codes in use. The perplexity weighs them by their shares: "
                "it equals that number only when the codes in use get equal counts."
            )
        c = counts.double()[counts > 0]
        if math.isclose(value, math.exp(float(-(c * c.log()).sum())), rel_tol=1e-4) or (
            math.isinf(value)
        ):
            return "Turn the counts into shares first: p = counts / counts.sum()."
        return (
            f"For counts = {counts.tolist()} the perplexity is {math.exp(h):.4f}, not "
            f"{value:.4g}. Compute p = counts / counts.sum(), H = -sum(p * ln p) over the codes "
            "with p > 0, then exp(H)."
        )
    return None


#: Items per code of the two levels of exercise 04-higher-perplexity (K = 256, 10,000 items).
_LEVEL_A = torch.tensor([2500] * 4 + [0] * 252)
_LEVEL_B = torch.tensor([9745] + [1] * 255)


def _number_pair(answer: Any) -> tuple[float, float] | str:
    """A pair of numbers as two floats, or a hint when the answer is not one."""
    shape = "(perplexity of A, perplexity of B)"
    if isinstance(answer, torch.Tensor):
        answer = answer.flatten().tolist()
    if isinstance(answer, (str, bytes)) or not isinstance(answer, (tuple, list)):
        return f"Answer with two numbers, {shape}, such as (2.5, 7.0); got {answer!r}."
    if len(answer) != 2:
        return f"Answer with two numbers, {shape}; got {len(answer)} values."
    values = [_one_number(x) for x in answer]
    for value in values:
        if isinstance(value, str):
            return f"Each of the two values must be a number, {shape}. {value}"
    return values[0], values[1]


@exercise(
    "04-higher-perplexity",
    question="Two levels of K = 256 codes hold the same 10,000 items. Level A uses 4 codes, "
    "2,500 items each (252 codes dead). Level B uses all 256 codes: one holds 9,745 items and "
    "each of the other 255 holds 1 item. Which level has the higher perplexity? Compute both and "
    "answer with the pair (perplexity of A, perplexity of B), two decimals being enough.",
    explanation="A: four equal shares, perplexity exactly 4. B: p = 0.9745 on one code and "
    "0.0001 on 255 others, H = 0.26 nats, perplexity about 1.30. So A's is the higher, although B "
    "uses every code: usage counts the codes that at least one item uses, perplexity the codes "
    "in *effective* use, and a level can use every code and still give nearly every item the "
    "same one.",
)
def _higher_perplexity(answer: Any) -> str | None:
    if isinstance(answer, str) and answer.strip().strip("'\"").upper() in ("A", "B"):
        return (
            "A letter alone could be a guess: answer with the two perplexities as numbers, "
            "(perplexity of A, perplexity of B). Compute exp(H) of each level from its counts, "
            "for example with your my_perplexity of exercise 2; the larger one answers the "
            "question."
        )
    pair = _number_pair(answer)
    if isinstance(pair, str):
        return pair
    a, b = pair
    h_a, h_b = _entropy(_LEVEL_A), _entropy(_LEVEL_B)
    want_a, want_b = math.exp(h_a), math.exp(h_b)

    def near(x: float, y: float) -> bool:
        return math.isclose(x, y, abs_tol=0.01)

    if near(a, want_a) and near(b, want_b):
        return None
    if near(a, want_b) and near(b, want_a):
        return "The two are swapped: give A's perplexity first, then B's."
    if (near(a, h_a) or near(a, h_a / math.log(2))) and (
        near(b, h_b) or near(b, h_b / math.log(2))
    ):
        return "Those are the entropies H. The perplexity is exp(H) (or 2 ** H in bits)."
    if near(b, 256) or (near(a, 4 / 256) and near(b, 1.0)):
        return (
            "That counts the codes in use (B uses all 256): usage, not perplexity. 9,745 of "
            "B's 10,000 items sit on one code. Compute exp(H) with p = counts / counts.sum()."
        )
    if not near(a, want_a):
        return (
            "Level A's four codes hold 2,500 items each, so p = 1/4 on each and 0 on the dead "
            "codes, which add nothing to H. What is exp(H) then?"
        )
    if 1 <= b < want_b:
        return (
            f"B's perplexity is a little higher than {b:.4g}: each of the 255 single items has "
            "p = 0.0001 and adds -p ln p = 0.0009 to H, and together they make most of H. "
            "Sum -p ln p over all 256 codes."
        )
    return (
        f"A is right; for B, p = 0.9745 on one code and 0.0001 on each of 255 others, and "
        f"exp(H) is not {b:.4g}. Compute it with p = counts / counts.sum()."
    )


# -- notebook 05: what the semantic IDs mean --------------------------------------------------


def _small_ids(seed: int, n: int = 40, levels: int = 3, k: int = 3) -> torch.Tensor:
    """Random IDs over few codes, so that prefixes and full IDs are often shared."""
    return torch.randint(0, k, (n, levels), generator=torch.Generator().manual_seed(seed))


def _reference_suffix(ids: torch.Tensor) -> torch.Tensor:
    from rqvae_lib.semantic_ids import add_collision_suffix

    return add_collision_suffix(ids)


@exercise(
    "05-collision-suffix",
    library=(
        "rqvae_lib.semantic_ids:add_collision_suffix",
        "rqvae_lib.semantic_ids:CollisionSuffixer",
    ),
    question="Write my_collision_suffix(ids): for semantic IDs (N, L), return (N, L + 1): the "
    "IDs with one more column, 0 for the first row (in row order) with a given ID, 1 for the "
    "second row with that same ID, and so on, like rqvae_lib.semantic_ids.add_collision_suffix.",
    placeholder=_unwritten,
    explanation="Walk the rows in order and keep a count per ID (a dict from the ID tuple to how "
    "many rows had it so far): the suffix is that count before adding the row. Rows that share "
    "an ID now differ in the last column, so every row is unique; an ID of its own gets 0.",
)
@_function_exercise
def _collision_suffix(answer: Any) -> str | None:
    for ids in (_small_ids(5, n=30, levels=2), _small_ids(6), torch.arange(12).reshape(4, 3)):
        (n, levels), ref = ids.shape, _reference_suffix(ids)
        out = call(answer, ids.clone())
        if not isinstance(out, torch.Tensor):
            try:
                out = torch.as_tensor(out)
            except (TypeError, ValueError, RuntimeError):
                return f"Return a tensor of shape (N, L + 1); got {_describe(out)}."
        if out.shape == (n,):
            return (
                "You returned the suffix column alone. Return the IDs with it as one more "
                "column: torch.cat([ids, suffix[:, None]], dim=1)."
            )
        if out.shape != (n, levels + 1):
            return f"Expected shape (N, L + 1) = {(n, levels + 1)}; got {_shape(out)}."
        if out.is_floating_point():
            return f"Return integer codes (torch.long); got {out.dtype}."
        out = out.long()
        if not torch.equal(out[:, :levels], ids):
            return (
                "The first L columns must be the IDs as they were, in the same row order; the "
                "suffix goes in the last column."
            )
        suffix, want = out[:, -1], ref[:, -1]
        if torch.equal(suffix, want):
            continue
        _, inverse, counts = torch.unique(ids, dim=0, return_inverse=True, return_counts=True)
        if torch.equal(suffix, want + 1):
            return "Start counting at 0: the first row with an ID gets suffix 0."
        if torch.equal(suffix, counts[inverse]) or torch.equal(suffix, counts[inverse] - 1):
            return (
                "Your suffix is the size of the item's group, the same number for every row "
                "that shares the ID, so they still collide. Number the rows of a group 0, 1, "
                "2, ... instead."
            )
        if torch.equal(suffix, counts[inverse] - 1 - want):
            return (
                "You numbered each group from its last row. Count in row order: the first gets 0."
            )
        if torch.unique(out, dim=0).shape[0] < n:
            return "Some rows still share a full ID after your suffix: count within each ID."
        return (
            "Your IDs are unique, but not TIGER's suffix: it counts within each ID, 0 for its "
            f"first row, 1 for the next... For ids {ids[:6].tolist()}... the suffixes start "
            f"{want[:6].tolist()}."
        )
    return None


def _count_cases() -> list[tuple[torch.Tensor, tuple[int, ...]]]:
    ids = _small_ids(7, n=60)
    return [(ids, (1,)), (ids, (1, 2)), (ids, (2, 0, 1)), (ids, (0, 2))]


@exercise(
    "05-count-under-prefix",
    library=("rqvae_lib.semantic_ids:prefix_groups",),
    question="Write my_count_under_prefix(ids, prefix): the number of rows of ids (N, L) whose "
    "ID starts with the codes in prefix, a tuple of 1 to L codes: (17,) counts the items whose "
    "first code is 17, (17, 203) those whose first two codes are 17 and 203.",
    placeholder=_unwritten,
    explanation="Compare the first len(prefix) columns with the prefix and require every one to "
    "match: (ids[:, :d] == torch.tensor(prefix)).all(dim=1).sum(), d = len(prefix). That is "
    "the size of the prefix's node in the tree of section 3.",
)
@_function_exercise
def _count_under_prefix(answer: Any) -> str | None:
    for ids, prefix in _count_cases():
        d = len(prefix)
        out = call(answer, ids.clone(), prefix)
        if isinstance(out, torch.Tensor) and out.numel() == len(ids):
            return "You returned one value per row (a mask?). Return how many rows match: .sum()."
        value = _as_number(out)
        if isinstance(value, str):
            return value
        head = ids[:, :d] == torch.tensor(prefix)
        want = int(head.all(1).sum())
        if value == want:
            continue
        if value == int(head[:, -1].sum()) and d > 1:
            return (
                f"You compared only code {d} of the IDs with the prefix's last code. A prefix "
                f"is all of the first {d} codes: every one of them must match."
            )
        if value == int(head[:, 0].sum()) and d > 1:
            return f"You compared only the first code; all {d} codes of the prefix must match."
        if value == int(head.any(1).sum()):
            return (
                "A row matches when all of its first codes equal the prefix: .all(dim=1), not .any."
            )
        if value == want / len(ids):
            return "That is the share of the rows; return their number."
        return (
            f"For prefix {prefix} the answer is {want}, not {value:g}: count the rows whose "
            f"first {d} codes are {prefix}."
        )
    return None


def _pair_cases() -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]]:
    ids = _small_ids(8, n=30)
    gen = torch.Generator().manual_seed(9)
    a, b = torch.randint(0, 30, (200,), generator=gen), torch.randint(0, 30, (200,), generator=gen)
    return [(ids, a, b, 1), (ids, a, b, 2), (ids, a, b, 3)]


@exercise(
    "05-prefix-share",
    library=(
        "rqvae_lib.course.analysis:shared_prefix_length",
        "rqvae_lib.course.analysis:pair_prefix_sharing",
    ),
    question="Write my_prefix_share(ids, a, b, depth): a and b are (P,) row indices, pair i is "
    "rows a[i] and b[i] of ids (N, L); return the fraction of the P pairs whose IDs share their "
    "first depth codes (depth 1: the same first code).",
    placeholder=_unwritten,
    explanation="Two IDs share a prefix of depth d when all of their first d codes are equal: "
    "(ids[a, :d] == ids[b, :d]).all(dim=1).float().mean(). This is the pairs column of "
    "section 5's table, at each depth.",
)
@_function_exercise
def _prefix_share(answer: Any) -> str | None:
    for ids, a, b, depth in _pair_cases():
        value = _as_number(call(answer, ids.clone(), a.clone(), b.clone(), depth))
        if isinstance(value, str):
            return value
        same = ids[a, :depth] == ids[b, :depth]  # (P, depth)
        want = float(same.all(1).float().mean())
        if math.isclose(value, want, abs_tol=1e-6):
            continue
        if math.isclose(value, float(same[:, -1].float().mean()), abs_tol=1e-6):
            return (
                f"You compared only code {depth}. Sharing a prefix of depth {depth} means the "
                f"first {depth} codes are all equal, not just the last of them."
            )
        if math.isclose(value, float(same.any(1).float().mean()), abs_tol=1e-6):
            return "Every one of the first depth codes must be equal: .all(dim=1), not .any."
        if math.isclose(value, float(same.all(1).sum()), abs_tol=1e-6):
            return "That is the number of pairs; divide by the number of pairs, P = len(a)."
        if math.isclose(value, float((ids[a] == ids[b]).all(1).float().mean()), abs_tol=1e-6):
            return f"You compared whole IDs; compare only the first depth = {depth} codes."
        return (
            f"For depth {depth} the share is {want:.4f}, not {value:.4g}: a pair counts when "
            f"the first {depth} codes of ids[a[i]] and ids[b[i]] are all equal."
        )
    return None


# -- notebook 06: generative retrieval ----------------------------------------------------------


@exercise(
    "06-ndcg",
    library=(
        "rqvae_lib.retrieval.metrics:recall_ndcg",
        "rqvae_lib.retrieval.metrics:per_user_metric",
    ),
    question="Write ndcg_at_k(rank, k): the NDCG@k of one user whose held-out item is at 1-based "
    "position `rank` of the ranked list (rank 0 means it is not in the list at all).",
    placeholder=_unwritten,
    explanation="One relevant item: the ideal DCG is 1, so NDCG@k = 1 / log2(rank + 1) for a hit "
    "at rank <= k, and 0 for a miss or a hit below k.",
)
@_function_exercise
def _ndcg(answer: Any) -> str | None:
    cases = [(1, 10), (2, 10), (3, 5), (10, 10), (11, 10), (0, 10), (6, 5), (5, 20)]
    for rank, k in cases:
        try:
            got = float(call(answer, rank, k))
        except ZeroDivisionError:
            got = math.inf
        want = 1.0 / math.log2(rank + 1) if 0 < rank <= k else 0.0
        if not math.isclose(got, want, abs_tol=1e-9):
            if rank == 1 and math.isinf(got):
                return (
                    "At rank 1 the discount is log2(1 + 1) = 1: use log2(rank + 1), not log2(rank)."
                )
            if rank > k or rank == 0:
                return f"ndcg_at_k({rank}, {k}) should be 0: a miss, or a hit below the cut-off k."
            if math.isclose(got, 1.0 / math.log(rank + 1), abs_tol=1e-9):
                return "Use the base-2 logarithm (math.log2), as NDCG does."
            return f"ndcg_at_k({rank}, {k}) returned {got:.4f}; expected {want:.4f}."
    return None


@exercise(
    "06-leave-one-out",
    library=("rqvae_lib.data.amazon:leave_one_out",),
    question="Write split_sequence(items): for one user's items in time order (at least 3), return "
    "(training items, validation item, test item) as the P5 leave-one-out split does.",
    placeholder=_unwritten,
    explanation="The last item is the test target, the one before it the validation target, and "
    "every earlier item is training data: no held-out position is ever a training sample (the "
    "same item can still be a training target if the user reviewed it twice).",
)
@_function_exercise
def _leave_one_out(answer: Any) -> str | None:
    from rqvae_lib.data.amazon import leave_one_out

    for items in ([5, 9, 2], [1, 2, 3, 4, 5, 6], [7, 7, 8, 9]):
        split = leave_one_out({0: list(items)})
        want = (split.train[0], split.val[0], split.test[0])
        got = call(answer, list(items))
        if not isinstance(got, (tuple, list)) or len(got) != 3:
            return "Return three things: (training items as a list, validation item, test item)."
        train, val, test = got
        if (list(train), val, test) == want:
            continue
        if val == items[-1]:
            return "The test item is the LAST one; the validation item is the one before it."
        if items[-2] in list(train) and len(train) == len(items) - 1:
            return "The training part must leave out both held-out items: items[:-2]."
        return f"split_sequence({items}) returned {got}; expected {want}."
    return None


# -- notebook 07: what semantic IDs buy ---------------------------------------------------------


def _id_tables() -> list[tuple[torch.Tensor, int]]:
    """Small hand-made ID tables (N, L) and their codebook size K: several items share an ID in
    all but one, and the last is Beauty's shape (3 levels of 256, 19 items on one ID)."""
    beauty = torch.tensor([[17, 203, 5]] * 19 + [[0, 0, 0], [255, 255, 255], [17, 203, 6]])
    return [
        (torch.tensor([[0, 1, 2], [0, 1, 2], [3, 3, 3], [1, 0, 2], [0, 1, 2]]), 4),
        (torch.tensor([[0, 0], [7, 1], [2, 5], [3, 3]]), 8),
        (torch.tensor([[0, 1, 2, 0], [2, 2, 2, 2], [0, 1, 2, 0], [1, 1, 1, 1]]), 3),
        (beauty, 256),
    ]


@exercise(
    "07-vocabulary-size",
    library=(
        "rqvae_lib.retrieval.tokens:ItemTokenizer",
        "rqvae_lib.course.vocabulary:vocabulary_footprint",
    ),
    question="Write vocab_size(num_levels, codebook_size, max_items_per_id): the number of item "
    "tokens a TIGER seq2seq needs to write every item's semantic ID and collision suffix, when "
    "each of the num_levels levels has codebook_size codes and at most max_items_per_id items "
    "share one ID (their suffixes are 0, 1, ..., max_items_per_id - 1). Count item tokens only: "
    "not the special tokens pad, eos and bos (rqvae_lib.retrieval.tokens.NUM_SPECIAL), nor user "
    "tokens. The check compares it with sum(ItemTokenizer(ids, item_ids, "
    "num_embeddings=codebook_size).level_sizes) on small ID tables.",
    placeholder=_unwritten,
    explanation="Each level has a token range of its own, codebook_size wide (code 5 at level 0 "
    "and code 5 at level 1 are two tokens), and the suffix range holds the values 0 to "
    "max_items_per_id - 1: num_levels * codebook_size + max_items_per_id tokens in all, "
    "3 * 256 + 19 = 787 for Beauty's RQ-KMeans table. codebook_size ** num_levels is the number "
    "of IDs these tokens can spell (16.8 million), not the number of tokens: the vocabulary "
    "grows with the catalogue only through the suffix. ItemTokenizer.vocab_size adds the 3 "
    "special tokens (and any user tokens).",
)
@_function_exercise
def _vocabulary_size(answer: Any) -> str | None:
    from rqvae_lib.retrieval.tokens import NUM_SPECIAL, ItemTokenizer

    for ids, k in _id_tables():
        levels = ids.shape[1]
        _, counts = torch.unique(ids, dim=0, return_counts=True)
        most = int(counts.max())  # the largest suffix + 1
        tokenizer = ItemTokenizer(ids, list(range(1, len(ids) + 1)), num_embeddings=k)
        want = sum(tokenizer.level_sizes)  # == levels * k + most
        value = _as_number(call(answer, levels, k, most))
        if isinstance(value, str):
            return value
        if math.isclose(value, want):
            continue
        case = f"vocab_size({levels}, {k}, {most})"
        if math.isclose(value, levels * k):
            return (
                f"{case}: you counted the codes of the {levels} levels but not the collision "
                f"suffix. It is one more token per item, with a range of its own: {most} values "
                f"here, 0 to {most - 1}."
            )
        if math.isclose(value, levels * k + most - 1):
            return (
                f"{case}: one suffix token short. The suffixes run from 0 to "
                f"max_items_per_id - 1, which is max_items_per_id values, {most} here, not "
                f"{most - 1}."
            )
        if math.isclose(value, k**levels) or math.isclose(value, k**levels + most):
            return (
                f"{case}: codebook_size ** num_levels = {k**levels} is the number of different "
                "IDs the codes can spell, not the number of tokens. The model writes an ID one "
                "token per level, and each level needs only its own codebook_size tokens."
            )
        if math.isclose(value, want + NUM_SPECIAL):
            return (
                f"{case}: you added the {NUM_SPECIAL} special tokens (pad, eos, bos). Count item "
                "tokens only, as the sum of ItemTokenizer.level_sizes does."
            )
        if math.isclose(value, k + most) and levels > 1:
            return (
                f"{case}: the levels do not share one range of codebook_size tokens: code 5 at "
                "level 0 and code 5 at level 1 are two different tokens, so every level has a "
                "range of its own."
            )
        if math.isclose(value, (levels + 1) * k):
            return (
                f"{case}: the suffix range is not codebook_size wide: it holds only the suffixes "
                f"that occur, 0 to max_items_per_id - 1 ({most} tokens here)."
            )
        return (
            f"{case} returned {value:g}; the tokenizer has {want} item tokens: a range of "
            f"{k} codes for each of the {levels} levels, and a suffix range of {most}."
        )
    return None


#: Per-seed differences A - B of exercise 07-seed-verdict, chosen so that each usual mistake
#: (the population standard deviation, no sqrt(n), one standard error instead of two, no sign)
#: changes at least one verdict; none is near the threshold.
_SEED_DIFFERENCES = [
    [0.010, 0.003],
    [0.004, 0.009, 0.006],
    [-0.012, 0.002, -0.001],
    [0.011, 0.002, -0.004, 0.009, 0.012, 0.003, 0.010, -0.001, 0.008],
    [-0.020, -0.018, -0.025, -0.021],
    [-0.006, -0.001, -0.0035],
    [-0.009, 0.001, -0.004],
    [-0.010, -0.001, -0.004],
    [0.003, -0.002, 0.004, -0.001],
]
_VERDICTS = ("A ahead", "B ahead", "within noise")


def _verdict(
    differences: list[float],
    ddof: int = 1,
    root: bool = True,
    times: float = 2.0,
    signed: bool = True,
    swapped: bool = False,
) -> str:
    """The verdict of exercise 07-seed-verdict, or of one of its usual mistakes: ``ddof`` 0 the
    population standard deviation, ``root`` False no sqrt(n), ``times`` 1 one standard error,
    ``signed`` False no absolute value, ``swapped`` the labels swapped."""
    n = len(differences)
    mean = sum(differences) / n
    std = math.sqrt(sum((d - mean) ** 2 for d in differences) / (n - ddof))
    sem = std / math.sqrt(n) if root else std
    if (abs(mean) if signed else mean) > times * sem:
        return "A ahead" if (mean > 0) != swapped else "B ahead"
    return "within noise"


@exercise(
    "07-seed-verdict",
    library=(
        "rqvae_lib.retrieval.metrics:mean_sem",
        "rqvae_lib.course.seeds:pair_table",
    ),
    question="Write seed_verdict(differences): differences is a list of floats, one per seed "
    "(at least 2), each table A's test metric minus table B's on that seed. Return 'A ahead' or "
    "'B ahead' when the mean difference is more than twice its standard error over seeds away "
    "from 0 ('A ahead' when the mean is positive), and 'within noise' otherwise. The standard "
    "error is the sample standard deviation of the differences (with n - 1 in the denominator) "
    "divided by sqrt(n), n the number of seeds.",
    placeholder=_unwritten,
    explanation="The standard error std / sqrt(n) is how far the mean of n seeds would move on a "
    "re-run with other seeds; a mean more than two of them from 0 rarely comes from the seeds "
    "alone (about 5% of the time for a normal mean, more often with few seeds). With two seeds "
    "the rule reads |d1 + d2| / 2 > |d1 - d2|: both differences have the same sign and the "
    "smaller is more than a third of the larger. The population standard deviation (n in the "
    "denominator) is smaller and calls more differences real than the seeds support, most of "
    "all with few seeds. This is the verdict column of rqvae_lib.course.seeds.pair_table.",
)
@_function_exercise
def _seed_verdict(answer: Any) -> str | None:
    got = []
    for differences in _SEED_DIFFERENCES:
        out = call(answer, list(differences))
        if not isinstance(out, str) or out not in _VERDICTS:
            shown = repr(out) if isinstance(out, (str, bool, int, float)) else _describe(out)
            return (
                "Return one of the three strings 'A ahead', 'B ahead' or 'within noise', "
                f"exactly as written; seed_verdict({differences}) returned {shown}."
            )
        got.append(out)
    want = [_verdict(d) for d in _SEED_DIFFERENCES]
    if got == want:
        return None
    mistakes = [
        (
            {"ddof": 0},
            "You used the population standard deviation (n in the denominator). Over seeds "
            "use the sample standard deviation, with n - 1: the mean of the differences is "
            "itself estimated from them, and with few seeds the population one is too small, "
            "so noise passes for a difference.",
        ),
        (
            {"root": False},
            "You compared the mean with twice the standard deviation. The noise of a mean of "
            "n seeds is the standard error, the standard deviation divided by sqrt(n).",
        ),
        (
            {"times": 1.0},
            "You compared the mean with one standard error. A difference counts only when "
            "the mean is more than twice its standard error from 0.",
        ),
        (
            {"signed": False},
            "A negative mean can be real too: compare |mean| with twice the standard error, "
            "and say 'B ahead' when the mean is below 0.",
        ),
        (
            {"swapped": True},
            "The differences are A - B: a positive mean means A is ahead, a negative one B.",
        ),
    ]
    for options, hint in mistakes:
        if got == [_verdict(d, **options) for d in _SEED_DIFFERENCES]:
            return hint
    i = next(i for i, (g, w) in enumerate(zip(got, want, strict=True)) if g != w)
    d = _SEED_DIFFERENCES[i]
    n = len(d)
    mean = sum(d) / n
    sem = math.sqrt(sum((x - mean) ** 2 for x in d) / (n - 1)) / math.sqrt(n)
    return (
        f"seed_verdict({d}) returned {got[i]!r}; expected {want[i]!r}: the mean is {mean:.5f} "
        f"and its standard error {sem:.5f}, so |mean| is {abs(mean) / sem:.2f} standard errors."
    )


def _nearest_cases() -> list[tuple[torch.Tensor, torch.Tensor, list[int], int]]:
    """(history (H, D), new items (M, D), their ids, k) for one user. Row norms vary by a factor
    of up to about 100, so that averaging unnormalised rows, or any distance on them, changes the
    ranking. In the last case the history points mostly along the first axis, and two new items
    lie exactly on it (lengths 2 and 0.5, the larger id first): their cosines are equal in any
    precision, a tie at the top."""
    cases = []
    for seed, k in ((71, 3), (72, 5), (73, 12), (74, 4)):
        gen = torch.Generator().manual_seed(seed)
        history = torch.randn(4, 6, generator=gen)
        new = torch.randn(12, 6, generator=gen)
        if seed == 74:
            history[:, 0] = history[:, 0].abs() + 2
        history *= torch.exp(4 * torch.rand(4, 1, generator=gen) - 2)  # norms 0.14 to 7.4 x
        new *= torch.exp(4 * torch.rand(12, 1, generator=gen) - 2)
        ids = (torch.randperm(12, generator=gen) * 7 + 100).tolist()  # not positions 0..M-1
        if seed == 74:
            axis = torch.zeros(2, 6)
            axis[:, 0] = torch.tensor([2.0, 0.5])
            new, ids = torch.cat([new[:5], axis, new[5:]]), ids[:5] + [164, 123] + ids[5:]
        cases.append((history, new, ids, k))
    return cases


def _nearest_ranking(
    history: torch.Tensor, new: torch.Tensor, ids: list[int], mistake: str = ""
) -> list[int]:
    """All the new ids in the order of exercise 07-nearest-text, or of one of its mistakes."""
    history, new = history.double(), new.double()
    unit_h = history / history.norm(dim=1, keepdim=True)
    unit_n = new / new.norm(dim=1, keepdim=True)
    query = history.mean(0) if mistake == "raw mean" else unit_h.mean(0)
    scores = unit_n @ query  # higher is better; cosine up to the query's length
    if mistake == "lowest first":
        scores = -scores
    elif mistake == "raw new":
        scores = new @ query
    elif mistake == "euclidean":
        scores = -(new - unit_h.mean(0)).norm(dim=1)
    elif mistake == "raw euclidean":
        scores = -(new - history.mean(0)).norm(dim=1)
    values = scores.tolist()
    if mistake == "input order":
        return [ids[j] for j in sorted(range(len(ids)), key=lambda j: -values[j])]
    if mistake == "larger id":
        return [ids[j] for j in sorted(range(len(ids)), key=lambda j: (-values[j], -ids[j]))]
    return [ids[j] for j in sorted(range(len(ids)), key=lambda j: (-values[j], ids[j]))]


def _id_list(out: Any) -> list[int] | str:
    """The student's result as a list of ints, or a hint when it is not one."""
    if isinstance(out, (str, bytes, int, float)) or not hasattr(out, "__len__"):
        shown = repr(out) if isinstance(out, (str, bytes, int, float)) else _describe(out)
        return f"Return the top k ids as a list of ints; got {shown}."
    try:
        values = out.reshape(-1).tolist() if hasattr(out, "reshape") else list(out)
        ints = [int(v) for v in values]
    except (TypeError, ValueError, RuntimeError, AttributeError):
        return f"Return the top k ids as a list of ints; got {_describe(out)}."
    if any(i != v for i, v in zip(ints, values, strict=True)):
        return "Return item ids (ints), not scores."
    return ints


@exercise(
    "07-nearest-text",
    library=("rqvae_lib.retrieval.cold:nearest_text_new_items",),
    question="Write nearest_new(history_embeddings, new_embeddings, new_ids, k) for one user: "
    "history_embeddings (H, D) are the text embeddings of the items in the user's history, "
    "new_embeddings (M, D) those of the M new items, whose item ids are new_ids (a list of M "
    "ints, in the rows' order). L2-normalise every row of both, average the normalised history "
    "rows into the query, rank the new items by cosine similarity to the query, highest first "
    "(ties: smaller id first), and return the ids of the top k as a list.",
    placeholder=_unwritten,
    explanation="Normalising first gives every history item the same weight in the query, "
    "whatever the length of its embedding; averaging raw rows lets the longest ones decide. "
    "Cosine similarity ignores the query's length, so the mean of the normalised rows needs no "
    "normalising of its own (and ranking the normalised new rows by Euclidean distance to it "
    "gives the same order: ||u - q||^2 = 1 - 2 u.q + ||q||^2). This is "
    "rqvae_lib.retrieval.cold.nearest_text_new_items for one user: the cold-start baseline that "
    "reads the same text the semantic IDs come from, and recommends new items that no training "
    "sequence contains.",
)
@_function_exercise
def _nearest_text(answer: Any) -> str | None:
    from rqvae_lib.retrieval.cold import nearest_text_new_items

    cases = _nearest_cases()
    got, wants = [], []
    for history, new, ids, k in cases:
        history_ids = list(range(1, len(history) + 1))  # no new item is in the history
        want = nearest_text_new_items(
            [history_ids], torch.cat([history, new]), history_ids + ids, ids, k
        )[0].tolist()
        out = _id_list(call(answer, history.clone(), new.clone(), list(ids), k))
        if isinstance(out, str):
            return out
        if len(out) != k:
            return f"Return the top k = {k} ids (of {len(ids)} new items); got {len(out)}."
        if out == [ids.index(i) for i in want]:
            return (
                "Those are the rows' positions in new_embeddings. Return the items' ids: "
                "new_ids[j] for each position j."
            )
        if not set(out) <= set(ids):
            return f"Return ids from new_ids; {sorted(set(out) - set(ids))} are not new items."
        if len(set(out)) != k:
            return "Each new item can appear once in the top k."
        got.append(out)
        wants.append(want)
    if got == wants:
        return None
    mistakes = [
        (
            "raw mean",
            "You averaged the raw history rows. Normalise each history row first, so that "
            "every item in the history counts the same in the query, however long its "
            "embedding.",
        ),
        (
            "lowest first",
            "Rank highest similarity first: the nearest items have the largest cosine.",
        ),
        (
            "raw euclidean",
            "You ranked by Euclidean distance between unnormalised rows: long embeddings are far "
            "from everything. Rank by cosine similarity of the normalised rows.",
        ),
        (
            "euclidean",
            "You ranked the unnormalised new rows by Euclidean distance to the query: a long "
            "embedding is far from it whatever its direction. Normalise the new rows too, and "
            "rank by cosine similarity.",
        ),
        (
            "raw new",
            "You scored the unnormalised new rows: a dot product with a long embedding is large "
            "whatever its direction. Normalise the new rows too, so that the score is a cosine.",
        ),
        (
            "input order",
            "Break ties by the smaller id: two new items with the same embedding come out in "
            "order of their ids, not of their rows.",
        ),
        ("larger id", "Break ties by the smaller id first, not the larger."),
    ]
    for mistake, hint in mistakes:
        if all(
            g == _nearest_ranking(h, n, i, mistake)[:k]
            for g, (h, n, i, k) in zip(got, cases, strict=True)
        ):
            return hint
    for g, w, (_, _, ids, k) in zip(got, wants, cases, strict=True):
        if g != w:
            return (
                f"For one user with {len(ids)} new items and k = {k} the top ids are {w}; yours "
                f"are {g}. Normalise the rows, average the history, and sort by cosine."
            )
    return None


# -- notebook 08: collaborative IDs -------------------------------------------------------------


def _joint_cases() -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, float]]:
    """(text (N, D), collaborative (N, d), known (N,), weight): rows of unequal lengths, some
    items without a vector, and weights other than 1."""
    g = torch.Generator().manual_seed(8)
    cases = []
    for n, d_text, d_collab, weight in ((5, 4, 3, 1.0), (7, 6, 2, 0.5), (4, 3, 5, 2.0)):
        text = torch.randn(n, d_text, generator=g) * torch.linspace(0.5, 3.0, n)[:, None]
        collab = torch.randn(n, d_collab, generator=g) * 4.0
        known = torch.tensor([i % 3 != 1 for i in range(n)])
        cases.append((text, collab, known, weight))
    return cases


@exercise(
    "08-joint-vector",
    library=("rqvae_lib.retrieval.id_tables:joint_features",),
    question="Write joint_vectors(text, collab, known, weight): text (N, D) holds the items' text "
    "embeddings, collab (N, d) their SASRec vectors, known (N,) is True where an item has one, "
    "and weight is a float. Return the (N, D + d) rows that rq-kmeans-collab clusters: each text "
    "row scaled to length 1, followed by its SASRec vector scaled to length 1 and then times "
    "weight, or by d zeros where known is False.",
    placeholder=_unwritten,
    explanation="Scaling each half to length 1 makes the text and the collaborative vector "
    "count the same in a squared distance, whatever their own lengths; weight then tilts the "
    "balance. Scaling the whole row at once would let the longer half decide. An item without a vector gets zeros, so only its "
    "text places it: k-means then reads it as an item whose collaborative half sits at the "
    "origin, which is why new items crowd under a few prefixes. This is "
    "rqvae_lib.retrieval.id_tables.joint_features.",
)
@_function_exercise
def _joint_vector(answer: Any) -> str | None:
    import torch.nn.functional as F

    for text, collab, known, weight in _joint_cases():
        out = call(answer, text.clone(), collab.clone(), known.clone(), weight)
        if not isinstance(out, torch.Tensor):
            return f"Return a tensor of shape (N, D + d); got {_describe(out)}."
        n, want_shape = len(text), (len(text), text.shape[1] + collab.shape[1])
        if tuple(out.shape) != want_shape:
            return f"Return shape (N, D + d) = {want_shape}; got {tuple(out.shape)}."
        half = F.normalize(collab, dim=1) * weight
        want = torch.cat([F.normalize(text, dim=1), half * known[:, None]], dim=1)
        out = out.float()
        if torch.allclose(out, want, atol=1e-5):
            continue
        rows = torch.cat([text, collab * known[:, None]], dim=1)
        if torch.allclose(out, F.normalize(rows, dim=1), atol=1e-5):
            return "Scale each half to length 1 on its own, not the whole row: the longer half would decide."
        if torch.allclose(out[:, : text.shape[1]], F.normalize(text, dim=1), atol=1e-5):
            if not torch.allclose(out[~known, text.shape[1] :], torch.zeros(1), atol=1e-6):
                return "Items without a vector (known False) get zeros in the second half."
            if weight != 1.0 and torch.allclose(
                out[:, text.shape[1] :], F.normalize(collab, dim=1) * known[:, None], atol=1e-5
            ):
                return "Multiply the collaborative half by weight, after scaling it to length 1."
        elif torch.allclose(out[:, : text.shape[1]], text, atol=1e-5):
            return "Scale each text row to length 1 too."
        return f"For {n} items the rows differ from the expected ones; check each half on its own."
    return None


def _heldout_cases() -> list[tuple[dict[int, list[int]], dict[int, int]]]:
    """(training parts, validation items): users whose last training item is their validation
    item, a user without training items, repeated items and unsorted user ids."""
    return [
        ({1: [5, 6], 2: [7], 3: [], 4: [8, 9, 8]}, {1: 7, 2: 7, 3: 5, 4: 2}),
        ({9: [1, 2, 3], 4: [3, 1], 7: [2]}, {9: 4, 4: 1, 7: 5}),
        ({}, {}),
    ]


@exercise(
    "08-heldout-pairs",
    library=("rqvae_lib.course.collab:heldout_pairs", "rqvae_lib.course.collab:agreement_pairs"),
    question="Write my_heldout_pairs(train, val): train maps each user to their training items in "
    "time order (a list, maybe empty), val maps each user to their validation item. Return, as a "
    "list of (a, b) tuples in the order of train's users, each user's last training item a and "
    "validation item b, leaving out users without training items and users whose two are the "
    "same item.",
    placeholder=_unwritten,
    explanation="Each pair is a next review that no training part holds for that user, so "
    "vectors learnt from the training parts never read it: a fair test of whether IDs aligned "
    "with them group what users do next. The last training item, not the first, makes the pair "
    "consecutive. This is rqvae_lib.course.collab.heldout_pairs.",
)
@_function_exercise
def _heldout_pairs(answer: Any) -> str | None:
    for train, val in _heldout_cases():
        out = call(answer, {u: list(s) for u, s in train.items()}, dict(val))
        want = [(s[-1], val[u]) for u, s in train.items() if s and s[-1] != val[u]]
        try:
            got = [tuple(int(x) for x in pair) for pair in out]
        except (TypeError, ValueError):
            return f"Return a list of (a, b) pairs of item ids; got {_describe(out)}."
        if got == want:
            continue
        if got == [(s[0], val[u]) for u, s in train.items() if s and s[0] != val[u]]:
            return "Pair the validation item with the last training item, s[-1], not the first."
        if got == [(s[-1], val[u]) for u, s in train.items() if s]:
            return "Leave out users whose last training item is their validation item."
        if got == [(val[u], s[-1]) for u, s in train.items() if s and s[-1] != val[u]]:
            return "Put the last training item first: (a, b) with a the earlier review."
        return f"For training parts {train} and validation items {val} the pairs are {want}; got {got}."
    return None
