"""The one save format of every model (rqvae_lib.pretrained): a folder is written whole or not at
all, and loading refuses, naming the file, anything but the model that was saved."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
import torch

import rqvae_lib.pretrained as pretrained
from rqvae_lib.pretrained import (
    CONFIG_NAME,
    META_KEYS,
    WEIGHTS_NAME,
    check_state_dict,
    read_pretrained,
    write_pretrained,
)
from rqvae_lib.version import __version__

OPTIONS = {"width": 3, "name": "toy", "sizes": [1, 2]}


def _state() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    weight = torch.randn(3, 4, generator=g)
    return {"layer.weight": weight, "tied.weight": weight, "layer.bias": torch.zeros(3)}


def _write(directory: Path, **kwargs) -> Path:
    tables = {"tables": {"ids": torch.arange(5), "count": torch.tensor(7)}}
    return write_pretrained(directory, OPTIONS, _state(), "Toy", extra_tensors=tables, **kwargs)


def _read(directory: Path):
    return read_pretrained(directory, ["Toy"], list(OPTIONS), extra_names=["tables"])


def test_a_folder_round_trips_options_weights_and_tables(tmp_path: Path) -> None:
    folder = _write(tmp_path / "toy", extra_files={"README.md": "a toy\n"})
    assert sorted(p.name for p in folder.iterdir()) == [
        "README.md", CONFIG_NAME, WEIGHTS_NAME, "tables.safetensors"
    ]  # fmt: skip
    config = json.loads((folder / CONFIG_NAME).read_text())
    # Options flat at the top level beside the meta keys, as RqVae's config.json.
    assert {k: config[k] for k in OPTIONS} == OPTIONS
    assert config["class_name"] == "Toy" and config["library_version"] == __version__
    assert set(config) == set(OPTIONS) | set(META_KEYS) | {"tables_sha256"}
    files = _read(folder)
    assert files.config == config
    assert files.state.keys() == _state().keys()
    assert all(torch.equal(files.state[k], v) for k, v in _state().items())  # tied ones too
    assert files.extras["tables"]["ids"].equal(torch.arange(5))
    assert int(files.extras["tables"]["count"]) == 7


def test_an_existing_folder_is_replaced_only_when_asked(tmp_path: Path) -> None:
    folder = _write(tmp_path / "toy")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        _write(folder)
    write_pretrained(folder, {**OPTIONS, "width": 4}, _state(), "Toy", overwrite=True)
    assert json.loads((folder / CONFIG_NAME).read_text())["width"] == 4
    assert not (folder / "tables.safetensors").exists()  # replaced whole, nothing left over


def test_a_crash_while_writing_leaves_the_old_folder_intact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = _write(tmp_path / "toy")
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    calls = []

    def failing_save(tensors, filename, *args, **kwargs):  # the second file fails
        calls.append(filename)
        if len(calls) == 2:
            raise OSError("disk full")
        return save_file(tensors, filename, *args, **kwargs)

    save_file = pretrained.save_file
    monkeypatch.setattr(pretrained, "save_file", failing_save)
    with pytest.raises(OSError, match="disk full"):
        _write(folder, overwrite=True)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["toy"]  # no temporary folder left
    assert _read(folder).config["class_name"] == "Toy"


def test_reading_refuses_what_is_not_the_saved_model(tmp_path: Path) -> None:
    def fresh(name: str) -> Path:
        return _write(tmp_path / name)

    with pytest.raises(FileNotFoundError, match=r"config\.json not found.*Toy\.save_pretrained"):
        _read(tmp_path / "nothing")
    folder = fresh("no-table")
    (folder / "tables.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match=r"tables\.safetensors not found"):
        _read(folder)
    folder = fresh("bad-json")
    (folder / CONFIG_NAME).write_text("{not json")
    with pytest.raises(ValueError, match=r"config\.json is not valid JSON"):
        _read(folder)
    folder = fresh("other-class")
    with pytest.raises(ValueError, match=r"holds a Toy, not a Other; load it with Toy"):
        read_pretrained(folder, ["Other"], list(OPTIONS), extra_names=["tables"])

    def edit(name: str, change) -> Path:
        folder = fresh(name)
        config = json.loads((folder / CONFIG_NAME).read_text())
        change(config)
        (folder / CONFIG_NAME).write_text(json.dumps(config))
        return folder

    folder = edit("unknown", lambda c: c.update(depth=2))
    with pytest.raises(ValueError, match=r"unknown keys \['depth'\]"):
        _read(folder)
    folder = edit("missing", lambda c: c.pop("width"))
    with pytest.raises(ValueError, match=r"missing \['width'\]"):
        _read(folder)
    folder = edit("no-class", lambda c: c.pop("class_name"))
    with pytest.raises(ValueError, match=r"missing \['class_name'\]"):
        _read(folder)
    folder = fresh("changed-weights")
    pretrained.save_file({k: v.clone() + 1 for k, v in _state().items()}, folder / WEIGHTS_NAME)
    with pytest.raises(ValueError, match=r"model\.safetensors does not match config\.json"):
        _read(folder)
    folder = fresh("changed-table")
    pretrained.save_file({"ids": torch.arange(6)}, folder / "tables.safetensors")
    with pytest.raises(ValueError, match=r"tables\.safetensors does not match"):
        _read(folder)


def test_reserved_keys_and_state_mismatches_are_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="reserved"):
        write_pretrained(tmp_path / "x", {"class_name": "Toy"}, _state(), "Toy")
    expected = {"a": torch.zeros(2, 3), "b": torch.zeros(4), "c": torch.zeros(1)}
    saved = {"a": torch.zeros(3, 2), "b": torch.zeros(4), "d": torch.zeros(1)}
    with pytest.raises(ValueError) as err:
        check_state_dict(expected, saved, "weights.safetensors", "the config {x: 1}")
    message = str(err.value)
    assert message.startswith("weights.safetensors does not match the config {x: 1}")
    for part in ("missing c", "unexpected d", "a: saved shape (3, 2), model expects (2, 3)"):
        assert part in message
    check_state_dict(expected, dict(expected), "ok", "ok")  # a matching state passes


def test_the_module_depends_only_on_checks_io_and_version() -> None:
    """RqVae will use these helpers: importing the model (or the package) here would be a cycle."""
    tree = ast.parse(Path(pretrained.__file__).read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    imported |= {
        a.name for node in ast.walk(tree) if isinstance(node, ast.Import) for a in node.names
    }
    own = {m for m in imported if m and m.startswith("rqvae_lib")}
    assert own == {"rqvae_lib.checks", "rqvae_lib.io", "rqvae_lib.version"}


def test_nan_or_inf_weights_are_refused_on_save_and_on_load(tmp_path: Path) -> None:
    """A diverged model recommends one thing for everything: it is never written, nor read."""
    from safetensors.torch import save_file

    from rqvae_lib.io import sha256_file
    from rqvae_lib.retrieval import SASRec, SASRecConfig

    model = SASRec(SASRecConfig(num_items=6, d_model=8, num_heads=1, d_ff=8), list(range(6)))
    with torch.no_grad():
        model.item_emb.weight[2, 3] = float("nan")
    with pytest.raises(
        FloatingPointError, match=r"SASRec to save has non-finite values in item_emb"
    ):
        model.save_pretrained(tmp_path / "nan")
    assert not (tmp_path / "nan").exists()

    folder = _write(tmp_path / "toy")  # a good folder, then weights with an inf, re-checksummed
    bad = {k: v.clone() for k, v in _state().items()}
    bad["layer.bias"][1] = float("inf")
    save_file({k: v.contiguous() for k, v in bad.items() if k != "tied.weight"} | {
        "tied.weight": bad["tied.weight"].clone()}, str(folder / WEIGHTS_NAME))  # fmt: skip
    config = json.loads((folder / CONFIG_NAME).read_text())
    config["weights_sha256"] = sha256_file(folder / WEIGHTS_NAME)
    (folder / CONFIG_NAME).write_text(json.dumps(config))
    with pytest.raises(FloatingPointError, match=r"non-finite values in layer\.bias"):
        _read(folder)
