"""rqvae_lib.retrieval.trie: the trie of the real items' tokens, constrained beam search over it."""

from __future__ import annotations

import pytest
import torch
from retrieval_helpers import colliding_tokenizer

from rqvae_lib.retrieval import ItemTokenizer, ItemTrie, constrained_beam_search


def test_trie_lists_the_allowed_next_tokens() -> None:
    tok = colliding_tokenizer()
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
    tok = colliding_tokenizer()
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
