"""Project plumbing: the conda environment matches pyproject, CI runs the README's test command,
and the small semantic-ID helpers and the RQ-KMeans baseline behave."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import torch
import yaml

from rqvae_lib import add_collision_suffix, codebook_stats, ids_to_tokens, prefix_groups
from rqvae_lib.baselines import rq_kmeans
from rqvae_lib.data.synthetic import make_synthetic_catalogue

ROOT = Path(__file__).resolve().parent.parent


def test_environment_yml_installs_the_package_with_the_same_extras():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert env["name"] == "rqvae"
    deps = env["dependencies"]
    python = next(d for d in deps if isinstance(d, str) and d.startswith("python"))
    assert python == "python=3.11" and project["requires-python"] == ">=3.11"
    assert "pip" in deps
    pip = next(d["pip"] for d in deps if isinstance(d, dict))
    extras = {e for line in pip for e in re.findall(r"\.\[([\w,]+)\]", line)[0].split(",")}
    assert extras == set(project["optional-dependencies"]), (
        "environment.yml must install every extra"
    )
    assert any(line.startswith("-e .") for line in pip), "environment.yml must install this package"


def test_ci_runs_the_readme_test_command_after_pinning_torch():
    readme, ci = (ROOT / "README.md").read_text(), (ROOT / ".ci/run").read_text()
    blocks = re.findall(r"```(?:bash|sh)?\n(.*?)```", readme, flags=re.S)
    commands = {line.strip() for block in blocks for line in block.splitlines()}
    assert "make test" in commands and "make tutorial" in commands
    lines = [line.strip() for line in ci.splitlines()]
    assert "make test" in lines
    assert lines.index("make test") > next(
        i for i, line in enumerate(lines) if "torch==2.13.0" in line
    )


def test_collision_suffix_tokens_and_prefix_groups():
    ids = torch.tensor([[1, 2, 3], [1, 2, 3], [1, 4, 0], [1, 2, 3]])
    suffixed = add_collision_suffix(ids)
    assert suffixed[:, 3].tolist() == [0, 1, 0, 2]
    assert codebook_stats(suffixed, 256)["collision_rate"] == 0.0
    assert ids_to_tokens(ids[:1]) == ["<a_1><b_2><c_3>"]
    assert prefix_groups(ids, 1) == {(1,): [0, 1, 2, 3]}
    assert prefix_groups(ids, 2) == {(1, 2): [0, 1, 3], (1, 4): [2]}


def test_rq_kmeans_reduces_error_level_by_level():
    cat = make_synthetic_catalogue(num_items=600, dim=16, branching=(4, 4), seed=0)
    errors = []
    for levels in (1, 2, 3):
        ids, recon = rq_kmeans(cat.features, num_levels=levels, num_embeddings=8)
        assert ids.shape == (600, levels) and ids.dtype == torch.int64
        errors.append(float(((cat.features - recon) ** 2).sum() / (cat.features**2).sum()))
    assert errors[0] > errors[1] > errors[2]
    # level 1 with 4 true top clusters and 8 codes: each code sits inside one top-level cluster
    ids, _ = rq_kmeans(cat.features, num_levels=1, num_embeddings=8)
    for code in ids[:, 0].unique():
        assert len(set(cat.labels[(ids[:, 0] == code).numpy(), 0])) == 1


def test_display_path_never_shows_this_machines_layout(tmp_path, monkeypatch) -> None:
    from rqvae_lib.config import REPO_ROOT, display_path

    assert display_path(REPO_ROOT / "artifacts" / "rqvae-beauty") == "artifacts/rqvae-beauty"
    monkeypatch.setenv("RQVAE_DATA_ROOT", str(tmp_path))
    assert display_path(tmp_path) == "$RQVAE_DATA_ROOT"
    assert display_path(tmp_path / "beauty") == "$RQVAE_DATA_ROOT/beauty"
    monkeypatch.delenv("RQVAE_DATA_ROOT")
    assert display_path(tmp_path / "beauty") == ".../beauty"
