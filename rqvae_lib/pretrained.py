"""One format for every saved model: ``config.json`` beside ``model.safetensors``, checked on load.

A model folder holds its options flat in ``config.json`` with three meta keys (``class_name``,
``library_version``, ``weights_sha256``), its weights in ``model.safetensors``, and optionally
named tables of tensors (``<name>.safetensors``, e.g. a tokenizer's), each with its sha256 in the
config as ``<name>_sha256``. :func:`write_pretrained` writes the folder whole or not at all;
:func:`read_pretrained` refuses, naming the file and the fix, anything that would load a model
other than the one saved: missing files, invalid JSON, another class, unknown or missing options,
files that do not match their checksums, weights that hold NaN or inf. :func:`check_state_dict` then compares the weights with
the model built from the config.

Every model class of the library saves and loads through these helpers, so the guarantees are
written once. This module imports nothing else of the library but :mod:`rqvae_lib.checks`,
:mod:`rqvae_lib.io` and :mod:`rqvae_lib.version`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor

from rqvae_lib.checks import check_finite_state
from rqvae_lib.io import atomic_dir, sha256_file
from rqvae_lib.version import __version__

CONFIG_NAME, WEIGHTS_NAME = "config.json", "model.safetensors"
#: Keys of config.json that are not constructor options.
META_KEYS = ("class_name", "library_version", "weights_sha256")


class PretrainedFiles(NamedTuple):
    """What :func:`read_pretrained` found, checked: the config, the weights, the extra tables."""

    config: dict[str, Any]  # options and meta keys, as in config.json
    state: dict[str, Tensor]  # model.safetensors
    extras: dict[str, dict[str, Tensor]]  # name -> tensors of <name>.safetensors


def extra_file_name(name: str) -> str:
    """File of the extra table ``name``: ``<name>.safetensors``."""
    return f"{name}.safetensors"


def extra_sha_key(name: str) -> str:
    """Config key that records the sha256 of the extra table ``name``."""
    return f"{name}_sha256"


def _tensors_to_save(tensors: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """CPU copies: safetensors refuses tensors that share memory (tied embeddings)."""
    return {k: v.detach().to("cpu", copy=True).contiguous() for k, v in tensors.items()}


def write_pretrained(
    directory: str | os.PathLike,
    config: Mapping[str, Any],
    state: Mapping[str, Tensor],
    class_name: str,
    overwrite: bool = False,
    extra_tensors: Mapping[str, Mapping[str, Tensor]] | None = None,
    extra_files: Mapping[str, str] | None = None,
) -> Path:
    """Write a model folder: ``config.json``, ``model.safetensors`` and the extra tables.

    ``config`` holds the model's options (JSON values), stored flat beside the meta keys;
    ``extra_tensors`` maps a name to tensors saved as ``<name>.safetensors``; ``extra_files``
    maps a file name to text written as is (e.g. a README). The folder is filled in a temporary
    sibling that replaces ``directory`` whole (:func:`rqvae_lib.io.atomic_dir`), so a crash never
    leaves new weights beside an old config; an existing non-empty folder is replaced only with
    ``overwrite=True``. Returns ``directory``.
    """
    extras = dict(extra_tensors or {})
    reserved = set(META_KEYS) | {extra_sha_key(name) for name in extras}
    clash = sorted(reserved & set(config))
    if clash:
        raise ValueError(f"model options may not use the reserved config keys {clash}")
    for name in extras:
        if extra_file_name(name) in (CONFIG_NAME, WEIGHTS_NAME):
            raise ValueError(f"extra table name {name!r} would overwrite {extra_file_name(name)}")
    check_finite_state(state, f"the {class_name} to save")  # before anything is written
    saved = _tensors_to_save(state)
    with atomic_dir(directory, overwrite=overwrite) as tmp:
        save_file(saved, str(tmp / WEIGHTS_NAME))
        meta: dict[str, Any] = {
            "class_name": class_name,
            "library_version": __version__,
            "weights_sha256": sha256_file(tmp / WEIGHTS_NAME),
        }
        for name, tensors in extras.items():
            save_file(_tensors_to_save(tensors), str(tmp / extra_file_name(name)))
            meta[extra_sha_key(name)] = sha256_file(tmp / extra_file_name(name))
        text = json.dumps({**config, **meta}, indent=2, sort_keys=True) + "\n"
        (tmp / CONFIG_NAME).write_text(text, encoding="utf-8")
        for name, body in (extra_files or {}).items():
            (tmp / name).write_text(body, encoding="utf-8")
    return Path(directory)


def read_pretrained(
    directory: str | os.PathLike,
    expected_class_names: Collection[str],
    option_names: Collection[str],
    extra_names: Collection[str] = (),
    map_location: str | torch.device = "cpu",
    added_options: Mapping[str, Any] | None = None,
) -> PretrainedFiles:
    """Read and check a folder written by :func:`write_pretrained`.

    ``expected_class_names``: the classes the caller can build (the first names the writer in
    messages); ``option_names``: every key the config must hold besides the meta keys;
    ``extra_names``: the extra tables that must be there; ``added_options``: options added to
    the class after some models were saved, each with the value that behaves as those models
    were trained: a config without one gets that value (in the returned config). Raises ``FileNotFoundError`` for a
    missing file and ``ValueError`` for invalid JSON, another class, missing or unknown keys,
    or a file whose sha256 is not the recorded one, each naming the file and what to do.
    """
    directory = Path(directory)
    expected = list(expected_class_names)
    writer = " or ".join(f"{name}.save_pretrained()" for name in expected)
    files = [CONFIG_NAME, WEIGHTS_NAME, *(extra_file_name(n) for n in extra_names)]

    def require(name: str) -> None:
        if not (directory / name).is_file():
            raise FileNotFoundError(
                f"{directory / name} not found; expected a folder written by {writer} "
                f"(with {', '.join(files)})"
            )

    require(CONFIG_NAME)  # first: a folder of another class is named as such, not by its files
    config_path = directory / CONFIG_NAME
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(
            f"{config_path} is not valid JSON ({err}); save the model again with {writer}"
        ) from err
    if not isinstance(config, dict):
        raise ValueError(f"{config_path} holds a {type(config).__name__}, not a JSON object")
    found = config.get("class_name")
    if found is not None and found not in expected:
        raise ValueError(
            f"{config_path} holds a {found}, not a {' or '.join(expected)}; load it with "
            f"{found}.from_pretrained()"
        )
    for name in files[1:]:
        require(name)
    config = {**(added_options or {}), **config}  # older saves predate these options
    required = set(option_names) | set(META_KEYS) | {extra_sha_key(n) for n in extra_names}
    missing, unknown = sorted(required - set(config)), sorted(set(config) - required)
    if missing or unknown:
        problems = ([f"missing {missing}"] if missing else []) + (
            [f"unknown keys {unknown}"] if unknown else []
        )
        raise ValueError(
            f"{config_path} does not describe a {' or '.join(expected)} of this library: "
            + "; ".join(problems)
            + ". Every option is stored so that a model loads as it was trained; re-save it "
            f"with {writer} from the library version that wrote it "
            f"(config says {config.get('library_version', 'unknown')}, this is {__version__})"
        )
    checked = [(WEIGHTS_NAME, "weights_sha256")]
    checked += [(extra_file_name(n), extra_sha_key(n)) for n in extra_names]
    for name, key in checked:
        actual = sha256_file(directory / name)
        if actual != config[key]:
            raise ValueError(
                f"{directory / name} does not match {CONFIG_NAME}: its sha256 is {actual}, the "
                f"config records {config[key]}. The files come from different saves (or one was "
                f"changed or truncated); save the model again with {writer}"
            )
    state = _load(directory / WEIGHTS_NAME, map_location)
    check_finite_state(state, f"the model in {directory}")
    extras = {n: _load(directory / extra_file_name(n), "cpu") for n in extra_names}
    return PretrainedFiles(config, state, extras)


def _load(path: Path, device: str | torch.device) -> dict[str, Tensor]:
    try:
        return load_file(str(path), device=str(device))
    except SafetensorError as err:
        raise ValueError(f"{path} is not a readable safetensors file ({err})") from err


def check_state_dict(
    expected: Mapping[str, Tensor], state: Mapping[str, Tensor], source: str, described: str
) -> None:
    """Refuse ``state`` unless it has exactly ``expected``'s keys and shapes.

    ``source`` names where ``state`` comes from, ``described`` the model it should fit (e.g. its
    config); the error lists up to six missing, unexpected or mis-shaped tensors.
    """
    problems = [f"missing {k}" for k in expected if k not in state]
    problems += [f"unexpected {k}" for k in state if k not in expected]
    problems += [
        f"{k}: saved shape {tuple(state[k].shape)}, model expects {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    if problems:
        raise ValueError(
            f"{source} does not match {described}: "
            + "; ".join(problems[:6])
            + (f" (and {len(problems) - 6} more)" if len(problems) > 6 else "")
        )
