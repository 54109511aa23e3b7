"""rqvae_lib.evaluate: batch_inference, evaluate_reconstruction, evaluate_quantization, codebook_stats."""

from __future__ import annotations

import math
from collections import Counter

import pytest
import torch
from helpers import (
    TINY_DIM,
    Features,
    tiny,
)
from torch.utils.data import DataLoader, TensorDataset

from rqvae_lib import (
    batch_inference,
    codebook_stats,
    evaluate_quantization,
    evaluate_reconstruction,
)
from rqvae_lib.data.datasets import FeatureDataset

pytestmark = pytest.mark.usefixtures("one_thread")


def test_codebook_stats_by_hand():
    ids = torch.tensor([[0, 0], [0, 0], [0, 1], [1, 2]])
    s = codebook_stats(ids, num_embeddings=4)
    assert s["unique_codes_per_level"] == [2, 3] and s["unique_codes"] == 5
    assert s["usage_rate_per_level"] == [0.5, 0.75] and s["usage_rate"] == 5 / 8
    assert s["perplexity_per_level"][0] == pytest.approx(2 ** (0.75 * 0.415 + 0.25 * 2), rel=1e-2)
    assert s["perplexity_per_level"][1] == pytest.approx(2**1.5, rel=1e-4)
    assert s["perplexity"] == pytest.approx(sum(s["perplexity_per_level"]) / 2)
    assert (s["unique_ids"], s["collision_rate"], s["max_items_per_id"]) == (3, 0.5, 2)


def _perplexity(codes: list[int]) -> float:
    """exp(entropy) of the codes' frequencies, counted here without the library."""
    p = [n / len(codes) for n in Counter(codes).values()]
    return math.exp(-sum(q * math.log(q) for q in p))


def test_evaluation_functions(trained, catalogue):
    loader = DataLoader(Features(catalogue.features), batch_size=100)
    ids = batch_inference(trained, loader)  # device=None: CPU here
    assert ids.shape == (1024, 3) and ids.device.type == "cpu"
    assert torch.equal(ids, trained.generate_semantic_ids(catalogue.features))
    rec = evaluate_reconstruction(trained, loader, device="cpu")
    x_hat = trained(catalogue.features)[0]
    assert rec["mse"] == pytest.approx(
        float(((x_hat - catalogue.features) ** 2).sum(1).mean()), rel=1e-4
    )
    assert rec["relative_error"] == pytest.approx(
        float(((x_hat - catalogue.features) ** 2).sum() / (catalogue.features**2).sum()), rel=1e-4
    )
    assert rec["rmse"] == pytest.approx(rec["mse"] ** 0.5) and 0 < rec["relative_error"] < 1
    q = evaluate_quantization(trained, loader)
    assert {"usage_rate", "unique_codes", "perplexity"} <= set(q)
    # the catalogue's IDs, counted here by hand: codes used per level, perplexity, shared IDs
    rows = ids.tolist()
    columns = [[row[level] for row in rows] for level in range(3)]
    used = [len(set(column)) for column in columns]
    assert q["unique_codes_per_level"] == used and q["unique_codes"] == sum(used)
    assert q["usage_rate"] == pytest.approx(sum(used) / (3 * 32))
    assert q["perplexity_per_level"] == pytest.approx([_perplexity(c) for c in columns], rel=1e-4)
    items_per_id = Counter(map(tuple, rows))
    shared = sum(n for n in items_per_id.values() if n > 1)
    assert q["unique_ids"] == len(items_per_id) and q["max_items_per_id"] == max(
        items_per_id.values()
    )
    assert q["collision_rate"] == pytest.approx(shared / 1024)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without CUDA")
def test_asking_for_cuda_without_it_is_a_clear_error(trained, catalogue):
    with pytest.raises(RuntimeError, match="CUDA is not available.*device=None"):
        batch_inference(
            trained, DataLoader(Features(catalogue.features), batch_size=100), device="cuda"
        )


EVALUATORS = {
    "batch_inference": batch_inference,
    "batch_inference_dedup": lambda m, dl, device: batch_inference(m, dl, device, deduplicate=True),
    "evaluate_reconstruction": evaluate_reconstruction,
    "evaluate_quantization": evaluate_quantization,
}


@pytest.mark.parametrize("evaluate", EVALUATORS.values(), ids=EVALUATORS.keys())
def test_evaluation_on_a_bad_loader_says_what_is_wrong(evaluate, features):
    model = tiny(0)
    empty = DataLoader(FeatureDataset(torch.empty(0, TINY_DIM)), batch_size=8)
    with pytest.raises(ValueError, match="no batches"):
        evaluate(model, empty, device="cpu")
    tuples = DataLoader(TensorDataset(features), batch_size=64)
    with pytest.raises(TypeError, match=r"got list.*FeatureDataset"):
        evaluate(model, tuples, device="cpu")
    wrong_key = DataLoader(Features(features, key="embedding"), batch_size=64)
    with pytest.raises(KeyError, match=r"'features' key, got keys \['embedding'\]"):
        evaluate(model, wrong_key, device="cpu")
