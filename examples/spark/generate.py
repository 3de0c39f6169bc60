"""Deterministic input for the example programs: the same arguments give the same bytes.

`generate_text`: lines of 5 to 15 words drawn from a vocabulary of made-up words with a
Zipf-like frequency (a few very common words, a long tail), written to `files` files of
equal size. `generate_graph`: "src dst" edge lines whose destinations follow a
power law (a few pages get most links)."""
from __future__ import annotations

import itertools
import os
import random
import re
from pathlib import Path

VOCABULARY = 50_000
LETTERS = "abcdefghijklmnopqrstuvwxyz"
#: words drawn at a time
CHUNK_WORDS = 1 << 20
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([kmg]?)(i?)b?", re.IGNORECASE)


def parse_size(text: str) -> int:
    """'200MB' (decimal units), '64MiB' (binary), '1500' (bytes)."""
    match = _SIZE.fullmatch(text.strip())
    if not match:
        raise ValueError(f"not a size: {text!r} (try 200MB, 64MiB or 1000000)")
    number, unit, binary = match.groups()
    power = " kmg".index(unit.lower() or " ")
    return int(float(number) * (1024 if binary else 1000) ** power)


def vocabulary(rng: random.Random, size: int = VOCABULARY) -> list[str]:
    words: dict[str, None] = {}
    while len(words) < size:
        words["".join(rng.choices(LETTERS, k=rng.randint(2, 10)))] = None
    return list(words)


def generate_text(directory: str | os.PathLike[str], size: int, seed: int, files: int = 0) -> list[Path]:
    """Write about `size` bytes of text in `files` files (by default one per 64 MB)."""
    if size <= 0:
        raise ValueError(f"size must be positive, not {size}")
    files = files or max(1, -(-size // (64 * 1000 * 1000)))
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    words = vocabulary(rng)
    cumulative = list(itertools.accumulate(1.0 / (rank + 1) for rank in range(len(words))))
    paths = []
    for index in range(files):
        target = size // files + (1 if index < size % files else 0)
        path = out / f"part-{index:05d}.txt"
        chunk = min(CHUNK_WORDS, target // 4 + 16)  # (words are 6.5 bytes on average)
        with open(path, "w", encoding="ascii") as f:
            written = 0
            while written < target:
                drawn = rng.choices(words, cum_weights=cumulative, k=chunk)
                lengths = rng.choices(range(5, 16), k=chunk // 5)
                lines, start = [], 0
                for length in lengths:
                    if start + length > len(drawn):
                        break
                    line = " ".join(drawn[start:start + length]) + "\n"
                    start += length
                    lines.append(line)
                    written += len(line)
                    if written >= target:
                        break
                f.write("".join(lines))
        paths.append(path)
    return paths


def generate_graph(path: str | os.PathLike[str], nodes: int, edges: int, seed: int) -> Path:
    """Write `edges` draws of "src dst" lines over node ids 0..nodes-1 (self-loops dropped)."""
    if nodes < 2 or edges < 1:
        raise ValueError(f"need at least 2 nodes and 1 edge, not {nodes} and {edges}")
    rng = random.Random(seed)
    cumulative = list(itertools.accumulate(1.0 / (rank + 1) ** 0.8 for rank in range(nodes)))
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "w", encoding="ascii") as f:
        remaining = edges
        while remaining:
            count = min(remaining, CHUNK_WORDS)
            sources = rng.choices(range(nodes), k=count)
            destinations = rng.choices(range(nodes), cum_weights=cumulative, k=count)
            lines = [f"{s} {d}\n" for s, d in zip(sources, destinations) if s != d]
            f.write("".join(lines))
            remaining -= count
    return target
