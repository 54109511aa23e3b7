"""The benchmark scripts: tiny smoke runs that print every column, the retrieval benchmark's
options against the declared budgets, and the GPU script's refusals."""

from __future__ import annotations

import json
import sys
from types import SimpleNamespace

import pytest

from rqvae_lib.config import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "benchmarks"))


@pytest.mark.slow
def test_quality_smoke(capsys: pytest.CaptureFixture[str]) -> None:
    import quality

    rows = quality.main(
        ["--datasets", "synthetic", "--items", "512", "--epochs", "1", "--batch-size", "256"]
    )
    out = capsys.readouterr().out
    assert "| " + " | ".join(quality.COLUMNS) + " |" in out
    names = [r["method"] for r in rows]
    assert len(names) == 5 and any("ResidualVQ" in n for n in names)
    assert all(0 <= r["_collision"] <= 1 and r["_err"] >= 0 for r in rows)


@pytest.mark.slow
def test_quality_sweep_smoke(capsys: pytest.CaptureFixture[str], tmp_path) -> None:
    import quality

    png, nmi_png, saved = tmp_path / "curve.png", tmp_path / "nmi.png", tmp_path / "rows.jsonl"
    args = ["--datasets", "synthetic", "--items", "256", "--epochs", "1", "--batch-size", "256"]
    sweep = ["--sweep", "recon_weight=1,4", "--sweep", "balance_rate=0,0.001"]
    rows = quality.main(
        [*args, *sweep, "--set", "lr_schedule=cosine", "--plot", str(png), "--json", str(saved)]
    )
    assert len(rows) == 8 and png.stat().st_size > 0
    assert "recon_weight=4, balance_rate=0.001" in capsys.readouterr().out
    # the saved rows re-plot without training
    again = quality.main(
        ["--datasets", "synthetic", "--from-json", str(saved), "--plot-nmi", str(nmi_png)]
    )
    assert [r["_nmi"] for r in again] == [r["_nmi"] for r in rows]
    assert nmi_png.stat().st_size > 0


@pytest.mark.slow
def test_speed_smoke(capsys: pytest.CaptureFixture[str]) -> None:
    import speed

    args = "--device cpu --inline --train-steps 2 --batch-size 256 --infer-items 2000"
    speed.main([*args.split(), "--infer-batch-size", "512", "--catalogues", "1000", "3000"])
    out = capsys.readouterr().out
    for column in ("train items/s", "infer items/s", "infer peak MiB", "ratio RqVae / peer"):
        assert column in out
    assert "GFLOP/s" in out and "| 3,000 |" in out


@pytest.mark.slow
def test_retrieval_smoke(
    capsys: pytest.CaptureFixture[str], tmp_path, data_root, beauty_items, monkeypatch
) -> None:
    """Every job on 150 users with the tiny model, from ID tables written here (no RQ-VAE)."""
    import json

    import retrieval
    import torch
    from safetensors.torch import save_file

    monkeypatch.setenv("RQVAE_DATA_ROOT", str(data_root))
    items = torch.as_tensor(sorted(beauty_items["item_id"])).long()
    g = torch.Generator().manual_seed(0)
    for source in ("rqvae", "rq-kmeans", "random"):  # small codebooks: collisions get suffixes
        ids = torch.randint(0, 16, (len(items), 3), generator=g)
        save_file(
            {"ids": ids, "item_ids": items}, str(tmp_path / f"ids-beauty-{source}.safetensors")
        )
    out = tmp_path / "out"
    threads = torch.get_num_threads()
    try:
        retrieval.main(
            ["--datasets", "beauty", "--preset", "tiny", "--max-users", "150", "--epochs",
             "1", "--sasrec-epochs", "1", "--ids-dir", str(tmp_path), "--device", "cpu",
             "--threads", "1", "--out", str(out), "--checkpoint-dir", str(tmp_path / "ckpt")]
        )  # fmt: skip
    finally:
        torch.set_num_threads(threads)
    saved = json.loads((out / "retrieval.json").read_text())
    assert str(tmp_path) not in json.dumps(saved)  # paths as display_path shows them
    assert ", 1 torch threads" in saved["machine"]  # the threads the run used, not the default
    assert saved["args"]["budget"] == "gpu" and saved["args"]["learning_rate"] == 1e-3
    records = saved["records"]
    assert [r.get("job") for r in records] == ["main", "ablation", "ablation", "ablation",
                                               None, None, None]  # fmt: skip
    assert {r["test"]["recall@10"][0] >= 0 for r in records} == {True}
    assert all(len(r["test"]) == 6 for r in records)  # R and N at 5, 10, 20 for every row
    assert "| beauty | most popular |" in capsys.readouterr().out
    # every trained model left a resumable training state, one folder per (dataset, job)
    states = sorted(
        p.relative_to(tmp_path / "ckpt").as_posix() for p in (tmp_path / "ckpt").rglob("*.pt")
    )
    assert states == [
        "beauty-ablation/random.train-state.pt", "beauty-ablation/rq-kmeans.train-state.pt",
        "beauty-ablation/rqvae.train-state.pt", "beauty-main/rqvae.train-state.pt",
        "beauty-sasrec/sasrec-bce.train-state.pt", "beauty-sasrec/sasrec-ce.train-state.pt",
    ]  # fmt: skip


def test_retrieval_defaults_are_the_declared_budgets() -> None:
    """Each option that a RetrievalBudget declares defaults to the named budget's value (GPU
    unless told), still overridable, and the training configs follow the budget's."""
    import dataclasses
    from dataclasses import replace

    import retrieval

    from rqvae_lib.retrieval.experiment import CPU_BUDGET, FAST_BUDGET, GPU_BUDGET

    assert retrieval.parse_args([]) == retrieval.parse_args(["--budget", "gpu"])
    for budget in (FAST_BUDGET, CPU_BUDGET, GPU_BUDGET):
        args = retrieval.parse_args(["--budget", budget.name])
        # every field a budget declares is an option of the same name, defaulting to its value
        fields = [f.name for f in dataclasses.fields(budget) if f.name != "name"]
        declared = {k: getattr(budget, k) for k in fields}
        declared["test_ks"] = list(budget.test_ks)
        assert {k: getattr(args, k) for k in declared} == declared, budget.name
        assert retrieval.seq2seq_config(args) == replace(
            budget.seq2seq_config(seed=args.seed), eval_batch_size=args.eval_batch_size
        )
        assert retrieval.sasrec_config(args) == replace(
            budget.sasrec_config(seed=args.seed), eval_batch_size=1024
        )
    args = retrieval.parse_args(
        ["--budget", "fast", "--max-users", "none", "--learning-rate", "2e-3", "--no-amp"]
    )
    assert (args.max_users, args.learning_rate, args.amp) == (None, 2e-3, False)
    assert args.warmup_steps == FAST_BUDGET.warmup_steps and args.preset == FAST_BUDGET.preset
    # the spellings that earlier records' commands use still parse to the same options
    old = retrieval.parse_args(["--budget-s", "215", "--max-epochs", "6", "--fast-kernels"])
    new = retrieval.parse_args(["--time-budget-s", "215", "--epochs", "6", "--no-deterministic"])
    assert old == new and (new.time_budget_s, new.epochs, new.deterministic) == (215.0, 6, False)


def test_gpu_session_script_parses_and_refuses_what_it_cannot_do(tmp_path) -> None:
    """benchmarks/gpu_session.sh: valid bash; it asks for OUT_DIR, keeps a used OUT_DIR apart,
    and stops on a machine without CUDA before it writes anything. The budget is the library's."""
    import os
    import subprocess

    script = REPO_ROOT / "benchmarks" / "gpu_session.sh"
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    text = script.read_text()
    assert (
        "--budget gpu" in text and "--time-budget-s" not in text and "--budget-s" not in text
    )  # no budget of its own

    def run(*args: str, **env: str) -> subprocess.CompletedProcess:
        env = {**os.environ, "PYTHON": sys.executable, **env}
        return subprocess.run(["bash", str(script), *args], capture_output=True, text=True, env=env)

    usage = run()
    assert usage.returncode == 2 and "usage: bash benchmarks/gpu_session.sh OUT_DIR" in usage.stderr
    assert "new or empty folder" in usage.stderr
    used = tmp_path / "used"
    used.mkdir()
    (used / "retrieval.json").write_text("{}")
    refused = run(str(used))
    assert refused.returncode == 2 and "already holds files" in refused.stderr
    out = tmp_path / "out"
    no_gpu = run(str(out), CUDA_VISIBLE_DEVICES="")
    assert no_gpu.returncode == 1 and "no CUDA GPU is visible" in no_gpu.stderr
    assert not out.exists()


def test_the_lean_loop_does_the_library_s_arithmetic(fixture_root, one_thread) -> None:
    """benchmarks/seq2seq_speed.py times two loops that must compute the same thing: one epoch
    of each from the same model gives the same loss and the same weights, exactly."""
    import seq2seq_speed
    import torch

    from rqvae_lib.retrieval.experiment import load_retrieval_data, seq2seq_model

    data = load_retrieval_data("tiny", fixture_root)
    items = torch.tensor(data.item_ids)
    ids = torch.randint(0, 4, (len(items), 2), generator=torch.Generator().manual_seed(0))
    cfg = seq2seq_speed.replace_config(0, "cpu")
    lean, library = (seq2seq_model(ids, items, "tiny", 0) for _ in range(2))
    lean_s, lean_loss = seq2seq_speed.lean_epoch(lean, data.samples.train, cfg, torch.device("cpu"))
    lib_s, lib_loss = seq2seq_speed.library_epoch(
        library, data.samples.train, seq2seq_speed._tiny_val(data), cfg
    )
    assert lean_loss == lib_loss and lean_s > 0 and lib_s > 0
    for (name, a), (_, b) in zip(
        lean.state_dict().items(), library.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name


def test_seeds_runs_its_units_in_order_and_skips_the_recorded_ones(tmp_path, monkeypatch) -> None:
    """benchmarks/seeds.py: Beauty warm, Beauty cold, Toys warm; a unit whose records are in the
    file is skipped, records of another budget do not count, and appends keep whole lines."""
    import seeds

    assert seeds.units(["warm", "cold"], ["beauty", "toys"], [0, 1]) == [
        ("warm", "beauty", 0), ("warm", "beauty", 1), ("cold", "beauty", 0),
        ("cold", "beauty", 1), ("warm", "toys", 0), ("warm", "toys", 1),
        ("cold", "toys", 0), ("cold", "toys", 1),
    ]  # fmt: skip
    out = tmp_path / "seeds.jsonl"
    seeds.append_records(out, [dict(experiment="warm", dataset="beauty", seed=0, budget="cpu")])
    seeds.append_records(out, [dict(experiment="cold", dataset="beauty", seed=0, budget="fast")])
    assert seeds.read_done(out, "cpu") == {("warm", "beauty", 0)}
    ran = []

    def fake_unit(experiment, dataset, seed, args):
        ran.append((experiment, dataset, seed))
        return [dict(experiment=experiment, dataset=dataset, seed=seed, budget=args.budget,
                     table="rqvae", test={"recall@10": [0.5, 0.1]})]  # fmt: skip

    monkeypatch.setattr(seeds, "run_unit", fake_unit)
    seeds.main(["--datasets", "beauty", "--seeds", "0", "1", "--out", str(out),
                "--checkpoint-dir", str(tmp_path / "ckpt")])  # fmt: skip
    assert ran == [("warm", "beauty", 1), ("cold", "beauty", 0), ("cold", "beauty", 1)]
    assert len(out.read_text().splitlines()) == 5
    assert seeds.read_done(out, "cpu") == {
        (e, "beauty", s) for e in ("warm", "cold") for s in (0, 1)
    }


def test_seeds_summary_prints_the_records_as_markdown(tmp_path) -> None:
    """``benchmarks/seeds.py --summary``: the warm table and its pairs per dataset, as markdown."""
    import seeds

    out = tmp_path / "seeds.jsonl"
    measures = {"perplexity": 2.0, "collision_rate": 0.0, "relative_error": 0.5}
    seeds.append_records(out, [
        dict(experiment="warm", dataset="beauty", seed=0, budget="cpu", table=table,
             measures=measures, test={"recall@10": [hits / 4, 0.1]}, test_ranks=ranks)
        for table, hits, ranks in (("rqvae", 2, [1, 3, 0, 0]), ("random", 1, [0, 12, 5, 0]))
    ])  # fmt: skip
    text = seeds.summary(out, "cpu")
    assert text.startswith("### beauty: ID tables downstream\n\n| table | recall@10 |")
    assert "| RQ-VAE, balanced last level | 0.5 |" in text and "| random IDs | 0.25 |" in text
    assert "| RQ-VAE, balanced last level | random IDs | 0.25 |" in text  # paired, one seed
    assert "new items" not in text and seeds.summary(out, "gpu") == ""


def test_seeds_runs_the_collaborative_table_when_asked(tmp_path, monkeypatch) -> None:
    """``--experiments collab``: the rqvae-collab table of each seed, with the sequences its
    SASRec vectors come from; ``--align-weight`` names its own units, table and ID folder; the
    summary reads its records with the warm comparison."""
    import seeds

    from rqvae_lib.retrieval import experiment, id_tables, seeded

    assert seeds.units(["warm", "cold"], ["beauty"], [0]) == [("warm", "beauty", 0),
                                                             ("cold", "beauty", 0)]  # fmt: skip
    assert seeds.units(["collab", "warm"], ["beauty", "toys"], [0])[-2:] == [
        ("collab", "beauty", 0), ("collab", "toys", 0),
    ]  # fmt: skip
    calls = []
    data = SimpleNamespace(sequences="the sequences")
    monkeypatch.setattr(experiment, "load_retrieval_data", lambda *a, **k: data)

    def fake_tables(split, tables, seed, directory=None, config=None, sequences=None):
        calls.append((split, list(tables), seed, directory, config, sequences))
        return {tables[0]: "table"}

    def fake_warm(data, tables, seed, budget, resume):
        (name,) = tables
        measures = {"perplexity": 2.0, "collision_rate": 0.0, "relative_error": 0.5}
        return [dict(table=name, measures=measures, test={"recall@10": [0.5, 0.1]},
                     test_ranks=[1, 3, 0, 0])]  # fmt: skip

    monkeypatch.setattr(id_tables, "seeded_id_tables", fake_tables)
    monkeypatch.setattr(seeded, "run_warm_seed", fake_warm)
    monkeypatch.setattr(seeds, "machine", lambda: "test machine")
    out = tmp_path / "collab.jsonl"
    common = ["--datasets", "beauty", "--seeds", "1", "--out", str(out), "--ids-dir",
              str(tmp_path / "ids"), "--checkpoint-dir", str(tmp_path / "ckpt")]  # fmt: skip
    seeds.main(["--experiments", "collab", *common])
    seeds.main(["--experiments", "collab", "--align-weight", "0.5", *common])
    seeds.main(["--experiments", "collab", "--align-weight", "0.5", *common])  # done: skipped
    seeds.main(["--experiments", "collab-kmeans", *common])
    assert [c[:3] for c in calls] == [("beauty", ["rqvae-collab"], 1)] * 2 + [
        ("beauty", ["rq-kmeans-collab"], 1)
    ]
    assert calls[2][3:] == (tmp_path / "ids", None, "the sequences")
    assert calls[0][3:] == (tmp_path / "ids", None, "the sequences")
    assert calls[1][3] == tmp_path / "ids" / "align-0.5"
    assert calls[1][4]["align_weight"] == 0.5 and calls[1][5] == "the sequences"
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["experiment"], r["table"]) for r in records] == [
        ("collab", "rqvae-collab"), ("collab@0.5", "rqvae-collab@0.5"),
        ("collab-kmeans", "rq-kmeans-collab"),
    ]  # fmt: skip
    text = seeds.summary(out, "cpu")
    assert "| RQ-VAE + collaborative, balanced last level | 0.5 |" in text
    assert "| RQ-VAE + collaborative (weight 0.5), balanced last level | 0.5 |" in text
    assert "| RQ-KMeans on text + collaborative, balanced last level | 0.5 |" in text


def test_seeds_runs_the_cold_start_of_the_collaborative_tables(tmp_path, monkeypatch) -> None:
    """``--experiments cold-collab``: the cold-start protocol on both collaborative tables, without
    the baselines (the ``cold`` unit of the seed has them); the cold table reads both units."""
    import seeds

    from rqvae_lib.course.seeds import cold_table
    from rqvae_lib.retrieval import seeded
    from rqvae_lib.retrieval.id_tables import COLLAB_TABLES

    assert seeds.units(["cold-collab", "cold"], ["beauty", "toys"], [0]) == [
        ("cold", "beauty", 0), ("cold", "toys", 0), ("cold-collab", "beauty", 0),
        ("cold-collab", "toys", 0),
    ]  # fmt: skip
    calls = []

    def fake_cold(dataset, seed, tables, budget, directory, checkpoint_dir, baselines):
        calls.append((dataset, seed, tuple(tables), baselines))
        curve = [{"epsilon": 0.0, "all": {"recall@10": [0.25, 0.1]}}]
        return [dict(model="seq2seq", table=t, test=curve[0], test_curve=curve, epsilon=0.0,
                     whole_catalogue=curve[0]) for t in tables]  # fmt: skip

    monkeypatch.setattr(seeded, "run_cold_seed", fake_cold)
    monkeypatch.setattr(seeds, "machine", lambda: "test machine")
    out = tmp_path / "collab.jsonl"
    seeds.main(["--experiments", "cold-collab", "--seeds", "2", "--out", str(out),
                "--checkpoint-dir", str(tmp_path / "ckpt")])  # fmt: skip
    assert calls == [("beauty", 2, COLLAB_TABLES, False)]  # Toys only with --toys-cold
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["experiment"], r["table"]) for r in records] == [
        ("cold-collab", t) for t in COLLAB_TABLES
    ]
    table = cold_table(records, "beauty")
    assert len(table) == 3 * len(COLLAB_TABLES)  # whole catalogue, known only, admitted
    assert set(table["all recall@10"]) == {"0.2500"}


def test_collab_agreement_runs_each_unit_once_and_summarises_the_changes(tmp_path, monkeypatch):
    """benchmarks/collab_agreement.py: a (dataset, seed) unit in --out is skipped, each unit's
    records are appended whole, and --summary prints the changes per dataset and measure."""
    import collab_agreement

    ran = []

    def fake_unit(dataset, seed):
        ran.append((dataset, seed))
        return [dict(dataset=dataset, seed=seed, table=t, depth=1, category=v, **{
            "training pairs lift": 1.0, "held-out pairs": v, "held-out pairs lift": 2.0 * v})
            for t, v in (("rqvae", 0.5 + seed / 100), ("rqvae-collab", 0.4))]  # fmt: skip

    monkeypatch.setattr(collab_agreement, "unit_records", fake_unit)
    monkeypatch.setattr(collab_agreement, "setup_env", lambda: None)
    out = tmp_path / "agreement.jsonl"
    args = ["--datasets", "beauty", "--seeds", "0", "1", "--out", str(out)]
    collab_agreement.main(args)
    collab_agreement.main(args)  # everything recorded: nothing runs
    assert ran == [("beauty", 0), ("beauty", 1)]
    assert len(out.read_text().splitlines()) == 4
    text = collab_agreement.summary(out)
    assert text.startswith("### beauty: category\n\n| content table | depth | seeds |")
    assert "| rqvae | 1 | 2 | 0.505 |" in text and "### beauty: held-out pairs lift" in text
    assert "toys" not in text
