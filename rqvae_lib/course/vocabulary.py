"""A fixed vocabulary: what a semantic-ID model and an item-ID model store as the catalogue grows.

A generative retriever embeds a few hundred tokens (special tokens, ``levels`` ranges of
``codebook_size`` codes, a collision-suffix range); an ID-based model like SASRec embeds one row
per item. :func:`vocabulary_footprint` counts both, as this library builds them, and the two
tables a semantic-ID model still keeps per item: the tokenizer's ID table and the trie that
constrains decoding. :func:`footprint_table` and :func:`footprint_figure` show them from Beauty's
12k items to 100M.

What is exact and what is a bound:

- exact (checked against the built objects in the tests): the vocabulary size for a given
  suffix width, the seq2seq's token embedding and its **untied** output head (``TigerSeq2Seq``;
  the T5 backbone ties them), SASRec's item embedding (``num_items + 1`` rows, one for padding,
  scoring tied to it), and the tokenizer's token table (int64, ``levels + 1`` columns);
- a lower bound unless measured: the suffix range. With IDs spread perfectly evenly at least
  ``ceil(num_items / codebook_size**levels)`` items share an ID; a real table has more (its
  largest suffix + 1), so pass ``max_per_id`` measured on it (Beauty's RQ-KMeans: 19);
- an upper bound: the trie, whose depth-``t`` nodes are at most ``min(num_items, K**t)``
  (all ``num_items`` at the last depth), at most ``num_items * (levels + 1) + 1`` in all.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from typing import Literal

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from rqvae_lib.retrieval.seq2seq import Seq2SeqConfig
from rqvae_lib.retrieval.tokens import NUM_SPECIAL

#: The catalogue sizes of the lesson: Amazon Beauty (P5 split), a million, a hundred million.
CATALOGUE_SIZES = (12_101, 1_000_000, 100_000_000)
#: TIGER's model width (``Seq2SeqConfig``'s default), used for both models in the comparison.
TIGER_D_MODEL: int = next(f.default for f in fields(Seq2SeqConfig) if f.name == "d_model")
#: Bytes of one int64 entry: the dtype of the tokenizer's token table and of the trie's tensors.
INT64_BYTES = 8
MIB = 2**20


@dataclass(frozen=True)
class Footprint:
    """Sizes for one catalogue: parameters, and bytes at ``bytes_per_param`` / int64."""

    num_items: int
    d_model: int
    levels: int
    codebook_size: int
    suffix_tokens: int  # collision-suffix range; a lower bound unless suffix_measured
    suffix_measured: bool  # True when max_per_id was given (a real table's largest suffix + 1)
    vocab_size: int  # ItemTokenizer.vocab_size: specials + levels * K + suffix + user buckets
    vocab_params: int  # seq2seq token embedding (+ untied output head for the torch backbone)
    item_table_params: int  # SASRec item embedding: (num_items + 1) x d_model, scoring tied
    vocab_bytes: int  # vocab_params x bytes_per_param
    item_table_bytes: int  # item_table_params x bytes_per_param
    id_table_bytes: int  # tokenizer's token table: num_items x (levels + 1) int64
    trie_nodes: int  # upper bound, root included
    trie_edges: int  # upper bound: trie_nodes - 1
    trie_bytes: int  # upper bound on ItemTrie's int64 tensors (ptr, edges, keys, leaves)

    @property
    def item_to_vocab(self) -> float:
        """How many times more parameters the item table has than the semantic-ID vocabulary."""
        return self.item_table_params / self.vocab_params


def suffix_lower_bound(num_items: int, levels: int = 3, codebook_size: int = 256) -> int:
    """Fewest suffix tokens any ID table needs: ``ceil(num_items / K**levels)`` (at least 1).

    Reached only when IDs are spread perfectly evenly; a real table needs its largest suffix + 1.
    """
    return max(1, -(-num_items // codebook_size**levels))


def trie_node_bound(num_items: int, levels: int = 3, codebook_size: int = 256) -> list[int]:
    """Upper bound on the trie's nodes at each depth 0..levels + 1 (root, codes, suffix).

    Depth ``t <= levels`` has at most ``min(num_items, K**t)`` distinct prefixes; the last depth
    has exactly ``num_items`` leaves. The sum is at most ``num_items * (levels + 1) + 1``.
    """
    inner = [min(num_items, codebook_size**t) for t in range(1, levels + 1)]
    return [1, *inner, num_items]


def vocabulary_footprint(
    num_items: int,
    d_model: int,
    levels: int = 3,
    codebook_size: int = 256,
    max_per_id: int | None = None,
    bytes_per_param: int = 4,
    num_user_buckets: int = 0,
    backbone: Literal["torch", "t5"] = "torch",
) -> Footprint:
    """Parameters and memory of a semantic-ID vocabulary and an item table for ``num_items``.

    ``max_per_id``: the most items sharing one ID in a real table (its largest suffix + 1);
    without it the suffix is :func:`suffix_lower_bound`. ``backbone`` as in
    :class:`~rqvae_lib.retrieval.Seq2SeqConfig`: ``"torch"`` has an untied output head (twice the
    embedding), ``"t5"`` ties it. ``bytes_per_param`` 4 is float32 weights.
    """
    if num_items < 1 or d_model < 1 or levels < 1 or codebook_size < 1:
        raise ValueError(
            f"num_items, d_model, levels and codebook_size must be >= 1; got {num_items}, "
            f"{d_model}, {levels}, {codebook_size}"
        )
    if backbone not in ("torch", "t5"):
        raise ValueError(f"backbone must be 'torch' or 't5', got {backbone!r}")
    least = suffix_lower_bound(num_items, levels, codebook_size)
    if max_per_id is not None and max_per_id < least:
        raise ValueError(
            f"max_per_id={max_per_id} is impossible: {num_items} items in "
            f"{codebook_size}**{levels} IDs put at least {least} on one ID"
        )
    suffix = least if max_per_id is None else max_per_id
    vocab_size = NUM_SPECIAL + levels * codebook_size + suffix + num_user_buckets
    vocab_params = vocab_size * d_model * (2 if backbone == "torch" else 1)
    item_table_params = (num_items + 1) * d_model  # + the padding row; SASRec scores with it
    nodes = sum(trie_node_bound(num_items, levels, codebook_size))
    depth = levels + 1
    # ItemTrie: ptr[t] has (nodes at depth t) + 1 entries for t < depth, edge_token and edge_key
    # one per edge, leaf_item one per item: nodes - num_items + depth + 2 * edges + num_items.
    trie_entries = nodes + depth + 2 * (nodes - 1)
    return Footprint(
        num_items=num_items,
        d_model=d_model,
        levels=levels,
        codebook_size=codebook_size,
        suffix_tokens=suffix,
        suffix_measured=max_per_id is not None,
        vocab_size=vocab_size,
        vocab_params=vocab_params,
        item_table_params=item_table_params,
        vocab_bytes=vocab_params * bytes_per_param,
        item_table_bytes=item_table_params * bytes_per_param,
        id_table_bytes=num_items * depth * INT64_BYTES,
        trie_nodes=nodes,
        trie_edges=nodes - 1,
        trie_bytes=trie_entries * INT64_BYTES,
    )


def footprint_table(
    num_items_list: Sequence[int] = CATALOGUE_SIZES,
    d_model: int = TIGER_D_MODEL,
    **options,
) -> pd.DataFrame:
    """One row of :class:`Footprint` per catalogue size, plus the item-table / vocabulary ratio.

    ``options`` go to :func:`vocabulary_footprint` for every row (a measured ``max_per_id``
    holds for the catalogue it was measured on only).
    """
    rows = []
    for n in num_items_list:
        fp = vocabulary_footprint(int(n), d_model, **options)
        rows.append({**asdict(fp), "item_to_vocab": fp.item_to_vocab})
    return pd.DataFrame(rows)


def footprint_figure(
    marks: Sequence[int] = CATALOGUE_SIZES,
    d_model: int = TIGER_D_MODEL,
    points: int = 41,
    **options,
) -> Figure:
    """Log-log against catalogue size: parameters (left) and memory in MiB (right).

    Left: the semantic-ID vocabulary and the item table; right: the same two at float32 (or
    ``bytes_per_param``), the tokenizer's ID table and the trie (an upper bound). Sizes in
    ``marks`` carry a marker; ``options`` go to :func:`vocabulary_footprint`.
    """
    low, high = min(marks), max(marks)
    sizes = np.unique(np.concatenate([np.geomspace(low, high, points).round(), marks]))
    sizes = sizes.astype(np.int64)
    table = footprint_table(sizes.tolist(), d_model, **options)
    at = [int(np.searchsorted(sizes, m)) for m in marks]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    style = {"lw": 2, "marker": "o", "markevery": at}
    left.plot(
        sizes, table["vocab_params"], label="semantic-ID vocabulary (embedding + head)", **style
    )
    left.plot(sizes, table["item_table_params"], label="item table (SASRec embedding)", **style)
    left.set(
        xlabel="items in the catalogue (log scale)",
        ylabel="parameters (log scale)",
        title=f"parameters at d_model = {d_model}",
    )
    for column, label in (
        ("vocab_bytes", "semantic-ID vocabulary weights"),
        ("item_table_bytes", "item table weights"),
        ("id_table_bytes", "ID table (int64 tokens)"),
        ("trie_bytes", "trie (upper bound)"),
    ):
        right.plot(sizes, table[column] / MIB, label=label, **style)
    right.set(
        xlabel="items in the catalogue (log scale)",
        ylabel="memory (MiB, log scale)",
        title="memory: what still grows with the catalogue",
    )
    for ax in (left, right):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.legend(fontsize=8, loc="upper left")
    fig.suptitle("a fixed vocabulary: semantic-ID tokens against an item table")
    fig.tight_layout()
    return fig
