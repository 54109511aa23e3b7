"""rqvae_lib.retrieval.tokens: an item's semantic ID as tokens, the collision suffix, the user
token, and the tables a tokenizer is saved as."""

from __future__ import annotations

import pytest
import torch
from retrieval_helpers import colliding_tokenizer

from rqvae_lib.retrieval import ItemTokenizer


def test_tokenizer_round_trips_and_separates_colliding_items() -> None:
    tok = colliding_tokenizer(num_embeddings=5)
    # Layout: 3 special tokens, then [5 codes | 5 codes | 2 suffixes].
    assert tok.offsets == (3, 8, 13) and tok.tokens_per_item == 3 and tok.vocab_size == 15
    assert tok.item_tokens(10) == (7, 9, 13) and tok.item_tokens(11) == (7, 9, 14)
    assert len({tok.item_tokens(i) for i in tok.item_ids}) == len(tok)
    for item in tok.item_ids:
        assert tok.decode(tok.item_tokens(item)) == item
        assert tok.decode(torch.tensor(tok.item_tokens(item))) == item
    assert tok.decode((7, 9, 15)) is None and tok.decode((7, 9)) is None
    assert tok.encode_history([10, 13]) == [7, 9, 13, 3, 9, 13]
    assert tok.encode_items([11, 12]).tolist() == [[7, 9, 14], [7, 10, 13]]
    with pytest.raises(KeyError):
        tok.item_tokens(99)


def test_optional_hashed_user_token_comes_first_and_is_stable() -> None:
    tok = colliding_tokenizer(num_user_buckets=8)
    assert tok.vocab_size == tok.user_offset + 8
    first = tok.encode_history([12], user=42)
    assert tok.user_offset <= first[0] < tok.vocab_size and first[1:] == list(tok.item_tokens(12))
    assert tok.encode_history([12], user=42) == first
    with pytest.raises(ValueError):
        tok.encode_history([12])
    with pytest.raises(ValueError):
        colliding_tokenizer().encode_history([12], user=42)


def test_a_tokenizer_rebuilds_from_its_tables() -> None:
    ids = torch.tensor([[0, 1], [0, 1], [2, 0]])
    tok = ItemTokenizer(ids, [30, 10, 20], num_embeddings=[4, 3], num_user_buckets=2)
    tables = tok.tables()
    assert tables["semantic_ids"].equal(ids) and tables["item_ids"].tolist() == [30, 10, 20]
    assert tables["num_embeddings"].tolist() == [4, 3] and int(tables["num_user_buckets"]) == 2
    again = ItemTokenizer.from_tables(tables)
    assert again.token_table.equal(tok.token_table) and again.vocab_size == tok.vocab_size
    assert again.user_token(5) == tok.user_token(5) and again.num_embeddings == (4, 3)
    del tables["num_embeddings"]
    with pytest.raises(
        ValueError, match=r"tables \[.num_embeddings.\] missing from tok\.safetensors"
    ):
        ItemTokenizer.from_tables(tables, source="tok.safetensors")
