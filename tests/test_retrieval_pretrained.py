"""rqvae_lib.retrieval.seq2seq and .sasrec, save_pretrained/from_pretrained: a reloaded model
recommends exactly what the saved one did, the tokenizer travels with a seq2seq model, and every
unusable folder is refused by name (the generic files: test_pretrained.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from retrieval_helpers import NUM_ITEMS, shared_task, tiny_sasrec

import rqvae_lib.pretrained as pretrained
from rqvae_lib.retrieval import (
    ItemTokenizer,
    SASRec,
    Seq2SeqConfig,
    Seq2SeqRetriever,
    T5Seq2Seq,
    TigerSeq2Seq,
    build_seq2seq,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def _tokenizer() -> ItemTokenizer:
    """The task's items with codebooks wider than the codes used, and user tokens."""
    task = shared_task(0)
    ids = torch.randint(0, 6, (NUM_ITEMS, 2), generator=torch.Generator().manual_seed(4))
    return ItemTokenizer(ids, task.item_ids, num_embeddings=[8, 7], num_user_buckets=5)


def _seq2seq(backbone: str, seed: int = 0) -> Seq2SeqRetriever:
    torch.manual_seed(seed)
    tokenizer = _tokenizer()
    config = Seq2SeqConfig.preset(
        "tiny", tokenizer, max_history=6, d_model=32, num_heads=2, d_ff=64, backbone=backbone
    )
    model = build_seq2seq(config, tokenizer)
    with torch.no_grad():  # away from the initialisation, so a load that skips a tensor shows
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model


def _same_state(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("backbone", ["torch", "t5"])
def test_a_reloaded_seq2seq_model_recommends_exactly_the_same(
    backbone: str, tmp_path: Path
) -> None:
    task = shared_task(0)
    model = _seq2seq(backbone)
    folder = model.save_pretrained(tmp_path / backbone)
    assert sorted(p.name for p in folder.iterdir()) == [
        "config.json", "model.safetensors", "tokenizer.safetensors"
    ]  # fmt: skip
    kind = T5Seq2Seq if backbone == "t5" else TigerSeq2Seq
    for loader in (Seq2SeqRetriever, kind):  # the base class picks the saved backbone
        loaded = loader.from_pretrained(folder)
        assert type(loaded) is kind and not loaded.training
        assert loaded.config == model.config and _same_state(loaded, model)
        tok, saved = loaded.tokenizer, model.tokenizer
        assert tok.item_ids == saved.item_ids and tok.semantic_ids.equal(saved.semantic_ids)
        assert tok.token_table.equal(saved.token_table)
        assert (tok.level_sizes, tok.offsets, tok.num_user_buckets) == (
            saved.level_sizes, saved.offsets, saved.num_user_buckets
        )  # fmt: skip
        assert tok.num_embeddings == (8, 7)
        histories, users = task.samples.test.histories[:8], task.samples.test.users[:8]
        expected = model.recommend(histories, k=10, users=users)
        assert loaded.recommend(histories, k=10, users=users).equal(expected)
    config = json.loads((folder / "config.json").read_text())
    assert config["class_name"] == kind.__name__ and config["backbone"] == backbone
    assert {"num_heads", "num_encoder_layers", "num_decoder_layers", "tokenizer_sha256"} <= set(
        config
    )


@pytest.mark.parametrize("loss", ["bce", "ce"])
def test_a_reloaded_sasrec_recommends_exactly_the_same(loss: str, tmp_path: Path) -> None:
    task = shared_task(0)
    model = tiny_sasrec(task, 0, loss)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    loaded = SASRec.from_pretrained(model.save_pretrained(tmp_path / loss))
    assert loaded.config == model.config and _same_state(loaded, model) and not loaded.training
    assert loaded.item_ids.tolist() == task.item_ids
    histories = task.samples.test.histories[:8]
    assert loaded.recommend(histories, k=10).equal(model.recommend(histories, k=10))
    assert loaded.recommend(histories, 10, exclude_history=True).equal(
        model.recommend(histories, 10, exclude_history=True)
    )


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A saved TigerSeq2Seq and a saved SASRec, copied by each test that damages them."""
    root = tmp_path_factory.mktemp("saved")
    return {
        "seq2seq": _seq2seq("torch").save_pretrained(root / "seq2seq"),
        "sasrec": tiny_sasrec(shared_task(0), 0, "bce").save_pretrained(root / "sasrec"),
    }


def _copy(source: Path, target: Path) -> Path:
    target.mkdir()
    for path in source.iterdir():
        (target / path.name).write_bytes(path.read_bytes())
    return target


def _edit_config(folder: Path, change) -> None:
    config = json.loads((folder / "config.json").read_text())
    change(config)
    (folder / "config.json").write_text(json.dumps(config))


def test_loading_refuses_missing_files_bad_json_and_other_classes(
    saved: dict[str, Path], tmp_path: Path
) -> None:
    for name in ("config.json", "model.safetensors", "tokenizer.safetensors"):
        folder = _copy(saved["seq2seq"], tmp_path / name)
        (folder / name).unlink()
        with pytest.raises(FileNotFoundError, match=rf"{name} not found.*save_pretrained\(\)"):
            Seq2SeqRetriever.from_pretrained(folder)
    folder = _copy(saved["sasrec"], tmp_path / "bad-json")
    (folder / "config.json").write_text('{"num_items": 60,')
    with pytest.raises(ValueError, match=r"config\.json is not valid JSON"):
        SASRec.from_pretrained(folder)
    with pytest.raises(
        ValueError, match=r"holds a SASRec, not a TigerSeq2Seq; load it with SASRec"
    ):
        TigerSeq2Seq.from_pretrained(saved["sasrec"])
    with pytest.raises(ValueError, match="holds a SASRec, not a TigerSeq2Seq or T5Seq2Seq"):
        Seq2SeqRetriever.from_pretrained(saved["sasrec"])
    with pytest.raises(ValueError, match="holds a TigerSeq2Seq, not a SASRec"):
        SASRec.from_pretrained(saved["seq2seq"])
    with pytest.raises(ValueError, match="holds a TigerSeq2Seq, not a T5Seq2Seq"):
        T5Seq2Seq.from_pretrained(saved["seq2seq"])


def test_loading_refuses_other_options_and_changed_files(
    saved: dict[str, Path], tmp_path: Path
) -> None:
    folder = _copy(saved["seq2seq"], tmp_path / "old-name")  # a config of the old field names
    _edit_config(folder, lambda c: c.update(n_head=c.pop("num_heads")))
    with pytest.raises(ValueError, match=r"missing \['num_heads'\]; unknown keys \['n_head'\]"):
        Seq2SeqRetriever.from_pretrained(folder)
    folder = _copy(saved["sasrec"], tmp_path / "missing")
    _edit_config(folder, lambda c: c.pop("max_history"))
    with pytest.raises(ValueError, match=r"missing \['max_history'\]"):
        SASRec.from_pretrained(folder)
    folder = _copy(saved["seq2seq"], tmp_path / "backbone")
    _edit_config(folder, lambda c: c.update(backbone="t5"))
    with pytest.raises(ValueError, match="inconsistent: backbone 't5' is built by T5Seq2Seq"):
        Seq2SeqRetriever.from_pretrained(folder)
    for name in ("model.safetensors", "tokenizer.safetensors"):
        folder = _copy(saved["seq2seq"], tmp_path / f"changed-{name}")
        tensors = pretrained.load_file(folder / name)
        first = next(iter(tensors))
        tensors[first] = tensors[first] + 1
        pretrained.save_file(tensors, folder / name)
        with pytest.raises(ValueError, match=rf"{name} does not match config\.json: its sha256"):
            Seq2SeqRetriever.from_pretrained(folder)


def test_loading_refuses_weights_that_do_not_fit_the_config(
    saved: dict[str, Path], tmp_path: Path
) -> None:
    # A consistent folder (checksums right) whose weights are those of another size.
    folder = _copy(saved["sasrec"], tmp_path / "shape")
    _edit_config(folder, lambda c: c.update(d_ff=32))
    shapes = r"saved shape \(64, 32\), model expects \(32, 32\)"
    with pytest.raises(
        ValueError, match=r"model\.safetensors does not match the model config.*" + shapes
    ):
        SASRec.from_pretrained(folder)
    model = _seq2seq("torch")
    state = {k: v for k, v in model.state_dict().items() if k != "head.weight"}
    config = json.loads((saved["seq2seq"] / "config.json").read_text())
    options = {k: config[k] for k in Seq2SeqConfig.option_names()}
    tables = {"tokenizer": model.tokenizer.tables()}
    pretrained.write_pretrained(
        tmp_path / "missing-tensor", options, state, "TigerSeq2Seq", extra_tensors=tables
    )
    with pytest.raises(ValueError, match="missing head.weight"):
        TigerSeq2Seq.from_pretrained(tmp_path / "missing-tensor")


def test_saving_replaces_a_model_only_when_asked_and_never_half(
    saved: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = _copy(saved["seq2seq"], tmp_path / "model")
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    other = _seq2seq("torch", seed=1)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        other.save_pretrained(folder)

    def failing_save(*args, **kwargs):
        raise OSError("disk full")

    with monkeypatch.context() as patch:
        patch.setattr(pretrained, "save_file", failing_save)
        with pytest.raises(OSError, match="disk full"):
            other.save_pretrained(folder, overwrite=True)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["model"]  # no temporary folder left
    other.save_pretrained(folder, overwrite=True)
    assert _same_state(Seq2SeqRetriever.from_pretrained(folder), other)
