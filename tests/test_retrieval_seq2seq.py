"""rqvae_lib.retrieval.seq2seq: TIGER's seq2seq on both backbones learns an obvious sequence task,
recommends only real items, and its pieces (presets, teacher forcing, beam steps, padding) agree."""

from __future__ import annotations

from dataclasses import MISSING, asdict, fields

import pytest
import torch
from retrieval_helpers import (
    NUM_ITEMS,
    SEEDS,
    colliding_tokenizer,
    learned_and_popular_recall,
    shared_task,
    tiny_seq2seq,
    trained_model,
)

from rqvae_lib.retrieval import (
    RetrievalSamples,
    Seq2SeqConfig,
    T5Seq2Seq,
    TigerSeq2Seq,
    build_seq2seq,
)
from rqvae_lib.retrieval.seq2seq import SEQ2SEQ_PRESETS, EncodedHistory

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: threads only contend


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["seq2seq", "t5"])
def test_seq2seq_learns_the_pattern_and_beats_most_popular(kind: str) -> None:
    model_recall, popular_recall = learned_and_popular_recall(kind)
    mean_model = sum(model_recall) / len(SEEDS)
    mean_popular = sum(popular_recall) / len(SEEDS)
    assert mean_popular < 0.3, popular_recall
    assert mean_model > 0.5 and mean_model > mean_popular + 0.4, (model_recall, popular_recall)


@pytest.mark.parametrize("kind", ["seq2seq", "t5"])
def test_seq2seq_recommends_only_catalogue_items(kind: str) -> None:
    task = shared_task(0)
    model, _ = trained_model(kind, 0)
    test = task.samples.test
    ranked = model.recommend(test.histories, k=20, beam_size=25)
    assert ranked.shape == (len(test.targets), 20)
    catalogue = set(task.item_ids)
    for row in ranked.tolist():
        assert set(row) <= catalogue and len(set(row)) == 20  # real, distinct items
    # A beam wider than the catalogue: every item once, then -1 for the dead beams.
    everything = model.recommend(test.histories[:2], k=NUM_ITEMS + 3)
    assert sorted(everything[0, :NUM_ITEMS].tolist()) == sorted(task.item_ids)
    assert everything[:, NUM_ITEMS:].eq(-1).all()


@pytest.mark.parametrize("backbone", ["torch", "t5"])
def test_teacher_forcing_shapes_causality_and_the_beam_step_agree(backbone: str) -> None:
    task = shared_task(0)
    model = tiny_seq2seq(task, 0, backbone).eval()
    train = task.samples.train
    tokens, mask = model.encode_histories(train.histories[:5])
    B, S = tokens.shape
    assert mask.shape == (B, S) and mask.equal(tokens == 0)
    assert (~mask[:, -1]).all()  # left padding: the newest token is always last
    target = task.tokenizer.encode_items(train.targets[:5])  # (B, D)
    D, V = task.tokenizer.tokens_per_item, task.tokenizer.vocab_size
    with torch.no_grad():
        logits = model(tokens, mask, target)
        assert logits.shape == (B, D, V) and logits.isfinite().all()
        # Position t predicts target[t] from BOS + target[:t]: changing the last token changes
        # nothing, changing the first changes every later position only.
        changed = target.clone()
        changed[:, -1] = target[:, -1].roll(1)
        assert torch.allclose(model(tokens, mask, changed), logits, atol=1e-5)
        changed = target.clone()
        changed[:, 0] = target[:, 0].roll(1)
        other = model(tokens, mask, changed)
        assert torch.allclose(other[:, 0], logits[:, 0], atol=1e-5)
        assert not torch.allclose(other[:, 1], logits[:, 1], atol=1e-5)
        # The beam step on prefix target[:, :t] gives teacher forcing's log-probs at t.
        step = model.step_fn(model.encode(tokens, mask), beam_size=1)
        for t in range(D):
            assert torch.allclose(step(target[:, :t]), logits[:, t].log_softmax(-1), atol=1e-5)
    batch = RetrievalSamples(train.users[:5], train.histories[:5], train.targets[:5])
    loss = model.loss(batch)
    assert loss.ndim == 0 and loss.isfinite()


@pytest.mark.parametrize("backbone", ["torch", "t5"])
def test_padding_does_not_change_a_users_scores(backbone: str) -> None:
    task = shared_task(0)
    short, long = [task.item_ids[0]], task.item_ids[1:9]
    seq2seq = tiny_seq2seq(task, 0, backbone).eval()
    with torch.no_grad():
        alone = seq2seq.encode(*seq2seq.encode_histories([short]))
        batched = seq2seq.encode(*seq2seq.encode_histories([long, short]))
        prefix = torch.empty(1, 0, dtype=torch.long)
        a = seq2seq.step_fn(alone, 1)(prefix)
        b = seq2seq.step_fn(batched, 1)(torch.empty(2, 0, dtype=torch.long))[1:]
    assert torch.allclose(a, b, atol=1e-5)


def test_beam_decoding_equals_decoding_on_repeated_memory() -> None:
    task = shared_task(0)
    model = tiny_seq2seq(task, 1).eval()
    with torch.no_grad():
        encoded = model.encode(*model.encode_histories(task.samples.test.histories[:6]))
        prefix = task.tokenizer.encode_items(task.samples.test.targets[:6] * 3)[:, :-1]  # (18, D-1)
        prefix = torch.cat([torch.full((18, 1), 2), prefix], dim=1)  # BOS first
        repeated = EncodedHistory(
            encoded.memory.repeat_interleave(3, 0), encoded.padding_mask.repeat_interleave(3, 0)
        )
        assert torch.allclose(
            model.decode_beams(encoded, prefix, 3), model.decode(repeated, prefix), atol=1e-5
        )


def test_a_preset_applies_exactly_its_sizes_over_the_tokenizers_vocabulary() -> None:
    """Every other option keeps its declared default; vocabulary, item length and the user token
    come from the tokenizer; overrides win over the preset; an unknown name is refused."""
    defaults = {f.name: f.default for f in fields(Seq2SeqConfig) if f.default is not MISSING}
    for tok in (shared_task(0).tokenizer, colliding_tokenizer(num_user_buckets=4)):
        fits = {
            "vocab_size": tok.vocab_size,
            "tokens_per_item": tok.tokens_per_item,
            "use_user_token": tok.num_user_buckets > 0,
        }
        for name, sizes in SEQ2SEQ_PRESETS.items():
            config = Seq2SeqConfig.preset(name, tok)
            assert asdict(config) == {**defaults, **sizes, **fits}, name
        config = Seq2SeqConfig.preset("tiny", tok, d_model=32, max_history=8, backbone="t5")
        expected = {**defaults, **SEQ2SEQ_PRESETS["tiny"], **fits}
        assert asdict(config) == {**expected, "d_model": 32, "max_history": 8, "backbone": "t5"}
    with pytest.raises(ValueError, match=r"preset must be one of \['cpu', 'tiger', 'tiny'\]"):
        Seq2SeqConfig.preset("TIGER", tok)


def _pre_norm_transformer_parameters(
    config: Seq2SeqConfig, vocab_size: int, source_len: int
) -> int:
    """TigerSeq2Seq's parameters counted from its sizes alone: token embeddings (shared by encoder
    and decoder) and an untied output head of vocab x C, learned source and target positions,
    attention blocks of 4 C x C weights + 4 C biases, MLPs C -> F -> C with biases, LayerNorms
    of 2 C (two per encoder layer, three per decoder layer, one after each stack)."""
    c, f = config.d_model, config.d_ff
    attention, mlp, norm = 4 * c * c + 4 * c, 2 * c * f + f + c, 2 * c
    encoder_layer = attention + mlp + 2 * norm
    decoder_layer = 2 * attention + mlp + 3 * norm
    embeddings = (vocab_size + source_len + config.tokens_per_item) * c
    head = vocab_size * c
    layers = config.num_encoder_layers * encoder_layer + config.num_decoder_layers * decoder_layer
    return embeddings + layers + 2 * norm + head


def test_each_presets_model_has_the_parameters_its_sizes_imply() -> None:
    tok = shared_task(0).tokenizer
    for name in SEQ2SEQ_PRESETS:  # "tiger": TIGER's 4 + 4 layers of 6 heads, MLP 1024
        config = Seq2SeqConfig.preset(name, tok)
        model = build_seq2seq(config, tok)
        assert isinstance(model, TigerSeq2Seq)
        source_len = config.max_history * tok.tokens_per_item  # no user token
        expected = _pre_norm_transformer_parameters(config, tok.vocab_size, source_len)
        assert sum(p.numel() for p in model.parameters()) == expected, name
        assert len(model.transformer.encoder.layers) == config.num_encoder_layers
        assert len(model.transformer.decoder.layers) == config.num_decoder_layers


def test_the_t5_backbone_has_the_configs_sizes_and_a_typo_is_refused() -> None:
    task = shared_task(0)
    # The T5 backbone at the same sizes: T5's own layer counts and head width; a typo is refused.
    config = Seq2SeqConfig.preset("tiny", task.tokenizer, backbone="t5")
    t5 = build_seq2seq(config, task.tokenizer)
    assert isinstance(t5, T5Seq2Seq) and t5.t5.config.num_decoder_layers == 1
    assert t5.t5.config.d_kv * t5.t5.config.num_heads == 64
    assert (t5.t5.config.num_layers, t5.t5.config.num_decoder_layers) == (
        config.num_encoder_layers, config.num_decoder_layers
    )  # fmt: skip
    assert (t5.t5.config.num_heads, t5.t5.config.d_kv * t5.t5.config.num_heads) == (
        config.num_heads, config.d_model
    )  # fmt: skip
    assert (t5.t5.config.d_ff, t5.t5.config.vocab_size) == (config.d_ff, task.tokenizer.vocab_size)
    with pytest.raises(ValueError, match="backbone"):
        Seq2SeqConfig.preset("tiny", task.tokenizer, backbone="T5")
