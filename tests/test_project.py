"""Project plumbing: the conda environment matches pyproject and CI runs the README's test command."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

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
