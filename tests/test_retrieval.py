"""The model-free half of generative retrieval: samples, item tokens, trie beam search, metrics."""

from __future__ import annotations

import math

import pytest
import torch

from rqvae_lib.data.amazon import leave_one_out
from rqvae_lib.retrieval import (
    ItemTokenizer,
    ItemTrie,
    build_samples,
    constrained_beam_search,
    drop_history,
    hit_ranks,
    most_popular,
    recall_ndcg,
    truncate_history,
)

# P5-like sequences in file order (user ids deliberately not sorted); user 9 is long.
SEQUENCES = {
    7: [1, 2, 3, 4, 5],
    3: [2, 6, 2, 7],  # a repeat purchase: the validation item 2 is also the first training item
    9: list(range(100, 130)),  # 30 items: histories must be truncated to 20
    5: [8, 9],  # too short to hold anything out: all training
}


def test_samples_window_the_training_part_and_hold_out_the_last_two() -> None:
    split = leave_one_out(SEQUENCES)
    train, val, test = build_samples(split)
    # P5 file order is kept in every split; user 5 (2 items) has no val/test sample.
    assert list(dict.fromkeys(train.users)) == [7, 3, 9, 5]
    assert val.users == test.users == [7, 3, 9]
    # Every prefix of the training part is a sample; the first item (no history) is skipped.
    assert [(h, t) for u, h, t in zip(*train, strict=True) if u == 7] == [([1], 2), ([1, 2], 3)]
    assert [(h, t) for u, h, t in zip(*train, strict=True) if u == 3] == [([2], 6)]
    assert val.histories[0] == [1, 2, 3] and val.targets[0] == 4
    assert test.histories[0] == [1, 2, 3, 4] and test.targets[0] == 5
    # No held-out position of a user is one of that user's training samples.
    for held_out in (val, test):
        for user, history, target in zip(*held_out, strict=True):
            user_train = [(h, t) for u, h, t in zip(*train, strict=True) if u == user]
            assert all(len(h) < len(split.train[user]) for h, _ in user_train)
            assert (history[-20:], target) not in user_train
            assert len(user_train) == len(split.train[user]) - 1
    targets_of = {
        u: [t for v, t in zip(train.users, train.targets, strict=True) if v == u] for u in SEQUENCES
    }
    assert targets_of[7] == [2, 3] and targets_of[3] == [6]  # never 4, 5 (user 7) or 2, 7 (user 3)
    # Histories keep the last 20 items, oldest first.
    assert max(len(h) for h in train.histories + val.histories + test.histories) == 20
    long = [h for u, h in zip(train.users, train.histories, strict=True) if u == 9]
    assert long[-1] == list(range(107, 127)) and train.targets[len(train.targets) - 2] == 127
    assert test.histories[2] == list(range(109, 129)) and test.targets[2] == 129
    assert truncate_history([1, 2, 3], 2) == [2, 3]


def _tokenizer(**kwargs) -> ItemTokenizer:
    # Items 10 and 11 share the whole semantic ID (4, 1); 12 shares its first code.
    ids = torch.tensor([[4, 1], [4, 1], [4, 2], [0, 1], [2, 0]])
    return ItemTokenizer(ids, [10, 11, 12, 13, 14], **kwargs)


def test_tokenizer_round_trips_and_separates_colliding_items() -> None:
    tok = _tokenizer(num_embeddings=5)
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
    tok = _tokenizer(num_user_buckets=8)
    assert tok.vocab_size == tok.user_offset + 8
    first = tok.encode_history([12], user=42)
    assert tok.user_offset <= first[0] < tok.vocab_size and first[1:] == list(tok.item_tokens(12))
    assert tok.encode_history([12], user=42) == first
    with pytest.raises(ValueError):
        tok.encode_history([12])
    with pytest.raises(ValueError):
        _tokenizer().encode_history([12], user=42)


def test_trie_lists_the_allowed_next_tokens() -> None:
    tok = _tokenizer()
    trie = ItemTrie.from_tokenizer(tok)
    a = [tok.item_tokens(i) for i in tok.item_ids]
    assert trie.allowed([]) == sorted({t[0] for t in a})
    assert trie.allowed(a[0][:1]) == sorted({a[0][1], a[2][1]})
    assert trie.allowed(a[0][:2]) == [a[0][2], a[1][2]]
    assert trie.allowed([a[4][0], a[0][1]]) == [] and trie.allowed(a[0]) == []
    assert [trie.item(t) for t in a] == tok.item_ids and trie.item((0, 0, 0)) is None
    with pytest.raises(ValueError):
        ItemTrie(torch.tensor([[3, 4], [3, 4]]), [1, 2])


def test_beam_search_returns_only_real_items_best_first() -> None:
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 4, (40, 3), generator=generator)  # collisions included
    tok = ItemTokenizer(ids, torch.arange(1000, 1040))
    trie = ItemTrie.from_tokenizer(tok)

    def random_step(prefix: torch.Tensor) -> torch.Tensor:
        return torch.randn(prefix.shape[0], tok.vocab_size, generator=generator).log_softmax(-1)

    out = constrained_beam_search(random_step, batch_size=3, beam_size=8, trie=trie)
    assert out.items.shape == out.scores.shape == (3, 8) and out.tokens.shape == (3, 8, 4)
    for b in range(3):
        assert len(set(out.items[b].tolist())) == 8  # distinct items per row
        for k in range(8):
            assert tok.decode(out.tokens[b, k]) == out.items[b, k].item()
    assert (out.scores[:, :-1] >= out.scores[:, 1:]).all() and out.scores.isfinite().all()


def test_beam_search_finds_a_strongly_preferred_item_and_pads_when_short() -> None:
    tok = _tokenizer()
    trie = ItemTrie.from_tokenizer(tok)
    wanted = [tok.item_tokens(11), tok.item_tokens(13)]  # one favourite per batch row

    def prefer(prefix: torch.Tensor) -> torch.Tensor:
        t = prefix.shape[1]
        logits = torch.zeros(prefix.shape[0], tok.vocab_size)
        for row in range(prefix.shape[0]):
            logits[row, wanted[row // 6][t]] = 10.0  # rows b*beam .. belong to batch row b
        return logits.log_softmax(-1)

    # Only 5 items exist, so a beam of 6 ends with one dead beam: item -1, score -inf.
    out = constrained_beam_search(prefer, batch_size=2, beam_size=6, trie=trie)
    assert out.items[:, 0].tolist() == [11, 13]
    assert out.items[:, -1].tolist() == [-1, -1] and out.scores[:, -1].isneginf().all()
    assert sorted(out.items[0, :5].tolist()) == tok.item_ids


def test_recall_and_ndcg_by_hand() -> None:
    ranked = torch.arange(1, 21).repeat(4, 1)  # every user sees items 1..20 in order
    targets = [1, 3, 7, 99]  # ranks 1, 3, 7 and a miss
    assert hit_ranks(ranked, targets).tolist() == [1, 3, 7, 0]
    m = recall_ndcg(ranked, targets)
    assert m["recall@5"].mean == 0.5 and m["recall@10"].mean == 0.75
    assert m["recall@20"].mean == 0.75
    # NDCG: 1/log2(2) = 1, 1/log2(4) = 0.5, 1/log2(8) = 1/3.
    assert m["ndcg@5"].mean == 1.5 / 4
    assert m["ndcg@10"].mean == pytest.approx((1.5 + 1 / 3) / 4, abs=1e-15)
    # Standard error of the recall@5 hits [1, 1, 0, 0]: sample std sqrt(1/3), over sqrt(4).
    assert m["recall@5"].sem == pytest.approx(math.sqrt(1 / 3) / 2, abs=1e-15)
    with pytest.raises(ValueError):
        recall_ndcg(ranked[:, :10], targets)


def test_exclude_history_is_one_rule_for_every_ranking() -> None:
    ranked = torch.tensor([[5, 1, 2, 3, 4, 6]])
    assert drop_history(ranked, [[5, 2]]).tolist() == [[1, 3, 4, 6, -1, -1]]
    # Target 3 moves from rank 4 to rank 2 once history items 5 and 2 are removed.
    kept = recall_ndcg(ranked, [3], [[5, 2]], ks=(2, 4))
    masked = recall_ndcg(ranked, [3], [[5, 2]], ks=(2, 4), exclude_history=True)
    assert kept["recall@2"].mean == 0.0 and kept["ndcg@4"].mean == 1 / math.log2(5)
    assert masked["recall@2"].mean == 1.0 and masked["ndcg@2"].mean == 1 / math.log2(3)
    # A repeated purchase is unreachable when masking: why the default is False.
    assert recall_ndcg(ranked, [5], [[5]], ks=(4,), exclude_history=True)["recall@4"].mean == 0


def test_most_popular_counts_training_interactions_with_id_tie_break() -> None:
    train = leave_one_out({1: [3, 2, 3, 9, 8], 2: [2, 5, 3, 4, 7], 3: [5, 1]}).train
    # Training counts: 3 -> 3, then 2 and 5 with two each (tie: smaller id first), 1 -> 1.
    # Held-out items (9, 8, 4, 7) are never counted, so the catalogue runs out: -1 pads.
    assert most_popular(train, 4).tolist() == [3, 2, 5, 1]
    assert most_popular(train, 6).tolist() == [3, 2, 5, 1, -1, -1]
    histories = [[3, 1], [9]]
    assert most_popular(train, 3, histories).tolist() == [[3, 2, 5], [3, 2, 5]]
    assert most_popular(train, 3, histories, exclude_history=True).tolist() == [
        [2, 5, -1],
        [3, 2, 5],
    ]


def test_beam_as_wide_as_the_catalogue_is_exhaustive() -> None:
    generator = torch.Generator().manual_seed(1)
    tok = ItemTokenizer(torch.randint(0, 3, (12, 2), generator=generator), torch.arange(12))
    trie = ItemTrie.from_tokenizer(tok)
    table = torch.randn(3, tok.vocab_size, tok.vocab_size, generator=generator).log_softmax(-1)

    def step(prefix: torch.Tensor) -> torch.Tensor:  # log-probs depend on the last token
        last = prefix[:, -1] if prefix.shape[1] else torch.zeros(len(prefix), dtype=torch.long)
        return table[prefix.shape[1], last]

    out = constrained_beam_search(step, batch_size=1, beam_size=12, trie=trie)
    brute = {}
    for item in tok.item_ids:
        score, last = torch.tensor(0.0), 0
        for t, token in enumerate(tok.item_tokens(item)):
            score, last = score + table[t, last, token], token
        brute[item] = score.item()
    assert out.items[0].tolist() == sorted(brute, key=lambda i: -brute[i])
    assert out.scores[0].tolist() == pytest.approx(sorted(brute.values(), reverse=True))


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
