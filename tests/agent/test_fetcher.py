"""The agent's fetcher: paths, file:// and http URIs into a sandbox, archives extracted,
executables marked, the per-agent cache, and failures that name the URI and reason."""
from __future__ import annotations

import http.server
import io
import os
import tarfile
import threading
import zipfile
from pathlib import Path
from typing import Iterator

import pytest

import corral
from corral.agent.fetcher import Fetcher, FetchError


class Files(http.server.SimpleHTTPRequestHandler):
    requests: list[str] = []

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        Files.requests.append(self.path)
        super().do_GET()


@pytest.fixture()
def served(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """An HTTP server on loopback serving a directory: (base URL, directory)."""
    root = tmp_path / "www"
    root.mkdir()
    Files.requests = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), lambda *a: Files(*a, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", root
    server.shutdown()
    server.server_close()


def tarball(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture()
def sandbox(tmp_path: Path) -> Path:
    box = tmp_path / "sandbox"
    box.mkdir()
    return box


def test_paths_file_urls_and_http_land_in_the_sandbox(tmp_path: Path, sandbox: Path,
                                                      served: tuple[str, Path]) -> None:
    base, root = served
    (tmp_path / "plain.txt").write_text("plain")
    (tmp_path / "tool.sh").write_text("#!/bin/sh\necho tool\n")
    (root / "remote.txt").write_text("remote")
    fetcher = Fetcher(tmp_path / "cache")
    fetcher.fetch([corral.uri(str(tmp_path / "plain.txt")),
                   corral.uri(f"file://{tmp_path / 'tool.sh'}", executable=True),
                   corral.uri(f"{base}/remote.txt", output_file="sub/renamed.txt")], sandbox)
    assert (sandbox / "plain.txt").read_text() == "plain"
    assert os.access(sandbox / "tool.sh", os.X_OK)
    assert (sandbox / "sub" / "renamed.txt").read_text() == "remote"


def test_archives_are_extracted_unless_told_not_to(tmp_path: Path, sandbox: Path) -> None:
    archive = tarball(tmp_path / "bundle.tar.gz", {"pkg/mod.py": b"X = 1\n"})
    with zipfile.ZipFile(tmp_path / "lib.zip", "w") as z:
        z.writestr("lib/data.txt", "zipped")
    (tmp_path / "keep.tgz").write_bytes(archive.read_bytes())
    Fetcher(tmp_path / "cache").fetch([corral.uri(str(archive)), corral.uri(str(tmp_path / "lib.zip")),
                                       corral.uri(str(tmp_path / "keep.tgz"), extract=False)], sandbox)
    assert (sandbox / "pkg" / "mod.py").read_text() == "X = 1\n"
    assert (sandbox / "lib" / "data.txt").read_text() == "zipped"
    assert (sandbox / "bundle.tar.gz").exists() and (sandbox / "keep.tgz").exists()


def test_cached_uris_are_downloaded_once_per_agent(tmp_path: Path, served: tuple[str, Path]) -> None:
    base, root = served
    (root / "big.bin").write_bytes(b"x" * 1000)
    fetcher = Fetcher(tmp_path / "cache")
    for i in range(3):
        box = tmp_path / f"box{i}"
        box.mkdir()
        fetcher.fetch([corral.uri(f"{base}/big.bin", cache=True)], box)
        assert (box / "big.bin").read_bytes() == b"x" * 1000
    assert Files.requests == ["/big.bin"]
    (tmp_path / "box3").mkdir()
    fetcher.fetch([corral.uri(f"{base}/big.bin")], tmp_path / "box3")  # not cached: fetched again
    assert Files.requests == ["/big.bin", "/big.bin"]


def test_the_cache_evicts_the_least_recently_used_beyond_its_size(tmp_path: Path, sandbox: Path) -> None:
    for name in "abc":
        (tmp_path / name).write_bytes(name.encode() * 400)
    fetcher = Fetcher(tmp_path / "cache", cache_size=1000)
    for name in "abc":
        fetcher.fetch([corral.uri(str(tmp_path / name), cache=True)], sandbox)
    kept = sorted(f.name for entry in (tmp_path / "cache").iterdir() for f in entry.iterdir())
    assert kept == ["b", "c"]
    (tmp_path / "huge").write_bytes(b"h" * 5000)  # larger than the cache: fetched, not kept
    fetcher.fetch([corral.uri(str(tmp_path / "huge"), cache=True)], sandbox)
    assert (sandbox / "huge").stat().st_size == 5000
    assert sorted(f.name for entry in (tmp_path / "cache").iterdir() for f in entry.iterdir()) == ["b", "c"]


@pytest.mark.parametrize("value, reason", [
    ("/no/such/file.txt", "no such file"),
    ("relative/file.txt", "must be absolute"),
    ("ftp://example/x", "unsupported scheme 'ftp'"),
    ("http://127.0.0.1:9/x", "cannot connect"),
])
def test_a_uri_that_cannot_be_fetched_is_named_with_the_reason(tmp_path: Path, sandbox: Path, value: str,
                                                                reason: str) -> None:
    with pytest.raises(FetchError, match=reason) as caught:
        Fetcher(tmp_path / "cache").fetch([corral.uri(value)], sandbox)
    assert value in str(caught.value)


def test_http_errors_and_unsafe_names_fail(tmp_path: Path, sandbox: Path, served: tuple[str, Path]) -> None:
    base, _ = served
    with pytest.raises(FetchError, match="HTTP 404"):
        Fetcher(tmp_path / "cache").fetch([corral.uri(f"{base}/missing.txt")], sandbox)
    (tmp_path / "f").write_text("x")
    with pytest.raises(FetchError, match="outside the sandbox"):
        Fetcher(tmp_path / "cache").fetch([corral.uri(str(tmp_path / "f"), output_file="../escape")], sandbox)
    evil = tarball(tmp_path / "evil.tar.gz", {"../../escaped": b"no"})
    with pytest.raises(FetchError, match="unsafe archive member"):
        Fetcher(tmp_path / "cache").fetch([corral.uri(str(evil))], sandbox)
    assert not (tmp_path / "escaped").exists()
