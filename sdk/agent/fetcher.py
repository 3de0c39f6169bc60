"""Mesos' fetcher: what a command's `uris` name is put in the sandbox before the
executor starts.

Each `CommandInfo.URI` is a local path, `file://`, `http://` or `https://`. It lands in
the sandbox under its `output_file`, or its basename; `executable` makes it executable
(and it is not extracted), otherwise an archive (tar, tar.gz/tgz, tar.bz2/tbz2,
tar.xz/txz, zip) is extracted into the sandbox when `extract` (the default), the archive
itself staying there too. With `cache`, the agent keeps a copy in its fetch cache and
later fetches of the same URI copy it from there (least recently used entries are
evicted beyond `cache_size` bytes; a URI larger than the cache is fetched directly).

A URI that cannot be fetched raises `FetchError` naming it and the reason; the agent
then fails the tasks of the executor it was for (TASK_FAILED, launch failed) with that
message. Extraction refuses members that would land outside the sandbox."""
from __future__ import annotations

import hashlib
import logging
import os
import shutil
import stat
import tarfile
import threading
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path
from typing import Iterable

from corral.protos import corral_pb2 as pb

log = logging.getLogger(__name__)

DEFAULT_CACHE_SIZE = 2 << 30
#: seconds an http(s) fetch may stay silent
HTTP_TIMEOUT = 60.0
TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
ARCHIVE_SUFFIXES = (*TAR_SUFFIXES, ".zip")
_CHUNK = 1 << 20


class FetchError(RuntimeError):
    def __init__(self, uri: str, reason: str) -> None:
        super().__init__(f"failed to fetch {uri!r}: {reason}")
        self.uri = uri
        self.reason = reason


class Fetcher:
    """Fetches URIs into sandboxes; one per agent (it owns the agent's fetch cache)."""

    def __init__(self, cache_dir: Path, cache_size: int = DEFAULT_CACHE_SIZE, http_timeout: float = HTTP_TIMEOUT) -> None:
        self.cache_dir = Path(cache_dir)
        self.cache_size = cache_size
        self.http_timeout = http_timeout
        self._lock = threading.Lock()
        self._entry_locks: dict[str, threading.Lock] = {}

    def fetch(self, uris: Iterable[pb.CommandInfo.URI], sandbox: Path) -> None:
        """Fetch every URI into `sandbox` (which exists), in order; FetchError at the first
        that fails."""
        for uri in uris:
            try:
                self._fetch_one(uri, Path(sandbox))
            except FetchError:
                raise
            except (OSError, tarfile.TarError, zipfile.BadZipFile, ValueError) as exc:
                raise FetchError(uri.value, f"{type(exc).__name__}: {exc}") from exc

    def _fetch_one(self, uri: pb.CommandInfo.URI, sandbox: Path) -> None:
        name = uri.output_file or os.path.basename(urllib.parse.urlparse(uri.value).path.rstrip("/"))
        target = _inside(sandbox, name, uri.value)
        target.parent.mkdir(parents=True, exist_ok=True)
        if uri.cache:
            self._from_cache(uri.value, target)
        else:
            self._download(uri.value, target)
        if uri.executable:
            target.chmod(target.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        elif uri.extract and name.endswith(ARCHIVE_SUFFIXES):
            _extract(target, sandbox, uri.value)
        log.info("fetched %s into %s", uri.value, target)

    # -- sources ------------------------------------------------------------------------
    def _download(self, value: str, target: Path) -> None:
        """Copy or download `value` to `target` (through a temporary file)."""
        parsed = urllib.parse.urlparse(value)
        tmp = target.with_name(f".{target.name}.fetching")
        try:
            if parsed.scheme in ("http", "https"):
                try:
                    with urllib.request.urlopen(value, timeout=self.http_timeout) as response, open(tmp, "wb") as out:
                        shutil.copyfileobj(response, out, _CHUNK)
                except urllib.error.HTTPError as exc:
                    raise FetchError(value, f"HTTP {exc.code} {exc.reason}") from exc
                except urllib.error.URLError as exc:
                    raise FetchError(value, f"cannot connect: {exc.reason}") from exc
            elif parsed.scheme in ("", "file"):
                path = urllib.parse.unquote(parsed.path) if parsed.scheme else value
                if not os.path.isabs(path):
                    raise FetchError(value, "a local path must be absolute")
                if not os.path.isfile(path):
                    raise FetchError(value, "no such file")
                shutil.copyfile(path, tmp)
            else:
                raise FetchError(value, f"unsupported scheme {parsed.scheme!r} (use a path, file://, http:// or https://)")
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)

    # -- the cache ------------------------------------------------------------------------
    def _from_cache(self, value: str, target: Path) -> None:
        key = hashlib.sha256(value.encode()).hexdigest()
        entry = self.cache_dir / key
        cached = entry / (os.path.basename(urllib.parse.urlparse(value).path.rstrip("/")) or "file")
        with self._lock:
            entry_lock = self._entry_locks.setdefault(key, threading.Lock())
        with entry_lock:  # one download per URI, however many launches want it
            if not cached.is_file():
                entry.mkdir(parents=True, exist_ok=True)
                self._download(value, cached)
                if cached.stat().st_size > self.cache_size:
                    shutil.move(cached, target)  # too large to keep: fetched directly
                    shutil.rmtree(entry, ignore_errors=True)
                    return
                self._evict(keep=entry)
            os.utime(entry)  # most recently used
            shutil.copyfile(cached, target)

    def _evict(self, keep: Path) -> None:
        """Delete the least recently used entries while the cache is over its size."""
        entries = []
        for entry in self.cache_dir.iterdir():
            if entry.is_dir():
                size = sum(f.stat().st_size for f in entry.iterdir() if f.is_file())
                entries.append((entry.stat().st_mtime, size, entry))
        total = sum(size for _, size, _ in entries)
        for _, size, entry in sorted(entries, key=lambda e: e[0]):
            if total <= self.cache_size:
                break
            if entry != keep:
                shutil.rmtree(entry, ignore_errors=True)
                total -= size
                log.info("fetch cache: evicted %s", entry.name)


def _inside(sandbox: Path, name: str, value: str) -> Path:
    if not name or os.path.isabs(name):
        raise FetchError(value, f"cannot name a file in the sandbox after {name!r} (set output_file)")
    target = (sandbox / name).resolve()
    if not target.is_relative_to(sandbox.resolve()):
        raise FetchError(value, f"output file {name!r} is outside the sandbox")
    return target


def _extract(archive: Path, sandbox: Path, value: str) -> None:
    if archive.name.endswith(TAR_SUFFIXES):
        with tarfile.open(archive) as tar:
            try:
                tar.extractall(sandbox, filter="data")
            except tarfile.FilterError as exc:
                raise FetchError(value, f"unsafe archive member: {exc}") from exc
        return
    with zipfile.ZipFile(archive) as zipped:
        root = sandbox.resolve()
        for member in zipped.namelist():
            if not (root / member).resolve().is_relative_to(root):
                raise FetchError(value, f"unsafe archive member {member!r} (outside the sandbox)")
        zipped.extractall(sandbox)
