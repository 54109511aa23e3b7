"""What semantic IDs buy, measured over seeds: the protocol of notebook 07 and
``benchmarks/seeds.py``, one seed per call.

- :func:`run_warm_seed`: one seq2seq per ID table (:mod:`rqvae_lib.retrieval.id_tables`), trained
  in lockstep under a budget (the same epochs), selected on validation, each scored once on the
  test split with every user's rank kept for paired differences.
- :func:`run_cold_seed`: TIGER's cold-start protocol. A seeded share of the items is new (in no
  training sequence and not in the tables' fit); each table's seq2seq is scored decoding over the
  whole catalogue (plain constrained beam search) and over the known items with new items
  admitted (TIGER's rule, epsilon chosen on validation), with the known/new trade-off as epsilon
  varies; beside it the new-item baselines and SASRec trained on the same split.

A seed re-draws the tables' fit, the seq2seq's initialisation, its batch order and the
validation subset; the data, the budget and the scoring stay fixed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rqvae_lib.retrieval.cold import nearest_text_new_items, random_new_items
from rqvae_lib.retrieval.cold_experiment import (
    admission_prefix_len,
    admission_records,
    choose_epsilon,
    cold_retrieval_data,
    cold_seq2seq_model,
    decoding_over,
    new_item_index,
    novelty_metrics,
)
from rqvae_lib.retrieval.experiment import (
    CPU_BUDGET,
    RetrievalBudget,
    RetrievalData,
    _metrics,
    record,
    run_sasrec,
    run_seq2seq,
    validation_subset,
)
from rqvae_lib.retrieval.id_tables import IdTable, seeded_id_tables
from rqvae_lib.retrieval.train import fit_together, rank_samples
from rqvae_lib.retrieval.trie import ItemTrie

#: The seeds of the benchmark's records; notebook 07 runs the first one live.
SEEDS = (0, 1, 2)
#: The admission fractions whose known/new trade-off is traced (0: known-only decoding).
EPSILONS = (0.0, 0.1, 0.2, 0.3, 0.5)
#: The share of the catalogue held out as new items (TIGER's cold-start setting).
NEW_FRACTION = 0.05
#: The tables the cold-start experiment trains on (the warm comparison ranks them all).
COLD_TABLES = ("rqvae", "rq-kmeans")


def run_warm_seed(
    data: RetrievalData,
    tables: Mapping[str, IdTable],
    seed: int,
    budget: RetrievalBudget = CPU_BUDGET,
    checkpoint_dir: str | Path | None = None,
    verbose: bool = True,
) -> list[dict[str, Any]]:
    """One record per table: a seq2seq trained on it under ``budget`` with ``seed``, all in
    lockstep, test-scored once, with ``test_ranks`` and the table's measures. ``checkpoint_dir``
    resumes an interrupted run from its last epoch."""
    config = budget.seq2seq_config(seed, verbose)
    id_tables = {name: (t.ids, t.item_ids) for name, t in tables.items()}
    out = run_seq2seq(
        data, id_tables, budget.preset, config, budget.test_ks, budget.val_users,
        checkpoint_dir=checkpoint_dir, keep_ranks=True,
    )  # fmt: skip
    return [
        dict(
            rec,
            experiment="warm",
            table=name,
            seed=seed,
            budget=budget.name,
            measures=tables[name].measures,
        )  # fmt: skip
        for name, (_, rec) in out.items()
    ]


def run_cold_seed(
    split: str,
    seed: int,
    tables: Sequence[str] = COLD_TABLES,
    budget: RetrievalBudget = CPU_BUDGET,
    epsilons: Sequence[float] = EPSILONS,
    fraction: float = NEW_FRACTION,
    rqvae_epochs: int | None = None,
    root: str | Path | None = None,
    directory: str | Path | None = None,
    checkpoint_dir: str | Path | None = None,
    verbose: bool = True,
    config: Mapping[str, Any] | None = None,
    baselines: bool = True,
) -> list[dict[str, Any]]:
    """TIGER's cold-start protocol for one seed: one record per table, then the baselines.

    Seq2seq records hold ``whole_catalogue`` (the test split decoded over every item, new ones
    included), ``val_curve`` (validation, every user, Recall@10 per epsilon), ``epsilon`` (the
    best on it), ``test_curve`` (the test split per epsilon, at the budget's cut-offs; its row at
    ``epsilon`` is the result) and ``test_ranks``-free groups (:data:`GROUPS`: all, new and known
    targets). Baseline records (``model``: "random-new", "nearest-text", "sasrec-ce") hold the
    same groups on the test split. ``seed`` draws the new items too; ``config`` is the RQ-VAE's
    (default ``TUTORIAL_CONFIG``). ``checkpoint_dir`` resumes the seq2seq training.
    The collaborative tables learn their SASRec vectors from the cold split's training parts, so
    a new item has none. ``baselines=False`` skips the baselines (another run of the same seed
    has them).
    """
    from rqvae_lib.data import ItemDataModule

    data, cold = cold_retrieval_data(split, fraction, seed, budget.max_users, root)
    if verbose:
        print(f"{split}, seed {seed}: {len(cold.new_items):,} new items", flush=True)
    id_tables = seeded_id_tables(
        split,
        tables,
        seed,
        cold.new_items,
        cold.seed,
        rqvae_epochs,
        root,
        directory,
        config,
        sequences=data.sequences,
    )
    models = {
        name: cold_seq2seq_model(t.ids, t.item_ids, cold.new_items, budget.preset, seed)
        for name, t in id_tables.items()
    }
    train_config = budget.seq2seq_config(seed, verbose)
    selection = validation_subset(data, budget.val_users, seed)
    results = fit_together(models, data.samples.train, selection, train_config, checkpoint_dir)
    test, val, ks = data.samples.test, data.samples.val, budget.test_ks
    batch, amp = train_config.eval_batch_size, train_config.amp
    common = dict(experiment="cold", dataset=split, seed=seed, budget=budget.name,
                  new_items=len(cold.new_items), fraction=fraction)  # fmt: skip
    records = []
    for name, model in models.items():
        prefix = admission_prefix_len(name, model.tokenizer.semantic_ids.shape[1])
        index = new_item_index(model.tokenizer, cold.new_items, prefix)
        with decoding_over(model, ItemTrie.from_tokenizer(model.tokenizer)):
            whole = rank_samples(model, test, max(ks), batch, False, amp)
        epsilon, val_curve = choose_epsilon(model, val, index, epsilons, 10, batch, amp)
        known_only = rank_samples(model, test, max(ks), batch, False, amp)
        curve = admission_records(known_only, test, index, epsilons, ks)
        rec = record(
            f"TIGER seq2seq ({budget.preset}), {name} IDs, new items admitted", model,
            results[name], {}, 0.0, **common, model="seq2seq", table=name, preset=budget.preset,
            prefix_len=prefix, measures=id_tables[name].measures,
        )  # fmt: skip
        records.append(dict(
            rec, test=next(r for r in curve if r["epsilon"] == epsilon), epsilon=epsilon,
            whole_catalogue=admission_records(whole, test, index, [0.0], ks)[0],
            val_curve=val_curve, test_curve=curve,
        ))  # fmt: skip
    if not baselines:
        return records
    dm = ItemDataModule(root, split)
    dm.prepare_data()
    dm.setup()
    catalogue = dm.dataset("all")
    new = cold.new_items
    baselines = {
        "random-new": random_new_items(len(test.targets), new, max(ks), seed),
        "nearest-text": nearest_text_new_items(
            test.histories, catalogue.features, catalogue.item_ids, new, max(ks)
        ),
    }
    sasrec, _ = run_sasrec(data, "ce", budget.sasrec_config(seed, verbose), ks, budget.val_users)
    baselines["sasrec-ce"] = rank_samples(sasrec, test, max(ks), batch, False, amp)
    for name, ranked in baselines.items():
        groups = novelty_metrics(ranked, test, new, ks)
        records.append(dict(common, model=name, **{g: _metrics(v) for g, v in groups.items()}))
    return records
