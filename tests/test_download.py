"""rqvae_lib.data.amazon.download, against a local HTTP server publishing the tiny fixture or Toys."""

from __future__ import annotations

import dataclasses
import gzip
import shutil
import socket
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from p5_fixture import P5Fixture

from rqvae_lib.data import (
    SPLITS,
    DownloadError,
    download,
    load_items,
    load_user_sequences,
    verify_checksums,
)


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def _publish(split: str, source: Path, tree: Path, corrupt: str | None = None) -> None:
    """Lay out the uncompressed files of ``source`` as ``{repo}/{commit}/{path}``, as GitHub does."""
    for f in SPLITS[split]:
        if f.repo is None:
            continue
        dest = tree / f.repo / f.commit / f.path
        dest.parent.mkdir(parents=True, exist_ok=True)
        gz = source / f"{f.relpath}.gz"
        dest.write_bytes(gzip.decompress(gz.read_bytes()) if gz.is_file() else
                         (source / f.relpath).read_bytes())  # fmt: skip
        if f.relpath == corrupt:
            dest.write_bytes(dest.read_bytes()[:-10] + b"corrupted!")


@pytest.fixture
def serve():
    """Serve a folder on 127.0.0.1 (a free port) for the length of one test; yield its URL."""
    servers = []

    def start(tree: Path) -> str:
        server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_QuietHandler, directory=str(tree)))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def _leftovers(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and p.name.startswith(".")]


def test_download_fetches_and_verifies(p5_tiny: P5Fixture, tmp_path, serve):
    _publish("tiny", p5_tiny.folder, tmp_path / "www")
    raw = download("tiny", tmp_path / "data", base_url=serve(tmp_path / "www"))
    assert sorted(verify_checksums("tiny", tmp_path / "data")) == sorted(
        f.relpath for f in SPLITS["tiny"]
    )
    assert (raw / "meta" / "item.csv").is_file() and not _leftovers(raw)
    # the downloaded (plain) copies pass the checks at load time
    assert len(load_items("tiny", tmp_path / "data")) == 30
    assert load_user_sequences("tiny", tmp_path / "data") == p5_tiny.sequences
    # present files are skipped: a dead server is never asked
    download("tiny", tmp_path / "data", base_url="http://127.0.0.1:9")


def test_corrupted_file_is_rejected_and_not_kept(p5_tiny: P5Fixture, tmp_path, serve):
    _publish("tiny", p5_tiny.folder, tmp_path / "www", corrupt="meta/item.csv")
    with pytest.raises(DownloadError) as err:
        download("tiny", tmp_path / "data", base_url=serve(tmp_path / "www"))
    message = str(err.value)
    assert "checksum mismatch for item.csv" in message and "by hand" in message
    raw = tmp_path / "data" / "tiny" / "raw"
    assert str(raw / "meta" / "item.csv") in message
    assert not (raw / "meta" / "item.csv").exists() and not _leftovers(raw)


def test_offline_error_says_where_to_put_files(tmp_path):
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(DownloadError) as err:
        download("beauty", tmp_path, base_url=f"http://127.0.0.1:{port}")
    message = str(err.value)
    assert "may be offline" in message and f"127.0.0.1:{port}/" in message
    assert f"Put it by hand at {tmp_path / 'beauty' / 'raw'}" in message
    assert not _leftovers(tmp_path)


def test_derived_files_are_not_downloadable(p5_tiny: P5Fixture, tmp_path, serve, monkeypatch):
    derived = ("meta/item.csv", "meta/item_id_mapping.csv")
    files = tuple(
        dataclasses.replace(f, repo=None, commit=None, path=None, note="it is derived by hand")
        if f.relpath in derived
        else f
        for f in p5_tiny.files
    )
    monkeypatch.setitem(SPLITS, "tiny", files)
    _publish("tiny", p5_tiny.folder, tmp_path / "www")
    with pytest.raises(DownloadError, match="derived by hand") as err:
        download("tiny", tmp_path / "data", base_url=serve(tmp_path / "www"))
    assert all(relpath in str(err.value) for relpath in derived)
    assert len(verify_checksums("tiny", tmp_path / "data")) == 4  # the others did arrive
    for relpath in derived:  # placed by hand: a second download has nothing left to do
        shutil.copy(p5_tiny.path(relpath), tmp_path / "data" / "tiny" / "raw" / relpath)
    download("tiny", tmp_path / "data", base_url="http://127.0.0.1:9")
    assert len(load_items("tiny", tmp_path / "data")) == 30


def test_toys_derived_files_are_not_downloadable(shared_data, tmp_path, serve):
    if not (shared_data / "amazon-toys").is_dir():
        pytest.skip("no amazon-toys in the shared data")
    _publish("toys", shared_data / "amazon-toys", tmp_path / "www")
    with pytest.raises(DownloadError, match="derived") as err:
        download("toys", tmp_path / "data", base_url=serve(tmp_path / "www"))
    assert "meta/item.csv" in str(err.value)
    assert len(verify_checksums("toys", tmp_path / "data")) == 5  # the copies did arrive
    # with the derived files placed by hand, a second download has nothing left to do
    for name in ("item.csv", "item_id_mapping.csv", "user_id_mapping.csv"):
        shutil.copy(
            shared_data / "amazon-toys" / "meta" / f"{name}.gz",
            tmp_path / "data" / "toys" / "raw" / "meta",
        )
    download("toys", tmp_path / "data", base_url="http://127.0.0.1:9")
