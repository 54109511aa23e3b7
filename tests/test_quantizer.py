"""rqvae_lib.quantizer: VectorQuantizer and ResidualQuantizer (lookup, losses, codebook upkeep, options)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from helpers import QUANTIZER_CASES

from rqvae_lib import ResidualQuantizer, RqVae, VectorQuantizer, codebook_maintenance

pytestmark = pytest.mark.usefixtures("one_thread")


def test_vector_quantizer_outputs_losses_and_straight_through_gradient():
    vq = VectorQuantizer(16, 4, commitment_cost=0.25, kmeans_init=False, dead_code_steps=0)
    z = torch.randn(10, 4, requires_grad=True)
    quantized, commitment, embedding, idx = vq(z)
    assert idx.shape == (10,) and idx.dtype == torch.int64
    codes = vq.embedding.weight[idx]
    torch.testing.assert_close(quantized, codes)  # forward value is the chosen code
    torch.testing.assert_close(embedding, F.mse_loss(codes, z.detach()))
    torch.testing.assert_close(commitment, 0.25 * F.mse_loss(z.detach(), codes))
    # nearest code really is the nearest
    assert torch.equal(idx, torch.cdist(z.detach(), vq.embedding.weight).argmin(1))
    # straight-through: d quantized / d z is the identity
    (quantized * torch.arange(4.0)).sum().backward()
    torch.testing.assert_close(z.grad, torch.arange(4.0).expand(10, 4))
    # the codebook loss trains the codebook only; the commitment loss trains the encoder only
    z.grad = None
    embedding.backward()
    assert z.grad is None and vq.embedding.weight.grad.abs().sum() > 0
    vq.embedding.weight.grad = None
    _, commitment, _, _ = vq(z)
    commitment.backward()
    assert vq.embedding.weight.grad is None and z.grad.abs().sum() > 0


def test_residual_quantizer_quantizes_what_earlier_levels_left():
    rq = ResidualQuantizer(3, 8, 4, kmeans_init=False, dead_code_steps=0)
    assert rq.num_levels == 3 and rq.num_embeddings == 8 and len(rq.levels) == 3
    z = torch.randn(20, 4)
    quantized, commitment, embedding, ids = rq(z)
    assert ids.shape == (20, 3) and ids.dtype == torch.int64
    # each level's code is the nearest (by plain Euclidean distance) to what earlier levels left,
    # and the output is the sum of the chosen codes
    residual, total = z.clone(), torch.zeros_like(z)
    for level, vq in enumerate(rq.levels):
        weight = vq.embedding.weight.detach()
        assert torch.equal(ids[:, level], torch.cdist(residual, weight).argmin(1))
        residual, total = residual - weight[ids[:, level]], total + weight[ids[:, level]]
    torch.testing.assert_close(quantized, total)
    torch.testing.assert_close(rq.decode_ids(ids), total)
    # the losses are the sum over levels of each level's loss on its own residual
    residual, commit_sum, embed_sum = z.clone(), 0.0, 0.0
    for level, vq in enumerate(rq.levels):
        codes = vq.embedding.weight[ids[:, level]]
        commit_sum += 0.25 * F.mse_loss(residual, codes)
        embed_sum += F.mse_loss(codes, residual)
        residual = residual - codes
    torch.testing.assert_close(commitment, commit_sum)
    torch.testing.assert_close(embedding, embed_sum)


def test_kmeans_init_uses_first_training_batch_and_inference_never_updates():
    vq = VectorQuantizer(8, 2, seed=3)
    assert not bool(vq.initialized)
    x = torch.cat(
        [
            torch.randn(50, 2) * 0.01 + torch.tensor(c)
            for c in [(5, 5), (-5, 5), (5, -5), (-5, -5)] * 2
        ]
    )
    with codebook_maintenance(vq), torch.no_grad():
        vq.train()(x)  # no gradients: no update, as in generate_semantic_ids
    assert not bool(vq.initialized)
    vq.train()(x)  # a bare forward with gradients, as after trainer.fit: no update either
    assert not bool(vq.initialized)
    with codebook_maintenance(vq):  # what training_step does
        vq(x)
    assert bool(vq.initialized)
    centres = {tuple(round(v) for v in row) for row in vq.embedding.weight.tolist()}
    assert {(5, 5), (-5, 5), (5, -5), (-5, -5)} <= centres


def test_dead_codes_are_restarted_from_current_inputs():
    vq = VectorQuantizer(4, 2, kmeans_init=False, dead_code_steps=2, seed=0)
    with torch.no_grad():
        vq.embedding.weight.copy_(torch.tensor([[0.0, 0.0], [100, 100], [200, 200], [300, 300]]))
    x = torch.randn(64, 2)
    with codebook_maintenance(vq):
        for _ in range(2):
            vq(x)
    weight = vq.embedding.weight.detach()
    assert int(vq.num_restarts) == 1
    # the three far-away codes now sit on input points
    for row in weight[1:]:
        assert (x - row).norm(dim=1).min() < 1e-6
    assert len(torch.unique(vq(x).encoding_indices)) > 1


def test_balance_rate_evens_out_code_usage_and_the_bias_is_saved():
    """Bias-based balancing: over-used codes get a larger distance bias until usage evens out."""
    torch.manual_seed(0)
    x = torch.cat([torch.randn(900, 2) * 0.3 - 0.5, torch.randn(100, 2) * 0.3 + 0.5])
    codes = torch.tensor([[-0.5, -0.5], [-0.3, -0.7], [0.5, 0.5], [0.7, 0.3]])

    def perplexity(vq):
        with torch.no_grad():
            counts = torch.bincount(vq(x).encoding_indices, minlength=4).float()
        p = counts / counts.sum()
        return float(torch.exp(-(p[p > 0] * p[p > 0].log()).sum()))

    vq = VectorQuantizer(4, 2, kmeans_init=False, dead_code_steps=0, balance_rate=0.05)
    with torch.no_grad():
        vq.embedding.weight.copy_(codes)
    before = perplexity(vq)
    with codebook_maintenance(vq):
        for _ in range(200):
            vq(x)
    after = perplexity(vq)
    assert before < 2.8 and after > 3.9, (before, after)  # 4 is perfectly even
    assert abs(float(vq.code_bias.mean())) < 1e-6 and float(vq.code_bias[2:].max()) < 0
    # the bias is a buffer: inference never moves it, and a reloaded quantizer assigns the same
    bias = vq.code_bias.clone()
    with torch.no_grad():
        ids = vq.eval()(x).encoding_indices
    assert torch.equal(vq.code_bias, bias)
    copy = VectorQuantizer(4, 2, balance_rate=0.05)
    copy.load_state_dict(vq.state_dict())
    assert torch.equal(copy.eval()(x).encoding_indices, ids)
    # off by default: the bias stays zero
    plain = VectorQuantizer(4, 2, kmeans_init=False, dead_code_steps=0)
    with codebook_maintenance(plain):
        plain(x)
    assert not plain.code_bias.any()


def test_cosine_codebooks_compare_directions_only():
    vq = VectorQuantizer(8, 4, kmeans_init=False, dead_code_steps=0, use_cosine=True)
    z = torch.randn(16, 4)
    quantized, _, _, idx = vq(z * 5.0)  # scale does not matter, only direction
    assert torch.equal(idx, vq(z).encoding_indices)
    torch.testing.assert_close(quantized.norm(dim=1), torch.ones(16))
    similarity = F.normalize(z, dim=1) @ F.normalize(vq.embedding.weight, dim=1).t()
    assert torch.equal(idx, similarity.argmax(1))
    model = RqVae(32, 64, 16, 16, num_levels=2, use_cosine=True)
    assert model.generate_semantic_ids(torch.randn(5, 32)).shape == (5, 2)


@pytest.mark.parametrize(("options", "error", "name"), QUANTIZER_CASES)
def test_quantizers_validate_their_options_as_rqvae_does(options, error, name):
    with pytest.raises(error, match=name):
        VectorQuantizer(8, 4, **options)
    with pytest.raises(error, match=name):
        ResidualQuantizer(2, 8, 4, **options)


def test_quantizer_sizes_are_validated():
    with pytest.raises(TypeError, match="num_embeddings"):
        VectorQuantizer("8", 4)
    with pytest.raises(ValueError, match="embedding_dim"):
        VectorQuantizer(8, 0)
    with pytest.raises(TypeError, match="num_levels"):
        ResidualQuantizer(2.0, 8, 4)
