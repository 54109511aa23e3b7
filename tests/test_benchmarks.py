"""Smoke runs of the benchmark scripts at a tiny size: they run and print every column."""

from __future__ import annotations

import sys

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
            ["--datasets", "beauty", "--preset", "tiny", "--max-users", "150", "--max-epochs",
             "1", "--sasrec-budget-s", "30", "--ids-dir", str(tmp_path), "--device", "cpu",
             "--threads", "1", "--out", str(out)]
        )  # fmt: skip
    finally:
        torch.set_num_threads(threads)
    saved = json.loads((out / "retrieval.json").read_text())
    assert str(tmp_path) not in json.dumps(saved)  # paths as display_path shows them
    assert ", 1 torch threads" in saved["machine"]  # the threads the run used, not the default
    records = saved["records"]
    assert [r.get("job") for r in records] == ["main", "ablation", "ablation", "ablation",
                                               None, None, None]  # fmt: skip
    assert {r["test"]["recall@10"][0] >= 0 for r in records} == {True}
    assert all(len(r["test"]) == 6 for r in records)  # R and N at 5, 10, 20 for every row
    assert "| beauty | most popular |" in capsys.readouterr().out


def test_gpu_session_script_parses_and_refuses_what_it_cannot_do(tmp_path) -> None:
    """benchmarks/gpu_session.sh: valid bash, a usage line, and no device run without $OUT.

    Its whole run is smoke-tested by hand on a CPU (GPU_SESSION_SMOKE=1, see its header): minutes.
    """
    import os
    import subprocess

    script = REPO_ROOT / "benchmarks" / "gpu_session.sh"
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    usage = subprocess.run(["bash", str(script)], capture_output=True, text=True)
    assert usage.returncode == 2 and "prepare | run | collect" in usage.stderr
    env = {k: v for k, v in os.environ.items() if k != "OUT"}
    no_out = subprocess.run(["bash", str(script), "run"], capture_output=True, text=True, env=env)
    assert no_out.returncode != 0 and "OUT must name the folder" in no_out.stderr
    no_args = subprocess.run(["bash", str(script), "collect"], capture_output=True, text=True)
    assert no_args.returncode != 0 and "files_at" in no_args.stderr
