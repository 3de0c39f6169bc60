"""The example programs, as functions of a `Context` (the CLI and the tests call them).

wordcount: words of text files and how often each occurs. pagerank: the classic
iteration (each page sends rank/outlinks to its neighbours; rank = 0.15 + 0.85 * sum),
links partitioned once and cached, so each iteration's join needs no shuffle of them.
sort: the lines of text files in order."""
from __future__ import annotations

import operator
import os
from typing import Iterable

from corral.examples.spark.context import Context
from corral.examples.spark.rdd import RDD

PathLike = str | os.PathLike[str]


def word_counts(ctx: Context, inputs: PathLike | Iterable[PathLike]) -> RDD:
    """(word, count) for every whitespace-separated word of the inputs."""
    return ctx.text_file(inputs).flat_map(str.split).map(_one_of).reduce_by_key(operator.add)


def _one_of(word: str) -> tuple[str, int]:
    return (word, 1)


def _tab_separated(pair: tuple[object, object]) -> str:
    return f"{pair[0]}\t{pair[1]}"


def wordcount(ctx: Context, inputs: PathLike | Iterable[PathLike], output: PathLike | None = None,
              top: int = 20) -> list[tuple[str, int]]:
    """Write "word<TAB>count" lines under `output` (if given); the `top` most frequent words."""
    counts = word_counts(ctx, inputs)
    if output is None:
        return counts.top(top, key=operator.itemgetter(1))
    counts = counts.cache()
    counts.map(_tab_separated).save_as_text_file(output)
    return counts.top(top, key=operator.itemgetter(1))


def _parse_edge(line: str) -> tuple[str, str]:
    source, destination = line.split()[:2]
    return (source, destination)


def _contributions(pair: tuple[str, tuple[list[str], float]]) -> list[tuple[str, float]]:
    neighbours, rank = pair[1]
    share = rank / len(neighbours)
    return [(neighbour, share) for neighbour in neighbours]


def _damped(rank: float) -> float:
    return 0.15 + 0.85 * rank


def _initial_rank(_neighbours: object) -> float:
    return 1.0


def page_ranks(ctx: Context, edges: PathLike, iterations: int, partitions: int | None = None) -> RDD:
    """(page, rank) after `iterations` rounds over the "src dst" lines of `edges`."""
    if iterations < 1:
        raise ValueError(f"iterations must be at least 1, not {iterations}")
    count = partitions or ctx.default_parallelism
    links = ctx.text_file(edges).filter(str.strip).map(_parse_edge).distinct(count).group_by_key(count).cache()
    ranks = links.map_values(_initial_rank)
    for _ in range(iterations):
        contributions = links.join(ranks).flat_map(_contributions)
        ranks = contributions.reduce_by_key(operator.add, count).map_values(_damped)
    return ranks


def pagerank(ctx: Context, edges: PathLike, iterations: int, output: PathLike | None = None,
             top: int = 10) -> list[tuple[str, float]]:
    """Write "page<TAB>rank" lines under `output` (if given); the `top` ranked pages."""
    ranks = page_ranks(ctx, edges, iterations).cache()
    if output is not None:
        ranks.map(_tab_separated).save_as_text_file(output)
    return ranks.top(top, key=operator.itemgetter(1))


def sorted_lines(ctx: Context, inputs: PathLike | Iterable[PathLike], partitions: int | None = None) -> RDD:
    return ctx.text_file(inputs).sort_by(_identity, num_partitions=partitions)


def _identity(line: str) -> str:
    return line


def sort(ctx: Context, inputs: PathLike | Iterable[PathLike], output: PathLike) -> None:
    """Write the lines of the inputs in order, across part files in order."""
    sorted_lines(ctx, inputs).save_as_text_file(output)
