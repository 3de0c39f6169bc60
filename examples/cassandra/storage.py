"""A node's durable storage: a commit log, a memtable, and LMDB underneath.

Write path: every mutation (a cell, a hint, a delivered hint) is appended to the
current commit-log segment's buffer and applied to the memtable; `commit()` writes the
buffer out and, in `SyncMode.BATCH` (the default), fdatasyncs it. The node calls
`commit()` once per loop iteration, before any acknowledgement leaves, so one fsync
covers every write of the iteration (group commit) and an acknowledged write is on
disk: a node killed with SIGKILL, or its machine, loses none. In `SyncMode.PERIODIC`
the log is written before acknowledging but synced only at flushes (it survives
SIGKILL of the process, as the page cache does, but not a machine crash).

When the memtable outgrows its limit it is flushed: the commit log rotates to a new
segment, the memtable's cells are merged into LMDB (last write wins against what is
there) in one synced transaction, and the old segments are deleted. On start the
segments left are replayed into the memtable; a torn record at a segment's end (a
write cut short by a crash, never acknowledged) ends that segment's replay.

LMDB keys are the 8-byte big-endian unsigned token followed by the key, so a token
range is one cursor scan; scans (streaming, repair) flush the memtable first. Hints
(mutations kept for a replica that was down) and the node's own identity (host id,
tokens, whether it finished joining) live in their own LMDB databases.

Tombstones: a tombstone stored in LMDB carries its local deletion time (when this node
stored it, by the storage's clock; Cassandra's `localDeletionTime`), which never leaves
the node: digests, scans and streams see the cell alone. `purge_tombstones` is the
compaction that drops tombstones deleted before a cut-off (the node's `gc_grace` ago),
a bounded batch at a time; a key the memtable holds is left for the next pass, so a
purge never lets an older write come back from the memtable.
"""
from __future__ import annotations

import enum
import hashlib
import os
import struct
import time
import zlib
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import lmdb
import msgpack

from corral.examples.cassandra.cells import Cell, cell_size, pack_cell, reconcile, unpack_cell, wins
from corral.examples.cassandra.ring import MIN_TOKEN, Range, split_wrapping, token_of

_RECORD = struct.Struct(">II")  # payload length, crc32 of the payload
_TOKEN = struct.Struct(">Q")
_DELETED_AT = struct.Struct(">d")  # a stored tombstone's local deletion time, seconds
_CELL_HEADER = 9  # pack_cell's header: timestamp, tombstone flag
MAP_SIZE = 64 << 30  # address space only: the file grows as data does
DEFAULT_MEMTABLE_BYTES = 32 << 20

# commit-log record kinds
_MUTATION, _HINT, _HINT_DONE = 0, 1, 2


class SyncMode(enum.Enum):
    BATCH = "batch"        # fdatasync before acknowledging (group commit)
    PERIODIC = "periodic"  # write before acknowledging, sync at flushes


class StorageError(RuntimeError):
    """The data directory cannot be used; the message says why."""


def storage_key(key: bytes, token: int | None = None) -> bytes:
    return _TOKEN.pack((token_of(key) if token is None else token) - MIN_TOKEN) + key


def _token_bound(token: int) -> bytes:
    return _TOKEN.pack(token - MIN_TOKEN)


def _stored(cell: Cell, now: float) -> bytes:
    """A cell as LMDB keeps it: a tombstone gets its local deletion time, `now`."""
    packed = pack_cell(cell)
    return packed if cell[1] is not None else packed + _DELETED_AT.pack(now)


def _canonical(value: bytes) -> bytes:
    """A stored value without what only this node knows (a tombstone's deletion time)."""
    return value[:_CELL_HEADER] if value[_CELL_HEADER - 1] else value


def _deleted_at(value: bytes) -> float | None:
    """A stored tombstone's local deletion time; None for a live cell."""
    if not value[_CELL_HEADER - 1]:
        return None
    return _DELETED_AT.unpack_from(value, _CELL_HEADER)[0]


class CommitLog:
    """Append-only segments `segment-N.log`; a record is length, crc32, msgpack payload."""

    def __init__(self, directory: Path, sync: SyncMode) -> None:
        self.directory = directory
        self.sync = sync
        directory.mkdir(parents=True, exist_ok=True)
        self._buffer = bytearray()
        existing = self.segments()
        self.current = (existing[-1] + 1) if existing else 1
        self._fd = os.open(self._path(self.current), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self.bytes_written = 0

    def _path(self, number: int) -> Path:
        return self.directory / f"segment-{number}.log"

    def segments(self) -> list[int]:
        return sorted(int(p.stem.split("-")[1]) for p in self.directory.glob("segment-*.log"))

    def append(self, payload: bytes) -> None:
        self._buffer += _RECORD.pack(len(payload), zlib.crc32(payload))
        self._buffer += payload

    @property
    def dirty(self) -> bool:
        return bool(self._buffer)

    def commit(self) -> None:
        if not self._buffer:
            return
        with memoryview(self._buffer) as view:
            offset = 0
            while offset < len(view):
                offset += os.write(self._fd, view[offset:])
        self.bytes_written += len(self._buffer)
        self._buffer.clear()
        if self.sync is SyncMode.BATCH:
            os.fdatasync(self._fd)

    def rotate(self) -> list[int]:
        """Start a new segment; returns the segments before it (to discard after a flush)."""
        self.commit()
        os.fsync(self._fd)
        os.close(self._fd)
        old = [n for n in self.segments() if n <= self.current]
        self.current += 1
        self._fd = os.open(self._path(self.current), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        return old

    def discard(self, numbers: Iterable[int]) -> None:
        for n in numbers:
            self._path(n).unlink(missing_ok=True)

    def replay(self) -> Iterator[bytes]:
        """Every whole record of every segment, oldest first."""
        for number in self.segments():
            data = self._path(number).read_bytes()
            offset = 0
            while offset + _RECORD.size <= len(data):
                length, crc = _RECORD.unpack_from(data, offset)
                payload = data[offset + _RECORD.size: offset + _RECORD.size + length]
                if len(payload) < length or zlib.crc32(payload) != crc:
                    break  # torn tail: never acknowledged
                yield payload
                offset += _RECORD.size + length

    def close(self) -> None:
        self.commit()
        os.close(self._fd)


class Storage:
    """One node's cells, hints and identity under `directory` (see the module docstring)."""

    def __init__(self, directory: str | os.PathLike[str], sync: SyncMode = SyncMode.BATCH,
                 memtable_bytes: int = DEFAULT_MEMTABLE_BYTES, clock: Callable[[], float] = time.time) -> None:
        self.directory = Path(directory)
        self.memtable_bytes = memtable_bytes
        #: what stamps a tombstone's local deletion time as it reaches LMDB
        self.clock = clock
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            self.env = lmdb.open(str(self.directory / "lmdb"), map_size=MAP_SIZE, max_dbs=4, subdir=True,
                                 sync=True, metasync=True, readahead=False)
        except (OSError, lmdb.Error) as exc:
            raise StorageError(f"cannot open the data directory {self.directory}: {exc}") from None
        self.cells_db = self.env.open_db(b"cells")
        self.hints_db = self.env.open_db(b"hints")
        self.system_db = self.env.open_db(b"system")
        self.memtable: dict[bytes, Cell] = {}
        self._memtable_size = 0
        #: target host -> hint id -> (key, cell), not yet flushed
        self._hints: dict[str, dict[bytes, tuple[bytes, Cell]]] = {}
        self._hints_done: set[tuple[str, bytes]] = set()
        self.log = CommitLog(self.directory / "commitlog", sync)
        self._replay()
        self.flushes = 0

    # -- write path ---------------------------------------------------------------------
    def apply(self, key: bytes, cell: Cell) -> None:
        self.log.append(msgpack.packb((_MUTATION, key, cell[0], cell[1])))
        self._memtable_put(key, cell)

    def _memtable_put(self, key: bytes, cell: Cell) -> None:
        old = self.memtable.get(key)
        if old is None:
            self._memtable_size += cell_size(key, cell)
            self.memtable[key] = cell
        elif reconcile(cell, old) is cell:
            self._memtable_size += cell_size(key, cell) - cell_size(key, old)
            self.memtable[key] = cell

    def commit(self) -> None:
        """Make every write since the last commit durable (see SyncMode); flush the
        memtable when it is full."""
        self.log.commit()
        if self._memtable_size >= self.memtable_bytes:
            self.flush()

    # -- read path ----------------------------------------------------------------------
    def get(self, key: bytes) -> Cell | None:
        mine = self.memtable.get(key)
        with self.env.begin(db=self.cells_db) as txn:
            stored = txn.get(storage_key(key))
        if stored is None:
            return mine
        return reconcile(mine, unpack_cell(stored))

    def scan(self, rng: Range, after: bytes | None = None, limit: int | None = None,
             max_bytes: int | None = None) -> tuple[list[tuple[bytes, Cell]], bytes | None]:
        """Cells of the token range `rng` in token order, starting after storage key
        `after`; at most `limit` cells or about `max_bytes`. Returns (cells, the storage
        key to continue after, or None when the range is done). Flushes first."""
        self.flush()
        out: list[tuple[bytes, Cell]] = []
        size = 0
        with self.env.begin(db=self.cells_db) as txn:
            cursor = txn.cursor()
            for left, right in split_wrapping(rng):
                low = _token_bound(left + 1)
                if after is not None and after >= low:
                    low = after + b"\0"
                high = _token_bound(right) if right < 2**63 - 1 else None
                if not cursor.set_range(low):
                    continue
                for skey, value in cursor:
                    if high is not None and skey[:8] > high:
                        break
                    cell = unpack_cell(value)
                    out.append((skey[8:], cell))
                    size += len(skey) + len(value)
                    if (limit is not None and len(out) >= limit) or (max_bytes is not None and size >= max_bytes):
                        return out, skey
        return out, None

    def digests(self, ranges: Iterable[Range]) -> list[bytes]:
        """One digest per range over its cells (equal digests: equal data). Flushes first."""
        self.flush()
        out = []
        with self.env.begin(db=self.cells_db) as txn:
            cursor = txn.cursor()
            for rng in ranges:
                digest = hashlib.blake2b(digest_size=16)
                for left, right in split_wrapping(rng):
                    high = _token_bound(right) if right < 2**63 - 1 else None
                    if not cursor.set_range(_token_bound(left + 1)):
                        continue
                    for skey, value in cursor:
                        if high is not None and skey[:8] > high:
                            break
                        digest.update(skey)
                        digest.update(_canonical(value))
                out.append(digest.digest())
        return out

    def ingest(self, cells: Iterable[tuple[bytes, Cell]]) -> int:
        """Streamed cells straight into LMDB (merged, last write wins), durably; returns
        how many changed what was stored."""
        changed = 0
        now = self.clock()
        with self.env.begin(write=True, db=self.cells_db) as txn:
            for key, cell in cells:
                skey = storage_key(key)
                stored = txn.get(skey)
                if stored is not None:
                    old = unpack_cell(stored)
                    if old == cell or not wins(cell, old):
                        continue
                txn.put(skey, _stored(cell, now))
                changed += 1
        return changed

    def purge_tombstones(self, deleted_before: float, after: bytes | None = None,
                         limit: int = 10_000) -> tuple[int, bytes | None]:
        """Compaction: drop the stored tombstones deleted before `deleted_before` (local
        deletion time), looking at up to `limit` stored cells after storage key `after`.
        Returns (how many were dropped, the storage key to go on after, or None when the
        whole store has been looked at). Keys the memtable holds are kept (see the module
        docstring)."""
        purged = 0
        last: bytes | None = None
        with self.env.begin(write=True, db=self.cells_db) as txn:
            cursor = txn.cursor()
            positioned = cursor.set_range(after + b"\0") if after is not None else cursor.first()
            for _ in range(limit):
                if not positioned:
                    return purged, None
                skey, value = cursor.item()
                last = skey
                deleted = _deleted_at(value)
                if deleted is not None and deleted < deleted_before and skey[8:] not in self.memtable:
                    cursor.delete()  # moves to the next cell
                    positioned = bool(cursor.key())
                    purged += 1
                else:
                    positioned = cursor.next()
            return purged, last if positioned else None

    def load_bytes(self) -> int:
        """About how many bytes of data the node holds (nodetool's Load)."""
        with self.env.begin() as txn:
            stat = txn.stat(self.cells_db)
        pages = stat["branch_pages"] + stat["leaf_pages"] + stat["overflow_pages"]
        return pages * stat["psize"] + self._memtable_size

    # -- hints --------------------------------------------------------------------------
    def add_hint(self, target: str, hint_id: bytes, key: bytes, cell: Cell) -> None:
        self.log.append(msgpack.packb((_HINT, target, hint_id, key, cell[0], cell[1])))
        self._hints.setdefault(target, {})[hint_id] = (key, cell)

    def hint_done(self, target: str, hint_id: bytes) -> None:
        self.log.append(msgpack.packb((_HINT_DONE, target, hint_id)))
        pending = self._hints.get(target)
        if pending is not None and hint_id in pending:
            del pending[hint_id]
            if not pending:
                del self._hints[target]
        else:
            self._hints_done.add((target, hint_id))

    def hints_for(self, target: str, limit: int) -> list[tuple[bytes, bytes, Cell]]:
        """Up to `limit` undelivered hints for `target`: (hint id, key, cell)."""
        out = [(hid, key, cell) for hid, (key, cell) in list(self._hints.get(target, {}).items())[:limit]]
        if len(out) < limit:
            prefix = target.encode() + b"\0"
            with self.env.begin(db=self.hints_db) as txn:
                cursor = txn.cursor()
                if cursor.set_range(prefix):
                    for hkey, value in cursor:
                        if not hkey.startswith(prefix) or len(out) >= limit:
                            break
                        hint_id = hkey[len(prefix):]
                        if (target, hint_id) in self._hints_done:
                            continue
                        key, ts, val = msgpack.unpackb(value)
                        out.append((hint_id, key, (ts, val)))
        return out

    def hint_targets(self) -> set[str]:
        targets = set(self._hints)
        with self.env.begin(db=self.hints_db) as txn:
            cursor = txn.cursor()
            position = cursor.first()
            while position:
                target = cursor.key().split(b"\0", 1)[0].decode()
                targets.add(target)
                position = cursor.set_range(target.encode() + b"\x01")
        done_targets = {t for t in targets if not self.hints_for(t, 1)}
        return targets - done_targets

    # -- flush and recovery ------------------------------------------------------------
    def flush(self) -> None:
        """Merge the memtable and hint changes into LMDB; drop the commit-log segments
        they covered."""
        if not self.memtable and not self._hints and not self._hints_done:
            return
        old_segments = self.log.rotate()
        now = self.clock()
        with self.env.begin(write=True) as txn:
            for key, cell in self.memtable.items():
                skey = storage_key(key)
                stored = txn.get(skey, db=self.cells_db)
                if stored is not None:
                    old = unpack_cell(stored)
                    if old == cell or not wins(cell, old):
                        continue  # what is stored stays, with its deletion time if a tombstone
                txn.put(skey, _stored(cell, now), db=self.cells_db)
            for target, hints in self._hints.items():
                prefix = target.encode() + b"\0"
                for hint_id, (key, cell) in hints.items():
                    txn.put(prefix + hint_id, msgpack.packb((key, cell[0], cell[1])), db=self.hints_db)
            for target, hint_id in self._hints_done:
                txn.delete(target.encode() + b"\0" + hint_id, db=self.hints_db)
        self.memtable = {}
        self._memtable_size = 0
        self._hints = {}
        self._hints_done = set()
        self.log.discard(old_segments)
        self.flushes += 1

    def _replay(self) -> None:
        for payload in self.log.replay():
            record = msgpack.unpackb(payload)
            kind = record[0]
            if kind == _MUTATION:
                self._memtable_put(record[1], (record[2], record[3]))
            elif kind == _HINT:
                self._hints.setdefault(record[1], {})[record[2]] = (record[3], (record[4], record[5]))
            elif kind == _HINT_DONE:
                pending = self._hints.get(record[1])
                if pending is not None and record[2] in pending:
                    del pending[record[2]]
                    if not pending:
                        del self._hints[record[1]]
                else:
                    self._hints_done.add((record[1], record[2]))

    # -- the node's identity ------------------------------------------------------------
    def load_system(self) -> dict[str, Any]:
        with self.env.begin(db=self.system_db) as txn:
            value = txn.get(b"local")
        return msgpack.unpackb(value) if value is not None else {}

    def save_system(self, values: dict[str, Any]) -> None:
        with self.env.begin(write=True, db=self.system_db) as txn:
            txn.put(b"local", msgpack.packb(values))

    def close(self) -> None:
        self.log.close()
        self.env.close()
