"""A tiny copy of the P5 Amazon layout (30 items, 24 users) for tests that must not need real data.

The folder is laid out as the P5 release (see data/README.md): ``p5/sequential_data.txt``,
``p5/datamaps.json``, ``sequences_asin/user_sequence.txt``, ``meta/item.csv``,
``meta/item_id_mapping.csv`` and ``meta/user_id_mapping.csv``, with the ``p5/`` and
``sequences_asin/`` files gzipped and ``meta/`` plain so both ways of storing a file are read.
The item table has the quirks of the real one: ids local to ``item.csv`` that differ from the P5
ids (joined through the ASIN), HTML entities escaped twice, the ``unknown`` sentinel, empty fields,
a real brand called ``Unknown`` and an ASIN with a leading zero. :func:`build_p5_fixture` also
returns the split's :class:`RawFile` entries with the sha256 of each file pinned, so a test can
register the folder as a split (``monkeypatch.setitem(SPLITS, "tiny", fixture.files)``).
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path

from rqvae_lib.data.amazon import RawFile

#: The split name tests register the fixture under.
TINY = "tiny"
#: The fake public source of the fixture's files, for serving them to ``download()``.
REPO, COMMIT = "example/p5-tiny", "0123456789abcdef0123456789abcdef01234567"
NUM_ITEMS, NUM_USERS = 30, 24
GZIPPED = ("p5/sequential_data.txt", "p5/datamaps.json", "sequences_asin/user_sequence.txt")

# P5 item id -> (title, brand, price, categories) as written in meta/item.csv; the quirks first.
_SPECIAL = {
    1: ("Nail Lacquer, Simmer and Shimmer, 0.5-Fluid Ounce", "OPI", "12.0",
        "Makeup|Nails|Nail Polish"),
    2: ("Castile &amp;quot;Pure&amp;quot; Soap Bar", "Kirk&amp;#39;s Soap", "4.5",
        "Bath &amp; Body|Bath|Soaps"),
    3: ("unknown", "COKA", "5.04", "Makeup|Face|Concealers & Neutralizers"),
    4: ("Brightening Gel 1oz.", "unknown", "19.99", "Hair Care|Styling Products|Gels"),
    5: ("Plain Comb", "", "", "Tools & Accessories|Brushes"),
    6: ("Mystery Cream", "Unknown", "unknown", "Skin Care|Face|Creams"),
    7: ("Gloom", "unknown", "", ""),
    8: ("L&#39;Oreal Shampoo", "L&#39;Oreal Paris", "6.99", "Hair Care|Shampoos"),
}  # fmt: skip
_TOPS = ("Skin Care", "Hair Care", "Makeup", "Fragrance", "Bath & Body", "Tools & Accessories")
_BRANDS = ("Acme", "Bellus", "Corva", "Dermo")


@dataclass(frozen=True)
class P5Fixture:
    """A built fixture folder and what a correct loader must read from it."""

    folder: Path  # laid out as the P5 release
    files: tuple[RawFile, ...]  # the split's entries for SPLITS, sha256 of each file pinned
    asins: dict[int, str]  # P5 item id -> ASIN
    rows: dict[int, tuple[str, str, str, str]]  # P5 item id -> (title, brand, price, categories)
    sequences: dict[int, list[int]]  # P5 user id -> P5 item ids, oldest first

    def path(self, relpath: str) -> Path:
        """Where ``relpath`` lives in the folder (plain or ``.gz``)."""
        gz = self.folder / f"{relpath}.gz"
        return gz if gz.is_file() else self.folder / relpath


def _asin(item: int) -> str:
    return {12: "0123456789", 13: "7806397051"}.get(item, f"B00TINY{item:03d}")


def _row(item: int) -> tuple[str, str, str, str]:
    if item in _SPECIAL:
        return _SPECIAL[item]
    top = _TOPS[item % len(_TOPS)]
    return (f"Tiny Product {item}", _BRANDS[item % len(_BRANDS)], f"{item + 0.5:.2f}",
            f"{top}|Sub {item % 3}|Leaf {item}")  # fmt: skip


def _sequence(user: int) -> list[int]:
    """Distinct items (11 is coprime with 30), five to eight of them; user 1 has 1..5."""
    if user == 1:
        return [1, 2, 3, 4, 5]
    return [(user * 7 + k * 11) % NUM_ITEMS + 1 for k in range(5 + user % 4)]


def _csv(header: list[str], rows: list[list[str]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


def p5_contents() -> dict[str, str]:
    """The uncompressed text of every file of the fixture, by path under ``raw/``."""
    asins = {i: _asin(i) for i in range(1, NUM_ITEMS + 1)}
    users = {u: f"AUSER{u:09d}" for u in range(1, NUM_USERS + 1)}
    seqs = {u: _sequence(u) for u in users}
    local = {asin: n for n, asin in enumerate(sorted(asins.values()), start=1)}  # as MARCO does
    by_local = sorted(asins, key=lambda i: local[asins[i]])
    attrs = sorted({_row(i)[1] for i in asins} | {c for i in asins for c in _row(i)[3].split("|")})
    attrs = [a for a in attrs if a not in ("", "unknown")]
    datamaps = {
        "user2id": {users[u]: str(u) for u in users},
        "item2id": {asins[i]: str(i) for i in asins},
        "id2user": {str(u): users[u] for u in users},
        "id2item": {str(i): asins[i] for i in asins},
        "attribute2id": {a: n for n, a in enumerate(attrs, start=1)},
        "id2attribute": {str(n): a for n, a in enumerate(attrs, start=1)},
    }
    items = []
    for i in by_local:
        title, brand, price, cats = _row(i)
        attributes = f"Brand: {brand}, Price: {price}, Categories: {cats}"
        items.append([str(local[asins[i]]), title, brand, price, cats, attributes])
    return {
        "p5/sequential_data.txt": "".join(" ".join(map(str, [u, *seqs[u]])) + "\n" for u in users),
        "p5/datamaps.json": json.dumps(datamaps),
        "sequences_asin/user_sequence.txt": "".join(
            " ".join([users[u], *(asins[i] for i in seqs[u])]) + "\n" for u in users
        ),
        "meta/item.csv": _csv(
            ["item_id", "title", "brand", "price", "categories", "item_attributes"], items
        ),
        "meta/item_id_mapping.csv": _csv(
            ["preprocessed_id", "original_id"], [[str(local[asins[i]]), asins[i]] for i in by_local]
        ),
        "meta/user_id_mapping.csv": _csv(
            ["preprocessed_id", "original_id"], [[str(u), users[u]] for u in users]
        ),
    }


def build_p5_fixture(folder: str | Path, gzipped: tuple[str, ...] = GZIPPED) -> P5Fixture:
    """Write the fixture into ``folder`` (laid out like amazon-beauty) and describe it."""
    folder = Path(folder)
    files = []
    for relpath, text in p5_contents().items():
        data = text.encode("utf-8")
        dest = folder / (f"{relpath}.gz" if relpath in gzipped else relpath)
        dest.parent.mkdir(parents=True, exist_ok=True)
        # mtime=0: the same bytes every time, so a test run is reproducible
        dest.write_bytes(gzip.compress(data, mtime=0) if relpath in gzipped else data)
        sha = hashlib.sha256(data).hexdigest()
        files.append(RawFile(relpath, REPO, COMMIT, f"data/{TINY}/{relpath}", sha))
    return P5Fixture(
        folder=folder,
        files=tuple(files),
        asins={i: _asin(i) for i in range(1, NUM_ITEMS + 1)},
        rows={i: _row(i) for i in range(1, NUM_ITEMS + 1)},
        sequences={u: _sequence(u) for u in range(1, NUM_USERS + 1)},
    )
