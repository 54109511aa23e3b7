"""Reference solutions of the exercises in :mod:`rqvae_lib.exercises`, and typical wrong answers.

``SOLUTIONS[id]`` is the answer the notebook's solution cell gives (the same code); the tests
check that it passes. ``WRONG_ANSWERS[id]`` lists ``(answer, words the hint must contain)``:
mistakes a student is likely to make, each of which must fail with that hint. Every registered
exercise needs a solution and at least one wrong answer here (the tests check that too).
"""

from __future__ import annotations

from typing import Any

import torch

# -- notebook 02 ------------------------------------------------------------------------------


def nearest_code(r, codebook):
    """Index of the nearest code for each row of r: argmin of squared Euclidean distances."""
    d = (r[:, None, :] - codebook[None, :, :]).pow(2).sum(-1)  # (N, K)
    return d.argmin(dim=1)  # (N,)


def residual_ids(z, codebooks):
    """Semantic IDs (N, L) and reconstructions (N, D) by residual quantization."""
    residual, total, ids = z, torch.zeros_like(z), []
    for codebook in codebooks:
        k = nearest_code(residual, codebook)  # (N,) this level's token
        residual, total = residual - codebook[k], total + codebook[k]
        ids.append(k)
    return torch.stack(ids, dim=1), total


def _farthest_code(r, codebook):
    return (r[:, None, :] - codebook[None, :, :]).pow(2).sum(-1).argmax(dim=1)


def _distances_only(r, codebook):
    return (r[:, None, :] - codebook[None, :, :]).pow(2).sum(-1)


def _argmin_over_rows(r, codebook):
    return (r[:, None, :] - codebook[None, :, :]).pow(2).sum(-1).argmin(dim=0)


def _sum_over_codes(r, codebook):  # sums over the wrong axis: (N, D), then argmin over D
    return (r[:, None, :] - codebook[None, :, :]).pow(2).sum(1).argmin(dim=1)


def _dot_product(r, codebook):  # the largest inner product is not the nearest code
    return (r @ codebook.T).argmax(dim=1)


def _quantize_z_every_level(z, codebooks):
    ids = [nearest_code(z, c) for c in codebooks]
    total = sum(c[k] for c, k in zip(codebooks, ids, strict=True))
    return torch.stack(ids, dim=1), total


def _levels_first(z, codebooks):
    ids, total = residual_ids(z, codebooks)
    return ids.T, total


def _returns_residual(z, codebooks):
    ids, total = residual_ids(z, codebooks)
    return ids, z - total


def _ids_only(z, codebooks):
    return residual_ids(z, codebooks)[0]


def _last_code_only(z, codebooks):
    ids, _ = residual_ids(z, codebooks)
    return ids, codebooks[-1][ids[:, -1]]


SOLUTIONS: dict[str, Any] = {
    "02-same-code-perplexity": 1.0,
    "02-nearest-code": nearest_code,
    "02-residual-loop": residual_ids,
}

WRONG_ANSWERS: dict[str, list[tuple[Any, str]]] = {
    "02-same-code-perplexity": [
        (0, "exp(0)"),
        (256, "used equally often"),
        (1 / 256, "share p"),
        (2.0, "Perplexity = exp(H)"),
        ("1", "with a number"),
    ],
    "02-nearest-code": [
        (_farthest_code, "argmin, not argmax"),
        (_distances_only, ".argmin(dim=1)"),
        (_argmin_over_rows, "dim=1"),
        (_sum_over_codes, "do not get their nearest code"),
        (_dot_product, "do not get their nearest code"),
        (nearest_code(torch.zeros(2, 2), torch.zeros(3, 2)), "without calling it"),
    ],
    "02-residual-loop": [
        (_quantize_z_every_level, "quantized z again"),
        (_levels_first, "stack the levels along dim 1"),
        (_returns_residual, "last residual"),
        (_ids_only, "Return two things"),
        (_last_code_only, "only the last level's code"),
    ],
}
