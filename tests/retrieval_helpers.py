"""Helpers the retrieval test modules share: a toy next-item task, tiny models over it, a trainer,
and for the P5 fixture (conftest's ``fixture_root``) a small RQ-VAE config and its catalogue.

Plain functions, not fixtures: ``shared_task`` and ``trained_model`` are cached for the whole
session, so a model is trained at most once whichever test module asks first.
"""

from __future__ import annotations

import functools

import torch

from rqvae_lib.data import ItemDataModule
from rqvae_lib.data.amazon import leave_one_out
from rqvae_lib.retrieval import (
    ItemTokenizer,
    RetrievalSplits,
    SASRec,
    SASRecConfig,
    Seq2SeqConfig,
    Seq2SeqRetriever,
    T5Seq2Seq,
    TigerSeq2Seq,
    TrainConfig,
    TrainResult,
    build_samples,
    build_seq2seq,
    evaluate_retrieval,
    fit,
    most_popular,
    recall_ndcg,
)
from rqvae_lib.retrieval.experiment import RetrievalData

NUM_ITEMS = 60
#: A small RQ-VAE (2 levels of 8 codes) for the 30-item P5 fixture; the input width is the data's.
TINY_CONFIG = {
    "input_dim": 8,
    "hidden_dim": [16],
    "latent_dim": 4,
    "num_embeddings": 8,
    "num_levels": 2,
    "learning_rate": 3e-3,
}
#: The tasks the learning tests average over.
SEEDS = (0, 1)


class Task:
    """Each user walks a fixed random permutation of 60 items: the next item is next[previous].

    Starts are uniform, so item popularity is nearly flat and most-popular Recall@10 is about
    10/60; a model that learns the 60 transitions gets close to 1.
    """

    def __init__(self, seed: int, num_users: int = 150) -> None:
        g = torch.Generator().manual_seed(seed)
        self.item_ids = (torch.randperm(NUM_ITEMS, generator=g) + 100).tolist()
        succ = [self.item_ids[i] for i in torch.randperm(NUM_ITEMS, generator=g).tolist()]
        self.next = dict(zip(self.item_ids, succ, strict=True))
        sequences = {}
        for user in range(num_users):
            seq = [self.item_ids[int(torch.randint(NUM_ITEMS, (1,), generator=g))]]
            for _ in range(int(torch.randint(4, 8, (1,), generator=g))):
                seq.append(self.next[seq[-1]])
            sequences[user] = seq
        self.split = leave_one_out(sequences)
        self.samples: RetrievalSplits = build_samples(self.split)
        # Random 2-level semantic IDs over 8 codes: collisions happen and get a suffix.
        self.tokenizer = ItemTokenizer(
            torch.randint(0, 8, (NUM_ITEMS, 2), generator=g), self.item_ids
        )


def catalogue(root):
    """The P5 fixture's (features, item ids) under ``root``, in catalogue order."""
    dm = ItemDataModule(root, "tiny")
    dm.prepare_data()
    all_items = dm.dataset("all")
    return all_items.features, all_items.item_ids


@functools.cache
def shared_task(seed: int) -> Task:
    """The :class:`Task` of ``seed`` with 150 users, built once per session."""
    return Task(seed)


def task_data(task: Task) -> RetrievalData:
    """The task as an experiment's :class:`RetrievalData` (titles ``"item <id>"``)."""
    titles = {i: f"item {i}" for i in task.item_ids}
    return RetrievalData("toy", task.split, task.samples, task.item_ids, titles)


def colliding_tokenizer(**kwargs) -> ItemTokenizer:
    """Five items; 10 and 11 share the whole semantic ID (4, 1), 12 shares its first code."""
    ids = torch.tensor([[4, 1], [4, 1], [4, 2], [0, 1], [2, 0]])
    return ItemTokenizer(ids, [10, 11, 12, 13, 14], **kwargs)


def tiny_seq2seq(task: Task, seed: int, backbone: str = "torch") -> Seq2SeqRetriever:
    """The "tiny" seq2seq preset over the task's tokenizer, initialised from ``seed``."""
    torch.manual_seed(seed)
    config = Seq2SeqConfig.preset("tiny", task.tokenizer, max_history=8, backbone=backbone)
    model = build_seq2seq(config, task.tokenizer)
    assert isinstance(model, T5Seq2Seq if backbone == "t5" else TigerSeq2Seq)
    return model


def tiny_sasrec(task: Task, seed: int, loss: str) -> SASRec:
    """A small SASRec with ``loss`` ("bce" or "ce") over the task's items, seeded by ``seed``."""
    torch.manual_seed(seed)
    config = SASRecConfig(
        NUM_ITEMS, max_history=8, d_model=32, num_heads=2, d_ff=64, dropout=0.1, loss=loss
    )
    return SASRec(config, task.item_ids)


def fit_task(
    model: torch.nn.Module, task: Task, seed: int, epochs: int, learning_rate: float
) -> TrainResult:
    """Train ``model`` on the task's training samples, validating on its validation samples."""
    config = TrainConfig(
        epochs=epochs,
        batch_size=32,
        learning_rate=learning_rate,
        seed=seed,
        device="cpu",
        log_every=0,
        verbose=False,
    )
    return fit(model, task.samples.train, task.samples.val, config)


@functools.cache
def trained_model(kind: str, seed: int) -> tuple[torch.nn.Module, float]:
    """A model trained on the task of ``seed`` and its test Recall@10 (cached across tests).

    ``kind``: "seq2seq", "t5" (the seq2seq on the T5 backbone), or a SASRec loss ("bce", "ce").
    Trained with one thread whichever test asks first (as the ``one_thread`` fixture would):
    another thread count sums in another order, and the cache outlives the asking test.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        task = shared_task(seed)
        if kind == "seq2seq":
            model, epochs, learning_rate = tiny_seq2seq(task, seed), 6, 3e-3
        elif kind == "t5":  # T5 learns this toy pattern slower: Recall@10 0.57-0.71 after 6 epochs
            model, epochs, learning_rate = tiny_seq2seq(task, seed, "t5"), 10, 3e-3
        else:
            model, epochs, learning_rate = tiny_sasrec(task, seed, kind), 6, 5e-3
        fit_task(model, task, seed, epochs, learning_rate)
        return model, evaluate_retrieval(model, task.samples.test)["recall@10"].mean
    finally:
        torch.set_num_threads(threads)


def learned_and_popular_recall(kind: str) -> tuple[list[float], list[float]]:
    """Test Recall@10 of the trained ``kind`` and of most-popular, one value per task of SEEDS."""
    model_recall, popular_recall = [], []
    for seed in SEEDS:
        task = shared_task(seed)
        test = task.samples.test
        popular = most_popular(task.split.train, 20, test.histories)
        popular_recall.append(recall_ndcg(popular, test.targets)["recall@10"].mean)
        model_recall.append(trained_model(kind, seed)[1])
    return model_recall, popular_recall
