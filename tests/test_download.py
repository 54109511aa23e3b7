"""download() against a local HTTP server on 127.0.0.1 that serves the shared files."""

from __future__ import annotations

import gzip
import shutil
import socket
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from rqvae_lib.data import SPLITS, DownloadError, download, verify_checksums


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def _publish(split: str, shared_data: Path, tree: Path, corrupt: str | None = None) -> None:
    """Lay out the uncompressed shared files as ``{repo}/{commit}/{path}``, as GitHub does."""
    for f in SPLITS[split]:
        if f.repo is None:
            continue
        dest = tree / f.repo / f.commit / f.path
        dest.parent.mkdir(parents=True, exist_ok=True)
        with gzip.open(shared_data / f"amazon-{split}" / f"{f.relpath}.gz", "rb") as src:
            dest.write_bytes(src.read())
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


def test_download_fetches_and_verifies(shared_data, tmp_path, serve):
    _publish("beauty", shared_data, tmp_path / "www")
    raw = download("beauty", tmp_path / "data", base_url=serve(tmp_path / "www"))
    assert sorted(verify_checksums("beauty", tmp_path / "data")) == sorted(
        f.relpath for f in SPLITS["beauty"]
    )
    assert (raw / "meta" / "item.csv").is_file() and not _leftovers(raw)
    # present files are skipped: a dead server is never asked
    download("beauty", tmp_path / "data", base_url="http://127.0.0.1:9")


def test_corrupted_file_is_rejected_and_not_kept(shared_data, tmp_path, serve):
    _publish("beauty", shared_data, tmp_path / "www", corrupt="meta/item.csv")
    with pytest.raises(DownloadError) as err:
        download("beauty", tmp_path / "data", base_url=serve(tmp_path / "www"))
    message = str(err.value)
    assert "checksum mismatch for item.csv" in message and "by hand" in message
    raw = tmp_path / "data" / "beauty" / "raw"
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


def test_toys_derived_files_are_not_downloadable(shared_data, tmp_path, serve):
    if not (shared_data / "amazon-toys").is_dir():
        pytest.skip("no amazon-toys in the shared data")
    _publish("toys", shared_data, tmp_path / "www")
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
