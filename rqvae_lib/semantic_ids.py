"""Working with semantic IDs: TIGER's collision suffix, token strings and prefix groups."""

from __future__ import annotations

from collections import defaultdict

import torch
from torch import Tensor


def add_collision_suffix(ids: Tensor) -> Tensor:
    """Append TIGER's extra token that makes every ID unique: 0, 1, 2, ... among items sharing an ID.

    Items keep their catalogue order, so the first item with a given ID gets suffix 0.
    Returns int64 ``(num_items, num_levels + 1)``.
    """
    ids = torch.as_tensor(ids).long()
    seen: dict[tuple[int, ...], int] = defaultdict(int)
    suffix = torch.empty(ids.shape[0], dtype=torch.long)
    for i, row in enumerate(map(tuple, ids.tolist())):
        suffix[i] = seen[row]
        seen[row] += 1
    return torch.cat([ids, suffix[:, None]], dim=1)


def ids_to_tokens(ids: Tensor) -> list[str]:
    """Render IDs as token strings, one letter per level: ``(17, 203, 5) -> '<a_17><b_203><c_5>'``."""
    return [
        "".join(f"<{chr(97 + lv)}_{c}>" for lv, c in enumerate(row))
        for row in torch.as_tensor(ids).tolist()
    ]


def prefix_groups(ids: Tensor, depth: int) -> dict[tuple[int, ...], list[int]]:
    """Map each ID prefix of length ``depth`` to the row indices of the items that share it."""
    ids = torch.as_tensor(ids).long()
    if not 1 <= depth <= ids.shape[1]:
        raise ValueError(f"depth must be between 1 and {ids.shape[1]}, got {depth}")
    groups: dict[tuple[int, ...], list[int]] = defaultdict(list)
    for i, row in enumerate(map(tuple, ids[:, :depth].tolist())):
        groups[row].append(i)
    return dict(groups)
