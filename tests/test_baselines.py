"""rqvae_lib.baselines: RQ-KMeans (rq_kmeans_fit, rq_kmeans_encode, rq_kmeans)."""

from __future__ import annotations

import numpy as np
import torch

from rqvae_lib.baselines import rq_kmeans, rq_kmeans_encode, rq_kmeans_fit
from rqvae_lib.data.synthetic import make_synthetic_catalogue
from rqvae_lib.evaluate import reconstruction_error


def _rows(a) -> list[tuple[float, ...]]:
    return sorted(map(tuple, np.round(np.asarray(a, dtype=np.float64), 5).tolist()))


def test_rq_kmeans_fit_and_encode_recover_a_planted_two_level_code():
    """16 points = 4 far-apart centres + the same 4 small offsets: level 1 must find the centres,
    level 2 the offsets, so every point is rebuilt exactly and IDs name (centre, offset)."""
    centres = torch.tensor([[0.0, 0.0], [20.0, 0.0], [0.0, 20.0], [20.0, 20.0]])
    offsets = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
    x = (centres[:, None, :] + offsets[None, :, :]).reshape(16, 2)  # row 4 * c + o
    centroids = rq_kmeans_fit(x, num_levels=2, num_embeddings=4, seed=3)
    assert [c.shape for c in centroids] == [(4, 2), (4, 2)]
    assert _rows(centroids[0]) == _rows(centres) and _rows(centroids[1]) == _rows(offsets)

    ids, recon = rq_kmeans_encode(x, centroids)
    assert ids.shape == (16, 2) and ids.dtype == torch.int64
    torch.testing.assert_close(recon, x)
    by_centre, by_offset = ids[:, 0].reshape(4, 4), ids[:, 1].reshape(4, 4)
    assert (by_centre == by_centre[:, :1]).all() and len(set(by_centre[:, 0].tolist())) == 4
    assert (by_offset == by_offset[:1, :]).all() and len(set(by_offset[0].tolist())) == 4

    # a new item: the nearest centre (20, 0), then the offset nearest to (0.4, 0.9): (0, 1)
    new_ids, new_recon = rq_kmeans_encode(torch.tensor([[20.4, 0.9]]), centroids)
    torch.testing.assert_close(new_recon, torch.tensor([[20.0, 1.0]]))
    assert new_ids.tolist() == [[int(ids[4, 0]), int(ids[2, 1])]]  # centre 1's code, offset 2's

    # rq_kmeans does both on the same items
    base_ids, base_recon = rq_kmeans(x, num_levels=2, num_embeddings=4, seed=3)
    torch.testing.assert_close(base_recon, x)
    assert len(torch.unique(base_ids, dim=0)) == 16  # one (centre, offset) pair per item


def test_rq_kmeans_encode_new_items_and_error_falls_with_depth():
    gen = torch.Generator().manual_seed(1)
    train, test = torch.randn(400, 6, generator=gen), torch.randn(50, 6, generator=gen)
    centroids = rq_kmeans_fit(train, num_levels=3, num_embeddings=16, seed=0)
    ids, recon = rq_kmeans_encode(test, centroids)
    assert ids.shape == (50, 3) and ids.dtype == torch.int64 and recon.shape == (50, 6)
    assert int(ids.max()) < 16
    errors = [
        reconstruction_error(test, rq_kmeans_encode(test, centroids[:d])[1])["relative_error"]
        for d in (1, 2, 3)
    ]
    assert errors[0] > errors[1] > errors[2]


def test_rq_kmeans_reduces_error_level_by_level():
    cat = make_synthetic_catalogue(num_items=600, dim=16, branching=(4, 4), seed=0)
    errors = []
    for levels in (1, 2, 3):
        ids, recon = rq_kmeans(cat.features, num_levels=levels, num_embeddings=8)
        assert ids.shape == (600, levels) and ids.dtype == torch.int64
        errors.append(float(((cat.features - recon) ** 2).sum() / (cat.features**2).sum()))
    assert errors[0] > errors[1] > errors[2]
    # level 1 with 4 true top clusters and 8 codes: each code sits inside one top-level cluster
    ids, _ = rq_kmeans(cat.features, num_levels=1, num_embeddings=8)
    for code in ids[:, 0].unique():
        assert len(set(cat.labels[(ids[:, 0] == code).numpy(), 0])) == 1
