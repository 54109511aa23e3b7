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
