"""Retrieval experiments end to end: data, the three ID sources, presets, training and scoring.

One place for what the retrieval notebook and ``benchmarks/retrieval.py`` both do, so the two
cannot drift: load the P5 sequences (optionally a seeded subset of users), build each item's
semantic ID from the RQ-VAE, from RQ-KMeans or at random (cached as small files, so a GPU
machine needs no embeddings), train TIGER's seq2seq on one or several ID tables in lockstep,
SASRec with either loss, the most-popular baseline, and score each once on the test split.
Every result is a JSON-ready dict (:func:`record`).
"""

from __future__ import annotations

import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, NamedTuple

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from rqvae_lib.config import DEFAULT_SEED, TUTORIAL_BATCH_SIZE, artifacts_dir, data_root
from rqvae_lib.data.amazon import (
    LeaveOneOut,
    ensure_raw,
    leave_one_out,
    load_items,
    load_user_sequences,
)
from rqvae_lib.io import atomic_write
from rqvae_lib.retrieval.metrics import KS, MetricValue, most_popular, recall_ndcg, user_ranks
from rqvae_lib.retrieval.sasrec import SASRec, SASRecConfig
from rqvae_lib.retrieval.seq2seq import (  # noqa: F401  (SEQ2SEQ_PRESETS: the lessons read it here)
    SEQ2SEQ_PRESETS,
    Seq2SeqConfig,
    Seq2SeqRetriever,
    build_seq2seq,
)
from rqvae_lib.retrieval.sequences import RetrievalSamples, RetrievalSplits, build_samples
from rqvae_lib.retrieval.tokens import ItemTokenizer
from rqvae_lib.retrieval.train import (
    TrainConfig,
    TrainResult,
    fit,
    fit_together,
    rank_samples,
    subset,
)

#: Where an item's semantic ID comes from, for the ID ablation.
ID_SOURCES = ("rqvae", "rq-kmeans", "random")

#: The cut-offs that select the best epoch on validation (TIGER reports 5 and 10); the test
#: table reports a budget's ``test_ks``, at most :data:`~rqvae_lib.retrieval.metrics.KS`.
VAL_KS = (5, 10)

#: SASRec's learning rate under every budget: constant, as the paper.
SASREC_LEARNING_RATE = 1e-3


class RetrievalData(NamedTuple):
    """One dataset's sequences, samples and catalogue, ready for any retrieval model."""

    split: str  # "beauty" or "toys"
    sequences: LeaveOneOut
    samples: RetrievalSplits
    item_ids: list[int]  # the whole catalogue's P5 item ids
    titles: dict[int, str]  # P5 item id -> title ("(no title)" when missing)


@dataclass(frozen=True)
class RetrievalBudget:
    """How much a retrieval run trains: one documented setting per machine, declared once.

    The notebook and the benchmark read it; only epochs, users and time change between them,
    never the task (split, history length, scoring).
    """

    name: str
    preset: str  # seq2seq size, a key of SEQ2SEQ_PRESETS
    max_users: int | None  # a seeded user subset; None: all users
    epochs: int  # at most; the time budget may stop earlier (all models after the same epoch)
    time_budget_s: float | None  # for the seq2seq models together
    learning_rate: float
    warmup_steps: int
    val_users: int | None  # validation users for model selection (None: all)
    val_every: int
    sasrec_epochs: int
    sasrec_budget_s: float | None  # per SASRec loss
    test_ks: tuple[int, ...]  # the test table's cut-offs; the beam is max(test_ks) wide
    amp: bool = True  # bf16 on CUDA
    deterministic: bool = True

    def seq2seq_config(self, seed: int = DEFAULT_SEED, verbose: bool = True) -> TrainConfig:
        """The :class:`TrainConfig` of the seq2seq models under this budget."""
        return TrainConfig(
            epochs=self.epochs, time_budget_s=self.time_budget_s,
            learning_rate=self.learning_rate,
            lr_schedule="inverse_sqrt", warmup_steps=self.warmup_steps, val_every=self.val_every,
            ks=VAL_KS, amp=self.amp, deterministic=self.deterministic, seed=seed,
            verbose=verbose, on_nonfinite="stop",
        )  # fmt: skip

    def sasrec_config(self, seed: int = DEFAULT_SEED, verbose: bool = True) -> TrainConfig:
        """The :class:`TrainConfig` of SASRec under this budget (a constant learning rate)."""
        return TrainConfig(
            epochs=self.sasrec_epochs, time_budget_s=self.sasrec_budget_s,
            learning_rate=SASREC_LEARNING_RATE, ks=VAL_KS,
            amp=self.amp, deterministic=self.deterministic, seed=seed, verbose=verbose,
            on_nonfinite="stop",
        )  # fmt: skip


#: Fast mode (CI, 2 CPU cores): a user subset and the tiny model, every step still runs.
FAST_BUDGET = RetrievalBudget(
    "fast", "tiny", max_users=3000, epochs=8, time_budget_s=None, learning_rate=3e-3, warmup_steps=50,
    val_users=None, val_every=4, sasrec_epochs=4, sasrec_budget_s=None, test_ks=VAL_KS,
)  # fmt: skip
#: Full mode on a CPU: every user, the tiny model, counted in epochs (not seconds) so that the
#: same seed gives the same numbers on any machine of a kind; both SASRec losses get equal epochs.
CPU_BUDGET = RetrievalBudget(
    "cpu", "tiny", max_users=None, epochs=6, time_budget_s=None, learning_rate=3e-3, warmup_steps=200,
    val_users=2000, val_every=1, sasrec_epochs=5, sasrec_budget_s=None, test_ks=VAL_KS,
)  # fmt: skip
#: Full mode on a GPU: TIGER's model size, every user, the benchmark's recipe; 5 minutes of
#: seq2seq and 2 x 1 minute of SASRec training (``benchmarks/gpu_session.sh`` runs it).
GPU_BUDGET = RetrievalBudget(
    "gpu", "tiger", max_users=None, epochs=400, time_budget_s=300.0, learning_rate=1e-3, warmup_steps=1000,
    val_users=None, val_every=4, sasrec_epochs=400, sasrec_budget_s=60.0, test_ks=KS,
    amp=False, deterministic=False,
)  # fmt: skip


def choose_budget(fast: bool, device: torch.device | str) -> RetrievalBudget:
    """FAST_BUDGET in fast mode, else GPU_BUDGET on CUDA and CPU_BUDGET elsewhere."""
    if fast:
        return FAST_BUDGET
    return GPU_BUDGET if torch.device(device).type == "cuda" else CPU_BUDGET


def load_retrieval_data(
    split: str = "beauty",
    root: str | Path | None = None,
    max_users: int | None = None,
    seed: int = DEFAULT_SEED,
) -> RetrievalData:
    """The P5 leave-one-out samples of ``split``; ``max_users`` keeps a seeded random subset.

    The subset keeps the P5 file's user order and the whole catalogue (every item still has an
    ID and can be recommended), so fast mode changes the sample count, not the task.
    """
    root = Path(root) if root is not None else data_root()
    ensure_raw(split, root)
    sequences = load_user_sequences(split, root)
    if max_users is not None and max_users < len(sequences):
        keep = set(random.Random(seed).sample(sorted(sequences), max_users))
        sequences = {u: s for u, s in sequences.items() if u in keep}
    items = load_items(split, root)
    titles = {
        int(i): (t if isinstance(t, str) and t else "(no title)")
        for i, t in zip(items["item_id"], items["title"], strict=True)
    }
    split_ = leave_one_out(sequences)
    return RetrievalData(split, split_, build_samples(split_), sorted(titles), titles)


def _id_path(split: str, source: str, directory: Path) -> Path:
    return directory / f"ids-{split}-{source}.safetensors"


def semantic_id_table(
    split: str = "beauty",
    source: str = "rqvae",
    root: str | Path | None = None,
    directory: str | Path | None = None,
    seed: int = DEFAULT_SEED,
    rqvae_epochs: int | None = None,
) -> tuple[Tensor, Tensor]:
    """``(ids (num_items, 3), item_ids (num_items,))`` of one ID source, computed once and cached.

    - ``"rqvae"``: the balanced-last-level IDs of the RQ-VAE saved in ``artifacts/rqvae-<split>``
      (notebook 03's model for Beauty), trained there with ``rqvae_epochs`` if missing;
    - ``"rq-kmeans"``: residual k-means fitted on the same training items as the RQ-VAE;
    - ``"random"``: uniform random codes of the same shape (3 levels of 256).

    The cache (``artifacts/retrieval/ids-<split>-<source>.safetensors``) is all a machine needs to
    train retrieval models: no embeddings, no RQ-VAE.
    """
    if source not in ID_SOURCES:
        raise ValueError(f"source must be one of {ID_SOURCES}, got {source!r}")
    directory = Path(directory) if directory is not None else artifacts_dir() / "retrieval"
    path = _id_path(split, source, directory)
    if path.is_file():
        table = load_file(path)
        return table["ids"], table["item_ids"]
    ids, item_ids = _compute_ids(split, source, root, seed, rqvae_epochs)
    directory.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: save_file({"ids": ids, "item_ids": item_ids}, str(tmp)))
    return ids, item_ids


def _compute_ids(
    split: str, source: str, root: str | Path | None, seed: int, rqvae_epochs: int | None
) -> tuple[Tensor, Tensor]:
    from rqvae_lib.baselines import rq_kmeans_encode, rq_kmeans_fit
    from rqvae_lib.data import ItemDataModule
    from rqvae_lib.evaluate import batch_inference
    from rqvae_lib.training import load_or_train

    dm = ItemDataModule(root, split, batch_size=TUTORIAL_BATCH_SIZE)
    dm.prepare_data()
    dm.setup()
    catalogue = dm.dataset("all")
    item_ids = catalogue.item_ids.long().contiguous()
    model = load_or_train(artifacts_dir() / f"rqvae-{split}", dm, rqvae_epochs, quiet=True)
    if source == "rqvae":
        ids = batch_inference(model, dm.predict_dataloader(), deduplicate=True)
    elif source == "rq-kmeans":
        centroids = rq_kmeans_fit(
            dm.dataset("train").features,
            model.hparams.num_levels,
            model.hparams.num_embeddings,
            seed,
        )
        ids = rq_kmeans_encode(catalogue.features, centroids)[0]
    else:
        g = torch.Generator().manual_seed(seed)
        ids = torch.randint(
            0, model.hparams.num_embeddings, (len(item_ids), model.hparams.num_levels), generator=g
        )
    return ids.long().contiguous(), item_ids


def seq2seq_model(
    ids: Tensor,
    item_ids: Tensor | Sequence[int],
    preset: str = "tiger",
    seed: int = DEFAULT_SEED,
    backbone: str = "torch",
) -> Seq2SeqRetriever:
    """A TIGER seq2seq of the named size over the items' IDs (plus the collision suffix), on the
    ``backbone``'s layers (``"torch"``: ``nn.Transformer``, ``"t5"``: Hugging Face's T5)."""
    tokenizer = ItemTokenizer(ids, item_ids)
    config = Seq2SeqConfig.preset(preset, tokenizer, backbone=backbone)
    torch.manual_seed(seed)
    return build_seq2seq(config, tokenizer)


def sasrec_model(item_ids: Sequence[int], loss: str, seed: int = DEFAULT_SEED) -> SASRec:
    """SASRec with the paper's sizes (2 blocks, d 64) over the catalogue, with ``loss``."""
    torch.manual_seed(seed)
    return SASRec(SASRecConfig(len(item_ids), loss=loss), item_ids)  # type: ignore[arg-type]


def num_parameters(model: nn.Module) -> int:
    """Trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _metrics(values: Mapping[str, MetricValue]) -> dict[str, list[float]]:
    return {name: [v.mean, v.sem] for name, v in values.items()}


def record(
    name: str,
    module: nn.Module | None,
    result: TrainResult | None,
    test: Mapping[str, MetricValue],
    eval_seconds: float,
    **info: Any,
) -> dict[str, Any]:
    """A JSON-ready result: test metrics (mean, standard error), training curves and timings."""
    out: dict[str, Any] = {"name": name, **info, "test": _metrics(test)}
    out["eval_seconds"] = round(eval_seconds, 2)
    if module is not None:
        out["parameters"] = num_parameters(module)
        out["device"] = str(next(module.parameters()).device)
    if result is not None:
        out.update(
            epochs=len(result.train_losses),
            best_epoch=result.best_epoch + 1,
            train_seconds=round(sum(result.epoch_seconds), 1),
            train_losses=[round(x, 5) for x in result.train_losses],
            val_epochs=[e + 1 for e in result.val_epochs],
            val=[_metrics(m) for m in result.val_metrics],
            diverged_epoch=None if result.diverged_epoch is None else result.diverged_epoch + 1,
        )
    return out


def score(
    model: nn.Module, data: RetrievalData, config: TrainConfig, ks: Sequence[int] = KS
) -> tuple[dict, float]:
    """Test metrics at ``ks`` of a trained model (read once, at the end) and the seconds it took."""
    metrics, seconds, _ = score_with_ranks(model, data, config, ks)
    return metrics, seconds


def score_with_ranks(
    model: nn.Module, data: RetrievalData, config: TrainConfig, ks: Sequence[int] = KS
) -> tuple[dict, float, Tensor]:
    """:func:`score`, and each test user's rank of their item within the top ``max(ks)`` (0: a
    miss; :func:`~rqvae_lib.retrieval.metrics.user_ranks`), for paired comparisons."""
    start = time.perf_counter()
    test = data.samples.test
    ranked = rank_samples(
        model,  # type: ignore[arg-type]
        test,
        max(ks),
        config.eval_batch_size,
        config.exclude_history,
        config.amp,
    )
    metrics = recall_ndcg(ranked, test.targets, test.histories, ks, config.exclude_history)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    ranks = user_ranks(ranked, test.targets, max(ks), test.histories, config.exclude_history)
    return metrics, seconds, ranks


def _ranks_info(ranks: Tensor, keep: bool) -> dict[str, Any]:
    """The record's ``test_ranks`` entry (one int per test user, file order) when ``keep``."""
    return {"test_ranks": ranks.tolist()} if keep else {}


def run_seq2seq(
    data: RetrievalData,
    id_tables: Mapping[str, tuple[Tensor, Tensor]],
    preset: str,
    config: TrainConfig,
    test_ks: Sequence[int] = KS,
    val_users: int | None = None,
    backbone: str = "torch",
    checkpoint_dir: str | Path | None = None,
    keep_ranks: bool = False,
) -> dict[str, tuple[Seq2SeqRetriever, dict[str, Any]]]:
    """Train one seq2seq per ID table in lockstep (same epochs), score each on the test split.

    ``val_users`` selects on a seeded subset of the validation users (cheaper beam searches on a
    CPU); the test split is always scored on every user. ``backbone``: see :func:`seq2seq_model`.
    With ``checkpoint_dir`` an interrupted run resumes from its last epoch (:func:`fit_together`).
    ``keep_ranks`` adds each test user's hit rank to the record (``test_ranks``: paired
    differences between models, :func:`rqvae_lib.course.retrieval.paired_difference`).
    """
    models = {
        source: seq2seq_model(ids, item_ids, preset, config.seed, backbone)
        for source, (ids, item_ids) in id_tables.items()
    }
    size = preset if backbone == "torch" else f"{preset}, HF T5"
    val = validation_subset(data, val_users, config.seed)
    results = fit_together(models, data.samples.train, val, config, checkpoint_dir)
    out = {}
    for source, model in models.items():
        test, seconds, ranks = score_with_ranks(model, data, config, test_ks)
        out[source] = (
            model,
            record(
                f"TIGER seq2seq ({size}), {source} IDs",
                model,
                results[source],
                test,
                seconds,
                dataset=data.split,
                model="seq2seq",
                loss="token cross-entropy",
                ids=source,
                preset=preset,
                backbone=backbone,
                config=asdict(config),
                val_users=len(val.targets),
                tokens_per_item=model.tokenizer.tokens_per_item,
                **_ranks_info(ranks, keep_ranks),
            ),
        )
    return out


def validation_subset(data: RetrievalData, users: int | None, seed: int) -> RetrievalSamples:
    """The validation samples of a seeded random subset of ``users`` users (all if None)."""
    val = data.samples.val
    if users is None or users >= len(val.targets):
        return val
    keep = sorted(random.Random(seed).sample(range(len(val.targets)), users))
    return subset(val, keep)


def run_sasrec(
    data: RetrievalData,
    loss: str,
    config: TrainConfig,
    test_ks: Sequence[int] = KS,
    val_users: int | None = None,
    checkpoint_dir: str | Path | None = None,
    keep_ranks: bool = False,
) -> tuple[SASRec, dict[str, Any]]:
    """Train SASRec with ``loss`` ("bce": one negative, as TIGER's table; "ce": full softmax);
    with ``checkpoint_dir`` an interrupted run resumes from its last epoch; ``keep_ranks``: as
    :func:`run_seq2seq`."""
    model = sasrec_model(data.item_ids, loss, config.seed)
    val = validation_subset(data, val_users, config.seed)
    result = fit(model, data.samples.train, val, config, f"sasrec-{loss}", checkpoint_dir)
    test, seconds, ranks = score_with_ranks(model, data, config, test_ks)
    name = f"SASRec ({'BCE, one negative' if loss == 'bce' else 'softmax cross-entropy'})"
    return model, record(
        name, model, result, test, seconds, dataset=data.split, model="sasrec", loss=loss,
        config=asdict(config), **_ranks_info(ranks, keep_ranks),
    )  # fmt: skip


def run_most_popular(
    data: RetrievalData, ks: Sequence[int] = KS, keep_ranks: bool = False
) -> dict[str, Any]:
    """The most-popular baseline on the same test users and metrics (``keep_ranks``: as
    :func:`run_seq2seq`)."""
    start = time.perf_counter()
    test = data.samples.test
    ranked = most_popular(data.sequences.train, max(ks), test.histories)
    metrics = recall_ndcg(ranked, test.targets, test.histories, ks)
    seconds = time.perf_counter() - start
    ranks = user_ranks(ranked, test.targets, max(ks))
    return record(
        "most popular", None, None, metrics, seconds, dataset=data.split,
        model="most-popular", **_ranks_info(ranks, keep_ranks),
    )  # fmt: skip
