"""The Amazon P5 datasets (Beauty, Toys, Sports): where the files come from and how to read them.

Every split lives under ``<root>/<split>/raw/`` in the layout of the P5 release
(``p5/sequential_data.txt``, ``p5/datamaps.json``, ``sequences_asin/user_sequence.txt``,
``meta/item.csv`` and its id mappings; each file plain or gzipped): see ``data/README.md``. There are three id spaces:
P5 ids (sequences), ids local to ``meta/item.csv`` and ASINs. We always join through the ASIN.
Path helpers take ``(root, split, ...)`` in path order; functions that act on a split take
``(split, root)``. The loaders check every raw file they read against its pinned sha256 (hashed
once per process while the file is unchanged), so a truncated or edited copy fails loudly.
"""

from __future__ import annotations

import gzip
import hashlib
import html
import json
import os
import shutil
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, NamedTuple

import pandas as pd
from tqdm.auto import tqdm

from rqvae_lib.io import atomic_write

#: Public raw files are fetched from ``{base_url}/{repo}/{commit}/{path}``.
GITHUB_RAW = "https://raw.githubusercontent.com"
#: Environment variable that replaces :data:`GITHUB_RAW` (a mirror, or a local test server).
BASE_URL_ENV = "RQVAE_DOWNLOAD_BASE_URL"
#: Environment variable naming a folder that holds ready copies as ``amazon-<split>/``.
SHARED_DATA_ENV = "RQVAE_SHARED_DATA"


@dataclass(frozen=True)
class RawFile:
    """One raw file: its place under ``raw/``, its public source and the sha256 of its content."""

    relpath: str
    repo: str | None = None  # None: no public source (derived or unknown)
    commit: str | None = None
    path: str | None = None
    sha256: str | None = None  # of the uncompressed content; None: not pinned
    note: str = ""  # how to get the file when it cannot be downloaded

    def url(self, base_url: str = GITHUB_RAW) -> str | None:
        if self.repo is None:
            return None
        return f"{base_url.rstrip('/')}/{self.repo}/{self.commit}/{self.path}"


# (repo, commit) of each source, pinned (a prepared copy's PROVENANCE.md gives the details)
_LLMREC = ("Wenyueh/LLM-RecSys-ID", "2200ad9fef647ef755c01d6d7e5c5de3082606c5")
_GRAM = ("zhaodong-liu/GRAM", "2c168a4cc12e70c464502149392943e091006835")
_MARCO = ("HSandz/MARCO", "133bb5e2bd59587d3a54756c18305286f2fb8d23")
_RDREC = ("WangXFng/RDRec", "4055c3028d3afbd57a0fffd54076825836b7cad7")
_TRANSREC = ("Linxyhaha/TransRec", "d2961dd16ce6ec8ce9841b0d0c10356a8e9f796f")  # not HEAD
_LLMREC_SPORTS = ("Wenyueh/LLM-RecSys-ID", "d5d5e8b2471fe074308d2a2615f40e0a879eb8be")
_TOYS_DERIVED = (
    "it is derived (no public source): built from meta/transrec/*.npy and p5/datamaps.json by "
    "the recipe in data/README.md and in the PROVENANCE.md of a prepared amazon-toys folder, so "
    "download() cannot fetch it; copy it from a folder laid out as the P5 release (p5/, "
    "sequences_asin/, meta/; see data/README.md), such as $RQVAE_SHARED_DATA/amazon-toys"
)
_SPORTS_UNKNOWN = (
    "no public copy with a pinned sha256 is known for Sports; prepare a folder laid out as the "
    "P5 release (p5/sequential_data.txt, p5/datamaps.json, plus a MARCO-style meta/item.csv and "
    "its id mappings; see data/README.md) and put it there"
)

#: The files of every known split: where each comes from and the sha256 of its content.
# fmt: off
SPLITS: dict[str, tuple[RawFile, ...]] = {
    "beauty": (
        RawFile("p5/sequential_data.txt", *_LLMREC, "data/beauty/sequential_data.txt",
                "f85a84ab47d70e82bf0e7301804270af10fb51e127ab8f0885697d593f6f6d43"),
        RawFile("p5/datamaps.json", *_LLMREC, "data/beauty/datamaps.json",
                "715ab04838ff1ba21238475ed453a89e8c30aa6214b904d27a79e4168fc7b612"),
        RawFile("sequences_asin/user_sequence.txt", *_GRAM, "rec_datasets/Beauty/user_sequence.txt",
                "47197cbee7bdc1896926e10d96b807dce0aecb9a1f0c2ccc887c21090237c9b7"),
        RawFile("meta/item.csv", *_MARCO, "data/Beauty/item.csv",
                "9c972fa06b277cddb10861635fda3eedef3e1ca88c2978d0eec0796c982ad65d"),
        RawFile("meta/item_id_mapping.csv", *_MARCO, "data/Beauty/item_id_mapping.csv",
                "ddb1d286c2a8c874003c771f41689b8f9e0cfe83db46716008eeee2e60265253"),
        RawFile("meta/user_id_mapping.csv", *_MARCO, "data/Beauty/user_id_mapping.csv",
                "b29635f378c5fe4c42906280eaa4e9684359dad0e180af9757a033c2abbca72c"),
    ),
    "toys": (
        RawFile("p5/sequential_data.txt", *_RDREC, "data/toys/sequential.txt",
                "fa1cff57550387966440a93219753b97df62269455b3497612cdca3e8db0ceee"),
        RawFile("p5/datamaps.json", *_RDREC, "data/toys/datamaps.json",
                "a67fd09b5bbca12aea613015d9d1ed99610bb35015d3bbe8cd9e7a3eeda2c90c"),
        RawFile("sequences_asin/user_sequence.txt", *_GRAM, "rec_datasets/Toys/user_sequence.txt",
                "9c2f2cce5323c5e5fd840896a68f0274aba4c241c54f0bc77ac9183094004071"),
        RawFile("meta/transrec/title_maps.npy", *_TRANSREC, "data/toys/rec_data/title_maps.npy",
                "0f968debbc272d8821cdf608cd16526bb8ea8af049e38031d26cfb3c1eb2209b"),
        RawFile("meta/transrec/category_map.npy", *_TRANSREC, "data/toys/rec_data/category_map.npy",
                "c5788a17031ada74437e2088354e25f9535a12bce00aecb66a7671e2e22e6b33"),
        RawFile("meta/item.csv", note=_TOYS_DERIVED,
                sha256="e79a25e11aab4e1dbf45865ef2b47654671e10f97c7a8e79365139862f7cba76"),
        RawFile("meta/item_id_mapping.csv", note=_TOYS_DERIVED,
                sha256="01fcaae9afd101cad1cfcf55e347dfe822f16028bdff929844b945283ef1de5a"),
        RawFile("meta/user_id_mapping.csv", note=_TOYS_DERIVED,
                sha256="874fdce6bee61fbee55ee3cd2055eb56ba55febf8dcc6d679184928f6315f3a9"),
    ),
    "sports": (  # P5 layout; sources known for two files, but no checksums pinned
        RawFile("p5/sequential_data.txt", note=_SPORTS_UNKNOWN),
        RawFile("p5/datamaps.json", *_LLMREC_SPORTS, "data/sports/datamaps.json",
                note=_SPORTS_UNKNOWN),
        RawFile("sequences_asin/user_sequence.txt", *_GRAM, "rec_datasets/Sports/user_sequence.txt",
                note=_SPORTS_UNKNOWN),
        RawFile("meta/item.csv", note=_SPORTS_UNKNOWN),
        RawFile("meta/item_id_mapping.csv", note=_SPORTS_UNKNOWN),
        RawFile("meta/user_id_mapping.csv", note=_SPORTS_UNKNOWN),
    ),
}
# fmt: on

#: The files that loading items and sequences needs (the others are kept for provenance).
REQUIRED = (
    "p5/sequential_data.txt",
    "p5/datamaps.json",
    "meta/item.csv",
    "meta/item_id_mapping.csv",
)


class DownloadError(RuntimeError):
    """A file could not be fetched or failed its checksum; the message says what to do instead."""


def check_split(split: str) -> str:
    """Return ``split`` lower-cased, or raise a ValueError listing the known splits."""
    if split.lower() not in SPLITS:
        raise ValueError(f"unknown split {split!r}; known splits: {', '.join(SPLITS)}")
    return split.lower()


def raw_dir(root: str | Path, split: str) -> Path:
    """``<root>/<split>/raw``: where the raw files of a split live."""
    return Path(root).expanduser() / check_split(split) / "raw"


def processed_dir(root: str | Path, split: str) -> Path:
    """``<root>/<split>/processed``: caches built from the raw files (embeddings)."""
    return Path(root).expanduser() / check_split(split) / "processed"


def _entry(split: str, relpath: str) -> RawFile:
    known = (f for f in SPLITS[check_split(split)] if f.relpath == relpath)
    return next(known, RawFile(relpath, note="it is not a file this library knows how to get"))


def _how_to_get(split: str, root: str | Path, f: RawFile) -> str:
    dest = raw_dir(root, split) / f.relpath
    where = f"Put it by hand at {dest} (plain, or gzipped as {dest.name}.gz)"
    if f.sha256:
        where += f"; the sha256 of its uncompressed content must be {f.sha256}"
    local = (
        f"or point ${SHARED_DATA_ENV} at a folder holding amazon-{split}/ "
        f"(or call link_local_copy({split!r}, root, folder))"
    )
    if f.repo is None or f.sha256 is None:
        source = f" It comes from {f.url()}, but" if f.repo else ""
        return f"{where}, {local}.{source} {f.note}."
    return (
        f"{where}, {local}, or run rqvae_lib.data.download({split!r}, root={str(root)!r}), "
        f"which fetches {f.url()}."
    )


def _present(raw: Path, relpath: str) -> Path | None:
    for candidate in (raw / relpath, raw / f"{relpath}.gz"):
        if candidate.is_file():
            return candidate
    return None


def raw_file(root: str | Path, split: str, relpath: str) -> Path:
    """Find ``<root>/<split>/raw/<relpath>`` plain or ``.gz``; if absent, say how to get it."""
    found = _present(raw_dir(root, split), relpath)
    if found is None:
        raise FileNotFoundError(
            f"missing raw file {relpath!r} of split {split!r}. "
            + _how_to_get(split, root, _entry(split, relpath))
        )
    return found


def open_raw(path: Path) -> IO[str]:
    """Open a raw file as UTF-8 text, decompressing ``.gz`` on the fly."""
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8")
    return open(path, encoding="utf-8")


def missing_files(split: str, root: str | Path, required: tuple[str, ...] = REQUIRED) -> list[str]:
    """The required raw files of ``split`` that are not under ``root`` yet."""
    raw = raw_dir(root, split)
    return [relpath for relpath in required if _present(raw, relpath) is None]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


#: sha256 of uncompressed content by (resolved path, inode, size, mtime_ns): each file hashed once.
_SHA256_CACHE: dict[tuple[str, int, int, int], str] = {}


def _content_sha256(path: Path) -> str:
    """sha256 of a raw file's uncompressed content, cached while the file is unchanged on disk."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_ino, stat.st_size, stat.st_mtime_ns)
    if key not in _SHA256_CACHE:
        _SHA256_CACHE[key] = _sha256(path)
    return _SHA256_CACHE[key]


def _check_sha256(split: str, root: str | Path, f: RawFile, path: Path) -> None:
    """Raise a ValueError saying how to get a good copy if ``path`` does not match its pin."""
    if f.sha256 is None:
        return
    try:
        actual = _content_sha256(path)
    except (EOFError, gzip.BadGzipFile, zlib.error) as err:  # a truncated or damaged .gz
        actual = f"unreadable ({err})"
    if actual != f.sha256:
        raise ValueError(
            f"raw file {path} of split {split!r} is damaged or not the pinned version "
            f"(truncated or edited?): expected sha256 {f.sha256}, got {actual}. Replace it with "
            f"a good copy. {_how_to_get(split, root, f)}"
        )


def verified_raw_file(root: str | Path, split: str, relpath: str) -> Path:
    """:func:`raw_file`, checked against its pinned sha256 so a damaged copy never loads."""
    path = raw_file(root, split, relpath)
    _check_sha256(split, root, _entry(split, relpath), path)
    return path


def verify_checksums(split: str, root: str | Path) -> list[str]:
    """Check the sha256 of every present raw file that has one pinned; return the files checked."""
    checked = []
    for f in SPLITS[check_split(split)]:
        path = _present(raw_dir(root, split), f.relpath)
        if path is None or f.sha256 is None:
            continue
        _check_sha256(split, root, f, path)
        checked.append(f.relpath)
    return checked


def _fetch(url: str, dest: Path, sha256: str, hint: str) -> None:
    """Stream ``url`` to a temp file beside ``dest``; rename it only when complete and verified."""

    def fetch(tmp: Path) -> None:
        digest = hashlib.sha256()
        try:
            with urllib.request.urlopen(url, timeout=60) as resp, open(tmp, "wb") as out:
                total = int(resp.headers.get("Content-Length") or 0) or None
                with tqdm(total=total, unit="B", unit_scale=True, desc=dest.name) as bar:
                    while chunk := resp.read(1 << 16):
                        out.write(chunk)
                        digest.update(chunk)
                        bar.update(len(chunk))
        except (urllib.error.URLError, OSError) as err:
            raise DownloadError(
                f"could not download {dest.name} from {url} ({err}); the machine may be offline. "
                + hint
            ) from err
        if digest.hexdigest() != sha256:
            raise DownloadError(
                f"checksum mismatch for {dest.name} downloaded from {url}: sha256 "
                f"{digest.hexdigest()}, expected {sha256}. Nothing was written. " + hint
            )

    atomic_write(dest, fetch)


def _download(split: str, root: str | Path, base_url: str | None, force: bool) -> Path:
    split, raw = check_split(split), raw_dir(root, split)
    base_url = base_url or os.environ.get(BASE_URL_ENV) or GITHUB_RAW
    not_downloadable = []
    for f in SPLITS[split]:
        if not force and _present(raw, f.relpath):
            continue
        if f.repo is None or f.sha256 is None:
            not_downloadable.append(f)
            continue
        _fetch(f.url(base_url), raw / f.relpath, f.sha256, _how_to_get(split, root, f))
        Path(f"{raw / f.relpath}.gz").unlink(missing_ok=True)  # a forced fetch replaces a .gz
    if not_downloadable:
        raise DownloadError(
            f"download({split!r}) fetched what it could, but these files cannot be downloaded:\n"
            + "\n".join(f"- {f.relpath}: {_how_to_get(split, root, f)}" for f in not_downloadable)
        )
    return raw


def download(
    split: str, root: str | Path, base_url: str | None = None, force: bool = False
) -> Path:
    """Fetch the missing raw files of ``split`` from their pinned public sources, sha256-checked.

    ``base_url`` (or ``$RQVAE_DOWNLOAD_BASE_URL``) replaces ``https://raw.githubusercontent.com``.
    Files already present, plain or gzipped, are kept unless ``force``. Returns the raw folder.
    """
    return _download(split, root, base_url, force)


def link_local_copy(split: str, root: str | Path, source_dir: str | Path) -> Path:
    """Make ``<root>/<split>/raw`` a symlink to (or, failing that, a copy of) a prepared folder.

    ``source_dir`` is laid out as the P5 release (``p5/``, ``sequences_asin/``, ``meta/``; see
    ``data/README.md``), as ``$RQVAE_SHARED_DATA/amazon-<split>`` is. An existing symlink or empty
    folder is replaced; a folder with files in it is left alone and raises FileExistsError.
    """
    raw, source = raw_dir(root, split), Path(source_dir).expanduser().resolve()
    if not source.is_dir():
        raise FileNotFoundError(
            f"{source} is not a folder; expected the files of split {split!r} laid out as the "
            "P5 release (p5/sequential_data.txt, p5/datamaps.json, meta/item.csv, ...; see "
            "data/README.md)"
        )
    if raw.resolve() == source:
        return raw
    if raw.is_symlink():
        raw.unlink()
    elif raw.is_dir() and not any(raw.iterdir()):
        raw.rmdir()
    elif raw.exists():
        raise FileExistsError(f"{raw} already holds files; move it away to link {source} there")
    raw.parent.mkdir(parents=True, exist_ok=True)
    try:
        raw.symlink_to(source, target_is_directory=True)
    except OSError:
        shutil.copytree(source, raw)
    return raw


def ensure_raw(split: str, root: str | Path, download: bool = True) -> Path:
    """Make sure the files needed to load ``split`` are under ``root``; return the raw folder.

    In order: use what is there; else link ``$RQVAE_SHARED_DATA/amazon-<split>`` if it exists;
    else, if ``download``, fetch from the public sources; else raise FileNotFoundError.
    """
    split = check_split(split)
    if not missing_files(split, root):
        return raw_dir(root, split)
    shared = os.environ.get(SHARED_DATA_ENV)
    if shared and (Path(shared).expanduser() / f"amazon-{split}").is_dir():
        try:
            link_local_copy(split, root, Path(shared).expanduser() / f"amazon-{split}")
        except FileExistsError:  # a real raw/ folder with some files: fill it in below
            pass
        if not missing_files(split, root):
            return raw_dir(root, split)
    if download:
        return _download(split, root, base_url=None, force=False)
    raw_file(root, split, missing_files(split, root)[0])  # raises, saying how to get it
    return raw_dir(root, split)


def _unescape(text: str) -> str:
    """Undo HTML entities until stable: ``Kirk&amp;#39;s`` -> ``Kirk&#39;s`` -> ``Kirk's``."""
    while (plain := html.unescape(text)) != text:
        text = plain
    return text


def _value(raw: str) -> str | None:
    """A text field, unescaped; the sentinel ``unknown`` (lower case) and empty mean missing."""
    return None if raw in ("", "unknown") else _unescape(raw)


def load_items(split: str, root: str | Path) -> pd.DataFrame:
    """The item table ordered by P5 item id: ``item_id, asin, title, brand, categories, price``.

    Missing title, brand and price are None (``Unknown`` with a capital U is a real brand);
    ``categories`` is the first category path below the top level, as a list.
    """
    with open_raw(verified_raw_file(root, split, "p5/datamaps.json")) as fh:
        maps = json.load(fh)
    # Beauty has P5's item2id; Toys has only id2item (RDRec's reduced copy), so invert it.
    item2id = maps.get("item2id") or {asin: pid for pid, asin in maps["id2item"].items()}
    read = {"dtype": str, "keep_default_na": False}
    meta = pd.read_csv(verified_raw_file(root, split, "meta/item.csv"), **read)
    mapping = pd.read_csv(verified_raw_file(root, split, "meta/item_id_mapping.csv"), **read)
    asins = meta["item_id"].map(
        dict(zip(mapping["preprocessed_id"], mapping["original_id"], strict=True))
    )
    if asins.isna().any() or set(asins) != set(item2id):
        raise ValueError(f"{split}: meta/item.csv and p5/datamaps.json do not hold the same ASINs")
    items = pd.DataFrame(
        {
            "item_id": asins.map(item2id).astype(int),
            "asin": asins.astype(object),
            "title": pd.Series([_value(t) for t in meta["title"]], dtype=object),
            "brand": pd.Series([_value(b) for b in meta["brand"]], dtype=object),
            "categories": [
                [_unescape(c) for c in s.split("|")] if s else [] for s in meta["categories"]
            ],
            "price": pd.Series(
                [None if p in ("", "unknown") else float(p) for p in meta["price"]], dtype=object
            ),
        }
    )
    return items.sort_values("item_id", ignore_index=True)


def _missing(value: Any) -> bool:
    """None, NaN, an empty string or an empty list."""
    if isinstance(value, float):
        return value != value
    return value is None or len(value) == 0


def item_text(row: Any) -> str:
    """TIGER-style text of one item (a row of :func:`load_items`), missing fields left out.

    Template: ``"Title: <title>; Brand: <brand>; Categories: <c1>, <c2>, <c3>; Price: $<12.99>"``.
    """
    parts = []
    if not _missing(row["title"]):
        parts.append(f"Title: {row['title']}")
    if not _missing(row["brand"]):
        parts.append(f"Brand: {row['brand']}")
    if not _missing(row["categories"]):
        parts.append(f"Categories: {', '.join(row['categories'])}")
    if not _missing(row["price"]):
        parts.append(f"Price: ${float(row['price']):.2f}")
    return "; ".join(parts)


def build_item_texts(items: pd.DataFrame) -> list[str]:
    """:func:`item_text` for every row of the item table, in its order."""
    return [item_text(row) for row in items.to_dict("records")]


def top_category(items: pd.DataFrame, level: int = 1) -> pd.Series:
    """Category label per item: the first ``level`` names of its path joined by " > ".

    Items without categories get ``"(none)"``. ``level=1`` gives the top level (e.g. Skin Care).
    """
    return items["categories"].map(lambda c: " > ".join(c[:level]) if c else "(none)")


def load_user_sequences(split: str, root: str | Path) -> dict[int, list[int]]:
    """P5 user id -> that user's P5 item ids, oldest first (from ``p5/sequential_data.txt``)."""
    sequences = {}
    with open_raw(verified_raw_file(root, split, "p5/sequential_data.txt")) as fh:
        for line in fh:
            if ids := [int(tok) for tok in line.split()]:
                sequences[ids[0]] = ids[1:]
    return sequences


class LeaveOneOut(NamedTuple):
    """The standard leave-one-out split: per user, the training prefix and two held-out items."""

    train: dict[int, list[int]]  # all but the last two items
    val: dict[int, int]  # the second-to-last item
    test: dict[int, int]  # the last item


def leave_one_out(sequences: dict[int, list[int]]) -> LeaveOneOut:
    """Hold out each user's last item for test and second-to-last for validation.

    Users with fewer than three items keep them all in ``train`` (none in Beauty or Toys).
    """
    split = LeaveOneOut({}, {}, {})
    for user, seq in sequences.items():
        if len(seq) < 3:
            split.train[user] = list(seq)
            continue
        split.train[user], split.val[user], split.test[user] = seq[:-2], seq[-2], seq[-1]
    return split
