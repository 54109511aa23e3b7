"""The command line: ``python -m rqvae_lib fit|validate|test|predict``.

``fit``, ``validate`` and ``test`` are LightningCLI's, driven by a YAML config in ``configs/``;
any option can be overridden (``--trainer.max_epochs 5``). ``predict`` writes every item's
semantic ID to a CSV or Parquet file, from a ``.ckpt`` file or a ``save_pretrained`` folder.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from jsonargparse import ActionConfigFile, ArgumentParser, DefaultHelpFormatter
from pytorch_lightning import LightningDataModule
from pytorch_lightning.cli import LightningCLI
from pytorch_lightning.utilities.exceptions import MisconfigurationException

from . import data as _data  # noqa: F401  (registers the data modules: --data SyntheticDataModule)
from .checkpoints import (  # noqa: F401  (re-exported: the command line's errors)
    CheckpointError,
    CheckpointNotFoundError,
    read_checkpoint,
)
from .config import resolve_device
from .model import RqVae, load_model
from .semantic_ids import write_semantic_ids

PROG = "python -m rqvae_lib"


class _HelpFormatter(argparse.RawDescriptionHelpFormatter, DefaultHelpFormatter):
    """jsonargparse's help (every option with its default), keeping the description's lines."""


#: A short usage line, so that an error stays a few lines long; ``--help`` lists every option.
USAGE = "%(prog)s [-h] [-c CONFIG] [--trainer.* ...] [--model.* ...] [--data ...] [--ckpt_path ...]"

DESCRIPTION = f"""Train and use an RQ-VAE that turns item embeddings into semantic IDs.

fit, validate and test are LightningCLI's; predict writes every item's semantic ID to a file.
  {PROG} fit --config configs/synthetic.yaml
  {PROG} fit --config configs/beauty.yaml --trainer.max_epochs 5 --model.num_levels 4
  {PROG} fit --config configs/beauty.yaml --ckpt_path last      (resume)
  {PROG} fit --config configs/beauty.yaml --overwrite true      (start anew, replacing checkpoints)
  {PROG} predict --config configs/beauty.yaml --checkpoint CKPT --output ids.csv
  {PROG} SUBCOMMAND --help    (every option, with its default)
"""


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

    def add_arguments_to_parser(self, parser: Any) -> None:
        parser.add_argument(
            "--overwrite",
            type=bool,
            default=False,
            help="fit: replace the checkpoints an earlier run left in the checkpoint folder "
            "(without it, a fit that does not resume refuses to mix its checkpoints with theirs)",
        )

    def before_fit(self) -> None:
        self._check_ckpt_path()
        self._check_fresh_checkpoint_dir()

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

    def _check_fresh_checkpoint_dir(self) -> None:
        """A new fit must not share a folder with an earlier run's checkpoints.

        Lightning would write ``last-v1.ckpt`` beside the old ``last.ckpt``, and the documented
        ``predict --checkpoint .../last.ckpt`` would then use the old model. So: resume it
        (``--ckpt_path last``), or replace it knowingly (``--overwrite true``). Starting from a
        checkpoint of another folder counts as a new run here.
        """
        config = self.config_init[self.subcommand]
        folders = self._checkpoint_dirs()
        ckpt = config.get("ckpt_path")
        if ckpt is not None and any(Path(ckpt).resolve().parent == f.resolve() for f in folders):
            return  # resuming from this folder: Lightning continues the same files
        old = [p for folder in folders for p in sorted(folder.glob("*.ckpt"))]
        if not old:
            return
        if not config.get("overwrite"):
            raise CheckpointError(
                f"{old[0].parent} already holds checkpoints of an earlier run ({', '.join(p.name for p in old[:3])}"
                + (", ..." if len(old) > 3 else "")
                + "). Resume it with --ckpt_path last, replace them with --overwrite true, or "
                "train into another folder (the ModelCheckpoint's dirpath)"
            )
        for p in old:
            p.unlink()
        print(
            f"--overwrite: removed {len(old)} checkpoint(s) of an earlier run from {old[0].parent}"
        )

    def _checkpoint_dirs(self) -> list[Path]:
        return [
            Path(cb.dirpath)
            for cb in self.trainer.checkpoint_callbacks
            if getattr(cb, "dirpath", None) and Path(cb.dirpath).is_dir()
        ]

    def _last_checkpoint(self) -> Path | None:
        """The newest ``last*.ckpt`` in a ModelCheckpoint's folder: what Lightning resumes from."""
        found = [
            p
            for folder in self._checkpoint_dirs()
            for p in folder.glob("*.ckpt")
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
def predict_parser() -> ArgumentParser:
    """The ``predict`` subcommand's options, parsed by jsonargparse like LightningCLI's."""
    parser = ArgumentParser(
        prog=f"{PROG} predict",
        description="Write every item's semantic ID to a CSV or Parquet file, keyed by item id.",
        epilog=(
            "A training config (or the config.yaml that fit writes) works as --config: its data "
            "section says which items to predict. The model's config is read from the checkpoint "
            "itself, so the config's model section and its other sections are ignored."
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
    ignored = ("model", "trainer", "seed_everything", "ckpt_path", "optimizer", "lr_scheduler")
    for key in (*ignored, "weights_only", "overwrite"):  # the sections of a fit config
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
        model = load_model(config.checkpoint, resolve_device(config.device))
        datamodule = parser.instantiate_classes(config).data
        datamodule.prepare_data()
        datamodule.setup("predict")
        width = getattr(datamodule, "dim", model.input_dim)
        if width != model.input_dim:
            raise ValueError(
                f"the model in {config.checkpoint} expects features of shape (batch, "
                f"{model.input_dim}), but the data section's items have {width}"
            )
        n = write_semantic_ids(
            model,
            datamodule.predict_dataloader(),
            config.output,
            config.collision_suffix,
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
