"""DDP training: two CPU processes (gloo) hold the same codebooks and match one process.

Every rank holds the same codebooks at every step, and the two ranks together compute what one
process computes on the same global batches.

Lightning's ``ddp`` strategy starts the other rank by re-running the script, so the run is a
small script in a subprocess; the single-process baseline runs here with the same global batch.

Why the two runs agree: the in-memory batches give each rank a contiguous half of the same
global batch that one process sees (a DataLoader under DDP would get a DistributedSampler with
another shuffle, and the runs would then drift apart chaotically on a tiny catalogue). Gradients
are averaged over equal halves, usage counts and errors are summed, and restart data is gathered
in rank order, so only the float summation order differs. Measured on this 2-core machine, the
largest weight difference after 10 epochs was 1.4e-7 and every counter was equal; the test
allows 1e-4.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
import torch.distributed as dist

from rqvae_lib import RqVae, batch_inference, codebook_stats
from rqvae_lib.data import SyntheticDataModule

HERE = Path(__file__).resolve().parent
NUM_EMBEDDINGS, EPOCHS, GLOBAL_BATCH = 32, 10, 128

SCRIPT = """
import sys
from pathlib import Path
sys.path.insert(0, {tests!r})
from test_ddp import train
train(Path(sys.argv[1]), devices=2)
"""


class SameOnEveryRank(pl.Callback):
    """After every training step, count quantizer tensors that differ from rank 0's."""

    def __init__(self) -> None:
        self.steps = self.mismatches = 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if dist.is_available() and dist.is_initialized():
            for tensor in pl_module.quantizer.state_dict().values():  # codes, initialized, ...
                mine = tensor.detach().double()
                reference = mine.clone()
                dist.broadcast(reference, src=0)
                self.mismatches += int(not torch.equal(mine, reference))
        self.steps += 1


def train(out: Path, devices: int) -> dict:
    """Train on the synthetic catalogue; each rank saves its state, rank 0 returns the stats."""
    pl.seed_everything(0)
    data = SyntheticDataModule(
        num_items=1024, dim=32, branching=(8, 8, 4), batch_size=GLOBAL_BATCH // devices, seed=0
    )
    model = RqVae(
        32, [64, 32], 16, NUM_EMBEDDINGS, num_levels=3, dead_code_steps=5, balance_rate=0.01
    )
    check = SameOnEveryRank()
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=devices,
        strategy="ddp" if devices > 1 else "auto",
        max_epochs=EPOCHS,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[check],
    )
    trainer.fit(model, data)
    name = f"rank{trainer.global_rank}.pt" if devices > 1 else "single.pt"
    torch.save(model.state_dict(), out / name)
    ids = batch_inference(model, data.predict_dataloader(), device="cpu")
    stats = codebook_stats(ids, NUM_EMBEDDINGS)
    stats.update(steps=check.steps, mismatches=check.mismatches, world_size=trainer.world_size)
    stats["ids"] = ids.tolist()
    stats["restarts"] = [int(vq.num_restarts) for vq in model.quantizer.levels]
    if trainer.global_rank == 0 and devices > 1:
        (out / "stats.json").write_text(json.dumps(stats))
    return stats


@pytest.mark.slow
def test_ddp_ranks_share_codebooks_and_match_single_process(tmp_path: Path) -> None:
    script = tmp_path / "train_ddp.py"
    script.write_text(SCRIPT.format(tests=str(HERE)))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}
    env.pop("CUDA_VISIBLE_DEVICES", None)
    start = time.time()
    result = subprocess.run(
        [sys.executable, str(script), str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    print(f"2-process DDP run: {time.time() - start:.1f} s")

    ddp = json.loads((tmp_path / "stats.json").read_text())
    assert ddp["world_size"] == 2 and ddp["steps"] > 0
    assert min(ddp["restarts"]) > 0  # dead-code restart ran, and still no rank diverged
    assert ddp["mismatches"] == 0, f"ranks diverged in {ddp['mismatches']} quantizer tensors"
    rank0, rank1 = (torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1))
    assert rank0.keys() == rank1.keys()
    for key in rank0:  # every weight and buffer, codebooks included, bit for bit
        assert torch.equal(rank0[key], rank1[key]), key
    assert all(bool(rank0[f"quantizer.levels.{i}.initialized"]) for i in range(3))

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: threads only contend on a shared CPU
    try:
        single = train(tmp_path, devices=1)  # the same global batch, one process
    finally:
        torch.set_num_threads(threads)
    assert single["steps"] == ddp["steps"]
    alone = torch.load(tmp_path / "single.pt")
    for key, value in alone.items():
        if value.is_floating_point():  # weights, codebooks, code bias: equal up to rounding
            torch.testing.assert_close(rank0[key], value, atol=1e-4, rtol=0, msg=key)
    for level in range(3):  # the same restart decisions, step for step
        key = f"quantizer.levels.{level}.num_restarts"
        assert torch.equal(rank0[key], alone[key]), key
    same = (torch.tensor(ddp["ids"]) == torch.tensor(single["ids"])).all(1).float().mean()
    assert same >= 0.99, f"only {same:.1%} of items got the same ID with DDP as in one process"
