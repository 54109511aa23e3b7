"""Generative retrieval (TIGER), model-free part: samples, item tokens, trie search and metrics."""

from rqvae_lib.retrieval.metrics import (
    KS,
    MetricValue,
    drop_history,
    hit_ranks,
    item_popularity,
    most_popular,
    recall_ndcg,
)
from rqvae_lib.retrieval.sequences import (
    MAX_HISTORY,
    RetrievalSamples,
    RetrievalSplits,
    build_samples,
    test_samples,
    training_samples,
    truncate_history,
    validation_samples,
)
from rqvae_lib.retrieval.tokens import BOS, EOS, NUM_SPECIAL, PAD, ItemTokenizer
from rqvae_lib.retrieval.trie import BeamSearchOutput, ItemTrie, constrained_beam_search

__all__ = [
    "BOS",
    "EOS",
    "KS",
    "MAX_HISTORY",
    "NUM_SPECIAL",
    "PAD",
    "BeamSearchOutput",
    "ItemTokenizer",
    "ItemTrie",
    "MetricValue",
    "RetrievalSamples",
    "RetrievalSplits",
    "build_samples",
    "constrained_beam_search",
    "drop_history",
    "hit_ranks",
    "item_popularity",
    "most_popular",
    "recall_ndcg",
    "test_samples",
    "training_samples",
    "truncate_history",
    "validation_samples",
]
