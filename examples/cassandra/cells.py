"""Cells: a key's value with the timestamp of its write; a tombstone is a cell whose value
is None (a delete). Replicas reconcile by last write wins: the higher timestamp wins; on
a tie a tombstone beats a value, and of two values the greater one wins (Cassandra's
rules), so every replica picks the same cell whatever order writes arrive in.

A cell is a plain tuple `(timestamp in microseconds, value or None)`: millions of them
live in memtables and on the wire.
"""
from __future__ import annotations

import struct

import mmh3

Cell = tuple[int, "bytes | None"]

_HEADER = struct.Struct(">qB")  # timestamp, 1 if tombstone


def wins(a: Cell, b: Cell) -> bool:
    """Whether cell `a` supersedes cell `b` (or equals it)."""
    if a[0] != b[0]:
        return a[0] > b[0]
    va, vb = a[1], b[1]
    if va is None:
        return True
    if vb is None:
        return False
    return va >= vb


def reconcile(a: Cell | None, b: Cell | None) -> Cell | None:
    """The cell that survives of two (either may be missing)."""
    if a is None:
        return b
    if b is None:
        return a
    return a if wins(a, b) else b


def pack_cell(cell: Cell) -> bytes:
    ts, value = cell
    if value is None:
        return _HEADER.pack(ts, 1)
    return _HEADER.pack(ts, 0) + value


def unpack_cell(data: bytes | memoryview) -> Cell:
    ts, tombstone = _HEADER.unpack_from(data)
    return (ts, None) if tombstone else (ts, bytes(data[_HEADER.size:]))


def cell_digest(cell: Cell | None) -> bytes:
    """What a digest read answers: equal digests mean equal cells."""
    if cell is None:
        return b""
    return mmh3.hash_bytes(pack_cell(cell))


def cell_size(key: bytes, cell: Cell) -> int:
    """Bytes a cell accounts for in a memtable (key, value and a fixed overhead)."""
    value = cell[1]
    return len(key) + (len(value) if value is not None else 0) + 16
