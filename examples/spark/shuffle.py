"""The shuffle: what crosses a stage boundary and how.

A `ShuffleDependency` says how a parent RDD's records are redistributed: by which
`Partitioner`, with which `Aggregator` (combined on the map side for reductions), and
whether each reduce partition is sorted by key. A map task writes its output as one
file in its executor's sandbox (`ShuffleStore`): the blocks of every reduce partition
one after the other, each a run of frames (see `serde`), with their offsets kept in
memory; the executor serves those blocks to reducers (`corral.examples.spark.blocks`).
"""
from __future__ import annotations

import enum
import io
import operator
import os
import threading
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from corral.examples.spark import serde
from corral.examples.spark.partitioner import Partitioner


class Aggregation(enum.Enum):
    #: values are folded with one function (reduce_by_key): combined on the map side
    REDUCE = "reduce"
    #: values are collected in lists (group_by_key): no map-side combining
    GROUP = "group"
    #: create / merge_value / merge_combiners (aggregate_by_key, combine_by_key)
    COMBINE = "combine"


@dataclass(frozen=True)
class Aggregator:
    kind: Aggregation
    merge_value: Callable[[Any, Any], Any] | None = None
    merge_combiners: Callable[[Any, Any], Any] | None = None
    create: Callable[[Any], Any] | None = None

    def combine_values(self, records: Iterable[tuple[Any, Any]], into: dict[Any, Any]) -> dict[Any, Any]:
        """Fold `records` (key, value) into `into` (key -> combiner)."""
        if self.kind is Aggregation.REDUCE:
            _reduce_into(into, records, self.merge_value)
        elif self.kind is Aggregation.GROUP:
            for key, value in records:
                if key in into:
                    into[key].append(value)
                else:
                    into[key] = [value]
        else:
            create, merge = self.create, self.merge_value
            for key, value in records:
                if key in into:
                    into[key] = merge(into[key], value)
                else:
                    into[key] = create(value)
        return into

    def combine_combiners(self, records: Iterable[tuple[Any, Any]], into: dict[Any, Any]) -> dict[Any, Any]:
        """Fold (key, combiner) records made by `combine_values` into `into`."""
        if self.kind is Aggregation.GROUP:
            for key, values in records:
                if key in into:
                    into[key].extend(values)
                else:
                    into[key] = values
        else:
            _reduce_into(into, records, self.merge_combiners)
        return into


def _reduce_into(into: dict[Any, Any], records: Iterable[tuple[Any, Any]], fold: Any) -> None:
    if fold is operator.add:  # the common case, without a call per record
        for key, value in records:
            if key in into:
                into[key] = into[key] + value
            else:
                into[key] = value
    else:
        for key, value in records:
            if key in into:
                into[key] = fold(into[key], value)
            else:
                into[key] = value


class ShuffleDependency:
    """The parent side of a shuffle. Pickled without its parent RDD: the reduce side
    needs only how to read and merge, the map stage is pickled with the parent."""

    def __init__(self, rdd: Any, shuffle_id: int, partitioner: Partitioner, aggregator: Aggregator | None = None,
                 map_side_combine: bool = False, sort_ascending: bool | None = None) -> None:
        self.rdd = rdd
        self.shuffle_id = shuffle_id
        self.partitioner = partitioner
        self.aggregator = aggregator
        self.map_side_combine = map_side_combine
        #: sort each reduce partition by key, ascending or not (None: unsorted)
        self.sort_ascending = sort_ascending

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["rdd"] = None
        return state

    # -- map side -------------------------------------------------------------------
    def bucket(self, records: Iterable[Any]) -> list[list[Any]]:
        """The map task's records, combined if asked, split by reduce partition."""
        if self.map_side_combine:
            assert self.aggregator is not None
            records = self.aggregator.combine_values(records, {}).items()
        count = self.partitioner.num_partitions
        if count == 1:
            return [list(records)]
        buckets: list[list[Any]] = [[] for _ in range(count)]
        appends = [b.append for b in buckets]
        partition = self.partitioner.partition_func()
        for record in records:
            appends[partition(record[0])](record)
        return buckets

    # -- reduce side ----------------------------------------------------------------
    def merge(self, batches: Iterator[list[Any]]) -> Iterator[Any]:
        """One reduce partition's records from the batches its map outputs yield."""
        if self.aggregator is not None:
            combined: dict[Any, Any] = {}
            fold = self.aggregator.combine_combiners if self.map_side_combine else self.aggregator.combine_values
            for batch in batches:
                fold(batch, combined)
            return iter(combined.items())
        if self.sort_ascending is not None:
            records = list(chain.from_iterable(batches))
            records.sort(key=operator.itemgetter(0), reverse=not self.sort_ascending)
            return iter(records)
        return chain.from_iterable(batches)


@dataclass(frozen=True)
class MapOutput:
    """Where one map task's blocks are: a file and the offset of each reduce block
    (offsets[r]..offsets[r+1])."""

    path: Path
    offsets: list[int]

    def block(self, reduce_id: int) -> tuple[int, int]:
        return self.offsets[reduce_id], self.offsets[reduce_id + 1] - self.offsets[reduce_id]


class ShuffleStore:
    """An executor's map outputs: files under `root`, offsets in memory."""

    def __init__(self, root: Path, compress: bool) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.compress = compress
        self._lock = threading.Lock()
        self._outputs: dict[tuple[int, int], MapOutput] = {}

    def write(self, shuffle_id: int, map_id: int, buckets: list[list[Any]]) -> list[int]:
        """Write one map task's buckets; returns the size in bytes of each block."""
        path = self.root / f"shuffle-{shuffle_id}-{map_id}.data"
        tmp = path.with_name(f"{path.name}.{threading.get_ident()}.tmp")
        offsets = [0]
        with open(tmp, "wb") as f:
            for bucket in buckets:
                size = 0
                if bucket:
                    frames = serde.encode_frames(bucket, self.compress)
                    f.writelines(frames)
                    size = sum(map(len, frames))
                offsets.append(offsets[-1] + size)
        os.replace(tmp, path)  # a reader of an earlier attempt keeps its open file
        with self._lock:
            self._outputs[(shuffle_id, map_id)] = MapOutput(path, offsets)
        return [offsets[i + 1] - offsets[i] for i in range(len(buckets))]

    def get(self, shuffle_id: int, map_id: int) -> MapOutput | None:
        with self._lock:
            return self._outputs.get((shuffle_id, map_id))

    def read_local(self, shuffle_id: int, map_id: int, reduce_id: int, counter: Any) -> Iterator[list[Any]]:
        """The batches of one block of this executor's own output (the bytes read are
        added to `counter.shuffle_read_bytes`); KeyError if it has no such output."""
        output = self.get(shuffle_id, map_id)
        if output is None:
            raise KeyError((shuffle_id, map_id))
        start, length = output.block(reduce_id)
        if length == 0:
            return iter(())
        with open(output.path, "rb") as f:
            f.seek(start)
            data = f.read(length)
        counter.shuffle_read_bytes += length
        return serde.read_frames(io.BytesIO(data), length)

    def drop(self, shuffle_id: int) -> None:
        with self._lock:
            gone = [key for key in self._outputs if key[0] == shuffle_id]
            outputs = [self._outputs.pop(key) for key in gone]
        for output in outputs:
            try:
                output.path.unlink()
            except FileNotFoundError:
                pass


class FetchFailed(Exception):
    """A reduce task could not read a map output block."""

    def __init__(self, shuffle_id: int, map_id: int, executor_id: str, reason: str) -> None:
        super().__init__(f"shuffle {shuffle_id}: cannot read the output of map {map_id} on executor {executor_id}: "
                         f"{reason}")
        self.shuffle_id, self.map_id, self.executor_id = shuffle_id, map_id, executor_id
