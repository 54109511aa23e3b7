"""TIGER's generative retrieval model: a Transformer encoder-decoder that writes the next item's ID.

The encoder reads the history as flat item tokens (:meth:`ItemTokenizer.encode_history`), the
decoder generates the next item's token tuple one token at a time. Training uses teacher forcing
(decoder input ``BOS + target[:-1]``, cross-entropy on every target token); inference runs
:func:`constrained_beam_search` over the item trie, so every recommended item exists.
Histories are left-padded with PAD, and positions count back from the newest token, so the last
item always sits at the same positions whatever the history length.

Two backbones share everything but the layers (``Seq2SeqConfig.backbone``): :class:`TigerSeq2Seq`
on ``torch.nn.Transformer`` (the default) and :class:`T5Seq2Seq` on Hugging Face's T5 (relative
position buckets, RMSNorm, no biases), configured to the same sizes; ``benchmarks/RESULTS.md``
compares the two. ``save_pretrained`` writes a model folder (options, weights and the tokenizer's
tables, all checksummed; :mod:`rqvae_lib.pretrained`), ``Seq2SeqRetriever.from_pretrained``
loads it back on the right backbone.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, Literal, NamedTuple

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from rqvae_lib.pretrained import check_state_dict, read_pretrained, write_pretrained
from rqvae_lib.retrieval.batches import Collated, full_width_batch
from rqvae_lib.retrieval.sequences import MAX_HISTORY, RetrievalSamples
from rqvae_lib.retrieval.tokens import BOS, EOS, PAD, ItemTokenizer
from rqvae_lib.retrieval.trie import ItemTrie, constrained_beam_search

#: Seq2seq sizes, declared once: the paper's (4 + 4 layers, 6 heads of 64, MLP 1024), a CPU
#: size, and a toy for tests and short CPU budgets.
SEQ2SEQ_PRESETS: dict[str, dict[str, Any]] = {
    "tiger": {},  # Seq2SeqConfig's defaults are TIGER's sizes
    "cpu": dict(d_model=128, num_heads=4, num_encoder_layers=2, num_decoder_layers=2, d_ff=512),
    # no dropout: short CPU budgets underfit, and dropout doubles a CPU training step
    "tiny": dict(
        d_model=64, num_heads=4, num_encoder_layers=1, num_decoder_layers=1, d_ff=128, dropout=0.0
    ),
}


@dataclass(frozen=True)
class Seq2SeqConfig:
    """Every option of the seq2seq retrievers (both backbones), declared once; defaults are
    TIGER's sizes."""

    vocab_size: int  # ItemTokenizer.vocab_size: specials, every level's codes, user buckets
    tokens_per_item: int  # semantic-ID levels + the collision suffix: the decoder's length
    max_history: int = MAX_HISTORY  # items the encoder sees (older ones are cut)
    use_user_token: bool = False  # one hashed user token before the items (TIGER)
    d_model: int = 384  # 6 heads x 64
    num_heads: int = 6
    num_encoder_layers: int = 4
    num_decoder_layers: int = 4
    d_ff: int = 1024
    dropout: float = 0.1
    backbone: Literal["torch", "t5"] = "torch"  # torch.nn.Transformer, or Hugging Face's T5

    def __post_init__(self) -> None:
        """Reject a backbone this module does not build."""
        if self.backbone not in ("torch", "t5"):
            raise ValueError(f"backbone must be 'torch' or 't5', got {self.backbone!r}")

    @property
    def max_source_len(self) -> int:
        """Longest encoder input: the user token (if any) then ``max_history`` item tuples."""
        return int(self.use_user_token) + self.max_history * self.tokens_per_item

    @classmethod
    def from_tokenizer(cls, tokenizer: ItemTokenizer, **overrides) -> Seq2SeqConfig:
        """TIGER-sized config whose vocabulary and lengths match ``tokenizer``."""
        return cls(
            vocab_size=tokenizer.vocab_size,
            tokens_per_item=tokenizer.tokens_per_item,
            use_user_token=tokenizer.num_user_buckets > 0,
            **overrides,
        )

    @classmethod
    def preset(cls, name: str, tokenizer: ItemTokenizer, **overrides) -> Seq2SeqConfig:
        """The config of a named size (:data:`SEQ2SEQ_PRESETS`) that fits ``tokenizer``."""
        if name not in SEQ2SEQ_PRESETS:
            raise ValueError(f"preset must be one of {sorted(SEQ2SEQ_PRESETS)}, got {name!r}")
        return replace(cls.from_tokenizer(tokenizer), **{**SEQ2SEQ_PRESETS[name], **overrides})

    @classmethod
    def option_names(cls) -> tuple[str, ...]:
        """Every option, as stored in a saved model's ``config.json``."""
        return tuple(f.name for f in fields(cls))


#: Name of the tokenizer's tables in a saved model folder (``tokenizer.safetensors``).
TOKENIZER_TABLES = "tokenizer"


class EncodedHistory(NamedTuple):
    """The encoder's output for a batch, ready for the decoder's cross-attention."""

    memory: Tensor  # (B, S, C)
    padding_mask: Tensor  # (B, S) bool, True at PAD


class Seq2SeqRetriever(nn.Module):
    """What every backbone shares: tokens in, teacher-forced loss, constrained beam search out.

    A backbone implements :meth:`encode` and :meth:`decode`; :meth:`decode_beams` has a
    generic default that a backbone may replace with a faster one (as :class:`TigerSeq2Seq` does).
    """

    def __init__(self, config: Seq2SeqConfig, tokenizer: ItemTokenizer) -> None:
        """Check that ``config`` fits ``tokenizer``, which supplies the tokens and the item trie."""
        super().__init__()
        if config.vocab_size < tokenizer.vocab_size or config.tokens_per_item != (
            tokenizer.tokens_per_item
        ):
            raise ValueError(
                f"config (vocab {config.vocab_size}, {config.tokens_per_item} tokens per item) does "
                f"not fit the tokenizer (vocab {tokenizer.vocab_size}, {tokenizer.tokens_per_item})"
            )
        if config.use_user_token != (tokenizer.num_user_buckets > 0):
            raise ValueError("config.use_user_token must match tokenizer.num_user_buckets > 0")
        self.config = config
        self.tokenizer = tokenizer
        self.trie = ItemTrie.from_tokenizer(tokenizer)

    @property
    def device(self) -> torch.device:
        """Where the parameters live; inputs are built there."""
        return next(self.parameters()).device

    def encode(self, tokens: Tensor, padding_mask: Tensor) -> EncodedHistory:
        """Run the encoder over left-padded history tokens (B, S)."""
        raise NotImplementedError

    def decode(self, encoded: EncodedHistory, decoder_input: Tensor) -> Tensor:
        """Next-token logits (B, T, V) for decoder input (B, T) that starts with BOS."""
        raise NotImplementedError

    def decode_beams(
        self, encoded: EncodedHistory, decoder_input: Tensor, beam_size: int
    ) -> Tensor:
        """:meth:`decode` for ``beam_size`` rows per history (rows ``b*beam ..`` read history
        ``b``): logits (B*beam, T, V). This default repeats the memory ``beam_size`` times."""
        return self.decode(
            EncodedHistory(
                encoded.memory.repeat_interleave(beam_size, dim=0),
                encoded.padding_mask.repeat_interleave(beam_size, dim=0),
            ),
            decoder_input,
        )

    def _history_tokens(self, histories, users) -> tuple[Tensor, Tensor]:
        """Left-padded encoder tokens (B, max_source_len) and each row's width (B,), on the CPU."""
        c = self.config
        if c.use_user_token and users is None:
            raise ValueError("this model reads a user token: pass users")
        tokens = torch.full((len(histories), c.max_source_len), PAD, dtype=torch.long)
        widths = torch.empty(len(histories), dtype=torch.long)
        for i, h in enumerate(histories):
            row = self.tokenizer.encode_history(
                list(h)[-c.max_history :], None if not c.use_user_token else users[i]
            )
            if not row or (c.use_user_token and len(row) == 1):
                raise ValueError("every history needs at least one item")
            tokens[i, c.max_source_len - len(row) :] = torch.tensor(row, dtype=torch.long)
            widths[i] = len(row)
        return tokens, widths

    def encode_histories(
        self, histories: Sequence[Sequence[int]], users: Sequence[int] | None = None
    ) -> tuple[Tensor, Tensor]:
        """Left-padded encoder tokens (B, S) and their padding mask (B, S), True at PAD."""
        tokens, widths = self._history_tokens(histories, users)
        tokens = tokens[:, tokens.shape[1] - int(widths.max()) :].to(self.device)
        return tokens, tokens == PAD

    def collate(self, samples: RetrievalSamples) -> Collated:
        """A split as tensors for the training loop: history tokens and target token tuples."""
        tokens, widths = self._history_tokens(samples.histories, samples.users)
        target = self.tokenizer.encode_items(samples.targets)  # (N, D)
        return Collated({"tokens": tokens, "target": target}, widths, ("tokens",))

    def forward(self, tokens: Tensor, padding_mask: Tensor, target: Tensor) -> Tensor:
        """Teacher forcing: logits (B, D, V) for target tuples (B, D) given history tokens (B, S)."""
        bos = torch.full_like(target[:, :1], BOS)  # (B, 1)
        decoder_input = torch.cat([bos, target[:, :-1]], dim=1)  # (B, D)
        return self.decode(self.encode(tokens, padding_mask), decoder_input)  # (B, D, V)

    def loss(self, batch: dict[str, Tensor] | RetrievalSamples) -> Tensor:
        """Mean cross-entropy over every token of the target items (the training objective).

        ``batch`` is a slice of :meth:`collate`'s inputs, or samples (collated here).
        """
        if isinstance(batch, RetrievalSamples):
            batch = full_width_batch(self.collate(batch), self.device)
        tokens, target = batch["tokens"], batch["target"]  # (B, S), (B, D)
        logits = self.forward(tokens, tokens == PAD, target)  # (B, D, V)
        return F.cross_entropy(logits.flatten(0, 1).float(), target.flatten())

    def step_fn(self, encoded: EncodedHistory, beam_size: int) -> Callable[[Tensor], Tensor]:
        """A ``constrained_beam_search`` step: prefix (B*beam, t) -> next-token log-probs (B*beam, V).

        Rows ``b*beam .. (b+1)*beam - 1`` read batch row ``b``'s history, as the search expects.
        """

        def step(prefix: Tensor) -> Tensor:
            bos = torch.full((prefix.shape[0], 1), BOS, dtype=torch.long, device=prefix.device)
            logits = self.decode_beams(encoded, torch.cat([bos, prefix], dim=1), beam_size)
            return logits[:, -1].float().log_softmax(dim=-1)  # (B*beam, V)

        return step

    @torch.no_grad()
    def recommend(
        self,
        histories: Sequence[Sequence[int]],
        k: int,
        *,
        beam_size: int | None = None,
        users: Sequence[int] | None = None,
    ) -> Tensor:
        """Top-k item ids (B, k) by trie-constrained beam search (beam defaults to k); -1 if short."""
        beam_size = k if beam_size is None else beam_size
        if beam_size < k:
            raise ValueError(f"beam_size ({beam_size}) must be at least k ({k})")
        was_training = self.training
        self.eval()
        try:
            if self.trie.leaf_item.device != self.device:
                self.trie.to(self.device)
            encoded = self.encode(*self.encode_histories(histories, users))
            out = constrained_beam_search(
                self.step_fn(encoded, beam_size), len(histories), beam_size, self.trie
            )
        finally:
            self.train(was_training)
        return out.items[:, :k].cpu()  # (B, k)

    # --- save and load --------------------------------------------------------------------
    def save_pretrained(self, directory: str | os.PathLike, overwrite: bool = False) -> Path:
        """Write ``config.json``, ``model.safetensors`` and ``tokenizer.safetensors``.

        The config holds every :class:`Seq2SeqConfig` option, the class name, the library
        version and the sha256 of both tensor files; the tokenizer's tables
        (:meth:`ItemTokenizer.tables`) travel with the model, since its tokens mean nothing
        without them. The folder is written whole or not at all; an existing non-empty one is
        replaced only with ``overwrite=True``. Returns ``directory``.
        """
        return write_pretrained(
            directory,
            asdict(self.config),
            self.state_dict(),
            type(self).__name__,
            overwrite=overwrite,
            extra_tensors={TOKENIZER_TABLES: self.tokenizer.tables()},
        )

    @classmethod
    def from_pretrained(
        cls, directory: str | os.PathLike, map_location: str | torch.device = "cpu"
    ) -> Seq2SeqRetriever:
        """Load a model written by :meth:`save_pretrained`, in eval mode on ``map_location``.

        On the base class the saved class name picks the backbone (:class:`TigerSeq2Seq` or
        :class:`T5Seq2Seq`); on a backbone class a folder of another class is refused. Missing
        files, invalid JSON, missing or unknown options, checksums that do not match and
        weights that do not fit the config are errors that name the file.
        """
        backbones = {klass.__name__: klass for klass in BACKBONES.values()}
        expected = list(backbones) if cls is Seq2SeqRetriever else [cls.__name__]
        files = read_pretrained(
            directory,
            expected,
            Seq2SeqConfig.option_names(),
            extra_names=(TOKENIZER_TABLES,),
            map_location=map_location,
        )
        where = Path(directory)
        class_name = files.config["class_name"]
        klass = cls if class_name == cls.__name__ else backbones[class_name]
        config = Seq2SeqConfig(**{k: files.config[k] for k in Seq2SeqConfig.option_names()})
        if not issubclass(klass, BACKBONES[config.backbone]):
            raise ValueError(
                f"{where / 'config.json'} is inconsistent: backbone {config.backbone!r} is built "
                f"by {BACKBONES[config.backbone].__name__}, but class_name says {class_name}; "
                "save the model again"
            )
        tokenizer = ItemTokenizer.from_tables(
            files.extras[TOKENIZER_TABLES], source=str(where / f"{TOKENIZER_TABLES}.safetensors")
        )
        model = klass(config, tokenizer)
        check_state_dict(
            model.state_dict(), files.state, str(where / "model.safetensors"),
            f"the model config in {where / 'config.json'}",
        )  # fmt: skip
        model.load_state_dict(files.state)
        return model.to(map_location).eval()


class TigerSeq2Seq(Seq2SeqRetriever):
    """Encoder-decoder on ``torch.nn.Transformer`` with shared token embeddings and learned positions."""

    def __init__(self, config: Seq2SeqConfig, tokenizer: ItemTokenizer) -> None:
        """Build the layers; ``tokenizer`` supplies the item tokens and the trie of real items."""
        super().__init__(config, tokenizer)
        c = config
        self.token_emb = nn.Embedding(c.vocab_size, c.d_model, padding_idx=PAD)  # encoder + decoder
        self.source_pos = nn.Embedding(c.max_source_len, c.d_model)
        self.target_pos = nn.Embedding(c.tokens_per_item, c.d_model)
        self.drop = nn.Dropout(c.dropout)

        def layer(kind: type[nn.Module]) -> nn.Module:
            return kind(
                c.d_model, c.num_heads, c.d_ff, c.dropout, activation="gelu", batch_first=True,
                norm_first=True,
            )  # fmt: skip

        # The encoder is built here only to switch off the nested-tensor path (unused with
        # norm_first, and it would warn); otherwise this is nn.Transformer's own encoder.
        encoder = nn.TransformerEncoder(
            layer(nn.TransformerEncoderLayer), c.num_encoder_layers, nn.LayerNorm(c.d_model),
            enable_nested_tensor=False,
        )  # fmt: skip
        self.transformer = nn.Transformer(
            c.d_model, c.num_heads, c.num_encoder_layers, c.num_decoder_layers, c.d_ff, c.dropout,
            activation="gelu", custom_encoder=encoder, batch_first=True, norm_first=True,
        )  # fmt: skip
        self.head = nn.Linear(c.d_model, c.vocab_size, bias=False)
        for emb in (self.token_emb, self.source_pos, self.target_pos):  # nanoGPT's 0.02
            nn.init.normal_(emb.weight, std=0.02)
        self.token_emb.weight.data[PAD].zero_()

    def encode(self, tokens: Tensor, padding_mask: Tensor) -> EncodedHistory:
        """Run the encoder over left-padded history tokens."""
        B, S = tokens.shape
        end = self.config.max_source_len
        pos = torch.arange(end - S, end, device=tokens.device)  # (S,) counted back from the end
        x = self.drop(self.token_emb(tokens) + self.source_pos(pos))  # (B, S, C)
        memory = self.transformer.encoder(x, src_key_padding_mask=padding_mask)  # (B, S, C)
        return EncodedHistory(memory, padding_mask)

    def decode(self, encoded: EncodedHistory, decoder_input: Tensor) -> Tensor:
        """Next-token logits (B, T, V) for decoder input (B, T) that starts with BOS."""
        T = decoder_input.shape[1]
        pos = torch.arange(T, device=decoder_input.device)  # (T,)
        y = self.drop(self.token_emb(decoder_input) + self.target_pos(pos))  # (B, T, C)
        causal = nn.Transformer.generate_square_subsequent_mask(
            T, device=y.device, dtype=torch.bool
        )
        h = self.transformer.decoder(
            y,
            encoded.memory,
            tgt_mask=causal,
            tgt_is_causal=True,
            memory_key_padding_mask=encoded.padding_mask,
        )  # (B, T, C)
        return self.head(h)  # (B, T, V)

    def decode_beams(
        self, encoded: EncodedHistory, decoder_input: Tensor, beam_size: int
    ) -> Tensor:
        """:meth:`decode` for ``beam_size`` rows per history: logits (B*beam, T, V).

        Rows ``b*beam .. (b+1)*beam - 1`` read history ``b``. The same function as ``decode`` on
        memory repeated ``beam_size`` times, but cross-attention takes the queries of all of a
        history's beams at once, so its keys and values are projected once per history, not
        once per beam (20x less work with 20 beams). Runs the decoder layers' own sub-modules.
        """
        B, S, C = encoded.memory.shape
        T = decoder_input.shape[1]
        pos = torch.arange(T, device=decoder_input.device)  # (T,)
        y = self.drop(self.token_emb(decoder_input) + self.target_pos(pos))  # (B*beam, T, C)
        causal = nn.Transformer.generate_square_subsequent_mask(
            T, device=y.device, dtype=torch.bool
        )
        for layer in self.transformer.decoder.layers:  # norm_first layers, as built in __init__
            h = layer.norm1(y)
            h = layer.self_attn(h, h, h, attn_mask=causal, is_causal=True, need_weights=False)[0]
            y = y + layer.dropout1(h)
            q = layer.norm2(y).reshape(B, beam_size * T, C)  # every beam of a history together
            h = layer.multihead_attn(
                q, encoded.memory, encoded.memory, key_padding_mask=encoded.padding_mask,
                need_weights=False,
            )[0]  # fmt: skip
            y = y + layer.dropout2(h.reshape(B * beam_size, T, C))
            h = layer.linear2(layer.dropout(layer.activation(layer.linear1(layer.norm3(y)))))
            y = y + layer.dropout3(h)
        return self.head(self.transformer.decoder.norm(y))  # (B*beam, T, V)


class T5Seq2Seq(Seq2SeqRetriever):
    """The same retriever on Hugging Face's ``T5ForConditionalGeneration``, at the config's sizes.

    T5's own layers and defaults: relative position buckets instead of learned positions (so
    left padding changes nothing), RMSNorm, no biases, the output head tied to the embeddings.
    Used to check the choice of ``torch.nn.Transformer`` by a measurement
    (``benchmarks/retrieval.py --backbone t5``).
    """

    def __init__(self, config: Seq2SeqConfig, tokenizer: ItemTokenizer) -> None:
        """Build a T5 encoder-decoder of ``config``'s sizes over the tokenizer's vocabulary."""
        super().__init__(config, tokenizer)
        from transformers import T5Config, T5ForConditionalGeneration

        c = config
        if c.d_model % c.num_heads:
            raise ValueError(
                f"d_model ({c.d_model}) must be a multiple of num_heads ({c.num_heads})"
            )
        t5 = T5Config(
            vocab_size=c.vocab_size, d_model=c.d_model, d_kv=c.d_model // c.num_heads, d_ff=c.d_ff,
            num_layers=c.num_encoder_layers, num_decoder_layers=c.num_decoder_layers,
            num_heads=c.num_heads, dropout_rate=c.dropout, feed_forward_proj="gelu",
            pad_token_id=PAD, decoder_start_token_id=BOS, eos_token_id=EOS, use_cache=False,
        )  # fmt: skip
        self.t5 = T5ForConditionalGeneration(t5)

    def encode(self, tokens: Tensor, padding_mask: Tensor) -> EncodedHistory:
        """T5's encoder over left-padded history tokens (B, S)."""
        out = self.t5.encoder(input_ids=tokens, attention_mask=(~padding_mask).long())
        return EncodedHistory(out.last_hidden_state, padding_mask)  # (B, S, C)

    def decode(self, encoded: EncodedHistory, decoder_input: Tensor) -> Tensor:
        """Next-token logits (B, T, V) from T5's decoder (causal) and its output head."""
        from transformers.modeling_outputs import BaseModelOutput

        return self.t5(
            encoder_outputs=BaseModelOutput(last_hidden_state=encoded.memory),
            attention_mask=(~encoded.padding_mask).long(),
            decoder_input_ids=decoder_input,
            use_cache=False,
        ).logits  # (B, T, V): T5's forward, with its output scaling of tied embeddings


#: The class each ``Seq2SeqConfig.backbone`` builds.
BACKBONES: dict[str, type[Seq2SeqRetriever]] = {"torch": TigerSeq2Seq, "t5": T5Seq2Seq}


def build_seq2seq(config: Seq2SeqConfig, tokenizer: ItemTokenizer) -> Seq2SeqRetriever:
    """The retriever of ``config.backbone``: :class:`TigerSeq2Seq` or :class:`T5Seq2Seq`."""
    return BACKBONES[config.backbone](config, tokenizer)
