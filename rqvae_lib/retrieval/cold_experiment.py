"""The cold-start (new-item) experiment end to end: data, ID tables fitted without the new items,
decoding over the known items with TIGER's admission rule, epsilon chosen on validation.

The pieces of :mod:`rqvae_lib.retrieval.cold` (the split, the admission rule) put to work the way
:mod:`rqvae_lib.retrieval.experiment` runs the warm experiment, so the notebook and the benchmark
share one protocol:

1. :func:`cold_retrieval_data`: the same users and catalogue as :func:`load_retrieval_data`, on
   the cold split (no new item in any training sequence).
2. :func:`rqvae_lib.retrieval.id_tables.seeded_id_tables` with ``new_items``: an ID for every item
   from a table fitted on the known items only; a new item gets its ID afterwards from its text
   embedding, as a new item would.
3. :func:`cold_seq2seq_model`: a seq2seq whose tokenizer knows every item (a history may hold a
   new item) but whose beam search runs over the trie of the known items; :func:`decoding_over`
   swaps in another trie (the whole catalogue: plain constrained beam search).
4. :func:`recommend_with_new_items` and :func:`score_cold`: the beam's known items with new items
   admitted (at most ``epsilon`` of the top K), scored on all users and on those whose target is
   new or known apart; :func:`choose_epsilon` picks epsilon on validation.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from rqvae_lib.config import DEFAULT_SEED
from rqvae_lib.data.amazon import LeaveOneOut
from rqvae_lib.retrieval.cold import (
    ColdSplit,
    NewItemIndex,
    cold_start_split,
    known_item_mask,
    split_by_novelty,
)
from rqvae_lib.retrieval.experiment import (
    VAL_KS,
    RetrievalData,
    _metrics,
    load_retrieval_data,
    seq2seq_model,
)
from rqvae_lib.retrieval.id_tables import BALANCED_TABLES
from rqvae_lib.retrieval.metrics import MetricValue, recall_ndcg
from rqvae_lib.retrieval.seq2seq import Seq2SeqRetriever
from rqvae_lib.retrieval.sequences import RetrievalSamples, RetrievalSplits, build_samples
from rqvae_lib.retrieval.tokens import ItemTokenizer
from rqvae_lib.retrieval.train import rank_samples, subset
from rqvae_lib.retrieval.trie import ItemTrie

#: The groups :func:`score_cold` and :func:`choose_epsilon` report: every user, then the users
#: whose target is a new item, then those whose target is a known item.
GROUPS = ("all", "new", "known")


# --- 1. data --------------------------------------------------------------------------------
def sequences_of(split: LeaveOneOut) -> dict[int, list[int]]:
    """The user sequences a leave-one-out split was made from (it drops nothing: train + val + test)."""
    return {
        user: [*items, split.val[user], split.test[user]] if user in split.val else list(items)
        for user, items in split.train.items()
    }


def cold_retrieval_data(
    split: str = "beauty",
    fraction: float = 0.05,
    seed: int = 0,
    max_users: int | None = None,
    root: str | Path | None = None,
) -> tuple[RetrievalData, ColdSplit]:
    """:func:`load_retrieval_data`'s users and whole catalogue on the cold split of ``seed``.

    ``max_users`` keeps the same seeded users as the warm experiment (its subset seed is
    ``DEFAULT_SEED``); ``seed`` draws the ``fraction`` of new items (:func:`cold_start_split`).
    The samples are ``build_samples`` of the cold split, less the validation users whose history
    is left empty (every training item new: no sequence model can read them; a handful on
    Beauty, counted as ``len(cold.split.val) - len(data.samples.val.targets)``). Test histories
    end with the validation item, so none is empty and every test user is scored.
    """
    data = load_retrieval_data(split, root, max_users, DEFAULT_SEED)
    cold = cold_start_split(sequences_of(data.sequences), data.item_ids, fraction, seed)
    train, val, test = build_samples(cold.split)
    val = subset(val, [i for i, history in enumerate(val.histories) if history])
    return data._replace(sequences=cold.split, samples=RetrievalSplits(train, val, test)), cold


# --- 3. decoding over the known items ---------------------------------------------------------
def known_item_trie(tokenizer: ItemTokenizer, new_items: Collection[int]) -> ItemTrie:
    """The trie of the tokenizer's known items, under the tokens (and suffixes) of all items."""
    known = torch.as_tensor(known_item_mask(tokenizer.item_ids, new_items))
    return ItemTrie(tokenizer.token_table[known], torch.tensor(tokenizer.item_ids)[known])


def cold_seq2seq_model(
    ids: Tensor,
    item_ids: Tensor | Sequence[int],
    new_items: Collection[int],
    preset: str = "tiger",
    seed: int = DEFAULT_SEED,
    backbone: str = "torch",
) -> Seq2SeqRetriever:
    """:func:`seq2seq_model` over every item, whose beam search runs over the known items only.

    The tokenizer encodes any item (a test history may end with a new validation item); the
    search (``model.recommend``, validation in ``fit``, scoring) can only emit a known item.
    ``save_pretrained``/``from_pretrained`` keep the tokenizer, not the trie: a loaded model
    decodes over every item until ``model.trie = known_item_trie(model.tokenizer, new_items)``.
    """
    model = seq2seq_model(ids, item_ids, preset, seed, backbone)
    model.trie = known_item_trie(model.tokenizer, new_items)
    return model


@contextmanager
def decoding_over(model: Seq2SeqRetriever, trie: ItemTrie) -> Iterator[Seq2SeqRetriever]:
    """Decode over ``trie`` inside the block (e.g. ``ItemTrie.from_tokenizer(model.tokenizer)``:
    plain constrained beam search over the whole catalogue), the model's own trie after it."""
    own = model.trie
    model.trie = trie
    try:
        yield model
    finally:
        model.trie = own


def admission_prefix_len(source: str, num_levels: int) -> int | None:
    """The ID prefix a new item must share with a generated item to be admitted (TIGER's rule).

    TIGER admits new items with the generated item's semantic ID, its collision token aside. With
    a plain table the suffix is that token: the whole ID (None). With a balanced last level
    (:data:`~rqvae_lib.retrieval.id_tables.BALANCED_TABLES`) the last code does that job, and a new item never has a known
    item's whole ID, so the rule compares the first ``num_levels - 1`` codes.
    """
    return num_levels - 1 if source in BALANCED_TABLES and num_levels > 1 else None


def new_item_index(
    tokenizer: ItemTokenizer, new_items: Collection[int], prefix_len: int | None = None
) -> NewItemIndex:
    """The :class:`NewItemIndex` of a tokenizer's semantic IDs (collision suffix aside)."""
    codes = dict(zip(tokenizer.item_ids, tokenizer.semantic_ids.tolist(), strict=True))
    return NewItemIndex(codes, new_items, prefix_len)


def recommend_with_new_items(
    model: Seq2SeqRetriever,
    histories: Sequence[Sequence[int]],
    index: NewItemIndex,
    k: int,
    epsilon: float,
    beam_size: int | None = None,
    users: Sequence[int] | None = None,
) -> Tensor:
    """Top ``k`` item ids (num_users, k): the model's beam with new items admitted (TIGER's rule,
    at most ``floor(epsilon * k)`` of them; :meth:`NewItemIndex.admit_all`), -1 where short.

    ``epsilon`` 0 is ``model.recommend`` itself. One batch: :func:`score_cold` batches many users.
    """
    ranked = model.recommend(histories, k, beam_size=beam_size, users=users)
    return index.admit_all(ranked, k, epsilon)


def novelty_metrics(
    ranked: Tensor, samples: RetrievalSamples, new_items: Collection[int], ks: Sequence[int]
) -> dict[str, dict[str, MetricValue]]:
    """``recall_ndcg`` of every user, of those with a new target and of those with a known one
    (:data:`GROUPS`; a group without users is left out)."""
    new_pos, known_pos = split_by_novelty(samples, new_items)
    out = {"all": recall_ndcg(ranked, samples.targets, ks=ks)}
    for group, rows in (("new", new_pos), ("known", known_pos)):
        if rows:
            out[group] = recall_ndcg(ranked[rows], [samples.targets[i] for i in rows], ks=ks)
    return out


def _record(
    metrics: Mapping[str, Mapping[str, MetricValue]], samples: RetrievalSamples, index: NewItemIndex
) -> dict[str, Any]:
    """JSON-ready groups ([mean, sem] per metric) and the users in each group."""
    new_pos, known_pos = split_by_novelty(samples, index.new_items)
    users = {"all": len(samples.targets), "new": len(new_pos), "known": len(known_pos)}
    return {"users": users, **{group: _metrics(values) for group, values in metrics.items()}}


def admission_records(
    ranked: Tensor,
    samples: RetrievalSamples,
    index: NewItemIndex,
    epsilons: Sequence[float],
    ks: Sequence[int] = VAL_KS,
) -> list[dict[str, Any]]:
    """One record per epsilon (ascending) of a beam's ``ranked`` (num_users, >= max K) item ids:
    Recall@K and NDCG@K per group (:data:`GROUPS`) with new items admitted into each top K on its
    own (at most ``floor(epsilon * K)``). JSON-ready: ``{"epsilon", "users": {group: count},
    group: {metric: [mean, sem]}}``; the beam runs once for every epsilon and K."""
    records = []
    for epsilon in sorted(set(epsilons)):
        metrics: dict[str, dict[str, MetricValue]] = {}
        for k in sorted(ks):
            admitted = index.admit_all(ranked, k, epsilon)
            for group, values in novelty_metrics(admitted, samples, index.new_items, (k,)).items():
                metrics.setdefault(group, {}).update(values)
        records.append({"epsilon": epsilon, **_record(metrics, samples, index)})
    return records


def score_cold(
    model: Seq2SeqRetriever,
    samples: RetrievalSamples,
    index: NewItemIndex,
    epsilon: float,
    ks: Sequence[int] = VAL_KS,
    batch_size: int = 256,
    amp: bool = True,
) -> dict[str, Any]:
    """Recall@K and NDCG@K with new items admitted into each top K, per group (:data:`GROUPS`):
    :func:`admission_records` of one beam search of width ``max(ks)`` over the model's trie.
    Scored as the warm experiment scores: nothing excluded from the history."""
    ranked = rank_samples(model, samples, max(ks), batch_size, False, amp)  # (N, max K)
    return admission_records(ranked, samples, index, [epsilon], ks)[0]


def choose_epsilon(
    model: Seq2SeqRetriever,
    val_samples: RetrievalSamples,
    index: NewItemIndex,
    epsilons: Sequence[float],
    k: int = 10,
    batch_size: int = 256,
    amp: bool = True,
) -> tuple[float, list[dict[str, Any]]]:
    """The epsilon with the best overall Recall@k on ``val_samples`` (ties: the smaller one), and
    one :func:`admission_records` record per epsilon, ascending: the known/new trade-off curve.

    The beam search runs once; only the admission changes with epsilon.
    """
    if not epsilons:
        raise ValueError("epsilons is empty")
    ranked = rank_samples(model, val_samples, k, batch_size, False, amp)  # (N, k)
    records = admission_records(ranked, val_samples, index, epsilons, (k,))
    best, best_recall = records[0]["epsilon"], -1.0
    for rec in records:
        if rec["all"][f"recall@{k}"][0] > best_recall:  # strictly: a tie keeps the smaller one
            best, best_recall = rec["epsilon"], rec["all"][f"recall@{k}"][0]
    return best, records
