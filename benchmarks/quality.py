"""Quality benchmark: RqVae against ResidualVQ and RQ-KMeans on the same embeddings and budget.

    python benchmarks/quality.py                      # Beauty (+ Toys/Sports if present), 100 epochs
    python benchmarks/quality.py --sweep recon_weight=1,16,64 --plot benchmarks/tradeoff.png

Every method gets the same item embeddings (MiniLM, 384-d), epochs and batch size, on CPU, and
one markdown table per dataset is printed. ``--sweep key=v1,v2`` trains RqVae once per value of
any RqVae keyword (several ``--sweep`` flags make a grid); ``--set key=value`` fixes one.
"""

from __future__ import annotations

import argparse
import ast
import itertools
import json
import sys
from pathlib import Path

import torch
from torch import Tensor
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    TIGER_SHAPE,
    ResidualVQPeer,
    as_numpy,
    load,
    load_features,
    machine,
    markdown_table,
    setup_env,
    timer,
    trainer,
)

from rqvae_lib import RqVae, codebook_stats, deduplicate, seed_everything  # noqa: E402
from rqvae_lib.baselines import rq_kmeans  # noqa: E402
from rqvae_lib.config import TUTORIAL_BATCH_SIZE, TUTORIAL_CONFIG, TUTORIAL_EPOCHS  # noqa: E402
from rqvae_lib.data import FeatureDataset, make_synthetic_catalogue  # noqa: E402
from rqvae_lib.evaluate import reconstruction_error  # noqa: E402

METHODS = ("rqvae", "residualvq", "rq-kmeans", "plain-st")
COLUMNS = [
    "method",
    "unique IDs",
    "items in a collision",
    "max items/ID",
    "usage L1/L2/L3",
    "perplexity L1/L2/L3",
    "rel. error",
    "NMI",
    "time (s)",
]
SPLITS = ("beauty", "toys", "sports")


def metrics(
    name: str, ids: Tensor, x: Tensor, x_hat: Tensor, cats: list[str], seconds: float
) -> dict:
    """One table row: ID statistics, relative reconstruction error, NMI of level 1 vs category."""
    from sklearn.metrics import normalized_mutual_info_score

    k = TIGER_SHAPE["num_embeddings"]
    s = codebook_stats(ids, k)
    err = reconstruction_error(x, x_hat)["relative_error"]
    nmi = normalized_mutual_info_score(cats, as_numpy(ids[:, 0]))
    return {
        "method": name,
        "unique IDs": f"{s['unique_id_rate']:.4f}",
        "items in a collision": f"{s['collision_rate']:.2%}",
        "max items/ID": s["max_items_per_id"],
        "usage L1/L2/L3": " / ".join(f"{u:.2f}" for u in s["usage_rate_per_level"]),
        "perplexity L1/L2/L3": " / ".join(f"{p:.0f}" for p in s["perplexity_per_level"]),
        "rel. error": f"{err:.3f}",
        "NMI": f"{nmi:.3f}",
        "time (s)": f"{seconds:.0f}",
        # raw numbers for sweeps and plots
        "_collision": s["collision_rate"],
        "_err": err,
        "_ppl_min": min(s["perplexity_per_level"]),
        "_nmi": nmi,
    }


def loader(x: Tensor, batch_size: int, shuffle: bool) -> DataLoader:
    return DataLoader(FeatureDataset(x), batch_size=batch_size, shuffle=shuffle)


def run_rqvae(
    x: Tensor, cats: list[str], args: argparse.Namespace, name: str, **options
) -> list[dict]:
    """Train RqVae; rows for its nearest-code IDs and for the deduplicated (balanced) last level."""
    seed_everything(args.seed)
    config = {**TUTORIAL_CONFIG, "input_dim": x.shape[1], "seed": args.seed, **options}
    model = RqVae(**config)
    with timer() as t:
        trainer(args.epochs, "cpu").fit(model, loader(x, args.batch_size, shuffle=True))
        model.eval()
        with torch.no_grad():
            z = model.encoder(x)
            ids = model.quantizer(z).encoding_indices
    with timer() as t_dedup:
        dedup = deduplicate(model.quantizer, z, ids)
    with torch.no_grad():
        x_hat = model.decode_semantic_ids(ids)
        x_hat_dedup = model.decode_semantic_ids(dedup)
    return [
        metrics(name, ids, x, x_hat, cats, t[0]),
        metrics(f"{name} + dedup", dedup, x, x_hat_dedup, cats, t[0] + t_dedup[0]),
    ]


def run_residualvq(x: Tensor, cats: list[str], args: argparse.Namespace) -> list[dict]:
    """The same MLPs around vector-quantize-pytorch's ResidualVQ."""
    seed_everything(args.seed)
    model = ResidualVQPeer(
        x.shape[1], **{k: v for k, v in TIGER_SHAPE.items() if k != "num_levels"}
    )
    with timer() as t:
        trainer(args.epochs, "cpu").fit(model, loader(x, args.batch_size, shuffle=True))
        model.eval()
        with torch.no_grad():
            x_hat, ids, _ = model(x)
    return [metrics("ResidualVQ (vector-quantize-pytorch)", ids, x, x_hat, cats, t[0])]


def run_rq_kmeans(x: Tensor, cats: list[str], args: argparse.Namespace) -> list[dict]:
    """Residual k-means on the raw embeddings with scikit-learn: 3 levels x 256 centroids."""
    k, levels = TIGER_SHAPE["num_embeddings"], TIGER_SHAPE["num_levels"]
    with timer() as t:
        ids, x_hat = rq_kmeans(x, levels, k, seed=args.seed)
    return [metrics("RQ-KMeans (scikit-learn)", ids, x, x_hat, cats, t[0])]


def parse_value(text: str):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def parse_options(pairs: list[str], many: bool) -> dict:
    out = {}
    for pair in pairs:
        key, _, values = pair.partition("=")
        vals = [parse_value(v) for v in values.split(",")] if many else parse_value(values)
        out[key.strip()] = vals
    return out


def run_dataset(split: str, x: Tensor, cats: list[str], args: argparse.Namespace) -> list[dict]:
    """All requested methods (or the sweep) on one dataset; print and return the rows."""
    fixed = parse_options(args.set, many=False)
    rows: list[dict] = []
    if args.sweep:
        grid = parse_options(args.sweep, many=True)
        for values in itertools.product(*grid.values()):
            options = dict(zip(grid, values, strict=True))
            label = "RqVae " + ", ".join(f"{k}={v}" for k, v in options.items())
            rows += run_rqvae(x, cats, args, label, **{**fixed, **options})
            print(markdown_table(rows[-2:], COLUMNS).split("\n", 2)[2], flush=True)
    else:
        for method in args.methods:
            if method == "rqvae":
                rows += run_rqvae(x, cats, args, "RqVae (tutorial config)", **fixed)
            elif method == "residualvq":
                rows += run_residualvq(x, cats, args)
            elif method == "rq-kmeans":
                rows += run_rq_kmeans(x, cats, args)
            elif method == "plain-st":
                options = dict(kmeans_init=False, dead_code_steps=0, balance_rate=0.0)
                rows += run_rqvae(x, cats, args, "plain straight-through RqVae", **options)[:1]
    header = (
        f"### {split}: {len(x)} items, {args.epochs} epochs, batch {args.batch_size}, CPU\n"
        f"{machine()}; load {load()} at the end"
    )
    print(f"\n{header}\n\n{markdown_table(rows, COLUMNS)}\n", flush=True)
    return rows


def plot(rows: list[dict], path: str) -> None:
    """Collisions and lowest per-level perplexity against relative error, with the targets."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 5))
    panels = (
        ("_collision", 100, "items in a collision (%)", 0.5),
        ("_ppl_min", 1, "lowest perplexity", 230),
    )
    for ax, (key, scale, label, target) in zip(axes, panels, strict=True):
        for r in rows:
            marker = "s" if "dedup" in r["method"] else "o"
            xy = (r["_err"], r[key] * scale)
            ax.scatter(*xy, marker=marker)
            ax.annotate(r["method"].replace("RqVae ", ""), xy, fontsize=6)
        ax.axvline(0.30, ls="--", c="grey")
        ax.axhline(target, ls="--", c="grey")
        ax.set_xlabel("relative reconstruction error ||x - x_hat||^2 / ||x||^2")
        ax.set_ylabel(label)
    axes[0].set_yscale("symlog", linthresh=0.5)
    axes[0].set_ylim(bottom=-0.02)
    fig.suptitle("RqVae trade-off; targets dashed; squares: deduplicated last level")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def plot_nmi(rows: list[dict], path: str) -> None:
    """NMI against lowest per-level perplexity, one panel per dataset, peers as reference lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = list(dict.fromkeys(r.get("dataset", "") for r in rows))
    fig, axes = plt.subplots(1, len(datasets), figsize=(6 * len(datasets), 5), squeeze=False)
    for ax, ds in zip(axes[0], datasets, strict=True):
        mine = [r for r in rows if r.get("dataset", "") == ds]
        peers = [r for r in mine if not r["method"].startswith(("RqVae", "plain"))]
        for r in mine:
            if r in peers or "dedup" in r["method"]:  # dedup leaves level 1 and NMI unchanged
                continue
            ax.scatter(r["_ppl_min"], r["_nmi"], c="C0")
            label = (
                r["method"].replace("RqVae ", "").replace("(tutorial config)", "tutorial config")
            )
            ax.annotate(label, (r["_ppl_min"], r["_nmi"]), fontsize=6)
        for i, r in enumerate(peers):
            ax.axhline(
                r["_nmi"], ls=":", c=f"C{i + 1}", label=f"{r['method']}: NMI {r['_nmi']:.3f}"
            )
        ax.axvline(230, ls="--", c="grey", label="perplexity target 230")
        ax.set(
            xlabel="lowest per-level perplexity (level 1)", ylabel="NMI, level-1 code vs category"
        )
        ax.set_title(ds)
        ax.legend(fontsize=7, loc="lower left")
    fig.suptitle("RqVae: perplexity against NMI (dotted: the peers' NMI)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--datasets",
        nargs="+",
        default=list(SPLITS),
        help="Amazon splits (absent ones are skipped) or 'synthetic'",
    )
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    p.add_argument("--epochs", type=int, default=TUTORIAL_EPOCHS)
    p.add_argument("--batch-size", type=int, default=TUTORIAL_BATCH_SIZE)
    p.add_argument(
        "--items", type=int, default=None, help="use only the first N items (smoke runs)"
    )
    p.add_argument("--seed", type=int, default=42)
    p.add_argument(
        "--sweep", action="append", default=[], metavar="KEY=V1,V2", help="RqVae keyword to sweep"
    )
    p.add_argument(
        "--set", action="append", default=[], metavar="KEY=V", help="RqVae keyword to fix"
    )
    p.add_argument("--plot", default=None, help="PNG path for collisions vs rel. error")
    p.add_argument("--plot-nmi", default=None, help="PNG path for NMI vs lowest perplexity")
    p.add_argument("--json", default=None, help="append every row as JSON lines here")
    p.add_argument(
        "--from-json", default=None, help="plot rows saved by --json instead of training"
    )
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = p.parse_args(argv)
    if args.from_json:
        lines = Path(args.from_json).read_text().splitlines()
        rows = [r for r in map(json.loads, lines) if r.get("dataset") in args.datasets]
        if args.plot:
            plot(rows, args.plot)
        if args.plot_nmi:
            plot_nmi(rows, args.plot_nmi)
        return rows
    setup_env()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.set_float32_matmul_precision("highest")
    all_rows = []
    for split in args.datasets:
        if split == "synthetic":
            cat = make_synthetic_catalogue(args.items or 2048, 384, seed=args.seed)
            data = cat.features, [str(c) for c in cat.labels[:, 0]]
        else:
            data = load_features(split)
        if data is None:
            print(f"({split}: raw files not found; skipped)")
            continue
        x, cats = data
        if args.items:
            x, cats = x[: args.items], cats[: args.items]
        rows = run_dataset(split, x, cats, args)
        all_rows += [{**r, "dataset": split} for r in rows]
    if args.json:
        with open(args.json, "a") as fh:
            for r in all_rows:
                fh.write(json.dumps({**r, "epochs": args.epochs}) + "\n")
    if args.plot and all_rows:
        plot(all_rows, args.plot)
    if args.plot_nmi and all_rows:
        plot_nmi(all_rows, args.plot_nmi)
    return all_rows


if __name__ == "__main__":
    main()
