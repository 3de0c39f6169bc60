"""Plain-Python computations of what the example programs compute, for comparison."""
from __future__ import annotations

import collections
from pathlib import Path


def lines_of(paths: list[Path]) -> list[str]:
    out: list[str] = []
    for path in paths:
        out += path.read_text().split("\n")[:-1]
    return out


def word_counts(paths: list[Path]) -> dict[str, int]:
    return dict(collections.Counter(word for line in lines_of(paths) for word in line.split()))


def page_ranks(edges: Path, iterations: int) -> dict[str, float]:
    links: dict[str, set[str]] = {}
    for line in edges.read_text().splitlines():
        if line.strip():
            source, destination = line.split()[:2]
            links.setdefault(source, set()).add(destination)
    ranks = {page: 1.0 for page in links}
    for _ in range(iterations):
        sums: dict[str, float] = {}
        for page, neighbours in links.items():
            if page in ranks:
                for neighbour in neighbours:
                    sums[neighbour] = sums.get(neighbour, 0.0) + ranks[page] / len(neighbours)
        ranks = {page: 0.15 + 0.85 * total for page, total in sums.items()}
    return ranks


def read_parts(directory: Path) -> list[str]:
    """The lines of part-NNNNN files, in part order."""
    lines: list[str] = []
    for part in sorted(directory.glob("part-*")):
        lines += part.read_text().split("\n")[:-1]
    return lines
