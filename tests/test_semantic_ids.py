"""rqvae_lib.semantic_ids: collision suffixes, tokens, prefix groups and deduplicate."""

from __future__ import annotations

import pytest
import torch
from helpers import feature_loader, tiny

from rqvae_lib import (
    ResidualQuantizer,
    add_collision_suffix,
    batch_inference,
    codebook_stats,
    ids_to_tokens,
    prefix_groups,
)
from rqvae_lib.semantic_ids import deduplicate

pytestmark = pytest.mark.usefixtures("one_thread")


def test_collision_suffix_tokens_and_prefix_groups():
    ids = torch.tensor([[1, 2, 3], [1, 2, 3], [1, 4, 0], [1, 2, 3]])
    suffixed = add_collision_suffix(ids)
    assert suffixed[:, 3].tolist() == [0, 1, 0, 2]
    assert codebook_stats(suffixed, 256)["collision_rate"] == 0.0
    assert ids_to_tokens(ids[:1]) == ["<a_1><b_2><c_3>"]
    assert prefix_groups(ids, 1) == {(1,): [0, 1, 2, 3]}
    assert prefix_groups(ids, 2) == {(1, 2): [0, 1, 3], (1, 4): [2]}


def test_collision_suffix_makes_ids_unique():
    ids = torch.tensor([[1, 2, 3], [1, 2, 3], [4, 5, 6]])
    assert torch.unique(add_collision_suffix(ids), dim=0).shape[0] == 3


def test_deduplicate_breaks_ties_at_the_last_level_only():
    torch.manual_seed(0)
    rq = ResidualQuantizer(2, 8, 4, kmeans_init=False, dead_code_steps=0)
    z = torch.randn(6, 4) * 1e-4 + 0.5  # six near-identical items: one shared ID
    ids = rq(z).encoding_indices
    assert len(torch.unique(ids, dim=0)) == 1
    unique = deduplicate(rq, z, ids)
    assert torch.equal(unique[:, 0], ids[:, 0]) and len(torch.unique(unique, dim=0)) == 6
    # items placed exactly on distinct codes: nothing collides, so nothing moves
    with torch.no_grad():
        for vq in rq.levels:
            vq.embedding.weight.copy_(
                torch.eye(8, 4) * 3 if vq is rq.levels[0] else torch.randn(8, 4)
            )
    exact = rq.decode_ids(torch.tensor([[i, i] for i in range(4)]))
    ids = rq(exact).encoding_indices
    assert len(torch.unique(ids, dim=0)) == 4
    assert torch.equal(deduplicate(rq, exact, ids), ids)


def test_deduplicate_warns_and_counts_when_a_prefix_holds_more_items_than_codes():
    torch.manual_seed(0)
    rq = ResidualQuantizer(2, 4, 4, kmeans_init=False, dead_code_steps=0)
    z = torch.randn(6, 4) * 1e-4 + 0.5  # six items, one prefix, only four last-level codes
    ids = rq(z).encoding_indices
    with pytest.warns(UserWarning, match=r"deduplicate: 3 items still share a full ID"):
        unique = deduplicate(rq, z, ids)
    assert len(torch.unique(unique, dim=0)) == 4


def test_deduplicate_uses_the_code_bias_as_lookup_does():
    rq = ResidualQuantizer(1, 4, 2, kmeans_init=False, dead_code_steps=0)
    with torch.no_grad():
        rq.levels[0].embedding.weight.copy_(torch.tensor([[0.0, 0], [1, 0], [0, 1], [5, 5]]))
        rq.levels[0].code_bias.copy_(torch.tensor([0.0, 10.0, 0.0, 0.0]))
    z = torch.tensor([[0.9, 0.0], [0.9, 0.0]])  # nearest code 1, but its bias sends them to 0
    ids = rq(z).encoding_indices
    assert ids[:, 0].tolist() == [0, 0]
    # a balanced assignment under the biased cost: code 0 and the next cheapest, code 2
    assert sorted(deduplicate(rq, z, ids)[:, 0].tolist()) == [0, 2]


def test_deduplicated_ids_warn_with_the_number_of_items_still_sharing_an_id(features):
    model = tiny(0, num_levels=1, num_embeddings=4, kmeans_init=False, dead_code_steps=0).eval()
    assert model.quantizer.num_levels == 1  # one prefix (the empty one) for 4 codes
    with pytest.warns(UserWarning, match=r"deduplicate: (\d+) items still share") as record:
        ids = model.generate_semantic_ids(features[:20], deduplicate=True)
    _, counts = torch.unique(ids, dim=0, return_counts=True)
    shared = int(counts[counts > 1].sum())
    assert shared >= 16
    assert any(f"deduplicate: {shared} items" in str(w.message) for w in record)
    with pytest.warns(UserWarning, match=f"deduplicate: {shared} items"):
        batched = batch_inference(model, feature_loader(features[:20], 8), "cpu", deduplicate=True)
    assert torch.equal(batched, ids)
