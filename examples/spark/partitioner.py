"""Which reduce partition a key goes to: by hash, or by range (for sorting).

Hashes must agree across executor processes: the driver starts every executor with the
same PYTHONHASHSEED, and `portable_hash` gives None and tuples (whose built-in hash
involves None's id in Python 3.11) a hash that does not depend on the process."""
from __future__ import annotations

import bisect
import sys
from typing import Any, Callable

_MASK = sys.maxsize


def portable_hash(value: Any) -> int:
    if value is None:
        return 0
    if type(value) is tuple:
        h = 0x345678
        for item in value:
            h ^= portable_hash(item)
            h = (h * 1000003) & _MASK
        return h ^ len(value)
    return hash(value)


class Partitioner:
    num_partitions: int

    def partition_func(self) -> Callable[[Any], int]:
        raise NotImplementedError


class HashPartitioner(Partitioner):
    def __init__(self, num_partitions: int) -> None:
        if num_partitions < 1:
            raise ValueError(f"number of partitions must be at least 1, not {num_partitions}")
        self.num_partitions = num_partitions

    def partition_func(self) -> Callable[[Any], int]:
        n = self.num_partitions

        def partition(key: Any) -> int:
            if key is None or type(key) is tuple:
                return portable_hash(key) % n
            return hash(key) % n

        return partition

    def __eq__(self, other: object) -> bool:
        return type(other) is HashPartitioner and other.num_partitions == self.num_partitions

    def __hash__(self) -> int:
        return hash(("hash", self.num_partitions))

    def __repr__(self) -> str:
        return f"HashPartitioner({self.num_partitions})"


class RangePartitioner(Partitioner):
    """Keys up to bounds[0] go to partition 0, up to bounds[1] to 1, ...; reversed when
    descending, so that partition 0 always holds the first keys of the sort."""

    def __init__(self, bounds: list[Any], ascending: bool = True) -> None:
        self.bounds = bounds
        self.ascending = ascending
        self.num_partitions = len(bounds) + 1

    def partition_func(self) -> Callable[[Any], int]:
        bounds, last = self.bounds, len(self.bounds)
        if self.ascending:
            return lambda key: bisect.bisect_left(bounds, key)
        return lambda key: last - bisect.bisect_left(bounds, key)

    def __eq__(self, other: object) -> bool:
        return (type(other) is RangePartitioner and other.bounds == self.bounds
                and other.ascending == self.ascending)

    def __hash__(self) -> int:
        return hash(("range", len(self.bounds), self.ascending))

    def __repr__(self) -> str:
        return f"RangePartitioner({self.num_partitions} partitions, ascending={self.ascending})"


def range_bounds(samples: list[tuple[int, list[Any]]], partitions: int) -> list[Any]:
    """Bounds splitting the sampled keys into `partitions` ranges of about equal weight;
    `samples` are (records in the partition, sorted-or-not sample of its keys), each
    sampled key weighing records/len(sample)."""
    weighted = sorted(((key, count / len(keys)) for count, keys in samples if keys for key in keys),
                      key=lambda kw: kw[0])
    if partitions <= 1 or not weighted:
        return []
    total = sum(w for _, w in weighted)
    step = total / partitions
    bounds: list[Any] = []
    target, acc = step, 0.0
    for key, weight in weighted:
        acc += weight
        if acc >= target and (not bounds or key > bounds[-1]):
            bounds.append(key)
            target += step
            if len(bounds) == partitions - 1:
                break
    return bounds
