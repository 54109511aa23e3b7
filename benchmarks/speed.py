"""Speed benchmark: training and semantic-ID throughput, peak memory, and scaling with the catalogue.

    python benchmarks/speed.py            # device auto (CUDA if available, else CPU)
    python benchmarks/speed.py --fit-epochs 100 --compare-with REV   # + notebook 03's fit

``--fit-epochs N`` also times notebook 03's whole training on Beauty (tutorial config, batch 1024,
N epochs, usage callback every epoch) through the library, against a lean plain-PyTorch loop
that does the same arithmetic (the same MLPs, a 3 x 256 residual argmin quantizer with the
straight-through estimator, Adam with the cosine schedule, one inference pass over the
catalogue per epoch) and nothing else; ``--compare-with REV`` adds the library at git
revision REV, run from a temporary worktree, in the same run.

RqVae in the TIGER shape runs against the same MLPs around vector-quantize-pytorch's ResidualVQ.
Each measurement runs in a fresh subprocess so its peak memory is its own: resident set growth
(``ru_maxrss``) on CPU, ``torch.cuda.max_memory_allocated`` on GPU. Features are synthetic
(unit-norm, 384-d); the catalogue streams from a small pool of pre-made batches, so memory may
only grow with the IDs kept (24 bytes per item). A float32 matmul measured in the same run gives
the machine's own limit, and each throughput is also shown as a fraction of it.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import DataLoader, IterableDataset

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    TIGER_SHAPE,
    ResidualVQPeer,
    load,
    machine,
    markdown_table,
    matmul_gflops,
    mlp_flops,
    setup_env,
    sync,
)

from rqvae_lib import RqVae, batch_inference, codebook_maintenance  # noqa: E402
from rqvae_lib.config import TUTORIAL_BATCH_SIZE, TUTORIAL_CONFIG, resolve_device  # noqa: E402

DIM = 384
REPEATS = 3  # every timing is the best of 3, which is robust to other load on a shared machine


class SyntheticStream(IterableDataset):
    """``num_items`` unit-norm features in batches, cycled from ``pool`` pre-made batches."""

    def __init__(
        self, num_items: int, batch_size: int, device: torch.device, pool: int = 8
    ) -> None:
        self.num_items, self.batch_size = num_items, batch_size
        g = torch.Generator().manual_seed(0)
        mean = torch.randn(DIM, generator=g)
        batches = [torch.randn(batch_size, DIM, generator=g) + mean for _ in range(pool)]
        self.pool = [torch.nn.functional.normalize(b, dim=1).to(device) for b in batches]

    def __iter__(self):
        for i, start in enumerate(range(0, self.num_items, self.batch_size)):
            n = min(self.batch_size, self.num_items - start)
            yield {"features": self.pool[i % len(self.pool)][:n]}


def build(method: str, device: torch.device) -> torch.nn.Module:
    torch.manual_seed(0)
    if method == "rqvae":
        model = RqVae(DIM, **TIGER_SHAPE)
    else:
        model = ResidualVQPeer(DIM, **{k: v for k, v in TIGER_SHAPE.items() if k != "num_levels"})
    return model.to(device)


def loss_fn(model: torch.nn.Module, batch: dict[str, Tensor]) -> Tensor:
    if isinstance(model, RqVae):
        with codebook_maintenance(model):  # as in RqVae.training_step
            return model._losses(batch)[0]
    return model.training_step(batch, 0)


def flops_per_item(model: torch.nn.Module) -> tuple[float, float]:
    """(training, inference) FLOPs per item: MLPs (backward = 2x forward) plus code distances."""
    shape = TIGER_SHAPE
    dist = 2 * shape["num_levels"] * shape["num_embeddings"] * shape["latent_dim"]
    enc, dec = mlp_flops(model.encoder), mlp_flops(model.decoder)
    return 3 * (enc + dec) + dist, enc + dist


def rss_mib() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * resource.getpagesize() / 2**20


def _start_peak(device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        return torch.cuda.memory_allocated() / 2**20
    return rss_mib()


def _peak(device: torch.device, base: float) -> float:
    if device.type == "cuda":
        return max(0.0, torch.cuda.max_memory_allocated() / 2**20 - base)
    return max(0.0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - base)


def measure_train(method: str, device_name: str, batch_size: int, steps: int, threads: int) -> dict:
    """Items/s and peak extra memory of ``steps`` Adam steps (after warm-up and k-means init)."""
    torch.set_num_threads(threads)
    device = torch.device(device_name)
    model = build(method, device).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    batches = list(SyntheticStream(batch_size * 4, batch_size, device, pool=4))
    base = _start_peak(device)

    def step(batch: dict[str, Tensor]) -> None:
        opt.zero_grad(set_to_none=True)
        loss_fn(model, batch).backward()
        opt.step()

    for b in batches[:3]:  # k-means init and warm-up
        step(b)
    sync(device)
    seconds = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        for i in range(steps):
            step(batches[i % len(batches)])
        sync(device)
        seconds.append(time.perf_counter() - start)
    return {"items/s": steps * batch_size / min(seconds), "peak MiB": _peak(device, base)}


def measure_infer(
    method: str, device_name: str, num_items: int, batch_size: int, threads: int
) -> dict:
    """Items/s and peak extra memory of streaming semantic IDs for ``num_items`` items."""
    torch.set_num_threads(threads)
    device = torch.device(device_name)
    model = build(method, device)
    if method == "rqvae":
        model.train()
        with torch.enable_grad(), codebook_maintenance(model):  # k-means init of the codebooks
            model(next(iter(SyntheticStream(2048, 2048, device, pool=1)))["features"])
    stream = SyntheticStream(num_items, batch_size, device)
    loader = DataLoader(stream, batch_size=None)
    run = batch_inference if method == "rqvae" else _peer_inference
    run(model, DataLoader(SyntheticStream(batch_size, batch_size, device), batch_size=None), device)
    sync(device)
    base = _start_peak(device)
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        ids = run(model, loader, device)
        sync(device)
        times.append(time.perf_counter() - start)
        del ids
    seconds = min(times)
    return {"items/s": num_items / seconds, "seconds": seconds, "peak MiB": _peak(device, base)}


@torch.no_grad()
def _peer_inference(model, loader, device) -> Tensor:
    model.eval()
    return torch.cat([model.generate_semantic_ids(b["features"]).cpu() for b in loader])


# --- notebook 03's whole training: the library against a lean loop ----------------------------
FIT_SCRIPT = """
import json, sys, tempfile
from rqvae_lib.data import ItemDataModule
from rqvae_lib.training import train_model
import torch
torch.set_num_threads({threads})
with tempfile.TemporaryDirectory() as logs:
    result = train_model(ItemDataModule(None, "beauty", batch_size={batch_size}), {epochs},
                         name="speed", quiet=True, save_dir=logs)
stats = result.history[-1]
print(json.dumps({{"seconds": result.seconds, "perplexity_l1": stats["perplexity_l1"]}}))
"""


def fit_library(repo: Path, epochs: int, threads: int) -> dict:
    """Notebook 03's ``train_model`` call, run by the library found in ``repo`` (a subprocess)."""
    import json
    import os
    import subprocess

    env = {**os.environ, "PYTHONPATH": str(repo), "RQVAE_FAST": "0"}
    script = FIT_SCRIPT.format(epochs=epochs, threads=threads, batch_size=TUTORIAL_BATCH_SIZE)
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, cwd=repo, capture_output=True, text=True
    )
    if out.returncode:
        raise RuntimeError(f"training with the library in {repo} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def fit_lean(features: Tensor, epochs: int, device_name: str, threads: int) -> dict:
    """The lean reference: plain PyTorch doing notebook 03's arithmetic and nothing more."""
    from rqvae_lib.data.datasets import split_indices
    from rqvae_lib.data.sampling import epoch_permutation
    from rqvae_lib.modules import Decoder, Encoder

    torch.set_num_threads(threads)
    device = torch.device(device_name)
    torch.manual_seed(42)
    c = TUTORIAL_CONFIG
    x = features.to(device)
    train = x[torch.as_tensor(split_indices(len(x), "train", 42), device=device)]
    enc = Encoder(x.shape[1], c["hidden_dim"], c["latent_dim"]).to(device)
    dec = Decoder(c["latent_dim"], c["hidden_dim"], x.shape[1]).to(device)
    with torch.no_grad():  # codebooks start on random latents of the first batch
        z0 = enc(train[: c["num_embeddings"]])
    books = torch.nn.Parameter(z0[None].repeat(c["num_levels"], 1, 1).contiguous())
    params = [*enc.parameters(), *dec.parameters(), books]
    opt = torch.optim.Adam(params, lr=c["learning_rate"])
    steps = epochs * -(-len(train) // TUTORIAL_BATCH_SIZE)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)

    def quantize(z: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        residual, total, loss, ids = z, torch.zeros_like(z), z.new_zeros(()), []
        for book in books:
            d = residual.pow(2).sum(1, keepdim=True) - 2 * residual @ book.t() + book.pow(2).sum(1)
            idx = d.detach().argmin(1)
            e = book[idx]
            loss = (
                loss
                + F.mse_loss(e, residual.detach())
                + c["commitment_cost"] * F.mse_loss(residual, e.detach())
            )
            residual, total = residual - e.detach(), total + e.detach()
            ids.append(idx)
        return z + (total - z).detach(), loss, torch.stack(ids, 1)

    sync(device)
    start = time.perf_counter()
    for epoch in range(epochs):
        order = epoch_permutation(len(train), 42, epoch).to(device)
        for rows in order.split(TUTORIAL_BATCH_SIZE):
            batch = train[rows]
            q, vq_loss, _ = quantize(enc(batch))
            loss = c["recon_weight"] * F.mse_loss(dec(q), batch) + vq_loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        with torch.no_grad():  # the usage callback's pass over the whole catalogue
            ids = torch.cat([quantize(enc(chunk))[2] for chunk in x.split(16384)])
    sync(device)
    seconds = time.perf_counter() - start
    counts = torch.bincount(ids[:, 0].cpu(), minlength=c["num_embeddings"]).float()
    p = counts[counts > 0] / counts.sum()
    return {"seconds": seconds, "perplexity_l1": float(torch.exp(-(p * p.log()).sum()))}


def fit_table(epochs: int, device_name: str, threads: int, compare_with: str | None) -> str:
    """Notebook 03's training: lean loop, this library, and (optionally) another git revision."""
    import subprocess
    import tempfile

    from common import REPO, load_features

    catalogue = load_features("beauty")
    if catalogue is None:
        return "Notebook 03's training: not measured (the Beauty files are not here).\n"
    lean = fit_lean(catalogue[0], epochs, device_name, threads)
    rows = [("lean plain-PyTorch loop", lean), ("rqvae_lib (this revision)", None)]
    rows[1] = (rows[1][0], fit_library(REPO, epochs, threads))
    if compare_with:
        with tempfile.TemporaryDirectory() as tmp:
            tree = Path(tmp) / "revision"
            subprocess.run(
                ["git", "worktree", "add", "--detach", str(tree), compare_with],
                cwd=REPO,
                check=True,
                capture_output=True,
            )
            try:
                rows.append((f"rqvae_lib at {compare_with}", fit_library(tree, epochs, threads)))
            finally:
                subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=REPO)
    table = [
        {
            "training": name,
            "seconds": f"{r['seconds']:.1f}",
            "x lean loop": f"{r['seconds'] / lean['seconds']:.2f}x",
            "level-1 perplexity": f"{r['perplexity_l1']:.0f}",
        }
        for name, r in rows
    ]
    return (
        f"Notebook 03's training on Beauty ({epochs} epochs, batch {TUTORIAL_BATCH_SIZE}, tutorial config, usage "
        f"pass every epoch), {threads} threads:\n\n{markdown_table(table, list(table[0]))}\n"
    )


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b >= 1 else "n/a"


def in_subprocess(fn, *args, inline: bool = False):
    """Run ``fn(*args)`` in a fresh spawned process (or here, if ``inline``) and return its result."""
    if inline:
        return fn(*args)
    with mp.get_context("spawn").Pool(1) as pool:
        return pool.apply(fn, args)


def main(argv: list[str] | None = None) -> str:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--device", default=None, help="cpu or cuda; default: CUDA if available")
    p.add_argument("--batch-size", type=int, default=TUTORIAL_BATCH_SIZE, help="training batch")
    p.add_argument("--infer-batch-size", type=int, default=4096)
    p.add_argument("--train-steps", type=int, default=30)
    p.add_argument(
        "--infer-items", type=int, default=100_000, help="catalogue for the peer comparison"
    )
    p.add_argument("--catalogues", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument(
        "--inline", action="store_true", help="no subprocesses (quick; memory less exact)"
    )
    p.add_argument(
        "--fit-epochs", type=int, default=0, help="also time notebook 03's fit (0: skip)"
    )
    p.add_argument("--compare-with", default=None, help="git revision to time beside it")
    p.add_argument("--fit-only", action="store_true", help="only the notebook-03 fit table")
    args = p.parse_args(argv)
    setup_env()
    device = resolve_device(args.device)
    dev = str(device)

    def run(fn, *fn_args):
        return in_subprocess(fn, *fn_args, inline=args.inline)

    torch.set_num_threads(args.threads)
    gflops = matmul_gflops(device)
    train_flops, infer_flops = flops_per_item(build("rqvae", torch.device("cpu")))

    def frac(items_per_s: float, flops: float) -> str:
        achieved = items_per_s * flops / 1e9
        return f"{achieved:.1f} ({achieved / gflops:.0%})"

    fit = ""
    if args.fit_epochs:
        fit = fit_table(args.fit_epochs, dev, args.threads, args.compare_with)
        if args.fit_only:
            print(f"### {machine()}; load {load()} at the end\n\n{fit}", flush=True)
            return fit

    rows, res = [], {}
    for method, name in (("rqvae", "RqVae"), ("peer", "ResidualVQ peer")):
        train = run(measure_train, method, dev, args.batch_size, args.train_steps, args.threads)
        infer = run(
            measure_infer, method, dev, args.infer_items, args.infer_batch_size, args.threads
        )
        res[method] = (train, infer)
        rows.append(
            {
                "model": name,
                "train items/s": f"{train['items/s']:,.0f}",
                "train GFLOP/s (of matmul)": frac(train["items/s"], train_flops),
                "train peak MiB": f"{train['peak MiB']:.0f}",
                "infer items/s": f"{infer['items/s']:,.0f}",
                "infer GFLOP/s (of matmul)": frac(infer["items/s"], infer_flops),
                "infer peak MiB": f"{infer['peak MiB']:.0f}",
            }
        )
    (t_r, i_r), (t_p, i_p) = res["rqvae"], res["peer"]
    rows.append(
        {
            "model": "ratio RqVae / peer",
            "train items/s": ratio(t_r["items/s"], t_p["items/s"]),
            "train peak MiB": ratio(t_r["peak MiB"], t_p["peak MiB"]),
            "infer items/s": ratio(i_r["items/s"], i_p["items/s"]),
            "infer peak MiB": ratio(i_r["peak MiB"], i_p["peak MiB"]),
        }
    )
    scale = []
    for n in args.catalogues:
        r = run(measure_infer, "rqvae", dev, n, args.infer_batch_size, args.threads)
        scale.append(
            {
                "items": f"{n:,}",
                "seconds": f"{r['seconds']:.2f}",
                "items/s": f"{r['items/s']:,.0f}",
                "peak MiB": f"{r['peak MiB']:.0f}",
                "of which IDs (MiB)": f"{n * 24 / 2**20:.0f}",
            }
        )
    mem = "CUDA max_memory_allocated" if device.type == "cuda" else "growth of max RSS"
    text = (
        f"### Speed on {device.type.upper()}: {machine()}; load {load()} at the end\n\n"
        f"float32 matmul (2048^2): {gflops:.1f} GFLOP/s. FLOPs per item: training step "
        f"{train_flops / 1e6:.2f} M, inference {infer_flops / 1e6:.2f} M. Training batch "
        f"{args.batch_size} ({args.train_steps} Adam steps), inference batch {args.infer_batch_size} "
        f"over {args.infer_items:,} items; each timing is the best of {REPEATS}. Peak memory: {mem} "
        f"above the start of the measurement.\n\n"
        f"{markdown_table(rows, list(rows[0]))}\n\n"
        f"Semantic IDs for a streamed synthetic catalogue (RqVae, batch {args.infer_batch_size}):\n\n"
        f"{markdown_table(scale, list(scale[0]))}\n" + (f"\n{fit}" if fit else "")
    )
    print(text, flush=True)
    return text


if __name__ == "__main__":
    main()
