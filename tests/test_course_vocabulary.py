"""rqvae_lib.course.vocabulary: the semantic-ID vocabulary against an item table, counted as the
library builds them (tokenizer, seq2seq, SASRec, trie) and shown as the catalogue grows."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from helpers import check_figure  # noqa: E402

from rqvae_lib.course.vocabulary import (  # noqa: E402
    Footprint,
    footprint_figure,
    footprint_table,
    suffix_lower_bound,
    trie_node_bound,
    vocabulary_footprint,
)
from rqvae_lib.retrieval import (  # noqa: E402
    ItemTokenizer,
    ItemTrie,
    Seq2SeqConfig,
    TigerSeq2Seq,
    build_seq2seq,
)
from rqvae_lib.retrieval.experiment import num_parameters, sasrec_model  # noqa: E402

LEVELS, K = 3, 4


def _ids(num_items: int, levels: int = LEVELS, k: int = K, seed: int = 0) -> torch.Tensor:
    """Random IDs (num_items, levels) over k codes: collisions happen."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, k, (num_items, levels), generator=g)


def _even_ids(num_items: int, levels: int = LEVELS, k: int = K) -> torch.Tensor:
    """IDs spread perfectly evenly: item i gets ID number i mod k**levels, in base k."""
    n = torch.arange(num_items) % k**levels
    return torch.stack([(n // k**t) % k for t in reversed(range(levels))], dim=1)


def _max_per_id(ids: torch.Tensor) -> int:
    """The most items that share one ID in a table: its largest suffix + 1."""
    return int(torch.unique(ids, dim=0, return_counts=True)[1].max())


def _tokenizer(ids: torch.Tensor, **kwargs) -> ItemTokenizer:
    return ItemTokenizer(ids, list(range(100, 100 + len(ids))), num_embeddings=K, **kwargs)


def _trie_bytes(trie: ItemTrie) -> int:
    tensors = [*trie.ptr, *trie.edge_token, *trie.edge_key, trie.leaf_item]
    return sum(t.numel() * t.element_size() for t in tensors)


@pytest.mark.parametrize("num_user_buckets", [0, 7])
def test_vocab_size_matches_a_real_tokenizer_with_a_measured_suffix(num_user_buckets: int) -> None:
    ids = _ids(40)
    tok = _tokenizer(ids, num_user_buckets=num_user_buckets)
    fp = vocabulary_footprint(
        len(ids), 8, LEVELS, K, max_per_id=_max_per_id(ids), num_user_buckets=num_user_buckets
    )
    assert fp.suffix_measured and fp.suffix_tokens == tok.level_sizes[-1] > 1
    assert fp.vocab_size == tok.vocab_size
    # The ID table: the tokenizer's token table, (num_items, levels + 1) int64.
    assert fp.id_table_bytes == tok.token_table.numel() * tok.token_table.element_size()
    assert tok.token_table.dtype == torch.int64


def test_suffix_bound_is_reached_by_even_ids_and_exceeded_by_random_ones() -> None:
    n = 2 * K**LEVELS + 5  # more items than IDs: every ID is shared
    least = suffix_lower_bound(n, LEVELS, K)
    assert least == math.ceil(n / K**LEVELS) == 3
    even = _tokenizer(_even_ids(n))
    assert vocabulary_footprint(n, 8, LEVELS, K).vocab_size == even.vocab_size
    assert even.level_sizes[-1] == least
    random = _tokenizer(_ids(n))
    assert random.level_sizes[-1] > least  # a real table needs more than the bound
    assert suffix_lower_bound(K**LEVELS, LEVELS, K) == 1 == suffix_lower_bound(1, LEVELS, K)
    with pytest.raises(ValueError, match="impossible"):
        vocabulary_footprint(n, 8, LEVELS, K, max_per_id=least - 1)
    with pytest.raises(ValueError, match=">= 1"):
        vocabulary_footprint(0, 8)


def test_embedding_counts_equal_the_library_models_weights() -> None:
    ids = _ids(30)
    tok = _tokenizer(ids)
    model = TigerSeq2Seq(Seq2SeqConfig.preset("tiny", tok), tok)
    d = model.config.d_model
    fp = vocabulary_footprint(len(ids), d, LEVELS, K, max_per_id=_max_per_id(ids))
    params = dict(model.named_parameters())
    # Untied: the token embedding and the output head are two (vocab_size, d_model) weights.
    assert params["head.weight"] is not params["token_emb.weight"]
    assert fp.vocab_params == params["token_emb.weight"].numel() + params["head.weight"].numel()
    vocab_sized = [n for n, p in params.items() if tok.vocab_size in p.shape]
    assert sorted(vocab_sized) == ["head.weight", "token_emb.weight"]

    sasrec = sasrec_model(tok.item_ids, loss="ce")
    fp = vocabulary_footprint(len(ids), sasrec.config.d_model, LEVELS, K)
    assert fp.item_table_params == dict(sasrec.named_parameters())["item_emb.weight"].numel()


def test_only_the_item_table_grows_with_the_catalogue() -> None:
    # Twice the items, every ID still distinct: the same vocabulary (codes 0..K-1, suffix 1).
    small, large = _even_ids(K**LEVELS // 2), _even_ids(K**LEVELS)
    seq_small = TigerSeq2Seq(Seq2SeqConfig.preset("tiny", _tokenizer(small)), _tokenizer(small))
    seq_large = TigerSeq2Seq(Seq2SeqConfig.preset("tiny", _tokenizer(large)), _tokenizer(large))
    assert num_parameters(seq_small) == num_parameters(seq_large)
    rec_small = sasrec_model(list(range(len(small))), loss="ce")
    rec_large = sasrec_model(list(range(len(large))), loss="ce")
    d = rec_small.config.d_model
    grown = num_parameters(rec_large) - num_parameters(rec_small)
    assert grown == (len(large) - len(small)) * d
    fps = [vocabulary_footprint(len(x), d, LEVELS, K) for x in (small, large)]
    assert fps[1].item_table_params - fps[0].item_table_params == grown
    assert fps[0].vocab_params == fps[1].vocab_params


def test_t5_backbone_ties_the_head() -> None:
    pytest.importorskip("transformers")
    ids = _ids(20)
    tok = _tokenizer(ids)
    model = build_seq2seq(Seq2SeqConfig.preset("tiny", tok, backbone="t5"), tok)
    fp = vocabulary_footprint(len(ids), 64, LEVELS, K, max_per_id=_max_per_id(ids), backbone="t5")
    assert model.config.d_model == 64
    assert model.t5.lm_head.weight is model.t5.shared.weight
    vocab_sized = [p for p in model.parameters() if tok.vocab_size in p.shape]  # deduplicated
    assert fp.vocab_params == sum(p.numel() for p in vocab_sized)


def test_trie_bound_is_exact_when_prefixes_are_distinct_and_an_upper_bound_otherwise() -> None:
    # K items with distinct first codes: every prefix is its own node, so the bound is reached.
    distinct = torch.stack([torch.arange(K)] * LEVELS, dim=1)
    trie = ItemTrie.from_tokenizer(_tokenizer(distinct))
    fp = vocabulary_footprint(K, 8, LEVELS, K)
    real_nodes = 1 + sum(len(e) for e in trie.edge_token)
    assert fp.trie_nodes == real_nodes and fp.trie_edges == real_nodes - 1
    assert fp.trie_bytes == _trie_bytes(trie)
    # Shared prefixes: fewer nodes than the bound, never more.
    for n in (10, 200):
        trie = ItemTrie.from_tokenizer(_tokenizer(_ids(n)))
        fp = vocabulary_footprint(n, 8, LEVELS, K)
        assert 1 + sum(len(e) for e in trie.edge_token) <= fp.trie_nodes
        assert _trie_bytes(trie) <= fp.trie_bytes
        assert fp.trie_nodes <= n * (LEVELS + 1) + 1
    assert trie_node_bound(200, LEVELS, K) == [1, K, K**2, K**3, 200]


def test_table_rows_equal_the_function_and_show_a_fixed_vocabulary() -> None:
    sizes = (12_101, 1_000_000, 100_000_000)
    table = footprint_table(sizes, d_model=64)
    assert list(table["num_items"]) == list(sizes)
    for row, n in zip(table.to_dict("records"), sizes, strict=True):
        fp = vocabulary_footprint(n, 64)
        for name, value in vars(fp).items():
            assert row[name] == value, name
        assert row["item_to_vocab"] == fp.item_to_vocab
    # Beyond 256**3 IDs the suffix must widen; the vocabulary barely moves, the item table does.
    assert list(table["suffix_tokens"]) == [1, 1, math.ceil(100_000_000 / 256**3)]
    assert table["vocab_size"].max() - table["vocab_size"].min() < 10
    assert table["item_table_params"].iloc[-1] > 1000 * table["vocab_params"].iloc[-1]
    measured = footprint_table((12_101,), d_model=64, max_per_id=19)
    assert measured["suffix_tokens"].item() == 19 and measured["suffix_measured"].item()
    assert isinstance(vocabulary_footprint(12_101, 64), Footprint)


def test_figure_draws_two_lines_of_parameters_and_four_of_memory() -> None:
    fig = footprint_figure(d_model=64, points=9)
    check_figure(fig)
    left, right = fig.axes
    assert len(left.get_lines()) == 2 and len(right.get_lines()) == 4
    for ax in (left, right):
        assert ax.get_xscale() == ax.get_yscale() == "log"
    item_line = left.get_lines()[1]
    x, y = item_line.get_data()
    assert y[-1] == vocabulary_footprint(int(x[-1]), 64).item_table_params
    plt.close(fig)
