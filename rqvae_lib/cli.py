"""The command line: ``python -m rqvae_lib fit|validate|test|predict``.

``fit``, ``validate`` and ``test`` are LightningCLI's, driven by a YAML config in ``configs/``;
any option can be overridden (``--trainer.max_epochs 5``). ``predict`` writes every item's
semantic ID to a CSV or Parquet file, from a ``.ckpt`` file or a ``save_pretrained`` folder.
"""

from __future__ import annotations

import argparse
import csv
import inspect
import sys
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from jsonargparse import ActionConfigFile, ArgumentParser, DefaultHelpFormatter
from pytorch_lightning import LightningDataModule
from pytorch_lightning.cli import LightningCLI
from pytorch_lightning.utilities.exceptions import MisconfigurationException
from torch import Tensor

from . import data as _data  # noqa: F401  (registers the data modules: --data SyntheticDataModule)
from .config import resolve_device
from .model import RqVae, _atomic_write

PROG = "python -m rqvae_lib"


class _HelpFormatter(argparse.RawDescriptionHelpFormatter, DefaultHelpFormatter):
    """jsonargparse's help (every option with its default), keeping the description's lines."""


#: A short usage line, so that an error stays a few lines long; ``--help`` lists every option.
USAGE = "%(prog)s [-h] [-c CONFIG] [--trainer.* ...] [--model.* ...] [--data ...] [--ckpt_path ...]"

DESCRIPTION = f"""Train and use an RQ-VAE that turns item embeddings into semantic IDs.

fit, validate and test are LightningCLI's; predict writes every item's semantic ID to a file.
  {PROG} fit --config configs/synthetic.yaml
  {PROG} fit --config configs/beauty.yaml --trainer.max_epochs 5 --model.num_levels 4
  {PROG} fit --config configs/beauty.yaml --ckpt_path last
  {PROG} predict --config configs/beauty.yaml --checkpoint CKPT --output ids.csv
  {PROG} SUBCOMMAND --help    (every option, with its default)
"""


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: unreadable, truncated, or from another config."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """A checkpoint path that does not exist."""


# --- reading checkpoints, with errors that name the file and the problem ----------------------
def read_checkpoint(
    path: str | Path, model: RqVae | None = None, weights_only: bool | None = None
) -> dict[str, Any]:
    """Load a Lightning checkpoint on the CPU; with ``model``, also require that it fits ``model``.

    ``weights_only`` is passed to ``torch.load`` (``None``: torch's default, as Lightning does).
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointNotFoundError(f"checkpoint {path} does not exist")
    if path.is_dir():
        raise CheckpointError(f"checkpoint {path} is a folder; expected a Lightning .ckpt file")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=weights_only)
    except Exception as err:  # torch raises RuntimeError, EOFError, UnpicklingError, ...
        reason = (str(err).strip() or type(err).__name__).splitlines()[0]
        if "weights only" in reason.lower():
            problem = "it holds objects that weights_only loading refuses; if you trust the file, "
            problem += "pass --weights_only false"
        else:
            problem = "it is truncated, corrupt or not a checkpoint"
        raise CheckpointError(
            f"checkpoint {path} ({path.stat().st_size} bytes) cannot be read: {problem} ({reason})"
        ) from err
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise CheckpointError(f"checkpoint {path} has no state_dict; it is not an RqVae checkpoint")
    if model is not None:
        check_same_config(path, checkpoint.get("hyper_parameters", {}), dict(model.hparams))
        _check_weights(model, checkpoint["state_dict"], path)
    return checkpoint


def check_same_config(path: str | Path, saved: dict[str, Any], expected: dict[str, Any]) -> None:
    """Raise ``CheckpointError`` listing every model option where ``saved`` differs from ``expected``."""

    def norm(value: Any) -> Any:
        return list(value) if isinstance(value, list | tuple) else value

    diffs = [
        f"{key}={saved[key]!r} there, {expected[key]!r} here"
        for key in sorted(expected)
        if key in saved and norm(saved[key]) != norm(expected[key])
    ]
    if diffs:
        raise CheckpointError(
            f"checkpoint {path} was written with another model config: {'; '.join(diffs)}. Use the "
            "config that wrote it (config.yaml next to its logs), or drop the checkpoint to start anew"
        )


def _check_weights(model: RqVae, state: dict[str, Tensor], path: Path) -> None:
    try:
        model._check_state_dict(state, source=f"checkpoint {path}")
    except ValueError as err:
        raise CheckpointError(str(err)) from err


def load_model(path: str | Path, map_location: str | torch.device = "cpu") -> RqVae:
    """Load an RqVae in eval mode from a Lightning ``.ckpt`` or a ``save_pretrained`` folder.

    Raises ``CheckpointNotFoundError`` (a ``FileNotFoundError``) or ``CheckpointError`` (a
    ``ValueError``) naming the file and the problem: missing, truncated, or mismatched weights.
    """
    path = Path(path)
    if path.is_dir():
        try:
            return RqVae.from_pretrained(path, map_location)
        except FileNotFoundError as err:
            raise CheckpointNotFoundError(str(err)) from err
        except Exception as err:  # a bad config.json, a truncated model.safetensors, a mismatch
            raise CheckpointError(f"cannot load the model saved in {path}: {err}") from err
    checkpoint = read_checkpoint(path)
    known = set(inspect.signature(RqVae.__init__).parameters) - {"self"}
    model = RqVae(**{k: v for k, v in checkpoint.get("hyper_parameters", {}).items() if k in known})
    _check_weights(model, checkpoint["state_dict"], path)
    model.load_state_dict(checkpoint["state_dict"])
    return model.to(map_location).eval()


# --- fit / validate / test: LightningCLI --------------------------------------------------------
class RqVaeCLI(LightningCLI):
    """LightningCLI for RqVae that checks ``--ckpt_path`` before anything runs or is written.

    Where LightningCLI would quietly rebuild the model from a checkpoint's hyperparameters, a
    checkpoint from another config is an error here, and so is a missing or truncated one.
    """

    @staticmethod
    def subcommands() -> dict[str, set[str]]:
        commands = dict(LightningCLI.subcommands())
        commands.pop("predict")  # ours writes semantic IDs to a file: see predict_main
        return commands

    def _parse_ckpt_path(self) -> None:
        """Skip LightningCLI's early load of ``ckpt_path``: ``_check_ckpt_path`` checks it instead."""

    def instantiate_classes(self) -> None:
        """Build model, data and trainer; a bad value is a short usage error, not a traceback."""
        try:
            super().instantiate_classes()
        except (ValueError, MisconfigurationException) as err:
            self._parser(self.subcommand).error(f"{type(err).__name__}: {err}")

    def before_fit(self) -> None:
        self._check_ckpt_path()

    def before_validate(self) -> None:
        self._check_ckpt_path()

    def before_test(self) -> None:
        self._check_ckpt_path()

    def _check_ckpt_path(self) -> None:
        """Resolve ``last`` to a file and make sure the checkpoint exists, loads and fits the model."""
        config = self.config_init[self.subcommand]
        path = config.get("ckpt_path")
        if path == "last":
            path = self._last_checkpoint() or path
        if path is None or path in ("last", "best", "hpc", "registry"):
            return  # nothing to check, or Lightning's own rules (it warns when there is no "last")
        read_checkpoint(path, self.model, config.get("weights_only"))
        config["ckpt_path"] = str(path)

    def _last_checkpoint(self) -> Path | None:
        """The newest ``last*.ckpt`` in a ModelCheckpoint's folder: what Lightning resumes from."""
        found = [
            p
            for cb in self.trainer.checkpoint_callbacks
            if getattr(cb, "dirpath", None) and Path(cb.dirpath).is_dir()
            for p in Path(cb.dirpath).glob("*.ckpt")
            if "last" in p.name
        ]
        return max(found, key=lambda p: p.stat().st_mtime) if found else None


def lightning_cli(args: Sequence[str] | None = None, run: bool = True) -> RqVaeCLI:
    """Run ``fit``, ``validate`` or ``test`` as LightningCLI does; ``args=None`` reads ``sys.argv``."""
    return RqVaeCLI(
        RqVae,
        LightningDataModule,
        subclass_mode_data=True,
        parser_kwargs={
            "prog": PROG,
            "description": DESCRIPTION,
            "formatter_class": _HelpFormatter,
            **{command: {"usage": USAGE} for command in RqVaeCLI.subcommands()},
        },
        args=None if args is None else list(args),
        run=run,
    )


# --- predict: semantic IDs to CSV or Parquet ----------------------------------------------------
@torch.no_grad()
def iter_semantic_ids(
    model: RqVae,
    dataloader: Iterable,
    device: str | torch.device | None = None,
    collision_suffix: bool = False,
) -> Iterator[Tensor]:
    """Yield int64 blocks ``(batch, 1 + num_levels [+ 1])``: item id, semantic ID, [suffix].

    Computes the IDs as ``batch_inference`` does, batch by batch. Without an ``item_id`` in the
    batch, items are numbered by position. The suffix counts earlier items with the same ID,
    exactly as ``add_collision_suffix`` does over the whole catalogue.
    """
    model.eval().to(resolve_device(device))
    seen: dict[tuple[int, ...], int] = defaultdict(int)
    start = 0
    for batch in dataloader:
        features = batch["features"] if isinstance(batch, dict) else batch
        ids = model.generate_semantic_ids(features).cpu()
        n = ids.shape[0]
        item_ids = batch.get("item_id") if isinstance(batch, dict) else None
        item_ids = torch.arange(start, start + n) if item_ids is None else item_ids
        columns = [torch.as_tensor(item_ids).long().reshape(n, 1), ids]
        if collision_suffix:
            suffix = []
            for row in map(tuple, ids.tolist()):
                suffix.append(seen[row])
                seen[row] += 1
            columns.append(torch.tensor(suffix, dtype=torch.long).reshape(n, 1))
        start += n
        yield torch.cat(columns, dim=1)


def write_semantic_ids(
    model: RqVae,
    dataloader: Iterable,
    output: str | Path,
    collision_suffix: bool = False,
    device: str | torch.device | None = None,
) -> int:
    """Write ``item_id, sid_0 .. sid_{L-1}[, suffix]`` for every item to a .csv or .parquet file.

    Streams batch by batch into a temporary file that replaces ``output`` only once complete,
    so a failed run leaves an older file as it was. Returns the number of items written.
    """
    output = Path(output)
    if output.suffix.lower() not in (".csv", ".parquet"):
        raise ValueError(f"--output {output} must end in .csv or .parquet")
    levels = model.quantizer.num_levels
    names = ["item_id", *(f"sid_{i}" for i in range(levels))] + ["suffix"] * collision_suffix
    blocks = iter_semantic_ids(model, dataloader, device, collision_suffix)
    write = _write_parquet if output.suffix.lower() == ".parquet" else _write_csv
    output.parent.mkdir(parents=True, exist_ok=True)
    count = [0]
    _atomic_write(output, lambda tmp: count.__setitem__(0, write(tmp, names, blocks)))
    return count[0]


def _write_csv(path: str, names: list[str], blocks: Iterable[Tensor]) -> int:
    count = 0
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(names)
        for block in blocks:
            writer.writerows(block.tolist())
            count += block.shape[0]
    return count


def _write_parquet(path: str, names: list[str], blocks: Iterable[Tensor]) -> int:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as err:
        raise ImportError("writing .parquet needs pyarrow: pip install pyarrow") from err
    schema = pa.schema([(name, pa.int64()) for name in names])
    count = 0
    with pq.ParquetWriter(path, schema) as writer:
        for block in blocks:
            writer.write_table(pa.Table.from_arrays(list(block.numpy().T), schema=schema))
            count += block.shape[0]
    return count


def predict_parser() -> ArgumentParser:
    """The ``predict`` subcommand's options, parsed by jsonargparse like LightningCLI's."""
    parser = ArgumentParser(
        prog=f"{PROG} predict",
        description="Write every item's semantic ID to a CSV or Parquet file, keyed by item id.",
        epilog=(
            "A training config works as --config: its data section says which items to predict, "
            "its model section must match the checkpoint, and its other sections are ignored."
        ),
    )
    parser.add_argument("-c", "--config", action=ActionConfigFile, help="A YAML config file.")
    parser.add_argument(
        "--checkpoint",
        type=str,
        required=True,
        help="A Lightning .ckpt file or a folder written by RqVae.save_pretrained().",
    )
    parser.add_argument(
        "--output",
        type=str,
        required=True,
        help="Where to write the IDs: a .csv or .parquet file (replaced atomically).",
    )
    parser.add_argument(
        "--collision_suffix",
        type=bool,
        nargs="?",
        const=True,
        default=False,
        help="Add TIGER's suffix column (0, 1, ... among items sharing an ID) so IDs are unique.",
    )
    parser.add_argument(
        "--device",
        type=str | None,
        default=None,
        help="cpu, cuda, cuda:1, ...; null picks CUDA when available.",
    )
    parser.add_subclass_arguments(
        LightningDataModule,
        "data",
        required=False,
        help="The items: a data module whose predict_dataloader() yields them all, e.g. "
        "ItemDataModule (Amazon) or SyntheticDataModule.",
    )
    parser.add_argument("--model", type=dict | None, default=None, help=argparse.SUPPRESS)
    for key in ("trainer", "seed_everything", "ckpt_path", "optimizer", "lr_scheduler"):
        parser.add_argument(f"--{key}", type=Any, default=None, help=argparse.SUPPRESS)
    return parser


def predict_main(args: Sequence[str] | None = None) -> int:
    """``predict``: load the checkpoint, stream the data module's items, write their IDs."""
    parser = predict_parser()
    config = parser.parse_args(args)
    if config.get("data") is None:
        parser.error(
            "give the items to predict: --config CONFIG (with a data section) or --data CLASS"
        )
    try:
        model = load_model(config.checkpoint)
        if config.model:
            defaults = {
                k: p.default
                for k, p in inspect.signature(RqVae.__init__).parameters.items()
                if p.default is not inspect.Parameter.empty
            }
            check_same_config(config.checkpoint, dict(model.hparams), {**defaults, **config.model})
        datamodule = parser.instantiate_classes(config).data
        datamodule.prepare_data()
        datamodule.setup("predict")
        n = write_semantic_ids(
            model,
            datamodule.predict_dataloader(),
            config.output,
            config.collision_suffix,
            config.device,
        )
    except (OSError, ValueError, ImportError, RuntimeError) as err:
        print(f"{PROG} predict: error: {err}", file=sys.stderr)
        return 1
    print(f"wrote the semantic IDs of {n} items to {config.output}")
    return 0


def main(args: Sequence[str] | None = None) -> None:
    """Entry point of ``python -m rqvae_lib`` and the ``rqvae`` script."""
    argv = sys.argv[1:] if args is None else list(args)
    if argv[:1] == ["predict"]:
        sys.exit(predict_main(argv[1:]))
    try:
        lightning_cli(args)
    except CheckpointError as err:
        sys.exit(f"{PROG}: error: {err}")
