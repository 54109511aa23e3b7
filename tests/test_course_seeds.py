"""rqvae_lib.course.seeds: notebook 07's reading of ``benchmarks/seeds.py``'s JSON lines (tables
over seeds, paired verdicts between ID tables, the cold-start table and the figures), checked on
small hand-made records whose answers are worked out by hand."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from rqvae_lib.course.seeds import (  # noqa: E402
    COLD_ROWS,
    MEASURES,
    TABLE_NAMES,
    cold_pairs,
    cold_rows,
    cold_table,
    measure_correlations,
    measures_figure,
    pair_table,
    read_seed_records,
    table_name,
    tradeoff_figure,
    tradeoff_table,
    warm_table,
)

R10 = "recall@10"


# --- hand-made records ------------------------------------------------------------------------
def warm(
    table: str,
    seed: int,
    recall: float,
    sem: float = 0.01,
    measures: tuple[float, float, float] = (1.0, 0.0, 0.5),
    ranks: list[int] | None = None,
    dataset: str = "beauty",
    budget: str = "cpu",
) -> dict[str, Any]:
    """A warm record as ``run_warm_seed`` writes it (only the fields the course reads)."""
    rec: dict[str, Any] = {
        "experiment": "warm",
        "dataset": dataset,
        "seed": seed,
        "budget": budget,
        "table": table,
        "model": "seq2seq",
        "measures": dict(zip(MEASURES, measures, strict=True)),
        "test": {R10: [recall, sem], "ndcg@10": [recall / 2, sem / 2]},
    }
    if ranks is not None:
        rec["test_ranks"] = ranks
    return rec


def groups(all_: float, new: float | None, known: float, sem: float = 0.01) -> dict[str, Any]:
    """The all/new/known groups of a cold result (a group without users is left out)."""
    out = {"all": {R10: [all_, sem]}, "known": {R10: [known, sem]}}
    if new is not None:
        out["new"] = {R10: [new, sem]}
    return out


def seq2seq(
    table: str,
    seed: int,
    epsilon: float,
    curve: dict[float, tuple[float, float, float]],
    whole: tuple[float, float, float],
    dataset: str = "beauty",
) -> dict[str, Any]:
    """A cold seq2seq record: ``curve`` maps epsilon to (all, new, known) Recall@10 on test."""
    test_curve = [
        {"epsilon": e, "users": {"all": 8, "new": 2, "known": 6}, **groups(*v)}
        for e, v in sorted(curve.items())
    ]
    return {
        "experiment": "cold",
        "dataset": dataset,
        "seed": seed,
        "budget": "cpu",
        "model": "seq2seq",
        "table": table,
        "epsilon": epsilon,
        "whole_catalogue": {"epsilon": 0.0, "users": {"all": 8}, **groups(*whole)},
        "val_curve": [{"epsilon": e, R10: [0.1, 0.01]} for e in sorted(curve)],
        "test_curve": test_curve,
        "test": next(r for r in test_curve if r["epsilon"] == epsilon),
    }


def baseline(model: str, seed: int, values: tuple[float, float | None, float]) -> dict[str, Any]:
    return {"experiment": "cold", "dataset": "beauty", "seed": seed, "budget": "cpu",
            "model": model, **groups(*values)}  # fmt: skip


def recall_at(ranks: list[int], k: int = 10) -> float:
    return sum(1 <= r <= k for r in ranks) / len(ranks)


def mean_se(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard error, by the standard library (NaN for one value)."""
    se = statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else math.nan
    return statistics.fmean(values), se


# --- read_seed_records ------------------------------------------------------------------------
def test_read_seed_records_filters_by_budget(tmp_path: Path) -> None:
    records = [warm("rqvae", 0, 0.1), warm("rqvae", 0, 0.2, budget="gpu"),
               baseline("random-new", 1, (0.0, 0.1, 0.0))]  # fmt: skip
    path = tmp_path / "seeds.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in records[:2]) + "\n\n" + json.dumps(records[2]))
    assert read_seed_records(path) == [records[0], records[2]]  # default budget "cpu"
    assert read_seed_records(str(path), "gpu") == [records[1]]
    assert read_seed_records(path, None) == records
    assert read_seed_records(path, "fast") == []


def test_read_seed_records_says_how_to_write_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"python benchmarks/seeds\.py"):
        read_seed_records(tmp_path / "absent.jsonl")


# --- warm_table -------------------------------------------------------------------------------
def warm_records() -> list[dict[str, Any]]:
    """Three tables, written out of ID_TABLES order; rq-kmeans has two seeds, the others three;
    plus a Toys record and a cold record that the Beauty tables must ignore."""
    return [
        warm("random", 0, 0.05, 0.02, (10.0, 0.50, math.nan)),
        warm("random", 1, 0.05, 0.04, (12.0, 0.40, math.nan)),
        warm("random", 2, 0.08, 0.03, (14.0, 0.30, math.nan)),
        warm("rq-kmeans", 0, 0.11, 0.01, (100.0, 0.10, 0.40)),
        warm("rq-kmeans", 1, 0.13, 0.03, (110.0, 0.20, 0.60)),
        warm("rqvae", 0, 0.10, 0.010, (200.0, 0.01, 0.30)),
        warm("rqvae", 1, 0.12, 0.011, (220.0, 0.02, 0.20)),
        warm("rqvae", 2, 0.14, 0.012, (240.0, 0.03, 0.10)),
        warm("rqvae-plain", 0, 0.9, dataset="toys"),
        seq2seq("rq-kmeans-balanced", 0, 0.1, {0.0: (0.5, 0.0, 0.6), 0.1: (0.5, 0.1, 0.5)},
                (0.5, 0.0, 0.6)),
    ]  # fmt: skip


def test_warm_table_one_row_per_table_over_seeds() -> None:
    frame = warm_table(warm_records())
    assert list(frame.index) == [TABLE_NAMES[t] for t in ("rqvae", "rq-kmeans", "random")]
    assert frame.index.name == "table"
    assert frame["key"].tolist() == ["rqvae", "rq-kmeans", "random"]
    assert frame["seeds"].tolist() == [3, 2, 3]
    # rqvae: 0.10, 0.12, 0.14 -> mean 0.12, sample std 0.02, SE 0.02 / sqrt(3)
    rqvae = frame.loc[TABLE_NAMES["rqvae"]]
    assert rqvae[R10] == pytest.approx(0.12, abs=1e-12)
    assert rqvae["seed_sem"] == pytest.approx(0.02 / math.sqrt(3), abs=1e-12)
    assert rqvae["user_sem"] == pytest.approx(0.011, abs=1e-12)
    assert rqvae[list(MEASURES)].tolist() == pytest.approx([220.0, 0.02, 0.20], abs=1e-12)
    # rq-kmeans: 0.11, 0.13 -> SE = |0.13 - 0.11| / 2 = 0.01
    kmeans = frame.loc[TABLE_NAMES["rq-kmeans"]]
    assert kmeans[R10] == pytest.approx(0.12, abs=1e-12)
    assert kmeans["seed_sem"] == pytest.approx(0.01, abs=1e-12)
    assert kmeans["user_sem"] == pytest.approx(0.02, abs=1e-12)
    assert kmeans[list(MEASURES)].tolist() == pytest.approx([105.0, 0.15, 0.5], abs=1e-12)
    # random: 0.05, 0.05, 0.08 against the standard library; no reconstruction error
    random = frame.loc[TABLE_NAMES["random"]]
    mean, se = mean_se([0.05, 0.05, 0.08])
    assert (random[R10], random["seed_sem"]) == pytest.approx((mean, se), abs=1e-12)
    assert mean == pytest.approx(0.06) and se == pytest.approx(0.01)
    assert random["user_sem"] == pytest.approx(0.03, abs=1e-12)
    assert random["perplexity"] == pytest.approx(12.0) and math.isnan(random["relative_error"])


def test_warm_table_other_dataset_metric_one_seed_and_nothing() -> None:
    toys = warm_table(warm_records(), "toys")
    assert list(toys.index) == [TABLE_NAMES["rqvae-plain"]]
    assert toys[R10].iloc[0] == pytest.approx(0.9)
    assert toys["seeds"].iloc[0] == 1 and math.isnan(toys["seed_sem"].iloc[0])  # one seed: no SE
    ndcg = warm_table(warm_records(), metric="ndcg@10")
    assert ndcg["ndcg@10"].tolist() == pytest.approx([0.06, 0.06, 0.03], abs=1e-12)
    assert warm_table(warm_records(), "sports").empty
    assert warm_table([]).empty


def test_warm_table_last_record_of_a_seed_wins() -> None:
    """A unit re-run appends again: one value per (table, seed), the later one."""
    frame = warm_table([warm("rqvae", 0, 0.1), warm("rqvae", 0, 0.3), warm("rqvae", 1, 0.5)])
    assert frame["seeds"].tolist() == [2]
    assert frame[R10].tolist() == pytest.approx([0.4])


def test_the_collaborative_tables_join_the_warm_comparison_after_the_others() -> None:
    """Records of experiment collab (or collab@weight) are read as warm rows, after ID_TABLES."""
    collab = [dict(warm("rqvae-collab", s, 0.2), experiment="collab") for s in (0, 1)]
    weighted = dict(warm("rqvae-collab@0.5", 0, 0.3), experiment="collab@0.5")
    frame = warm_table([*collab, weighted, *warm_records()])
    assert frame["key"].tolist() == ["rqvae", "rq-kmeans", "random", "rqvae-collab",
                                     "rqvae-collab@0.5"]  # fmt: skip
    assert table_name("rqvae-collab") == TABLE_NAMES["rqvae-collab"] == frame.index[3]
    assert frame.index[4] == "RQ-VAE + collaborative (weight 0.5), balanced last level"
    assert frame.loc[frame.index[3], "seeds"] == 2
    ranked = [warm("rqvae", 0, 0.5, ranks=[1, 0]),
              dict(warm("rqvae-collab", 0, 0.5, ranks=[0, 2]), experiment="collab")]  # fmt: skip
    pairs = pair_table(ranked)
    assert pairs[["A", "B"]].values.tolist() == [
        [TABLE_NAMES["rqvae"], TABLE_NAMES["rqvae-collab"]]
    ]
    assert table_name("something-else") == "something-else"
    other = dict(warm("rqvae-collab", 0, 0.2), experiment="collaborative")  # not the name
    assert warm_table([other]).empty


# --- pair_table -------------------------------------------------------------------------------
#: table -> per-seed ranks of 4 test users (1-based within the top K, 0 when missed). Recall@10
#: counts ranks 1..10: rank 10 is a hit, rank 11 (in a top 20) and 0 are misses.
RANKS = {
    "rqvae": {0: [1, 10, 3, 0], 1: [2, 5, 0, 7], 2: [0, 1, 1, 9]},  # 0.75, 0.75, 0.75
    "rqvae-plain": {0: [1, 1, 1, 1], 1: [0, 3, 0, 0], 2: [1, 1, 1, 0]},  # 1.0, 0.25, 0.75
    "rq-kmeans": {0: [0, 0, 11, 0], 1: [0, 0, 3, 0], 2: [0, 0, 0, 0]},  # 0.0, 0.25, 0.0
    "random": {0: [1, 11, 10, 0], 1: [1, 2, 0, 11], 2: [0, 0, 0, 1]},  # 0.5, 0.5, 0.25
}
#: (A, B) -> per-seed Recall@10 of A minus B, by hand from RANKS, and the verdict.
DIFFS = {
    ("rqvae", "rqvae-plain"): ([-0.25, 0.5, 0.0], "within noise"),  # mean 1/12, SE 0.22
    ("rqvae", "rq-kmeans"): ([0.75, 0.5, 0.75], "A ahead"),
    ("rqvae", "random"): ([0.25, 0.25, 0.5], "A ahead"),  # mean 1/3, SE 1/12
    ("rqvae-plain", "rq-kmeans"): ([1.0, 0.0, 0.75], "within noise"),
    ("rqvae-plain", "random"): ([0.5, -0.25, 0.5], "within noise"),
    ("rq-kmeans", "random"): ([-0.5, -0.25, -0.25], "B ahead"),  # mean -1/3, SE 1/12
}


def pair_records() -> list[dict[str, Any]]:
    # written with random first: pairs follow ID_TABLES order, not the records'
    out = [
        warm(table, seed, recall_at(ranks), ranks=ranks)
        for table in ("random", "rq-kmeans", "rqvae-plain", "rqvae")
        for seed, ranks in RANKS[table].items()
    ]
    return out + [warm("rqvae", 0, 0.5, ranks=[0, 0, 0, 0], dataset="toys")] + warm_records()[-1:]


def test_hand_made_ranks_give_the_hand_made_recalls() -> None:
    for (a, b), (diffs, _) in DIFFS.items():
        got = [recall_at(RANKS[a][s]) - recall_at(RANKS[b][s]) for s in (0, 1, 2)]
        assert got == pytest.approx(diffs)


def test_pair_table_paired_differences_over_seeds_and_verdicts() -> None:
    frame = pair_table(pair_records())
    assert list(frame.columns) == ["A", "B", f"A - B {R10}", "seed_sem", "user_sem", "seeds",
                                   "verdict"]  # fmt: skip
    pairs = [(TABLE_NAMES[a], TABLE_NAMES[b]) for a, b in DIFFS]
    assert list(zip(frame["A"], frame["B"], strict=True)) == pairs  # ID_TABLES order
    for (a, b), (diffs, verdict) in DIFFS.items():
        row = frame[(frame["A"] == TABLE_NAMES[a]) & (frame["B"] == TABLE_NAMES[b])].iloc[0]
        mean, se = mean_se(diffs)
        assert row[f"A - B {R10}"] == pytest.approx(mean, abs=1e-12), (a, b)
        assert row["seed_sem"] == pytest.approx(se, abs=1e-12), (a, b)
        # the per-user paired SE of each seed: std of the 4 user differences / 2
        user_ses = []
        for s in (0, 1, 2):
            d = [float(1 <= x <= 10) - float(1 <= y <= 10)
                 for x, y in zip(RANKS[a][s], RANKS[b][s], strict=True)]  # fmt: skip
            user_ses.append(statistics.stdev(d) / 2)
        assert row["user_sem"] == pytest.approx(statistics.fmean(user_ses), abs=1e-12), (a, b)
        assert row["seeds"] == 3
        assert row["verdict"] == verdict, (a, b)
        # the rule itself: ahead exactly when |mean| > 2 * SE over seeds
        assert (verdict != "within noise") == (abs(mean) > 2 * se)
    rqvae_random = frame.iloc[2]
    assert rqvae_random[f"A - B {R10}"] == pytest.approx(1 / 3, abs=1e-12)
    assert rqvae_random["seed_sem"] == pytest.approx(1 / 12, abs=1e-12)


def test_pair_table_other_metric_counts_rank_11_in_the_top_20() -> None:
    frame = pair_table(pair_records(), metric="recall@20")
    row = frame[(frame["A"] == TABLE_NAMES["rq-kmeans"]) & (frame["B"] == TABLE_NAMES["random"])]
    # recall@20: rq-kmeans 0.25, 0.25, 0.0; random 0.75, 0.75, 0.25
    assert row["A - B recall@20"].iloc[0] == pytest.approx(statistics.fmean([-0.5, -0.5, -0.25]))


def test_pair_table_pairs_on_the_seeds_both_tables_have() -> None:
    records = [r for r in pair_records() if not (r["table"] == "random" and r["seed"] == 0)]
    frame = pair_table(records)
    row = frame[(frame["A"] == TABLE_NAMES["rqvae"]) & (frame["B"] == TABLE_NAMES["random"])]
    assert row["seeds"].iloc[0] == 2
    mean, se = mean_se([0.25, 0.5])
    assert row[f"A - B {R10}"].iloc[0] == pytest.approx(mean, abs=1e-12)
    assert row["seed_sem"].iloc[0] == pytest.approx(se, abs=1e-12)
    assert (frame["seeds"] == 2).sum() == 3  # every pair with random


def test_pair_table_one_seed_is_within_noise() -> None:
    """One seed: no standard error over seeds, so no verdict however large the difference."""
    records = [warm("rqvae", 0, 1.0, ranks=[1, 1, 1, 1]), warm("random", 0, 0.0, ranks=[0] * 4)]
    frame = pair_table(records)
    assert len(frame) == 1
    row = frame.iloc[0]
    assert row[f"A - B {R10}"] == pytest.approx(1.0)
    assert math.isnan(row["seed_sem"]) and row["seeds"] == 1
    assert row["verdict"] == "within noise"


def test_pair_table_without_common_seeds_or_records() -> None:
    records = [warm("rqvae", 0, 1.0, ranks=[1, 1]), warm("random", 1, 0.0, ranks=[0, 0])]
    assert pair_table(records).empty
    assert pair_table(pair_records(), "toys").empty  # one table only
    assert pair_table([]).empty


# --- measure_correlations ---------------------------------------------------------------------
def test_measure_correlations_spearman_skips_missing_errors() -> None:
    """Five points; recall ranks 1..5. Perplexity rises with recall (+1), collision rate falls
    (-1); the error is NaN for random IDs, and over the other 4 points its ranks are 2, 1, 4, 3:
    rho = 1 - 6 * 4 / (4 * 15) = 0.6."""
    records = [
        warm("rqvae", 0, 0.10, measures=(10.0, 0.9, 0.2)),
        warm("rqvae", 1, 0.20, measures=(20.0, 0.8, 0.1)),
        warm("rq-kmeans", 0, 0.30, measures=(30.0, 0.7, 0.4)),
        warm("rq-kmeans", 1, 0.40, measures=(40.0, 0.6, 0.3)),
        warm("random", 0, 0.05, measures=(5.0, 0.95, math.nan)),
        warm("random", 0, 0.99, measures=(99.0, 0.0, 99.0), dataset="toys"),
    ]
    got = measure_correlations(records)
    assert isinstance(got, pd.Series) and list(got.index) == list(MEASURES)
    assert got.name == f"Spearman with {R10}"
    assert got["perplexity"] == pytest.approx(1.0)
    assert got["collision_rate"] == pytest.approx(-1.0)
    assert got["relative_error"] == pytest.approx(0.6)
    # fewer than three points with the measure: no correlation
    few = measure_correlations([r for r in records if r["table"] != "rq-kmeans"])
    assert few["perplexity"] == pytest.approx(1.0) and math.isnan(few["relative_error"])


def test_measure_correlations_read_nan_back_from_json(tmp_path: Path) -> None:
    """json writes NaN (random IDs' error) as a bare NaN token; it must read back and be skipped."""
    records = [warm("random", s, 0.1 * s, measures=(s, -s, math.nan)) for s in (1, 2, 3)]
    records += [
        warm("rqvae", s, 0.1 * s + 0.05, measures=(s + 0.5, -s - 0.5, s)) for s in (1, 2, 3)
    ]
    path = tmp_path / "seeds.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in records))
    got = measure_correlations(read_seed_records(path))
    assert got.tolist() == pytest.approx([1.0, -1.0, 1.0])


# --- cold_rows and cold_table -----------------------------------------------------------------
CURVE0 = {0.0: (0.10, 0.00, 0.12), 0.1: (0.11, 0.05, 0.115), 0.3: (0.09, 0.10, 0.09)}
CURVE1 = {0.0: (0.14, 0.00, 0.16), 0.1: (0.12, 0.07, 0.13), 0.3: (0.10, 0.20, 0.08)}
CURVE_K = {0.0: (0.20, 0.00, 0.25), 0.1: (0.21, 0.10, 0.24), 0.3: (0.15, 0.30, 0.10)}


def cold_records() -> list[dict[str, Any]]:
    return [
        seq2seq("rqvae", 0, 0.1, CURVE0, (0.08, 0.01, 0.10)),
        seq2seq("rqvae", 1, 0.3, CURVE1, (0.12, 0.03, 0.14)),
        seq2seq("rq-kmeans", 0, 0.0, CURVE_K, (0.18, 0.02, 0.20)),
        baseline("random-new", 0, (0.01, 0.04, 0.0)),
        baseline("random-new", 1, (0.03, 0.08, 0.0)),
        baseline("nearest-text", 0, (0.02, 0.30, 0.0)),
        baseline("nearest-text", 1, (0.04, 0.50, 0.0)),
        baseline("sasrec-ce", 0, (0.30, None, 0.33)),  # no new-target user in that group
        seq2seq("rqvae", 2, 0.0, CURVE0, (0.9, 0.9, 0.9), dataset="toys"),
        warm("rqvae", 0, 0.5),
    ]


def test_cold_rows_of_a_seq2seq_record_and_of_a_baseline() -> None:
    rec = cold_records()[0]
    rows = cold_rows(rec)
    assert list(rows) == ["whole", "known", "admitted"]
    assert rows["whole"] is rec["whole_catalogue"]
    assert rows["known"] is rec["test_curve"][0] and rows["known"]["epsilon"] == 0.0
    assert rows["admitted"] is rec["test"] and rows["admitted"]["epsilon"] == 0.1
    assert set(COLD_ROWS) >= set(rows)
    for model in ("random-new", "nearest-text", "sasrec-ce"):
        base = baseline(model, 0, (0.1, 0.2, 0.3))
        assert cold_rows(base) == {model: base} and model in COLD_ROWS


def test_cold_table_rows_strings_and_epsilons() -> None:
    frame = cold_table(cold_records())
    assert frame.index.names == ["recommender", "ID table"]
    rqvae, kmeans = TABLE_NAMES["rqvae"], TABLE_NAMES["rq-kmeans"]
    seq_keys = ("whole", "known", "admitted")
    assert list(frame.index) == (
        [(COLD_ROWS[k], rqvae) for k in seq_keys]
        + [(COLD_ROWS[k], kmeans) for k in seq_keys]
        + [(COLD_ROWS[m], "-") for m in ("random-new", "nearest-text", "sasrec-ce")]
    )
    assert list(frame.columns) == [f"all {R10}", f"new {R10}", f"known {R10}", "seeds", "epsilon"]

    def cells(key: str, table: str) -> list[Any]:
        return frame.loc[(COLD_ROWS[key], table)].tolist()

    # two seeds: "mean ± SE", the SE of two values being half their distance
    assert cells("whole", rqvae)[:4] == ["0.1000 ± 0.0200", "0.0200 ± 0.0100",
                                         "0.1200 ± 0.0200", 2]  # fmt: skip
    # known items only: each seed's epsilon-0 row
    assert cells("known", rqvae)[:4] == ["0.1200 ± 0.0200", "0.0000 ± 0.0000",
                                         "0.1400 ± 0.0200", 2]  # fmt: skip
    # admission at each seed's chosen epsilon: seed 0 at 0.1, seed 1 at 0.3
    assert cells("admitted", rqvae) == ["0.1050 ± 0.0050", "0.1250 ± 0.0750",
                                        "0.0975 ± 0.0175", 2, "0.1, 0.3"]  # fmt: skip
    # one seed: the plain mean
    assert cells("whole", kmeans)[:4] == ["0.1800", "0.0200", "0.2000", 1]
    assert cells("known", kmeans)[:4] == ["0.2000", "0.0000", "0.2500", 1]
    assert cells("admitted", kmeans) == ["0.2000", "0.0000", "0.2500", 1, "0"]
    assert cells("random-new", "-")[:4] == ["0.0200 ± 0.0100", "0.0600 ± 0.0200",
                                            "0.0000 ± 0.0000", 2]  # fmt: skip
    assert cells("nearest-text", "-")[:4] == ["0.0300 ± 0.0100", "0.4000 ± 0.1000",
                                              "0.0000 ± 0.0000", 2]  # fmt: skip
    sasrec = cells("sasrec-ce", "-")
    assert sasrec[0] == "0.3000" and pd.isna(sasrec[1]) and sasrec[2:4] == ["0.3300", 1]
    # the epsilon column is only for the admission rows
    assert (
        frame["epsilon"].notna().tolist() == [k == "admitted" for k in seq_keys] * 2 + [False] * 3
    )


def test_cold_table_other_dataset_and_nothing() -> None:
    toys = cold_table(cold_records(), "toys")
    assert list(toys.index.get_level_values("ID table")) == [TABLE_NAMES["rqvae"]] * 3
    assert toys.loc[(COLD_ROWS["admitted"], TABLE_NAMES["rqvae"]), "epsilon"] == "0"
    assert toys[f"all {R10}"].tolist() == ["0.9000", "0.1000", "0.1000"]
    assert cold_table(cold_records()[-1:]).empty
    assert cold_table([]).empty


def test_tradeoff_table_means_errors_and_cost_over_seeds() -> None:
    frame = tradeoff_table(cold_records())
    rqvae, kmeans = TABLE_NAMES["rqvae"], TABLE_NAMES["rq-kmeans"]
    assert frame.index.names == ["ID table", "epsilon"]
    assert list(frame.index) == [(t, e) for t in (rqvae, kmeans) for e in (0.0, 0.1, 0.3)]
    lost = f"known {R10} lost"
    for e in (0.0, 0.1, 0.3):
        row = frame.loc[(rqvae, e)]
        # two seeds: the mean, and the SE of two values is half their distance
        assert row[f"new {R10}"] == pytest.approx((CURVE0[e][1] + CURVE1[e][1]) / 2)
        assert row[f"new {R10} sem"] == pytest.approx(abs(CURVE0[e][1] - CURVE1[e][1]) / 2)
        assert row[f"known {R10}"] == pytest.approx((CURVE0[e][2] + CURVE1[e][2]) / 2)
        # known recall lost against each seed's own epsilon 0, then averaged
        costs = [CURVE0[0.0][2] - CURVE0[e][2], CURVE1[0.0][2] - CURVE1[e][2]]
        assert row[lost] == pytest.approx(sum(costs) / 2)
        assert row[f"{lost} sem"] == pytest.approx(abs(costs[0] - costs[1]) / 2)
        assert row["seeds"] == 2
        one = frame.loc[(kmeans, e)]  # one seed: its values, no standard error
        assert one[f"new {R10}"] == pytest.approx(CURVE_K[e][1])
        assert one[lost] == pytest.approx(CURVE_K[0.0][2] - CURVE_K[e][2])
        assert np.isnan(one[f"new {R10} sem"]) and one["seeds"] == 1
    assert frame.loc[(rqvae, 0.0), lost] == 0.0
    assert list(tradeoff_table(cold_records(), "toys").index) == [
        (rqvae, e) for e in (0.0, 0.1, 0.3)
    ]
    assert tradeoff_table([]).empty


# --- figures ----------------------------------------------------------------------------------
def test_measures_figure_one_series_per_table_in_each_panel() -> None:
    records = warm_records()
    fig = measures_figure(records)
    try:
        assert isinstance(fig, Figure) and len(fig.axes) == len(MEASURES) == 3
        tables = ("rqvae", "rq-kmeans", "random")
        for ax, (measure, label) in zip(fig.axes, MEASURES.items(), strict=True):
            assert ax.get_xlabel() == label
            assert len(ax.collections) == len(tables)  # one scatter per table
            for coll, table in zip(ax.collections, tables, strict=True):
                assert coll.get_label() == TABLE_NAMES[table]
                points = [(r["measures"][measure], r["test"][R10][0]) for r in records
                          if r["experiment"] == "warm" and r["dataset"] == "beauty"
                          and r["table"] == table]  # fmt: skip
                # every point is plotted (random IDs' NaN error masked, not dropped)
                offsets = np.ma.getdata(coll.get_offsets())
                np.testing.assert_allclose(offsets, np.array(points), rtol=1e-12)
        assert fig.axes[0].get_ylabel() == "test Recall@10"
        assert fig.axes[-1].get_legend() is not None
    finally:
        plt.close(fig)


def test_tradeoff_figure_one_line_per_table_means_over_seeds() -> None:
    fig = tradeoff_figure(cold_records())
    try:
        assert isinstance(fig, Figure) and len(fig.axes) == 1
        ax = fig.axes[0]
        lines = {line.get_label(): line for line in ax.get_lines()}
        names = [TABLE_NAMES["rqvae"], TABLE_NAMES["rq-kmeans"], "nearest text, new targets"]
        assert list(lines) == names  # a line per table, then nearest text's reference
        # rqvae, mean over its two seeds at each epsilon (0, 0.1, 0.3): x new, y known
        new = [(CURVE0[e][1] + CURVE1[e][1]) / 2 for e in (0.0, 0.1, 0.3)]
        known = [(CURVE0[e][2] + CURVE1[e][2]) / 2 for e in (0.0, 0.1, 0.3)]
        rqvae = lines[TABLE_NAMES["rqvae"]]
        assert list(rqvae.get_xdata()) == pytest.approx(new)
        assert list(rqvae.get_ydata()) == pytest.approx(known)
        kmeans = lines[TABLE_NAMES["rq-kmeans"]]
        assert list(kmeans.get_xdata()) == pytest.approx([v[1] for v in CURVE_K.values()])
        assert list(lines[names[2]].get_xdata()) == pytest.approx([0.4, 0.4])  # mean new recall
        assert [t.get_text() for t in ax.texts] == ["ε=0", "ε=0.1", "ε=0.3"] * 2
    finally:
        plt.close(fig)
    # without a nearest-text record: the table lines only
    fig = tradeoff_figure([r for r in cold_records() if r.get("model") != "nearest-text"])
    try:
        assert len(fig.axes) == 1
        assert [line.get_label() for line in fig.axes[0].get_lines()] == names[:2]
    finally:
        plt.close(fig)


def test_cold_pairs_differ_seed_by_seed_on_each_group() -> None:
    """B minus A in the admitted row (each seed's chosen epsilon), per group, over the seeds both
    tables ran; a collaborative table's ``cold-collab`` records pair with the ``cold`` ones."""
    collab = [dict(seq2seq("rqvae-collab", s, 0.1, c, (0.1, 0.0, 0.1)), experiment="cold-collab")
              for s, c in ((0, CURVE_K), (1, CURVE0))]  # fmt: skip
    frame = cold_pairs(cold_records() + collab, {"rqvae": "rqvae-collab"})
    assert list(frame.index) == [("rqvae", "rqvae-collab", g) for g in ("all", "new", "known")]
    # seed 0: rqvae admitted at 0.1 (CURVE0), collab at 0.1 (CURVE_K); seed 1: rqvae at 0.3
    # (CURVE1), collab at 0.1 (CURVE0)
    diffs = {"all": [0.21 - 0.11, 0.11 - 0.10], "new": [0.10 - 0.05, 0.05 - 0.20],
             "known": [0.24 - 0.115, 0.115 - 0.08]}  # fmt: skip
    for group, d in diffs.items():
        row = frame.loc[("rqvae", "rqvae-collab", group)]
        assert row[f"B - A {R10}"] == pytest.approx(np.mean(d))
        assert row["seed_sem"] == pytest.approx(np.std(d, ddof=1) / np.sqrt(2))
        assert row["seeds"] == 2
    assert frame.loc[("rqvae", "rqvae-collab", "new"), "verdict"] == "within noise"
    one = cold_pairs(cold_records() + collab, {"rq-kmeans": "rqvae-collab"})  # seed 0 only
    assert set(one["seeds"]) == {1} and set(one["verdict"]) == {"within noise"}
    assert cold_pairs(cold_records(), {"rqvae": "rqvae-collab"}).empty
