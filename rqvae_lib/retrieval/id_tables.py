"""Semantic-ID tables to compare downstream, one seed at a time, collision handling made equal.

One seed re-draws everything random in a table: the RQ-VAE's initialisation and training,
RQ-KMeans' k-means, the random IDs. Each quantizer gives two tables (:data:`ID_TABLES`): its
nearest codes, told apart by the tokenizer's collision suffix alone, and the same codes with a
balanced last level (``deduplicate``). :func:`fit_id_tables` fits them from the item embeddings,
on the known items only when some are new (the cold-start split), with the measures notebook 04
reads (perplexity, collision rate, reconstruction error); :func:`seeded_id_tables` caches them.
:mod:`rqvae_lib.retrieval.seeded` trains and scores a seq2seq on each.
"""

from __future__ import annotations

import json
import math
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import Tensor

from rqvae_lib.config import TUTORIAL_BATCH_SIZE, TUTORIAL_CONFIG, artifacts_dir, seed_everything
from rqvae_lib.data.amazon import LeaveOneOut
from rqvae_lib.io import atomic_write

#: The ID tables of the seeded comparison, collision handling made equal: the tutorial RQ-VAE
#: with a balanced last level and with its nearest codes, RQ-KMeans the same two ways, random.
ID_TABLES = ("rqvae", "rqvae-plain", "rq-kmeans-balanced", "rq-kmeans", "random")
#: The collaborative tables, both from SASRec item vectors of the training parts and both with a
#: balanced last level: ``rqvae-collab`` (LETTER), the tutorial RQ-VAE trained with the
#: alignment term (:data:`COLLAB_OPTIONS`); ``rq-kmeans-collab``, RQ-KMeans on each item's text
#: embedding and collaborative vector side by side (:func:`joint_features`), training-free.
#: They need the sequences (``seeded_id_tables(..., sequences=...)``).
COLLAB_TABLES = ("rqvae-collab", "rq-kmeans-collab")
#: Weight of the collaborative half in :func:`joint_features` (both halves have unit length):
#: equal weight, not tuned.
JOINT_WEIGHT = 1.0
#: The alignment options of ``rqvae-collab`` (``RqVaeConfig``); a ``config`` given to
#: :func:`fit_id_tables` overrides them.
COLLAB_OPTIONS: dict[str, Any] = {"align_weight": 0.1, "align_temperature": 0.1, "align_dim": 64}
#: The tables whose last level is balanced (``deduplicate``): there the last code tells items
#: apart where it can, and the collision suffix is needed only where it cannot.
BALANCED_TABLES = ("rqvae", "rq-kmeans-balanced", *COLLAB_TABLES)


class IdTable(NamedTuple):
    """One table's semantic IDs (num_items, num_levels) for ``item_ids``, and its measures."""

    ids: Tensor
    item_ids: Tensor
    measures: dict[str, float]


def table_measures(ids: Tensor, num_embeddings: int, relative_error: float) -> dict[str, float]:
    """What notebook 04 reads of a table: mean perplexity per level, the share of items whose
    whole ID is shared (before the collision suffix) and the held-out relative reconstruction
    error of the quantizer it came from (NaN for random IDs, which reconstruct nothing)."""
    from rqvae_lib.evaluate import codebook_stats

    stats = codebook_stats(ids, num_embeddings)
    return {
        "perplexity": stats["perplexity"],
        "collision_rate": stats["collision_rate"],
        "relative_error": float(relative_error),
    }


def joint_features(
    features: Tensor, item_ids: Tensor, collaborative: Any, weight: float = JOINT_WEIGHT
) -> Tensor:
    """Each item's text embedding and collaborative vector side by side, each scaled to unit
    length, the latter times ``weight``; zeros where an item has none (a new item): its place
    then comes from its text alone."""
    import torch.nn.functional as F

    vectors = torch.as_tensor(collaborative.vectors).float()
    known = torch.ones(len(vectors), dtype=torch.bool) if collaborative.known is None else (
        torch.as_tensor(collaborative.known).bool())  # fmt: skip
    row = {int(i): r for r, i in enumerate(torch.as_tensor(collaborative.item_ids).tolist())}
    out = torch.zeros(len(item_ids), vectors.shape[1])
    for r, item in enumerate(torch.as_tensor(item_ids).tolist()):
        if item in row and bool(known[row[item]]):
            out[r] = F.normalize(vectors[row[item]], dim=0) * weight
    return torch.cat([F.normalize(torch.as_tensor(features).float(), dim=1), out], dim=1)


def kmeans_quantizer(centroids: Sequence[Any]):
    """A :class:`ResidualQuantizer` whose codebooks are RQ-KMeans' centroids, so the same
    ``deduplicate`` balances RQ-KMeans' last level as the RQ-VAE's (lookup is the same rule)."""
    from rqvae_lib.quantizer import ResidualQuantizer

    first = torch.as_tensor(centroids[0])
    rq = ResidualQuantizer(len(centroids), first.shape[0], first.shape[1], kmeans_init=False)
    with torch.no_grad():
        for level, c in zip(rq.levels, centroids, strict=True):
            level.embedding.weight.copy_(torch.as_tensor(c, dtype=torch.float32))
    return rq


def _balance(quantizer, z: Tensor, nearest: Tensor, known: Tensor) -> Tensor:
    """The known items balanced among themselves; new items then join on the free last codes,
    never moving a known item's ID (``deduplicate(keep=known)``)."""
    from rqvae_lib.semantic_ids import deduplicate

    ids = nearest.clone()
    ids[known] = deduplicate(quantizer, z[known], nearest[known])
    return deduplicate(quantizer, z, ids, keep=known) if not bool(known.all()) else ids


def fit_id_tables(
    tables: Sequence[str],
    features: Tensor,
    item_ids: Tensor | Sequence[int],
    seed: int,
    new_items: Collection[int] = (),
    rqvae_epochs: int | None = None,
    model_dir: str | Path | None = None,
    config: Mapping[str, Any] | None = None,
    collaborative: Any = None,
    collab_model_dir: str | Path | None = None,
) -> dict[str, IdTable]:
    """Every named table (:data:`ID_TABLES`, :data:`COLLAB_TABLES`) of one seed, for every row
    of ``features``.

    The fit sees the known items alone (all items when ``new_items`` is empty): a
    :class:`FeatureDataModule` of their rows, split 90/5/5 by ``seed``, whose training part fits
    RQ-KMeans and trains the RQ-VAE (``config``, default ``TUTORIAL_CONFIG``, for
    ``rqvae_epochs``, after ``seed_everything(seed)``; saved in ``model_dir`` and reloaded from
    there when given) and whose test part measures the reconstruction error. The two variants of
    a quantizer share its fit. New items get their nearest codes; in a balanced table they then
    take the last codes their prefix leaves free, as a new item joins a table in use.
    ``rqvae-collab`` trains another RQ-VAE the same way with the alignment term
    (``COLLAB_OPTIONS``, overridden by ``config``) against ``collaborative`` (item vectors with
    ``vectors``, ``item_ids`` and ``known``: :func:`rqvae_lib.retrieval.collaborative.
    collaborative_embeddings`), saved in ``collab_model_dir`` when given; ``rq-kmeans-collab``
    fits RQ-KMeans on :func:`joint_features` of the same rows (its error is in that space).
    """
    from rqvae_lib.baselines import rq_kmeans_encode, rq_kmeans_fit
    from rqvae_lib.data import FeatureDataModule
    from rqvae_lib.evaluate import evaluate_reconstruction, reconstruction_error
    from rqvae_lib.retrieval.cold import known_item_mask
    from rqvae_lib.training import load_or_train, train_model

    unknown = [t for t in tables if t not in ID_TABLES + COLLAB_TABLES]
    if unknown or not tables:
        raise ValueError(f"tables must be some of {ID_TABLES + COLLAB_TABLES}, got {list(tables)}")
    if set(COLLAB_TABLES) & set(tables) and collaborative is None:
        raise ValueError(
            f"the {'/'.join(COLLAB_TABLES)} tables need collaborative=... (item vectors from "
            "the training split: rqvae_lib.retrieval.collaborative.collaborative_embeddings)"
        )
    config = dict(TUTORIAL_CONFIG if config is None else config)
    levels, codes = config["num_levels"], config["num_embeddings"]
    features = torch.as_tensor(features).float()
    item_ids = torch.as_tensor(item_ids).long().view(-1)
    known = torch.as_tensor(known_item_mask(item_ids.numpy(), new_items))
    if int((~known).sum()) != len(set(new_items)):
        raise ValueError("new_items must be item ids of the catalogue, without repeats")
    dm = FeatureDataModule(
        features[known], item_ids[known], batch_size=TUTORIAL_BATCH_SIZE, seed=seed
    )
    dm.setup()
    out: dict[str, IdTable] = {}

    def add(name: str, ids: Tensor, error: float) -> None:
        ids = ids.long().cpu().contiguous()
        out[name] = IdTable(ids, item_ids.clone(), table_measures(ids, codes, error))

    def rqvae(name: str, directory: str | Path | None, **options: Any):
        """A seeded RQ-VAE (trained, or loaded from ``directory``), its latents of every item,
        their nearest codes and its held-out relative error."""
        seed_everything(seed)
        options.update(quiet=True, seed=seed)
        if directory is None:
            model = train_model(dm, rqvae_epochs, name=name, **options).model
        else:
            model = load_or_train(directory, dm, rqvae_epochs, **options)
        model.eval()
        error = evaluate_reconstruction(model, dm.test_dataloader())["relative_error"]
        with torch.no_grad():
            z = model.encode(features.to(model.device))
            return model.quantizer, z, model.latents_to_ids(z), error

    if {"rqvae", "rqvae-plain"} & set(tables):
        content = {k: v for k, v in config.items() if k not in COLLAB_OPTIONS}
        quantizer, z, nearest, error = rqvae("seeded-rqvae", model_dir, config=content)
        if "rqvae-plain" in tables:
            add("rqvae-plain", nearest, error)
        if "rqvae" in tables:
            add("rqvae", _balance(quantizer, z, nearest, known.to(z.device)), error)
    if "rqvae-collab" in tables:
        aligned = {**config, **{k: config.get(k, v) for k, v in COLLAB_OPTIONS.items()}}
        quantizer, z, nearest, error = rqvae(
            "seeded-rqvae-collab", collab_model_dir, config=aligned, collaborative=collaborative
        )
        add("rqvae-collab", _balance(quantizer, z, nearest, known.to(z.device)), error)
    if {"rq-kmeans", "rq-kmeans-balanced"} & set(tables):
        centroids = rq_kmeans_fit(dm.dataset("train").features, levels, codes, seed)
        nearest = rq_kmeans_encode(features, centroids)[0].long()
        test_x = dm.dataset("test").features
        error = reconstruction_error(test_x, rq_kmeans_encode(test_x, centroids)[1])
        if "rq-kmeans" in tables:
            add("rq-kmeans", nearest, error["relative_error"])
        if "rq-kmeans-balanced" in tables:
            balanced = _balance(kmeans_quantizer(centroids), features, nearest, known)
            add("rq-kmeans-balanced", balanced, error["relative_error"])
    if "rq-kmeans-collab" in tables:
        joint = joint_features(features, item_ids, collaborative)
        row = {int(i): r for r, i in enumerate(item_ids.tolist())}

        def rows(subset: str) -> Tensor:
            return joint[[row[int(i)] for i in dm.dataset(subset).item_ids.tolist()]]

        centroids = rq_kmeans_fit(rows("train"), levels, codes, seed)
        nearest = rq_kmeans_encode(joint, centroids)[0].long()
        error = reconstruction_error(rows("test"), rq_kmeans_encode(rows("test"), centroids)[1])
        balanced = _balance(kmeans_quantizer(centroids), joint, nearest, known)
        add("rq-kmeans-collab", balanced, error["relative_error"])
    if "random" in tables:
        g = torch.Generator().manual_seed(seed)
        add("random", torch.randint(0, codes, (len(item_ids), levels), generator=g), math.nan)
    return {name: out[name] for name in tables}


def _table_path(directory: Path, split: str, name: str, seed: int, cold_key: str) -> Path:
    return directory / f"seeded-ids-{split}-{name}-seed{seed}{cold_key}.safetensors"


def seeded_collaborative(
    split: str, sequences: LeaveOneOut, item_ids: Tensor | Sequence[int], seed: int
):
    """The collaborative item vectors the seeded tables of ``seed`` align with: SASRec under the
    CPU budget's training, with ``seed``, on the training parts of ``sequences`` alone
    (:func:`rqvae_lib.retrieval.collaborative.collaborative_embeddings`, cached)."""
    from rqvae_lib.retrieval.collaborative import collaborative_embeddings
    from rqvae_lib.retrieval.experiment import CPU_BUDGET

    sasrec = CPU_BUDGET.sasrec_config(seed, verbose=False)
    return collaborative_embeddings(sequences, item_ids, sasrec, split)


def seeded_id_tables(
    split: str,
    tables: Sequence[str],
    seed: int,
    new_items: Collection[int] = (),
    split_seed: int | None = None,
    rqvae_epochs: int | None = None,
    root: str | Path | None = None,
    directory: str | Path | None = None,
    config: Mapping[str, Any] | None = None,
    sequences: LeaveOneOut | None = None,
) -> dict[str, IdTable]:
    """:func:`fit_id_tables` on the catalogue of ``split``, each table cached as one small file.

    The cache, ``<directory>/seeded-ids-<split>-<table>-seed<seed>[-new<M>-split<split_seed>]
    .safetensors`` (directory: ``artifacts/retrieval``), is written whole and holds the new items
    and the measures; a file made for other new items is refused. The RQ-VAE of a seed is kept
    beside it in ``seeded-rqvae-<split>-seed<seed>[...]/``. The key names the run, not
    ``rqvae_epochs`` or ``config`` (default ``TUTORIAL_CONFIG``): delete the files to change them.
    ``rqvae-collab`` needs ``sequences`` (the split the retriever trains on, new items out of
    its training parts): SASRec learns the item vectors from those training parts alone, with
    ``seed`` (cached in ``artifacts/collaborative``), and its RQ-VAE is kept in
    ``seeded-rqvae-collab-<split>-seed<seed>[...]/``.
    """
    from rqvae_lib.data import ItemDataModule

    directory = Path(directory) if directory is not None else artifacts_dir() / "retrieval"
    new = torch.tensor(sorted({int(i) for i in new_items}), dtype=torch.long)
    cold_key = f"-new{len(new)}-split{split_seed}" if len(new) else ""
    paths = {name: _table_path(directory, split, name, seed, cold_key) for name in tables}
    out: dict[str, IdTable] = {}
    for name, path in paths.items():
        if path.is_file():
            with safe_open(str(path), "pt") as f:
                tensors = {key: f.get_tensor(key) for key in f.keys()}  # noqa: SIM118
                measures = json.loads(f.metadata()["measures"])
            if not torch.equal(tensors["new_items"], new):
                raise ValueError(f"{path} was fitted with other new items; delete it to refit")
            out[name] = IdTable(tensors["ids"], tensors["item_ids"], measures)
    missing = [name for name in tables if name not in out]
    if missing:
        collab_missing = [name for name in missing if name in COLLAB_TABLES]
        if collab_missing and sequences is None:
            raise ValueError(
                f"the {'/'.join(collab_missing)} table needs sequences=... (the retrieval split "
                "whose training parts SASRec learns the collaborative item vectors from: "
                "data.sequences)"
            )
        dm = ItemDataModule(root, split, batch_size=TUTORIAL_BATCH_SIZE)
        dm.prepare_data()
        dm.setup()
        catalogue = dm.dataset("all")
        collaborative = None
        if collab_missing:
            collaborative = seeded_collaborative(split, sequences, catalogue.item_ids, seed)
        fitted = fit_id_tables(
            missing, catalogue.features, catalogue.item_ids, seed, new.tolist(), rqvae_epochs,
            directory / f"seeded-rqvae-{split}-seed{seed}{cold_key}", config, collaborative,
            directory / f"seeded-rqvae-collab-{split}-seed{seed}{cold_key}",
        )  # fmt: skip
        directory.mkdir(parents=True, exist_ok=True)
        for name, table in fitted.items():
            tensors = {"ids": table.ids, "item_ids": table.item_ids, "new_items": new}
            meta = {"measures": json.dumps(table.measures)}
            atomic_write(paths[name], lambda tmp, t=tensors, m=meta: save_file(t, str(tmp), m))
            out[name] = table
    return {name: out[name] for name in tables}
