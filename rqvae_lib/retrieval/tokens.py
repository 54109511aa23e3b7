"""Items as token tuples for a sequence model: semantic ID + collision suffix, one range per level.

Layout of the vocabulary (TIGER style)::

    0 pad | 1 eos | 2 bos | level 0 codes | level 1 codes | ... | suffix | user buckets

Token = ``offsets[level] + code``, so the same code at two levels is two different tokens and
every token says which level it belongs to. The suffix level is as wide as the largest suffix + 1.
The optional user token (``num_user_buckets > 0``) is TIGER's hashed user id, put first.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

from rqvae_lib.semantic_ids import add_collision_suffix

PAD, EOS, BOS = 0, 1, 2
#: Tokens reserved before the first level's range.
NUM_SPECIAL = 3


class ItemTokenizer:
    """Maps P5 item ids to unique token tuples and back; the contract a seq2seq model relies on."""

    def __init__(
        self,
        semantic_ids: Tensor,
        item_ids: Sequence[int] | Tensor,
        num_embeddings: int | Sequence[int] | None = None,
        num_user_buckets: int = 0,
    ) -> None:
        """``semantic_ids`` (num_items, L) rows align with ``item_ids``; sizes default to max + 1."""
        semantic_ids = torch.as_tensor(semantic_ids).long()
        item_ids = [int(i) for i in torch.as_tensor(item_ids).long().view(-1).tolist()]
        if semantic_ids.ndim != 2 or semantic_ids.shape[0] != len(item_ids):
            raise ValueError(
                f"semantic_ids must be (num_items, num_levels) with one row per item id; got "
                f"{tuple(semantic_ids.shape)} for {len(item_ids)} item ids"
            )
        codes = add_collision_suffix(semantic_ids)  # (N, L + 1)
        if len(set(item_ids)) != len(item_ids):
            raise ValueError("item_ids must be unique")
        if codes.numel() and codes.min() < 0:
            raise ValueError("semantic IDs must be non-negative")
        num_levels = codes.shape[1] - 1
        observed = (
            (codes.max(dim=0).values + 1).tolist() if codes.numel() else [1] * (num_levels + 1)
        )
        if num_embeddings is None:
            sizes = observed[:num_levels]
        elif isinstance(num_embeddings, int):
            sizes = [num_embeddings] * num_levels
        else:
            sizes = [int(s) for s in num_embeddings]
        if len(sizes) != num_levels or any(s < o for s, o in zip(sizes, observed, strict=False)):
            raise ValueError(f"num_embeddings {num_embeddings} does not cover the codes {observed}")
        if num_user_buckets < 0:
            raise ValueError(f"num_user_buckets must be >= 0, got {num_user_buckets}")

        #: Width of each level's token range; the last entry is the collision suffix.
        self.level_sizes: tuple[int, ...] = (*sizes, observed[-1])
        #: First token of each level's range.
        self.offsets: tuple[int, ...] = tuple(
            NUM_SPECIAL + sum(self.level_sizes[:level]) for level in range(len(self.level_sizes))
        )
        self.user_offset = NUM_SPECIAL + sum(self.level_sizes)
        self.num_user_buckets = num_user_buckets
        self.item_ids: list[int] = item_ids
        #: The semantic IDs as given, (num_items, num_levels): what :meth:`tables` saves.
        self.semantic_ids: Tensor = semantic_ids.clone()
        #: Token tuple of every item, rows aligned with ``item_ids``: (num_items, tokens_per_item).
        self.token_table: Tensor = codes + torch.tensor(self.offsets)
        rows = map(tuple, self.token_table.tolist())
        self._tokens: dict[int, tuple[int, ...]] = dict(zip(item_ids, rows, strict=True))
        self._items: dict[tuple[int, ...], int] = {t: i for i, t in self._tokens.items()}

    @property
    def num_embeddings(self) -> tuple[int, ...]:
        """Codes per semantic-ID level: the width of each level's token range (suffix excluded)."""
        return self.level_sizes[:-1]

    def tables(self) -> dict[str, Tensor]:
        """Everything that rebuilds this tokenizer, as int64 tensors (saved beside a model).

        ``semantic_ids`` (N, L), ``item_ids`` (N,), ``num_embeddings`` (L,) and
        ``num_user_buckets`` (a 0-d tensor); :meth:`from_tables` reverses it.
        """
        return {
            "semantic_ids": self.semantic_ids.clone(),
            "item_ids": torch.tensor(self.item_ids, dtype=torch.long),
            "num_embeddings": torch.tensor(self.num_embeddings, dtype=torch.long),
            "num_user_buckets": torch.tensor(self.num_user_buckets, dtype=torch.long),
        }

    @classmethod
    def from_tables(
        cls, tables: Mapping[str, Tensor], source: str = "the tables given"
    ) -> ItemTokenizer:
        """The tokenizer that :meth:`tables` described; ``source`` names them in errors."""
        names = ("semantic_ids", "item_ids", "num_embeddings", "num_user_buckets")
        missing = [name for name in names if name not in tables]
        if missing:
            raise ValueError(
                f"tokenizer tables {missing} missing from {source}; save the model again"
            )
        return cls(
            tables["semantic_ids"],
            tables["item_ids"],
            [int(s) for s in tables["num_embeddings"].view(-1).tolist()],
            int(tables["num_user_buckets"]),
        )

    @property
    def tokens_per_item(self) -> int:
        """Semantic-ID levels plus the collision suffix."""
        return len(self.level_sizes)

    @property
    def vocab_size(self) -> int:
        """Special tokens, every level's range and the user buckets."""
        return self.user_offset + self.num_user_buckets

    def __len__(self) -> int:
        """Number of items in the catalogue."""
        return len(self.item_ids)

    def item_tokens(self, item: int) -> tuple[int, ...]:
        """The item's token tuple (one token per level, suffix last)."""
        try:
            return self._tokens[int(item)]
        except KeyError:
            raise KeyError(f"item {item} is not in the tokenizer's catalogue") from None

    def encode_items(self, items: Sequence[int]) -> Tensor:
        """Token tuples of several items as int64 (len(items), tokens_per_item): decoder targets."""
        return torch.tensor([self.item_tokens(i) for i in items], dtype=torch.long).view(
            len(items), self.tokens_per_item
        )

    def user_token(self, user: int) -> int:
        """TIGER's hashed user token: a stable hash (same in every run) into the user buckets."""
        if self.num_user_buckets == 0:
            raise ValueError("this tokenizer has no user tokens (num_user_buckets=0)")
        digest = hashlib.blake2b(str(int(user)).encode(), digest_size=8).digest()
        return self.user_offset + int.from_bytes(digest, "little") % self.num_user_buckets

    def encode_history(self, items: Sequence[int], user: int | None = None) -> list[int]:
        """Flat encoder input: the user token (when enabled) then each item's tokens, oldest first."""
        if (user is None) != (self.num_user_buckets == 0):
            raise ValueError(
                "pass user exactly when num_user_buckets > 0 "
                f"(num_user_buckets={self.num_user_buckets}, user={user})"
            )
        tokens = [] if user is None else [self.user_token(user)]
        for item in items:
            tokens.extend(self.item_tokens(item))
        return tokens

    def decode(self, tokens: Sequence[int] | Tensor) -> int | None:
        """The item whose token tuple is exactly ``tokens``, or None if no item has it."""
        key = tuple(int(t) for t in torch.as_tensor(tokens).view(-1).tolist())
        return self._items.get(key)
