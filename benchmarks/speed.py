"""Speed benchmark: training and semantic-ID throughput, peak memory, and scaling with the catalogue.

    python benchmarks/speed.py            # device auto (CUDA if available, else CPU)

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

from rqvae_lib import RqVae, batch_inference  # noqa: E402
from rqvae_lib.config import resolve_device  # noqa: E402

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
        with torch.enable_grad():  # one training forward: k-means init of the codebooks
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
    p.add_argument("--batch-size", type=int, default=1024, help="training batch")
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
        f"{markdown_table(scale, list(scale[0]))}\n"
    )
    print(text, flush=True)
    return text


if __name__ == "__main__":
    main()
