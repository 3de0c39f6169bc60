"""RDDs: immutable, partitioned datasets defined by their lineage (Spark's RDD API in
Python naming).

Transformations build new RDDs lazily; actions run a job through the context. Narrow
dependencies (map, filter, union...) are pipelined inside one task as nested iterators,
so records flow through C-level `map`/`filter`/`chain` with no Python frame per record
beyond the user's own functions; a shuffle (`ShuffledRDD`) starts a new stage.

An RDD pickles without its context: the driver ships a stage's RDD graph to the
executors, which call `iterator(split, task)` on it. Functions given to a
transformation are checked for picklability at once, so a closure that cannot reach the
executors fails where it is written, before anything runs.
"""
from __future__ import annotations

import collections
import copy
import functools
import glob
import heapq
import itertools
import math
import operator
import os
import random
import sys
import weakref
from itertools import chain
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator

from corral.examples.spark import serde
from corral.examples.spark.partitioner import HashPartitioner, Partitioner, RangePartitioner, range_bounds
from corral.examples.spark.shuffle import Aggregation, Aggregator, ShuffleDependency

if TYPE_CHECKING:
    from corral.examples.spark.context import Context

#: the engine's own modules, skipped when naming the user's line that made an RDD
_ENGINE_FILES = {os.path.join(os.path.dirname(os.path.abspath(__file__)), name) for name in ("rdd.py", "context.py")}
#: keys sampled per partition to find the range bounds of a sort
SORT_SAMPLE_PER_PARTITION = 60
#: bytes read from a text file at a time
TEXT_CHUNK = 4 << 20


def callsite() -> str:
    """file:line of the user's code that called into the engine."""
    frame = sys._getframe(1)
    while frame is not None and os.path.abspath(frame.f_code.co_filename) in _ENGINE_FILES:
        frame = frame.f_back
    if frame is None:
        return "?"
    return f"{os.path.basename(frame.f_code.co_filename)}:{frame.f_lineno}"


class DriverOnlyError(RuntimeError):
    """An RDD operation was called inside a task."""


# ----------------------------------------------------------------------- dependencies
class NarrowDependency:
    """Each partition of the child needs a few partitions of `rdd` (pipelined in one task)."""

    def __init__(self, rdd: "RDD") -> None:
        self.rdd = rdd

    def parent_splits(self, split: int) -> list[int]:
        return [split]


class RangeDependency(NarrowDependency):
    """Child partitions out_start.. are the parent's partitions 0.. (a union)."""

    def __init__(self, rdd: "RDD", out_start: int) -> None:
        super().__init__(rdd)
        self.out_start = out_start

    def parent_splits(self, split: int) -> list[int]:
        inner = split - self.out_start
        return [inner] if 0 <= inner < self.rdd.num_partitions else []


# ---------------------------------------------------------------------------- the RDD
class RDD:
    """A partitioned dataset. Subclasses give `compute(split, task)`."""

    def __init__(self, ctx: "Context", deps: list[Any], num_partitions: int, name: str,
                 partitioner: Partitioner | None = None) -> None:
        self.ctx: "Context | None" = ctx
        self.id = ctx._new_rdd_id()
        self.deps = deps
        self.num_partitions = num_partitions
        self.name = name
        self.callsite = callsite()
        #: how the records are partitioned by key, when known (no shuffle needed to group)
        self.partitioner = partitioner
        self.persisted = False

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["ctx"] = None
        return state

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.id} {self.name} at {self.callsite}, {self.num_partitions} partitions>"

    @property
    def _ctx(self) -> "Context":
        if self.ctx is None:
            raise DriverOnlyError("RDD transformations and actions run in the driver program, not inside a task")
        return self.ctx

    # -- computing (on executors) ---------------------------------------------------
    def compute(self, split: int, task: Any) -> Iterator[Any]:
        raise NotImplementedError

    def iterator(self, split: int, task: Any) -> Iterator[Any]:
        if self.persisted:
            return task.cached(self, split)
        return self.compute(split, task)

    # -- persistence ----------------------------------------------------------------
    def cache(self) -> "RDD":
        """Keep computed partitions in the executors' memory (recomputed if lost; dropped
        when this RDD is garbage-collected in the driver, or unpersisted)."""
        if not self.persisted:
            self.persisted = True
            weakref.finalize(self, self._ctx._unpersist, self.id).atexit = False
        return self

    persist = cache

    def unpersist(self) -> "RDD":
        self.persisted = False
        self._ctx._unpersist(self.id)
        return self

    # -- narrow transformations -----------------------------------------------------
    def _pipe(self, fn: Callable[[int, Iterator[Any]], Iterator[Any]], name: str,
              keeps_partitioner: bool = False) -> "RDD":
        return MapPartitionsRDD(self, fn, name, keeps_partitioner)

    def _checked(self, f: Any, op: str) -> Any:
        if not callable(f):
            raise TypeError(f"{op} needs a function, not {f!r}")
        serde.dumps_function(f, f"the function given to {op} at {callsite()}")
        return f

    def map(self, f: Callable[[Any], Any]) -> "RDD":
        return self._pipe(_Map(self._checked(f, "map")), "map")

    def flat_map(self, f: Callable[[Any], Iterable[Any]]) -> "RDD":
        return self._pipe(_FlatMap(self._checked(f, "flat_map")), "flat_map")

    def filter(self, f: Callable[[Any], bool]) -> "RDD":
        return self._pipe(_Filter(self._checked(f, "filter")), "filter", keeps_partitioner=True)

    def map_partitions(self, f: Callable[[Iterator[Any]], Iterable[Any]], preserves_partitioning: bool = False) -> "RDD":
        return self._pipe(_MapPartitions(self._checked(f, "map_partitions")), "map_partitions",
                          keeps_partitioner=preserves_partitioning)

    def map_partitions_with_index(self, f: Callable[[int, Iterator[Any]], Iterable[Any]],
                                  preserves_partitioning: bool = False) -> "RDD":
        return self._pipe(_WithIndex(self._checked(f, "map_partitions_with_index")), "map_partitions_with_index",
                          keeps_partitioner=preserves_partitioning)

    def glom(self) -> "RDD":
        """Each partition as one list."""
        return self._pipe(_glom, "glom")

    def key_by(self, f: Callable[[Any], Any]) -> "RDD":
        return self._pipe(_KeyBy(self._checked(f, "key_by")), "key_by")

    def map_values(self, f: Callable[[Any], Any]) -> "RDD":
        return self._pipe(_MapValues(self._checked(f, "map_values")), "map_values", keeps_partitioner=True)

    def flat_map_values(self, f: Callable[[Any], Iterable[Any]]) -> "RDD":
        return self._pipe(_FlatMapValues(self._checked(f, "flat_map_values")), "flat_map_values",
                          keeps_partitioner=True)

    def keys(self) -> "RDD":
        return self._pipe(_Map(operator.itemgetter(0)), "keys")

    def values(self) -> "RDD":
        return self._pipe(_Map(operator.itemgetter(1)), "values")

    def union(self, other: "RDD") -> "RDD":
        if other.ctx is not self.ctx:
            raise ValueError("cannot union RDDs of different contexts")
        if self.partitioner is not None and self.partitioner == other.partitioner:
            return CoPartitionedUnionRDD(self._ctx, [self, other])
        return UnionRDD(self._ctx, [self, other])

    # -- shuffles -------------------------------------------------------------------
    def _shuffle_partitions(self, num_partitions: int | None) -> int:
        count = self.num_partitions if num_partitions is None else num_partitions
        if not isinstance(count, int) or count < 1:
            raise ValueError(f"number of partitions must be a positive integer, not {num_partitions!r}")
        return count

    def combine_by_key(self, create: Callable[[Any], Any], merge_value: Callable[[Any, Any], Any],
                       merge_combiners: Callable[[Any, Any], Any], num_partitions: int | None = None) -> "RDD":
        aggregator = Aggregator(Aggregation.COMBINE, self._checked(merge_value, "combine_by_key"),
                                self._checked(merge_combiners, "combine_by_key"), self._checked(create, "combine_by_key"))
        return self._aggregate(aggregator, True, num_partitions, "combine_by_key")

    def _aggregate(self, aggregator: Aggregator, map_side_combine: bool, num_partitions: int | None,
                   name: str) -> "RDD":
        partitioner = HashPartitioner(self._shuffle_partitions(num_partitions))
        if self.partitioner == partitioner:  # already grouped by key: combine in place
            return self._pipe(_CombineLocally(aggregator), name, keeps_partitioner=True)
        return ShuffledRDD(self, partitioner, name, aggregator, map_side_combine)

    def reduce_by_key(self, f: Callable[[Any, Any], Any], num_partitions: int | None = None) -> "RDD":
        self._checked(f, "reduce_by_key")
        return self._aggregate(Aggregator(Aggregation.REDUCE, f, f), True, num_partitions, "reduce_by_key")

    def group_by_key(self, num_partitions: int | None = None) -> "RDD":
        return self._aggregate(Aggregator(Aggregation.GROUP), False, num_partitions, "group_by_key")

    def aggregate_by_key(self, zero: Any, seq_op: Callable[[Any, Any], Any], comb_op: Callable[[Any, Any], Any],
                         num_partitions: int | None = None) -> "RDD":
        self._checked(seq_op, "aggregate_by_key")
        self._checked(comb_op, "aggregate_by_key")
        aggregator = Aggregator(Aggregation.COMBINE, seq_op, comb_op, _SeqFromZero(zero, seq_op))
        return self._aggregate(aggregator, True, num_partitions, "aggregate_by_key")

    def partition_by(self, num_partitions: int, partitioner: Partitioner | None = None) -> "RDD":
        partitioner = partitioner or HashPartitioner(self._shuffle_partitions(num_partitions))
        if self.partitioner == partitioner:
            return self
        return ShuffledRDD(self, partitioner, "partition_by")

    def join(self, other: "RDD", num_partitions: int | None = None) -> "RDD":
        """(k, (v, w)) for every v of self and w of other under the same key k."""
        return self._cogroup(other, num_partitions, "join")._pipe(_FlatMapValues(_inner_pairs), "join", True)

    def left_outer_join(self, other: "RDD", num_partitions: int | None = None) -> "RDD":
        """(k, (v, w)), or (k, (v, None)) where other has no record under k."""
        return self._cogroup(other, num_partitions, "left_outer_join")._pipe(
            _FlatMapValues(_left_outer_pairs), "left_outer_join", True)

    def _cogroup(self, other: "RDD", num_partitions: int | None, name: str) -> "RDD":
        count = num_partitions or max(self.num_partitions, other.num_partitions)
        tagged = self.map_values(_Tag(0)).union(other.map_values(_Tag(1)))
        return tagged.group_by_key(count)

    def distinct(self, num_partitions: int | None = None) -> "RDD":
        return self.map(_with_none).reduce_by_key(_first, num_partitions).keys()

    def repartition(self, num_partitions: int) -> "RDD":
        count = self._shuffle_partitions(num_partitions)
        return self._pipe(_Spread(), "repartition").partition_by(count).values()

    def sort_by(self, key: Callable[[Any], Any], ascending: bool = True, num_partitions: int | None = None) -> "RDD":
        """Sorted by key(record): range-partitioned from a sample of the keys (a job runs
        now to take it), then each partition sorted."""
        self._checked(key, "sort_by")
        count = self._shuffle_partitions(num_partitions)
        keyed = self.key_by(key)
        samples = self._ctx.run_job(keyed, _SampleKeys(SORT_SAMPLE_PER_PARTITION, random.randrange(1 << 30)),
                                    description="sort_by (sampling)")
        bounds = range_bounds(samples, count)
        return ShuffledRDD(keyed, RangePartitioner(bounds, ascending), "sort_by",
                           sort_ascending=ascending).values()

    def sort_by_key(self, ascending: bool = True, num_partitions: int | None = None) -> "RDD":
        return self.sort_by(operator.itemgetter(0), ascending, num_partitions)

    # -- actions ----------------------------------------------------------------------
    def collect(self) -> list[Any]:
        return list(chain.from_iterable(self._ctx.run_job(self, _collect, description="collect")))

    def collect_as_map(self) -> dict[Any, Any]:
        return dict(self.collect())

    def count(self) -> int:
        return sum(self._ctx.run_job(self, _count, description="count"))

    def reduce(self, f: Callable[[Any, Any], Any]) -> Any:
        self._checked(f, "reduce")
        partials = [found[0] for found in self._ctx.run_job(self, _Reduce(f), description="reduce") if found]
        if not partials:
            raise ValueError("reduce of an empty RDD")
        return functools.reduce(f, partials)

    def fold(self, zero: Any, f: Callable[[Any, Any], Any]) -> Any:
        self._checked(f, "fold")
        partials = self._ctx.run_job(self, _Fold(zero, f), description="fold")
        return functools.reduce(f, partials, copy.deepcopy(zero))

    def sum(self) -> Any:
        return sum(self._ctx.run_job(self, _sum, description="sum"))

    def take(self, n: int) -> list[Any]:
        """The first n records, reading as few partitions as it can (1, then more)."""
        taken: list[Any] = []
        scanned, total = 0, self.num_partitions
        while len(taken) < n and scanned < total:
            if scanned == 0:
                step = 1
            elif not taken:
                step = scanned * 4
            else:
                step = max(1, min(scanned * 4, int(1.5 * n * scanned / len(taken)) - scanned))
            splits = list(range(scanned, min(scanned + step, total)))
            for part in self._ctx.run_job(self, _Take(n - len(taken)), splits, description="take"):
                taken.extend(part[:n - len(taken)])
            scanned += len(splits)
        return taken[:n]

    def first(self) -> Any:
        records = self.take(1)
        if not records:
            raise ValueError("first of an empty RDD")
        return records[0]

    def top(self, n: int, key: Callable[[Any], Any] | None = None) -> list[Any]:
        """The n largest records (by key), largest first."""
        if key is not None:
            self._checked(key, "top")
        parts = self._ctx.run_job(self, _Top(n, key), description="top")
        return heapq.nlargest(n, chain.from_iterable(parts), key=key)

    def count_by_key(self) -> dict[Any, int]:
        return dict(self.map_values(_one).reduce_by_key(operator.add).collect())

    def count_by_value(self) -> dict[Any, int]:
        merged: collections.Counter[Any] = collections.Counter()
        for part in self._ctx.run_job(self, _count_values, description="count_by_value"):
            merged.update(part)
        return dict(merged)

    def foreach(self, f: Callable[[Any], None]) -> None:
        self._ctx.run_job(self, _Foreach(self._checked(f, "foreach")), description="foreach")

    def save_as_text_file(self, path: str | os.PathLike[str]) -> None:
        """One part file per partition (part-00000, ...), one str(record) per line, and
        an empty _SUCCESS once all are written. The directory must not exist."""
        directory = os.path.abspath(os.fspath(path))
        if os.path.exists(directory):
            raise FileExistsError(f"output directory {directory} already exists")
        os.makedirs(directory)
        self._ctx.run_job(self, _TextWriter(directory), description="save_as_text_file")
        open(os.path.join(directory, "_SUCCESS"), "wb").close()


# ------------------------------------------------------------------------ RDD kinds
class ParallelCollectionRDD(RDD):
    """A local collection cut into slices (ranges stay ranges)."""

    def __init__(self, ctx: "Context", data: Iterable[Any], num_slices: int) -> None:
        if not isinstance(num_slices, int) or num_slices < 1:
            raise ValueError(f"number of partitions must be a positive integer, not {num_slices!r}")
        self.slices = _slice(data, num_slices)
        super().__init__(ctx, [], num_slices, "parallelize")

    def compute(self, split: int, task: Any) -> Iterator[Any]:
        return iter(self.slices[split])


def _slice(data: Iterable[Any], count: int) -> list[Any]:
    if isinstance(data, range):
        n = len(data)
        return [data[i * n // count:(i + 1) * n // count] for i in range(count)]
    items = list(data)
    n = len(items)
    return [items[i * n // count:(i + 1) * n // count] for i in range(count)]


class TextFileRDD(RDD):
    """Lines of text files, split into byte ranges; a line belongs to the split in which
    it starts (so a split skips its first partial line and reads past its end)."""

    def __init__(self, ctx: "Context", splits: list[tuple[str, int, int]], name: str) -> None:
        self.splits = splits
        super().__init__(ctx, [], len(splits), name)

    def compute(self, split: int, task: Any) -> Iterator[str]:
        path, start, length = self.splits[split]
        return chain.from_iterable(_read_lines(path, start, start + length))


def list_input_files(paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]) -> list[str]:
    """Files named by paths, directories (their visible files) or globs; FileNotFoundError
    naming any that match nothing."""
    given = [os.fspath(paths)] if isinstance(paths, (str, os.PathLike)) else [os.fspath(p) for p in paths]
    if not given:
        raise FileNotFoundError("no input path given")
    files: list[str] = []
    for path in given:
        matches = sorted(glob.glob(path)) if glob.has_magic(path) else [path]
        found = []
        for match in matches:
            if os.path.isdir(match):
                found += sorted(os.path.join(match, n) for n in os.listdir(match)
                                if not n.startswith((".", "_")) and os.path.isfile(os.path.join(match, n)))
            elif os.path.isfile(match):
                found.append(match)
        if not found:
            raise FileNotFoundError(f"input path does not exist: {path}")
        files += [os.path.abspath(f) for f in found]
    return files


def text_splits(files: list[str], min_partitions: int, block_size: int, multiple_of: int) -> list[tuple[str, int, int]]:
    """Byte ranges over `files`: at least `min_partitions`, none over `block_size`, the
    count rounded up to a multiple of `multiple_of` (the cores, so waves are full)."""
    sizes = [(f, os.path.getsize(f)) for f in files]
    total = sum(size for _, size in sizes)
    wanted = max(min_partitions, -(-total // block_size), 1)
    wanted = -(-wanted // multiple_of) * multiple_of
    target = max(1, -(-total // wanted))
    splits = []
    for path, size in sizes:
        pieces = max(1, math.ceil(size / target - 0.05))  # (a file a hair over the target stays whole)
        bounds = [size * i // pieces for i in range(pieces + 1)]
        splits += [(path, bounds[i], bounds[i + 1] - bounds[i]) for i in range(pieces)]
    return splits


def _read_lines(path: str, start: int, end: int) -> Iterator[list[str]]:
    """Batches of the lines that start in [start, end) of `path`."""
    with open(path, "rb") as f:
        if start > 0:
            f.seek(start - 1)
            skipped = f.readline()  # the end of the line that started before us
            start = start - 1 + len(skipped)
        else:
            f.seek(0)
        position, tail = start, b""
        while position < end:
            chunk = f.read(min(TEXT_CHUNK, end - position))
            if not chunk:
                break
            position += len(chunk)
            data = tail + chunk
            cut = data.rfind(b"\n") + 1
            tail = data[cut:]
            if cut:
                yield _decode_lines(data[:cut])
        if tail:  # our last line runs past `end`
            yield _decode_lines(tail + f.readline())


def _decode_lines(data: bytes) -> list[str]:
    text = data.decode("utf-8")
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    if "\r" in text:
        lines = [line[:-1] if line.endswith("\r") else line for line in lines]
    return lines


class MapPartitionsRDD(RDD):
    def __init__(self, parent: RDD, fn: Callable[[int, Iterator[Any]], Iterator[Any]], name: str,
                 keeps_partitioner: bool) -> None:
        self.fn = fn
        self.parent = parent
        super().__init__(parent._ctx, [NarrowDependency(parent)], parent.num_partitions, name,
                         parent.partitioner if keeps_partitioner else None)

    def compute(self, split: int, task: Any) -> Iterator[Any]:
        return iter(self.fn(split, self.parent.iterator(split, task)))


class UnionRDD(RDD):
    """The partitions of each parent, one after the other."""

    def __init__(self, ctx: "Context", parents: list[RDD]) -> None:
        deps, start = [], 0
        for parent in parents:
            deps.append(RangeDependency(parent, start))
            start += parent.num_partitions
        super().__init__(ctx, deps, start, "union")

    def compute(self, split: int, task: Any) -> Iterator[Any]:
        for dep in self.deps:
            inner = dep.parent_splits(split)
            if inner:
                return dep.rdd.iterator(inner[0], task)
        raise IndexError(f"partition {split} of {self!r}")


class CoPartitionedUnionRDD(RDD):
    """Parents partitioned alike: partition i is every parent's partition i (so the
    result keeps the partitioner and a join of them needs no shuffle)."""

    def __init__(self, ctx: "Context", parents: list[RDD]) -> None:
        super().__init__(ctx, [NarrowDependency(p) for p in parents], parents[0].num_partitions, "union",
                         parents[0].partitioner)

    def compute(self, split: int, task: Any) -> Iterator[Any]:
        return chain.from_iterable(dep.rdd.iterator(split, task) for dep in self.deps)


class ShuffledRDD(RDD):
    """The reduce side of a shuffle of `parent`'s (key, value) records."""

    def __init__(self, parent: RDD, partitioner: Partitioner, name: str, aggregator: Aggregator | None = None,
                 map_side_combine: bool = False, sort_ascending: bool | None = None) -> None:
        ctx = parent._ctx
        dep = ShuffleDependency(parent, ctx._new_shuffle_id(), partitioner, aggregator, map_side_combine,
                                sort_ascending)
        super().__init__(ctx, [dep], partitioner.num_partitions, name, partitioner)
        # nothing can read the shuffle once this RDD is gone: its outputs are deleted then
        weakref.finalize(self, ctx._drop_shuffle, dep.shuffle_id).atexit = False

    def compute(self, split: int, task: Any) -> Iterator[Any]:
        dep: ShuffleDependency = self.deps[0]
        return dep.merge(task.shuffle_batches(dep.shuffle_id, split))


# ---------------------------------------------------------- per-partition functions
# Small classes rather than closures: they pickle by reference to this module, with
# only the user's function as state.
class _Map:
    __slots__ = ("f",)

    def __init__(self, f: Callable[[Any], Any]) -> None:
        self.f = f

    def __call__(self, split: int, records: Iterator[Any]) -> Iterator[Any]:
        return map(self.f, records)


class _FlatMap(_Map):
    __slots__ = ()

    def __call__(self, split: int, records: Iterator[Any]) -> Iterator[Any]:
        return chain.from_iterable(map(self.f, records))


class _Filter(_Map):
    __slots__ = ()

    def __call__(self, split: int, records: Iterator[Any]) -> Iterator[Any]:
        return filter(self.f, records)


class _MapPartitions(_Map):
    __slots__ = ()

    def __call__(self, split: int, records: Iterator[Any]) -> Iterator[Any]:
        return self.f(records)


class _WithIndex(_Map):
    __slots__ = ()

    def __call__(self, split: int, records: Iterator[Any]) -> Iterator[Any]:
        return self.f(split, records)


class _KeyBy(_Map):
    __slots__ = ()

    def __call__(self, split: int, records: Iterator[Any]) -> Iterator[Any]:
        f = self.f
        return ((f(record), record) for record in records)


class _MapValues(_Map):
    __slots__ = ()

    def __call__(self, split: int, records: Iterator[Any]) -> Iterator[Any]:
        f = self.f
        return ((key, f(value)) for key, value in records)


class _FlatMapValues(_Map):
    __slots__ = ()

    def __call__(self, split: int, records: Iterator[Any]) -> Iterator[Any]:
        f = self.f
        return ((key, out) for key, value in records for out in f(value))


class _CombineLocally:
    __slots__ = ("aggregator",)

    def __init__(self, aggregator: Aggregator) -> None:
        self.aggregator = aggregator

    def __call__(self, split: int, records: Iterator[Any]) -> Iterator[Any]:
        return iter(self.aggregator.combine_values(records, {}).items())


class _SeqFromZero:
    """aggregate_by_key's first value of a key: seq_op(a copy of zero, value)."""

    def __init__(self, zero: Any, seq_op: Callable[[Any, Any], Any]) -> None:
        self.zero, self.seq_op = zero, seq_op

    def __call__(self, value: Any) -> Any:
        return self.seq_op(copy.deepcopy(self.zero), value)


class _Tag:
    __slots__ = ("tag",)

    def __init__(self, tag: int) -> None:
        self.tag = tag

    def __call__(self, value: Any) -> tuple[int, Any]:
        return (self.tag, value)


class _Spread:
    """repartition: number each record from a per-partition start, so that consecutive
    records go to consecutive partitions."""

    def __call__(self, split: int, records: Iterator[Any]) -> Iterator[Any]:
        return zip(itertools.count(random.Random(split).randrange(1 << 16)), records)


def _glom(split: int, records: Iterator[Any]) -> Iterator[list[Any]]:
    return iter([list(records)])


def _inner_pairs(tagged: list[tuple[int, Any]]) -> Iterator[tuple[Any, Any]]:
    left = [v for tag, v in tagged if tag == 0]
    right = [v for tag, v in tagged if tag == 1]
    return ((v, w) for v in left for w in right)


def _left_outer_pairs(tagged: list[tuple[int, Any]]) -> Iterator[tuple[Any, Any]]:
    left = [v for tag, v in tagged if tag == 0]
    right = [v for tag, v in tagged if tag == 1] or [None]
    return ((v, w) for v in left for w in right)


def _with_none(record: Any) -> tuple[Any, None]:
    return (record, None)


def _first(a: Any, b: Any) -> Any:
    return a


def _one(value: Any) -> int:
    return 1


# ------------------------------------------------------------- per-partition actions
def _collect(split: int, records: Iterator[Any]) -> list[Any]:
    return list(records)


def _count(split: int, records: Iterator[Any]) -> int:
    counter = itertools.count()
    collections.deque(zip(records, counter), maxlen=0)
    return next(counter)


def _sum(split: int, records: Iterator[Any]) -> Any:
    return sum(records)


def _count_values(split: int, records: Iterator[Any]) -> dict[Any, int]:
    return dict(collections.Counter(records))


class _Reduce:
    """(the partition's reduction,), or () for an empty partition."""

    def __init__(self, f: Callable[[Any, Any], Any]) -> None:
        self.f = f

    def __call__(self, split: int, records: Iterator[Any]) -> tuple[Any, ...]:
        records = iter(records)
        for first in records:
            return (functools.reduce(self.f, records, first),)
        return ()


class _Fold:
    def __init__(self, zero: Any, f: Callable[[Any, Any], Any]) -> None:
        self.zero, self.f = zero, f

    def __call__(self, split: int, records: Iterator[Any]) -> Any:
        return functools.reduce(self.f, records, copy.deepcopy(self.zero))


class _Take:
    def __init__(self, n: int) -> None:
        self.n = n

    def __call__(self, split: int, records: Iterator[Any]) -> list[Any]:
        return list(itertools.islice(records, self.n))


class _Top:
    def __init__(self, n: int, key: Callable[[Any], Any] | None) -> None:
        self.n, self.key = n, key

    def __call__(self, split: int, records: Iterator[Any]) -> list[Any]:
        return heapq.nlargest(self.n, records, key=self.key)


class _Foreach:
    def __init__(self, f: Callable[[Any], None]) -> None:
        self.f = f

    def __call__(self, split: int, records: Iterator[Any]) -> None:
        collections.deque(map(self.f, records), maxlen=0)


class _SampleKeys:
    """(number of records, a sample of their keys) of a keyed partition."""

    def __init__(self, size: int, seed: int) -> None:
        self.size, self.seed = size, seed

    def __call__(self, split: int, records: Iterator[tuple[Any, Any]]) -> tuple[int, list[Any]]:
        keys = list(map(operator.itemgetter(0), records))
        if len(keys) <= self.size:
            return len(keys), keys
        return len(keys), random.Random(self.seed + split).sample(keys, self.size)


class _TextWriter:
    """Writes a partition to part-NNNNN under `directory`, through a temporary file
    renamed into place (a retried or speculative copy rewrites the same content)."""

    def __init__(self, directory: str) -> None:
        self.directory = directory

    def __call__(self, split: int, records: Iterator[Any]) -> None:
        final = os.path.join(self.directory, f"part-{split:05d}")
        tmp = os.path.join(self.directory, f".part-{split:05d}.{os.getpid()}.{id(records):x}.tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            while batch := list(itertools.islice(records, 65536)):
                f.write("\n".join(map(str, batch)))
                f.write("\n")
        os.replace(tmp, final)
