"""Working with semantic IDs: making them unique (balanced last level, TIGER's collision suffix),
token strings, prefix groups, and writing them to a file as they stream out of the model."""

from __future__ import annotations

import csv
import warnings
from collections import defaultdict
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from .io import atomic_write

if TYPE_CHECKING:
    from .quantizer import ResidualQuantizer


# --- unique IDs -------------------------------------------------------------------------------
class CollisionSuffixer:
    """TIGER's extra token, counted as IDs stream by: 0 for the first item with an ID, then 1, 2, ..."""

    def __init__(self) -> None:
        self.seen: dict[tuple[int, ...], int] = defaultdict(int)

    def __call__(self, ids: Tensor) -> Tensor:
        """Suffixes ``(batch,)`` int64 for the next block of IDs ``(batch, num_levels)``."""
        suffix = torch.empty(ids.shape[0], dtype=torch.long)
        for i, row in enumerate(map(tuple, torch.as_tensor(ids).tolist())):
            suffix[i] = self.seen[row]
            self.seen[row] += 1
        return suffix


def add_collision_suffix(ids: Tensor) -> Tensor:
    """Append TIGER's extra token that makes every ID unique: 0, 1, 2, ... among items sharing an ID.

    Items keep their catalogue order, so the first item with a given ID gets suffix 0.
    Returns int64 ``(num_items, num_levels + 1)``.
    """
    ids = torch.as_tensor(ids).long()
    return torch.cat([ids, CollisionSuffixer()(ids)[:, None]], dim=1)


@torch.no_grad()
def deduplicate(
    quantizer: ResidualQuantizer, z: Tensor, ids: Tensor, keep: Tensor | None = None
) -> Tensor:
    """Re-assign last-level codes so items sharing a prefix get distinct full IDs where possible.

    Within each group of items that share the first ``num_levels - 1`` codes and collide, the
    last-level codes are an optimal one-to-one assignment (Hungarian) under the same cost as
    lookup, squared distance to the last residual plus the code bias, so an item moves off its
    nearest code only to break a tie. This balanced last level is what genrec does; it depends
    on the whole catalogue, so call it on all items at once. A group with more items than codes
    cannot be made unique: those collisions stay, with a warning that counts them (use
    :func:`add_collision_suffix` for IDs that are always unique).

    ``keep`` (bool, one per row) marks IDs already given out, e.g. a table new items join: those
    rows never move, and the other rows of a colliding group are assigned among the last-level
    codes the kept rows of their prefix leave free, under the same cost.
    """
    from scipy.optimize import linear_sum_assignment

    ids = ids.clone()
    last = quantizer.levels[-1]
    k = quantizer.num_embeddings
    residual = (
        z - quantizer.decode_ids(ids) + torch.nn.functional.embedding(ids[:, -1], last.codebook)
    )
    if last.config.use_cosine:
        residual = torch.nn.functional.normalize(residual, dim=-1)
    _, full, counts = torch.unique(ids, dim=0, return_inverse=True, return_counts=True)
    if bool((counts > 1).any()):
        prefix = torch.zeros(len(ids), dtype=torch.long, device=ids.device)
        if quantizer.num_levels > 1:
            _, prefix = torch.unique(ids[:, :-1], dim=0, return_inverse=True)
        kept = torch.zeros(len(ids), dtype=torch.bool, device=ids.device)
        if keep is not None:
            kept = kept | torch.as_tensor(keep, device=ids.device).bool()
        for p in torch.unique(prefix[counts[full] > 1]).tolist():
            rows = (prefix == p).nonzero().squeeze(1)
            free = torch.ones(k, dtype=torch.bool, device=ids.device)
            free[ids[rows[kept[rows]], -1]] = False  # codes of the group's kept rows
            rows, codes = rows[~kept[rows]], free.nonzero().squeeze(1)
            if not len(rows) or not len(codes):
                continue
            cost = last.distances(residual[rows].to(last.codebook.dtype)).double()[:, codes]
            cost = cost.cpu().numpy()
            r, c = linear_sum_assignment(cost[: min(len(rows), len(codes))])
            ids[rows[torch.as_tensor(r, device=rows.device)], -1] = codes[
                torch.as_tensor(c, device=codes.device)
            ]
    _, counts = torch.unique(ids, dim=0, return_counts=True)
    left = int(counts[counts > 1].sum())
    if left:
        warnings.warn(
            f"deduplicate: {left} items still share a full ID, because some prefixes hold more "
            f"items than the {k} last-level codes; add_collision_suffix makes every ID unique",
            stacklevel=2,
        )
    return ids


# --- reading IDs ------------------------------------------------------------------------------
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


# --- writing IDs to a file, streamed ----------------------------------------------------------
@torch.no_grad()
def iter_semantic_ids(
    model, dataloader: Iterable, collision_suffix: bool = False
) -> Iterator[Tensor]:
    """Yield int64 blocks ``(batch, 1 + num_levels [+ 1])``: item id, semantic ID, [suffix].

    Computes the IDs with ``model.generate_semantic_ids``, batch by batch, on the model's device.
    Without an ``item_id`` in the batch, items are numbered by position. The suffix counts
    earlier items with the same ID, exactly as :func:`add_collision_suffix` does.
    """
    from .evaluate import batch_features

    suffixer, start = CollisionSuffixer(), 0
    for batch in dataloader:
        ids = model.generate_semantic_ids(batch_features(batch)).cpu()
        n = ids.shape[0]
        item_ids = batch.get("item_id") if isinstance(batch, dict) else None
        item_ids = torch.arange(start, start + n) if item_ids is None else item_ids
        columns = [torch.as_tensor(item_ids).long().cpu().reshape(n, 1), ids]
        if collision_suffix:
            columns.append(suffixer(ids)[:, None])
        start += n
        yield torch.cat(columns, dim=1)


def write_semantic_ids(
    model, dataloader: Iterable, output: str | Path, collision_suffix: bool = False
) -> int:
    """Write ``item_id, sid_0 .. sid_{L-1}[, suffix]`` for every item to a .csv or .parquet file.

    Streams batch by batch into a temporary file that replaces ``output`` only once complete,
    so a failed run leaves an older file as it was. Returns the number of items written.
    """
    output = Path(output)
    if output.suffix.lower() not in (".csv", ".parquet"):
        raise ValueError(f"output {output} must end in .csv or .parquet")
    levels = model.quantizer.num_levels
    names = ["item_id", *(f"sid_{i}" for i in range(levels))] + ["suffix"] * collision_suffix
    blocks = iter_semantic_ids(model, dataloader, collision_suffix)
    write = _write_parquet if output.suffix.lower() == ".parquet" else _write_csv
    return atomic_write(output, lambda tmp: write(tmp, names, blocks))


def _write_csv(path: Path, names: list[str], blocks: Iterable[Tensor]) -> int:
    count = 0
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(names)
        for block in blocks:
            writer.writerows(block.tolist())
            count += block.shape[0]
    return count


def _write_parquet(path: Path, names: list[str], blocks: Iterable[Tensor]) -> int:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as err:
        raise ImportError("writing .parquet needs pyarrow: pip install pyarrow") from err
    schema = pa.schema([(name, pa.int64()) for name in names])
    count = 0
    with pq.ParquetWriter(str(path), schema) as writer:
        for block in blocks:
            writer.write_table(pa.Table.from_arrays(list(block.numpy().T), schema=schema))
            count += block.shape[0]
    return count
