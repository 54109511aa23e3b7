"""Notebook 07's reading of ``benchmarks/seeds.py``'s records: tables over seeds, paired verdicts
and the figures (which ID table is better downstream, and what new items cost and gain).

Over seeds a row is the mean of the per-seed test results and the standard error of that mean
(``std / sqrt(seeds)``, the noise of a re-run); ``user_sem`` is the mean per-user standard error
of one seed's result (the noise of the test users). A pair of tables differs when the mean of
its per-seed paired differences is more than twice their standard error over seeds.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure

from rqvae_lib.course.retrieval import paired_difference
from rqvae_lib.retrieval.id_tables import ID_TABLES
from rqvae_lib.retrieval.metrics import mean_sem

#: What each table is, in words, for the tables and figures.
TABLE_NAMES = {
    "rqvae": "RQ-VAE, balanced last level",
    "rqvae-plain": "RQ-VAE, nearest codes",
    "rq-kmeans-balanced": "RQ-KMeans, balanced last level",
    "rq-kmeans": "RQ-KMeans, nearest codes",
    "random": "random IDs",
    "rqvae-collab": "RQ-VAE + collaborative, balanced last level",
    "rq-kmeans-collab": "RQ-KMeans on text + collaborative, balanced last level",
}
#: Records of the collaborative tables (experiments ``collab``, ``collab@<weight>`` and
#: ``collab-kmeans``), read with the warm comparison (the same protocol, data, seeds, budget).
COLLAB_EXPERIMENTS = ("collab", "collab-kmeans")
#: Records of the cold-start protocol: the content tables with the baselines (``cold``), and the
#: collaborative tables (``cold-collab``) on the same new items of each seed.
COLD_EXPERIMENTS = ("cold", "cold-collab")


def table_name(key: str) -> str:
    """A table's name in words: :data:`TABLE_NAMES`, or ``rqvae-collab@<weight>``'s weight."""
    if key in TABLE_NAMES:
        return TABLE_NAMES[key]
    base, _, weight = key.partition("@")
    if base == "rqvae-collab" and weight:
        return f"RQ-VAE + collaborative (weight {weight}), balanced last level"
    return key


#: The measures of a table that notebook 04 reads, with their axis labels.
MEASURES = {
    "perplexity": "mean perplexity per level",
    "collision_rate": "collision rate (items sharing a whole ID)",
    "relative_error": "relative reconstruction error (held out)",
}
#: The rows of the cold-start table: how the recommendations were made.
COLD_ROWS = {
    "whole": "seq2seq, beam over every item",
    "known": "seq2seq, beam over known items",
    "admitted": "seq2seq + TIGER's admission",
    "nearest-text": "nearest text (new items only)",
    "random-new": "a random new item",
    "sasrec-ce": "SASRec, cross-entropy",
}


def read_seed_records(path: str | Path, budget: str | None = "cpu") -> list[dict[str, Any]]:
    """The JSON lines of ``benchmarks/seeds.py`` (of one ``budget``; None: every budget)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"no seed records at {path}: run `python benchmarks/seeds.py` to write them"
        )
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in records if budget is None or r.get("budget") == budget]


def _warm(records: Sequence[Mapping[str, Any]], dataset: str) -> dict[str, dict[int, Mapping]]:
    """table -> seed -> warm record of ``dataset`` (the collaborative tables' records included),
    ``ID_TABLES`` first."""
    out: dict[str, dict[int, Mapping]] = {}
    for r in records:
        experiment = str(r.get("experiment"))
        warm = experiment == "warm" or experiment.partition("@")[0] in COLLAB_EXPERIMENTS
        if warm and r.get("dataset") == dataset:
            out.setdefault(r["table"], {})[r["seed"]] = r
    order = [t for t in ID_TABLES if t in out] + sorted(t for t in out if t not in ID_TABLES)
    return {t: out[t] for t in order}


def verdict(mean: float, sem: float, seeds: int, positive: str, negative: str) -> str:
    """``positive`` or ``negative`` (by the sign of ``mean``) when a mean over more than one seed
    is more than twice its standard error from 0, else "within noise": the rule of every
    comparison over seeds."""
    if seeds > 1 and abs(mean) > 2 * sem:
        return positive if mean > 0 else negative
    return "within noise"


def _over_seeds(values: Sequence[float]) -> tuple[float, float]:
    mean, sem = mean_sem(torch.tensor(list(values), dtype=torch.float64))
    return mean, sem


def warm_table(
    records: Sequence[Mapping[str, Any]], dataset: str = "beauty", metric: str = "recall@10"
) -> pd.DataFrame:
    """One row per ID table: ``metric`` mean and standard error over seeds, the mean per-user
    standard error, the seeds, and the table's measures averaged over seeds."""
    rows = []
    for table, by_seed in _warm(records, dataset).items():
        values = [r["test"][metric][0] for r in by_seed.values()]
        mean, sem = _over_seeds(values)
        row = {"table": table_name(table), "key": table, metric: mean,
               "seed_sem": sem, "user_sem": float(np.mean([r["test"][metric][1]
                                                           for r in by_seed.values()])),
               "seeds": len(values)}  # fmt: skip
        for m in MEASURES:
            row[m] = float(np.mean([r["measures"][m] for r in by_seed.values()]))
        rows.append(row)
    return pd.DataFrame(rows).set_index("table") if rows else pd.DataFrame()


def pair_table(
    records: Sequence[Mapping[str, Any]], dataset: str = "beauty", metric: str = "recall@10"
) -> pd.DataFrame:
    """Every pair of ID tables: the mean over seeds of A minus B (paired on the same test users
    within a seed), its standard error over seeds, the mean per-user paired standard error, and
    whether the difference exceeds twice its standard error over seeds."""
    by_table = _warm(records, dataset)
    rows = []
    for a, b in itertools.combinations(by_table, 2):
        seeds = sorted(set(by_table[a]) & set(by_table[b]))
        if not seeds:
            continue
        diffs = [paired_difference(by_table[a][s], by_table[b][s], metric) for s in seeds]
        mean, sem = _over_seeds([d.mean for d in diffs])
        rows.append({"A": table_name(a), "B": table_name(b), f"A - B {metric}": mean,
                     "seed_sem": sem, "user_sem": float(np.mean([d.sem for d in diffs])),
                     "seeds": len(seeds),
                     "verdict": verdict(mean, sem, len(seeds), "A ahead", "B ahead")})  # fmt: skip
    return pd.DataFrame(rows)


def measures_figure(
    records: Sequence[Mapping[str, Any]], dataset: str = "beauty", metric: str = "recall@10"
) -> Figure:
    """Test ``metric`` against each table measure, one point per table and seed."""
    by_table = _warm(records, dataset)
    fig, axes = plt.subplots(1, len(MEASURES), figsize=(12, 3.8), sharey=True, layout="constrained")
    for ax, (measure, label) in zip(axes, MEASURES.items(), strict=True):
        for i, (table, by_seed) in enumerate(by_table.items()):
            xs = [r["measures"][measure] for r in by_seed.values()]
            ys = [r["test"][metric][0] for r in by_seed.values()]
            ax.scatter(xs, ys, color=f"C{i}", label=table_name(table), s=28)
        ax.set_xlabel(label)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(f"test {metric.replace('recall', 'Recall').replace('ndcg', 'NDCG')}")
    axes[-1].legend(fontsize=8, loc="best")
    fig.suptitle(f"{dataset.capitalize()}: each point one table and one seed")
    return fig


def measure_correlations(
    records: Sequence[Mapping[str, Any]], dataset: str = "beauty", metric: str = "recall@10"
) -> pd.Series:
    """Spearman rank correlation of each measure with test ``metric``, over the (table, seed)
    points that have it (random IDs have no reconstruction error)."""
    points = [r for by_seed in _warm(records, dataset).values() for r in by_seed.values()]
    y = pd.Series([r["test"][metric][0] for r in points])
    out = {}
    for m in MEASURES:
        x = pd.Series([r["measures"][m] for r in points])
        ok = x.notna()
        out[m] = float(x[ok].corr(y[ok], method="spearman")) if ok.sum() > 2 else float("nan")
    return pd.Series(out, name=f"Spearman with {metric}")


def _cold(records: Sequence[Mapping[str, Any]], dataset: str) -> list[Mapping[str, Any]]:
    return [
        r
        for r in records
        if r.get("experiment") in COLD_EXPERIMENTS and r.get("dataset") == dataset
    ]


def cold_rows(record: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """The scored groups of one cold record by :data:`COLD_ROWS` key (a seq2seq record gives
    three: whole catalogue, known items only, admission at the chosen epsilon)."""
    if record.get("model") != "seq2seq":
        return {record["model"]: record}
    curve = {r["epsilon"]: r for r in record["test_curve"]}
    return {"whole": record["whole_catalogue"], "known": curve[0.0], "admitted": record["test"]}


def cold_table(
    records: Sequence[Mapping[str, Any]], dataset: str = "beauty", metric: str = "recall@10"
) -> pd.DataFrame:
    """``metric`` on all, new-target and known-target test users, mean ± standard error over
    seeds, for each table's seq2seq decoded three ways (epsilon 0 over the known items; the
    chosen epsilon of each seed in its own column) and for the baselines."""
    cells: dict[tuple[str, str], dict[str, list[float]]] = {}
    epsilons: dict[str, list[float]] = {}
    for r in _cold(records, dataset):
        table = r.get("table", "")
        for key, scored in cold_rows(r).items():
            group = cells.setdefault((table, key), {})
            for g in ("all", "new", "known"):
                if g in scored:
                    group.setdefault(g, []).append(scored[g][metric][0])
        if r.get("model") == "seq2seq":
            epsilons.setdefault(table, []).append(r["epsilon"])
    rows = []
    for (table, key), groups in cells.items():
        row: dict[str, Any] = {"recommender": COLD_ROWS[key],
                               "ID table": table_name(table) if table else "-"}  # fmt: skip
        for g, values in groups.items():
            mean, sem = _over_seeds(values)
            row[f"{g} {metric}"] = f"{mean:.4f} ± {sem:.4f}" if len(values) > 1 else f"{mean:.4f}"
        row["seeds"] = max(len(v) for v in groups.values())
        if key == "admitted":
            row["epsilon"] = ", ".join(f"{e:g}" for e in epsilons[table])
        rows.append(row)
    return pd.DataFrame(rows).set_index(["recommender", "ID table"]) if rows else pd.DataFrame()


def cold_pairs(
    records: Sequence[Mapping[str, Any]],
    pairs: Mapping[str, str],
    dataset: str = "beauty",
    key: str = "admitted",
    metric: str = "recall@10",
) -> pd.DataFrame:
    """Per pair of tables (``pairs``: A -> B) and group (all, new and known targets): the mean
    over seeds of B's ``metric`` minus A's in :func:`cold_rows`' ``key`` row, its standard error
    over seeds and whether it exceeds twice that; seeds where both tables ran (the same new
    items)."""
    by: dict[str, dict[int, Mapping[str, Any]]] = {}
    for r in _cold(records, dataset):
        if r.get("model") == "seq2seq":
            by.setdefault(r["table"], {})[r["seed"]] = cold_rows(r)[key]
    rows = []
    for a, b in pairs.items():
        seeds = sorted(set(by.get(a, {})) & set(by.get(b, {})))
        for group in ("all", "new", "known"):
            diffs = [by[b][s][group][metric][0] - by[a][s][group][metric][0] for s in seeds]
            if not diffs:
                continue
            mean, sem = _over_seeds(diffs)  # one seed: no standard error (NaN)
            rows.append({"A": a, "B": b, "group": group, f"B - A {metric}": mean, "seed_sem": sem,
                         "seeds": len(diffs),
                         "verdict": verdict(mean, sem, len(diffs), "B ahead", "A ahead")})  # fmt: skip
    return pd.DataFrame(rows).set_index(["A", "B", "group"]) if rows else pd.DataFrame()


def tradeoff_table(
    records: Sequence[Mapping[str, Any]], dataset: str = "beauty", k: int = 10
) -> pd.DataFrame:
    """New-target and known-target Recall@k on the test split at each epsilon of the admission
    rule, mean ± standard error over seeds, one row per (ID table, epsilon); ``cost`` is the
    known-target recall lost against epsilon 0."""
    metric = f"recall@{k}"
    seq = [r for r in _cold(records, dataset) if r.get("model") == "seq2seq"]
    rows = []
    for table in dict.fromkeys(r["table"] for r in seq):
        runs = [r for r in seq if r["table"] == table]
        for j, point in enumerate(runs[0]["test_curve"]):
            values = {g: [r["test_curve"][j][g][metric][0] for r in runs] for g in ("new", "known")}
            cost = [r["test_curve"][0]["known"][metric][0] - v for r, v in
                    zip(runs, values["known"], strict=True)]  # fmt: skip
            row: dict[str, Any] = {"ID table": table_name(table), "epsilon": point["epsilon"]}
            for name, v in (("new", values["new"]), ("known", values["known"]), ("lost", cost)):
                mean, sem = _over_seeds(v) if len(v) > 1 else (v[0], float("nan"))
                label = f"known {metric} lost" if name == "lost" else f"{name} {metric}"
                row[label], row[f"{label} sem"] = mean, sem
            row["seeds"] = len(runs)
            rows.append(row)
    return pd.DataFrame(rows).set_index(["ID table", "epsilon"]) if rows else pd.DataFrame()


def tradeoff_figure(
    records: Sequence[Mapping[str, Any]], dataset: str = "beauty", k: int = 10
) -> Figure:
    """Known-target against new-target Recall@k on the test split as epsilon grows (mean over
    seeds, ``tradeoff_table``), one line per table, each point labelled with its epsilon;
    nearest text's new-target recall as a reference line."""
    fig, ax = plt.subplots(figsize=(6.5, 4.5), layout="constrained")
    metric = f"recall@{k}"
    table = tradeoff_table(records, dataset, k)
    for i, name in enumerate(dict.fromkeys(table.index.get_level_values(0))):
        curve = table.loc[name]
        new, known = curve[f"new {metric}"], curve[f"known {metric}"]
        ax.plot(new, known, "o-", color=f"C{i}", label=name)
        for e, x, y in zip(curve.index, new, known, strict=True):
            ax.annotate(f"ε={e:g}", (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
    text = [r for r in _cold(records, dataset) if r.get("model") == "nearest-text"]
    if text:
        ax.axvline(np.mean([r["new"][metric][0] for r in text]), color="gray", ls="--",
                   label="nearest text, new targets")  # fmt: skip
    ax.set_xlabel(f"Recall@{k}, test users whose target is a new item")
    ax.set_ylabel(f"Recall@{k}, test users whose target is a known item")
    ax.set_title(f"{dataset.capitalize()}: admitting new items, mean over seeds")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig
