"""Copy trained models from ``artifacts/`` into ``models/`` with their records (``rqvae_lib.course.
shipped``), so that the notebooks load them instead of training.

    python benchmarks/seeds.py --experiments warm collab --datasets beauty --seeds 0   # trains them
    python benchmarks/ship_models.py                                                  # ships them

Each entry of ``SHIPPED`` names the artifact, the command that trained it, its data and seed,
its training, and the metrics its table gave (read from the cached ID table).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import setup_env  # noqa: E402

SEEDS_CMD = "python benchmarks/seeds.py --experiments {} --datasets beauty --seeds 0"
BEAUTY = "Amazon Beauty (P5 files, sha256 pinned), the 12,101 items' all-MiniLM-L6-v2 embeddings"
#: name -> (artifact under artifacts/, command, data, training, cached ID table giving metrics)
SHIPPED = {
    "seeded-rqvae-beauty-seed0": (
        "retrieval/seeded-rqvae-beauty-seed0", SEEDS_CMD.format("warm"), BEAUTY,
        "TUTORIAL_CONFIG, 100 epochs", "retrieval/seeded-ids-beauty-rqvae-seed0.safetensors",
    ),
    "seeded-rqvae-collab-beauty-seed0": (
        "retrieval/seeded-rqvae-collab-beauty-seed0", SEEDS_CMD.format("collab"),
        BEAUTY + "; SASRec vectors of collaborative-beauty-seed0",
        "TUTORIAL_CONFIG + COLLAB_OPTIONS, 100 epochs",
        "retrieval/seeded-ids-beauty-rqvae-collab-seed0.safetensors",
    ),
    "collaborative-beauty-seed0": (
        "collaborative/collaborative-beauty-67cf47062c9343bf-seed0.safetensors",
        SEEDS_CMD.format("collab"),
        "Amazon Beauty, every user's training part (fingerprint 67cf47062c9343bf...)",
        "SASRec, cross-entropy, CPU budget: 5 epochs", None,
    ),
}  # fmt: skip


def main() -> None:
    setup_env()
    from safetensors import safe_open

    from rqvae_lib.config import artifacts_dir
    from rqvae_lib.course.shipped import ship

    for name, (target, command, data, training, table) in SHIPPED.items():
        metrics = {}
        if table is not None:
            with safe_open(str(artifacts_dir() / table), "pt") as f:
                metrics = json.loads(f.metadata()["measures"])
        record = ship(name, target, command, data, 0, training, metrics)
        size = sum(meta["bytes"] for meta in record["files"].values())
        print(f"{name}: {len(record['files'])} files, {size:,} bytes")


if __name__ == "__main__":
    main()
