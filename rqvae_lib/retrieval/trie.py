"""A prefix trie of valid item token tuples and a beam search that can only produce real items.

Generating an item token by token can wander off the catalogue (a tuple no item has). TIGER
discards such outputs; constraining every step to the trie instead makes every beam a real item.
The trie is stored level by level as tensors so masking is batched: at depth t the children of
each node are a contiguous, sorted slice (``ptr[t][node]:ptr[t][node + 1]``) of the edges.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, NamedTuple

import torch
from torch import Tensor

if TYPE_CHECKING:
    from rqvae_lib.retrieval.tokens import ItemTokenizer


class ItemTrie:
    """The prefixes of ``token_table`` rows; row i is the full token tuple of ``item_ids[i]``."""

    def __init__(self, token_table: Tensor, item_ids: Sequence[int] | Tensor) -> None:
        """Build the level-by-level edge lists; raise if two items share one token tuple."""
        table = torch.as_tensor(token_table).long()
        item_ids = torch.as_tensor(item_ids).long().view(-1)
        if table.ndim != 2 or table.shape[0] != item_ids.shape[0] or 0 in table.shape:
            raise ValueError(
                f"token_table must be (num_items > 0, depth > 0) with one row per item id; "
                f"got {tuple(table.shape)} for {item_ids.shape[0]} item ids"
            )
        if table.min() < 0:
            raise ValueError("tokens must be non-negative")
        self.depth = table.shape[1]
        self.vocab_size = int(table.max()) + 1  # step_fn must score at least these tokens
        self.ptr: list[Tensor] = []  # [t]: (nodes at depth t + 1,) start of each node's children
        self.edge_token: list[Tensor] = []  # [t]: token of each edge, grouped by parent, sorted
        self.edge_key: list[Tensor] = []  # [t]: parent * vocab_size + token, sorted: for lookup
        parent = torch.zeros(table.shape[0], dtype=torch.long)  # every row starts at the root
        num_parents = 1
        for t in range(self.depth):
            # Nodes at depth t + 1 are the distinct prefixes of length t + 1, in sorted order,
            # so their parents come out grouped and their tokens sorted within a group.
            prefixes, child = torch.unique(table[:, : t + 1], dim=0, return_inverse=True)
            first = torch.full((len(prefixes),), table.shape[0], dtype=torch.long)
            first.scatter_reduce_(0, child, torch.arange(table.shape[0]), "amin")
            edge_parent = parent[first]
            self.edge_token.append(prefixes[:, t])
            self.edge_key.append(edge_parent * self.vocab_size + prefixes[:, t])
            counts = torch.bincount(edge_parent, minlength=num_parents)
            self.ptr.append(torch.cat([torch.zeros(1, dtype=torch.long), counts.cumsum(0)]))
            parent, num_parents = child, len(prefixes)
        if num_parents != table.shape[0]:
            raise ValueError("two items share the same token tuple; add the collision suffix")
        self.leaf_item = torch.empty(num_parents, dtype=torch.long)  # leaf node -> item id
        self.leaf_item[parent] = item_ids

    @classmethod
    def from_tokenizer(cls, tokenizer: ItemTokenizer) -> ItemTrie:
        """The trie of every item a tokenizer knows."""
        return cls(tokenizer.token_table, tokenizer.item_ids)

    def to(self, device: torch.device | str) -> ItemTrie:
        """Move the trie's tensors to ``device`` (in place) so masking runs beside the model."""
        for name in ("ptr", "edge_token", "edge_key"):
            setattr(self, name, [x.to(device) for x in getattr(self, name)])
        self.leaf_item = self.leaf_item.to(device)
        return self

    def advance(self, nodes: Tensor, tokens: Tensor, t: int) -> Tensor:
        """Child node of each ``nodes[i]`` (at depth t) along ``tokens[i]``; -1 where none exists."""
        keys = self.edge_key[t]
        query = nodes * self.vocab_size + tokens  # (n,)
        pos = torch.searchsorted(keys, query).clamp(max=len(keys) - 1)  # (n,)
        found = (keys[pos] == query) & (nodes >= 0) & (tokens >= 0) & (tokens < self.vocab_size)
        return torch.where(found, pos, torch.full_like(pos, -1))

    def allowed_mask(self, nodes: Tensor, t: int, vocab_size: int) -> Tensor:
        """Bool (n, vocab_size): the tokens that extend each node at depth t; none for node -1."""
        n = nodes.shape[0]
        live = nodes >= 0
        safe = nodes.clamp(min=0)
        start = self.ptr[t][safe]  # (n,)
        counts = torch.where(live, self.ptr[t][safe + 1] - start, torch.zeros_like(start))
        row = torch.repeat_interleave(torch.arange(n, device=nodes.device), counts)  # (E,)
        # Position of each expanded edge inside its node's slice: 0, 1, .., counts[i] - 1.
        within = torch.arange(row.shape[0], device=nodes.device) - (counts.cumsum(0) - counts)[row]
        mask = torch.zeros(n, vocab_size, dtype=torch.bool, device=nodes.device)
        mask[row, self.edge_token[t][start[row] + within]] = True
        return mask

    def allowed(self, prefix: Sequence[int]) -> list[int]:
        """The tokens that may follow ``prefix`` (sorted); empty if the prefix is not in the trie."""
        node = torch.zeros(1, dtype=torch.long, device=self.leaf_item.device)
        for t, token in enumerate(prefix):
            if t >= self.depth:
                return []
            node = self.advance(node, torch.full_like(node, int(token)), t)
        if len(prefix) >= self.depth or node.item() < 0:
            return []
        start, stop = self.ptr[len(prefix)][node.item()], self.ptr[len(prefix)][node.item() + 1]
        return self.edge_token[len(prefix)][start:stop].tolist()

    def item(self, tokens: Sequence[int]) -> int | None:
        """The item id of a full token tuple, or None if it is not a valid item."""
        if len(tokens) != self.depth:
            return None
        node = torch.zeros(1, dtype=torch.long, device=self.leaf_item.device)
        for t, token in enumerate(tokens):
            node = self.advance(node, torch.full_like(node, int(token)), t)
        return None if node.item() < 0 else int(self.leaf_item[node].item())


class BeamSearchOutput(NamedTuple):
    """Per batch row, the beams best first; dead beams have item -1 and score -inf."""

    items: Tensor  # (B, beam) int64 item ids
    scores: Tensor  # (B, beam) summed log-probs
    tokens: Tensor  # (B, beam, depth) the generated token tuples (pad_token on dead beams)


def constrained_beam_search(
    step_fn: Callable[[Tensor], Tensor],
    batch_size: int,
    beam_size: int,
    trie: ItemTrie,
    pad_token: int = 0,
) -> BeamSearchOutput:
    """Beam search over item token tuples where every step may only extend a trie prefix.

    ``step_fn(prefix)`` gets the generated tokens so far, ``(batch_size * beam_size, t)`` int64,
    and returns next-token log-probs ``(batch_size * beam_size, vocab)``. Rows
    ``b * beam_size .. (b + 1) * beam_size - 1`` always belong to batch row ``b``, so per-row
    context (e.g. an encoder output repeated with ``repeat_interleave``) stays aligned. Tokens
    outside the trie get -inf; a path whose score is -inf is dead (also when the model itself
    gives an allowed token probability 0), so rows with fewer than ``beam_size`` reachable
    items end in item -1 / score -inf. Scores are summed log-probs, sorted best first.
    """
    if batch_size < 1 or beam_size < 1:
        raise ValueError(f"batch_size and beam_size must be >= 1, got {batch_size}, {beam_size}")
    device = trie.leaf_item.device
    n = batch_size * beam_size
    neg_inf = float("-inf")
    prefix = torch.empty(n, 0, dtype=torch.long, device=device)  # (B*beam, t)
    nodes = torch.zeros(n, dtype=torch.long, device=device)  # trie node of each beam
    # All beams start equal: only the first is alive, or the first step would pick duplicates.
    scores = torch.full((batch_size, beam_size), neg_inf, device=device)
    scores[:, 0] = 0.0
    for t in range(trie.depth):
        logp = step_fn(prefix).float()  # (B*beam, V)
        vocab = logp.shape[1]
        if logp.shape[0] != n or vocab < trie.vocab_size:
            raise ValueError(
                f"step_fn returned {tuple(logp.shape)}; expected ({n}, >= {trie.vocab_size})"
            )
        nodes = torch.where(scores.view(-1) > neg_inf, nodes, torch.full_like(nodes, -1))
        logp = logp.masked_fill(~trie.allowed_mask(nodes, t, vocab), neg_inf)
        cand = (scores.view(-1, 1) + logp).view(batch_size, beam_size * vocab)  # (B, beam*V)
        scores, flat = cand.topk(beam_size, dim=1)  # (B, beam), sorted best first
        parent = flat // vocab + torch.arange(batch_size, device=device)[:, None] * beam_size
        parent, token = parent.view(-1), (flat % vocab).view(-1)  # (B*beam,)
        alive = scores.view(-1) > neg_inf
        token = torch.where(alive, token, torch.full_like(token, pad_token))
        nodes = torch.where(alive, trie.advance(nodes[parent], token, t), -1)
        prefix = torch.cat([prefix[parent], token[:, None]], dim=1)  # (B*beam, t + 1)
    alive = scores.view(-1) > neg_inf
    items = torch.where(alive, trie.leaf_item[nodes.clamp(min=0)], -1)
    return BeamSearchOutput(
        items.view(batch_size, beam_size), scores, prefix.view(batch_size, beam_size, -1)
    )
