"""SASRec (Kang & McAuley, 2018): causal self-attention over item-id embeddings, the ID baseline.

Each item is one learned embedding (no semantic ID); the output at the last position is scored
against every item embedding (shared with the input, as in the paper). Two losses:

- ``"bce"``: the paper's, and TIGER's SASRec row: the target against one uniformly sampled
  negative (never the target itself), binary cross-entropy on both scores.
- ``"ce"``: full softmax cross-entropy over the whole catalogue (stronger on small catalogues).

One loss term per (history, target) sample, at the last position: the P5 training samples are
every prefix of a user's sequence, so supervising every position of every prefix (the paper's
one-pass trick over whole sequences) would count early transitions many times over.
Histories are left-padded, so the newest item always has the last position.
``save_pretrained`` / ``from_pretrained`` write and load a checked model folder
(:mod:`rqvae_lib.pretrained`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Literal

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from rqvae_lib.pretrained import check_state_dict, read_pretrained, write_pretrained
from rqvae_lib.retrieval.batches import Collated, full_width_batch
from rqvae_lib.retrieval.metrics import drop_history
from rqvae_lib.retrieval.sequences import MAX_HISTORY, RetrievalSamples

#: Embedding index of padding; item i of the catalogue has index i + 1.
PAD_INDEX = 0


@dataclass(frozen=True)
class SASRecConfig:
    """Every option of :class:`SASRec`, declared once; defaults follow the paper (2 blocks, d 64)."""

    num_items: int  # catalogue size; embeddings hold one more row for padding
    max_history: int = MAX_HISTORY  # positions (20 as TIGER's histories; the paper uses 50)
    d_model: int = 64
    num_heads: int = 1
    num_layers: int = 2
    d_ff: int = 64  # the paper's point-wise feed-forward keeps the width
    dropout: float = 0.2
    loss: Literal["bce", "ce"] = "bce"

    def __post_init__(self) -> None:
        """Reject an unknown loss early, before any training."""
        if self.loss not in ("bce", "ce"):
            raise ValueError(f"loss must be 'bce' or 'ce', got {self.loss!r}")

    @classmethod
    def option_names(cls) -> tuple[str, ...]:
        """Every option, as stored in a saved model's ``config.json``."""
        return tuple(f.name for f in fields(cls))


class SASRec(nn.Module):
    """Causal Transformer encoder over item embeddings; scores items by dot product with them."""

    def __init__(self, config: SASRecConfig, item_ids: Sequence[int] | Tensor) -> None:
        """Build the layers; ``item_ids`` is the catalogue, in the order of the embedding rows."""
        super().__init__()
        ids = torch.as_tensor(item_ids).long().view(-1)
        if len(ids) != config.num_items or len(set(ids.tolist())) != len(ids):
            raise ValueError(f"need {config.num_items} distinct item ids, got {len(ids)}")
        self.config = config
        self.register_buffer("item_ids", ids)  # (N,) embedding row i + 1 -> item id
        self._index = {item: i + 1 for i, item in enumerate(ids.tolist())}
        c = config
        self.item_emb = nn.Embedding(c.num_items + 1, c.d_model, padding_idx=PAD_INDEX)
        self.pos_emb = nn.Embedding(c.max_history, c.d_model)
        self.drop = nn.Dropout(c.dropout)
        layer = nn.TransformerEncoderLayer(
            c.d_model, c.num_heads, c.d_ff, c.dropout, activation="relu", batch_first=True,
            norm_first=True,
        )  # fmt: skip
        self.encoder = nn.TransformerEncoder(
            layer, c.num_layers, nn.LayerNorm(c.d_model), enable_nested_tensor=False
        )
        # Small embeddings (nanoGPT's 0.02): unit-variance ones give huge initial dot products.
        for emb in (self.item_emb, self.pos_emb):
            nn.init.normal_(emb.weight, std=0.02)
        self.item_emb.weight.data[PAD_INDEX].zero_()

    @property
    def device(self) -> torch.device:
        """Where the parameters live; inputs are built there."""
        return self.item_emb.weight.device

    def item_index(self, items: Sequence[int], device: torch.device | str | None = None) -> Tensor:
        """Embedding rows (len(items),) of item ids, on ``device`` (default: the model's)."""
        try:
            rows = [self._index[int(i)] for i in items]
        except KeyError as err:
            raise KeyError(f"item {err.args[0]} is not in the SASRec catalogue") from None
        return torch.tensor(rows, dtype=torch.long, device=device or self.device)

    def _rows(self, histories: Sequence[Sequence[int]]) -> tuple[Tensor, Tensor]:
        """Left-padded embedding rows (B, max_history) and each row's width (B,), on the CPU."""
        L = self.config.max_history
        out = torch.full((len(histories), L), PAD_INDEX, dtype=torch.long)
        widths = torch.empty(len(histories), dtype=torch.long)
        for i, h in enumerate(histories):
            row = list(h)[-L:]
            if not row:
                raise ValueError("every history needs at least one item")
            out[i, L - len(row) :] = self.item_index(row, device="cpu")
            widths[i] = len(row)
        return out, widths

    def encode_histories(self, histories: Sequence[Sequence[int]]) -> Tensor:
        """Left-padded embedding rows (B, T) of the last ``max_history`` items (PAD_INDEX left)."""
        rows, widths = self._rows(histories)
        return rows[:, rows.shape[1] - int(widths.max()) :].to(self.device)

    def collate(self, samples: RetrievalSamples) -> Collated:
        """A split as tensors for the training loop: history rows and target rows."""
        rows, widths = self._rows(samples.histories)
        target = self.item_index(samples.targets, device="cpu")  # (N,)
        return Collated({"seq": rows, "target": target}, widths, ("seq",))

    def forward(self, seq: Tensor) -> Tensor:
        """Hidden state (B, T, C) of left-padded item rows (B, T); position t sees only <= t."""
        T = seq.shape[1]
        pos = torch.arange(
            self.config.max_history - T, self.config.max_history, device=seq.device
        )  # (T,)
        x = self.item_emb(seq) * self.config.d_model**0.5 + self.pos_emb(pos)  # (B, T, C)
        x = self.drop(x)
        return self.encoder(x, mask=self.attention_mask(seq))  # (B, T, C)

    def attention_mask(self, seq: Tensor) -> Tensor:
        """Bool (B * num_heads, T, T), True = blocked: the future and, except itself, every PAD.

        A separate key-padding mask would leave the PAD positions on the left with no key at all
        (NaN rows, which then leak through the values); letting them see themselves avoids it.
        """
        B, T = seq.shape
        i = torch.arange(T, device=seq.device)
        future = i[None, :] > i[:, None]  # (T, T) key j after query i
        pad_key = (seq == PAD_INDEX)[:, None, :] & (i[None, :] != i[:, None])  # (B, T, T)
        blocked = future[None] | pad_key  # (B, T, T)
        return blocked.repeat_interleave(self.config.num_heads, dim=0)  # (B * num_heads, T, T)

    def last_hidden(self, histories: Sequence[Sequence[int]]) -> Tensor:
        """The newest position's hidden state (B, C): the user's representation."""
        return self.forward(self.encode_histories(histories))[:, -1]  # (B, C)

    def sample_negatives(self, positives: Tensor) -> Tensor:
        """One uniform negative row per positive row (both 1..N), never equal to the positive."""
        n = self.config.num_items
        if n < 2:
            raise ValueError("negative sampling needs at least two items")
        r = torch.randint(1, n, positives.shape, device=positives.device)  # N - 1 choices
        return r + (r >= positives).long()  # skip the positive: uniform over the other N - 1

    def loss(self, batch: dict[str, Tensor] | RetrievalSamples) -> Tensor:
        """The configured loss (``"bce"`` or ``"ce"``) of each sample's target at the last position.

        ``batch`` is a slice of :meth:`collate`'s inputs, or samples (collated here).
        """
        if isinstance(batch, RetrievalSamples):
            batch = full_width_batch(self.collate(batch), self.device)
        h = self.forward(batch["seq"])[:, -1].float()  # (B, C)
        pos = batch["target"]  # (B,)
        if self.config.loss == "ce":
            logits = h @ self.item_emb.weight[1:].T.float()  # (B, N)
            return F.cross_entropy(logits, pos - 1)
        neg = self.sample_negatives(pos)  # (B,)
        pos_logit = (h * self.item_emb(pos).float()).sum(-1)  # (B,)
        neg_logit = (h * self.item_emb(neg).float()).sum(-1)  # (B,)
        return (
            F.binary_cross_entropy_with_logits(pos_logit, torch.ones_like(pos_logit))
            + F.binary_cross_entropy_with_logits(neg_logit, torch.zeros_like(neg_logit))
        ) / 2

    @torch.no_grad()
    def scores(self, histories: Sequence[Sequence[int]]) -> Tensor:
        """Score of every catalogue item (B, N), columns in ``item_ids`` order."""
        was_training = self.training
        self.eval()
        try:
            return self.last_hidden(histories) @ self.item_emb.weight[1:].T  # (B, N)
        finally:
            self.train(was_training)

    @torch.no_grad()
    def recommend(
        self,
        histories: Sequence[Sequence[int]],
        k: int,
        *,
        users: Sequence[int] | None = None,
        exclude_history: bool = False,
    ) -> Tensor:
        """Top-k item ids (B, k), best first; ``exclude_history`` drops history items (drop_history).

        ``users`` is accepted for a common interface with the seq2seq model and ignored.
        """
        scores = self.scores(histories)  # (B, N)
        width = k + max(len(h) for h in histories) if exclude_history else k
        width = min(width, self.config.num_items)
        ranked = self.item_ids[scores.topk(width, dim=1).indices].cpu()  # (B, width)
        if exclude_history:
            ranked = drop_history(ranked, histories)
        if ranked.shape[1] < k:  # a catalogue smaller than k: pad like most_popular
            ranked = torch.cat([ranked, torch.full((len(ranked), k - ranked.shape[1]), -1)], 1)
        return ranked[:, :k]

    # --- save and load --------------------------------------------------------------------
    def save_pretrained(self, directory: str | os.PathLike, overwrite: bool = False) -> Path:
        """Write ``config.json`` (every :class:`SASRecConfig` option, the class name, the library
        version, the weights' sha256) and ``model.safetensors``, which holds the catalogue's item
        ids (the ``item_ids`` buffer) with the weights. The folder is written whole or not at
        all; an existing non-empty one is replaced only with ``overwrite=True``."""
        return write_pretrained(
            directory, asdict(self.config), self.state_dict(), type(self).__name__, overwrite
        )

    @classmethod
    def from_pretrained(
        cls, directory: str | os.PathLike, map_location: str | torch.device = "cpu"
    ) -> SASRec:
        """Load a model written by :meth:`save_pretrained`, in eval mode on ``map_location``.

        A folder of another class, missing files, invalid JSON, missing or unknown options,
        a checksum that does not match, or weights that do not fit the config are errors that
        name the file.
        """
        files = read_pretrained(
            directory, [cls.__name__], SASRecConfig.option_names(), map_location=map_location
        )
        weights = Path(directory) / "model.safetensors"
        config = SASRecConfig(**{k: files.config[k] for k in SASRecConfig.option_names()})
        if "item_ids" not in files.state:
            raise ValueError(f"{weights} holds no item_ids (the catalogue); save the model again")
        try:
            model = cls(config, files.state["item_ids"].cpu())
        except ValueError as err:
            raise ValueError(f"{weights}: the catalogue does not fit the config ({err})") from err
        check_state_dict(
            model.state_dict(), files.state, str(weights),
            f"the model config in {Path(directory) / 'config.json'}",
        )  # fmt: skip
        model.load_state_dict(files.state)
        return model.to(map_location).eval()
