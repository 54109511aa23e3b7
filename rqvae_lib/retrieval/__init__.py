"""Generative retrieval (TIGER): samples, item tokens, trie search, metrics, models and training."""

from rqvae_lib.retrieval.batches import Collated
from rqvae_lib.retrieval.metrics import (
    KS,
    MetricValue,
    drop_history,
    hit_ranks,
    item_popularity,
    most_popular,
    recall_ndcg,
)
from rqvae_lib.retrieval.sasrec import SASRec, SASRecConfig
from rqvae_lib.retrieval.seq2seq import (
    EncodedHistory,
    Seq2SeqConfig,
    Seq2SeqRetriever,
    T5Seq2Seq,
    TigerSeq2Seq,
    build_seq2seq,
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
from rqvae_lib.retrieval.train import (
    RetrievalModel,
    TrainConfig,
    TrainResult,
    checkpoint_path,
    evaluate_retrieval,
    fit,
    fit_together,
    make_optimizer,
)
from rqvae_lib.retrieval.trie import BeamSearchOutput, ItemTrie, constrained_beam_search

__all__ = [
    "BOS",
    "EOS",
    "KS",
    "MAX_HISTORY",
    "NUM_SPECIAL",
    "PAD",
    "BeamSearchOutput",
    "Collated",
    "EncodedHistory",
    "ItemTokenizer",
    "ItemTrie",
    "MetricValue",
    "RetrievalModel",
    "RetrievalSamples",
    "RetrievalSplits",
    "SASRec",
    "SASRecConfig",
    "Seq2SeqConfig",
    "TigerSeq2Seq",
    "T5Seq2Seq",
    "Seq2SeqRetriever",
    "build_seq2seq",
    "TrainConfig",
    "TrainResult",
    "build_samples",
    "checkpoint_path",
    "constrained_beam_search",
    "drop_history",
    "evaluate_retrieval",
    "fit",
    "fit_together",
    "hit_ranks",
    "item_popularity",
    "make_optimizer",
    "most_popular",
    "recall_ndcg",
    "test_samples",
    "training_samples",
    "truncate_history",
    "validation_samples",
]
