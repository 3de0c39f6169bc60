"""The token ring: Murmur3 tokens, virtual nodes, replica placement and ownership.

A key's token is the first 64 bits of its MurmurHash3 x64/128 hash, as a signed number
(Cassandra's Murmur3Partitioner, which also maps the minimum to the maximum so that the
minimum never names a key). Each node owns `num_tokens` tokens (virtual nodes); a vnode
token `t` owns the range `(previous token, t]`, the first range wrapping around the end.
The replicas of a key are the owners met walking clockwise from its token, skipping
nodes already taken, until there are `replication` distinct ones (SimpleStrategy).

A `TokenRing` is immutable: membership changes build a new one. Ranges are `(left,
right]` pairs of tokens; `left >= right` means the range wraps past the maximum token
(a ring of one token has one range covering everything).
"""
from __future__ import annotations

import bisect
import enum
import random
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

import mmh3

MIN_TOKEN = -(2**63)
MAX_TOKEN = 2**63 - 1
RING_SIZE = 2**64

Range = tuple[int, int]


def token_of(key: bytes) -> int:
    """The token of `key` (never MIN_TOKEN)."""
    token = mmh3.hash64(key, signed=True)[0]
    return MAX_TOKEN if token == MIN_TOKEN else token


def random_tokens(count: int, rng: random.Random, taken: Iterable[int] = ()) -> list[int]:
    """`count` distinct random tokens not in `taken`."""
    used = set(taken)
    tokens: list[int] = []
    while len(tokens) < count:
        token = rng.randint(MIN_TOKEN + 1, MAX_TOKEN)
        if token not in used:
            used.add(token)
            tokens.append(token)
    return sorted(tokens)


class Consistency(enum.Enum):
    """How many replicas must answer before a coordinator answers the client."""

    ONE = "ONE"
    QUORUM = "QUORUM"
    ALL = "ALL"

    def block_for(self, replication: int) -> int:
        if self is Consistency.ONE:
            return 1
        if self is Consistency.QUORUM:
            return replication // 2 + 1
        return replication

    @classmethod
    def parse(cls, text: str) -> "Consistency":
        try:
            return cls(text.upper())
        except ValueError:
            raise ValueError(f"unknown consistency level {text!r}: use ONE, QUORUM or ALL") from None


def in_range(token: int, rng: Range) -> bool:
    """Whether `token` lies in the range `(left, right]` (wrapping when left >= right)."""
    left, right = rng
    if left < right:
        return left < token <= right
    return token > left or token <= right


def split_wrapping(rng: Range) -> list[Range]:
    """A range as non-wrapping pieces `(left, right]`, with MIN_TOKEN - 1 standing for
    "from the very start" (so every piece satisfies left < right)."""
    left, right = rng
    if left < right:
        return [rng]
    pieces = []
    if left < MAX_TOKEN:
        pieces.append((left, MAX_TOKEN))
    pieces.append((MIN_TOKEN - 1, right))
    return pieces


def range_size(rng: Range) -> int:
    left, right = rng
    size = (right - left) % RING_SIZE
    return size or RING_SIZE


def split_range(rng: Range, parts: int) -> list[Range]:
    """`rng` cut into `parts` consecutive sub-ranges of (nearly) equal token width."""
    left, _right = rng
    size = range_size(rng)
    bounds = [left]
    for i in range(1, parts):
        bounds.append(_wrap(left + size * i // parts))
    bounds.append(rng[1])
    return [(bounds[i], bounds[i + 1]) for i in range(parts) if bounds[i] != bounds[i + 1] or parts == 1]


def _wrap(token: int) -> int:
    return (token - MIN_TOKEN) % RING_SIZE + MIN_TOKEN


@dataclass(frozen=True)
class TokenRing:
    """Owners of sorted tokens and the replica list of each vnode range."""

    tokens: tuple[int, ...]
    owners: tuple[str, ...]
    replication: int
    _replicas: tuple[tuple[str, ...], ...]

    @classmethod
    def build(cls, tokens_by_node: Mapping[str, Iterable[int]], replication: int) -> "TokenRing":
        """A ring of `tokens_by_node` (node id -> its tokens); a token claimed twice
        goes to the node listed last."""
        owner_of: dict[int, str] = {}
        for node, tokens in tokens_by_node.items():
            for token in tokens:
                owner_of[token] = node
        tokens = tuple(sorted(owner_of))
        owners = tuple(owner_of[t] for t in tokens)
        distinct = len(set(owners))
        replicas = []
        for start in range(len(tokens)):
            chosen: list[str] = []
            i = start
            while len(chosen) < min(replication, distinct):
                owner = owners[i % len(tokens)]
                if owner not in chosen:
                    chosen.append(owner)
                i += 1
            replicas.append(tuple(chosen))
        return cls(tokens, owners, replication, tuple(replicas))

    @property
    def nodes(self) -> frozenset[str]:
        return frozenset(self.owners)

    def __bool__(self) -> bool:
        return bool(self.tokens)

    def index_of(self, token: int) -> int:
        """The vnode whose range holds `token`."""
        i = bisect.bisect_left(self.tokens, token)
        return 0 if i == len(self.tokens) else i

    def replicas(self, token: int) -> tuple[str, ...]:
        if not self.tokens:
            return ()
        return self._replicas[self.index_of(token)]

    def replicas_for_key(self, key: bytes) -> tuple[str, ...]:
        return self.replicas(token_of(key))

    def vnode_ranges(self) -> list[tuple[Range, tuple[str, ...]]]:
        """Every vnode range with its replicas, in token order."""
        out = []
        for i, token in enumerate(self.tokens):
            out.append(((self.tokens[i - 1], token), self._replicas[i]))
        return out

    def ranges_of(self, node: str) -> list[Range]:
        """The ranges `node` holds a replica of."""
        return [rng for rng, replicas in self.vnode_ranges() if node in replicas]

    def ownership(self, node: str) -> float:
        """The fraction of all data `node` holds a replica of ("Owns (effective)")."""
        if not self.tokens:
            return 0.0
        if len(self.tokens) == 1:
            return 1.0 if node in self.owners else 0.0
        return sum(range_size(r) for r in self.ranges_of(node)) / RING_SIZE


def range_movements(before: TokenRing, after: TokenRing) -> list[tuple[Range, tuple[str, ...], tuple[str, ...]]]:
    """Where the replicas change between two rings: (range, replicas before, replicas
    after), over the union of both rings' token boundaries."""
    boundaries = sorted(set(before.tokens) | set(after.tokens))
    moves = []
    for i, token in enumerate(boundaries):
        old, new = before.replicas(token), after.replicas(token)
        if set(old) != set(new):
            moves.append(((boundaries[i - 1], token), old, new))
    return moves


def pending_replicas(before: TokenRing, after: TokenRing) -> list[tuple[Range, tuple[str, ...]]]:
    """The ranges a node gains between `before` and `after`, with the gaining nodes:
    the extra replicas writes must reach while data moves."""
    out = []
    for rng, old, new in range_movements(before, after):
        gained = tuple(n for n in new if n not in old)
        if gained:
            out.append((rng, gained))
    return out


class PendingIndex:
    """Token -> pending replicas, for the coordinator's write path (empty when nothing moves)."""

    def __init__(self, pending: Sequence[tuple[Range, tuple[str, ...]]]) -> None:
        self._pending = list(pending)

    def __bool__(self) -> bool:
        return bool(self._pending)

    def lookup(self, token: int) -> tuple[str, ...]:
        out: list[str] = []
        for rng, nodes in self._pending:
            if in_range(token, rng):
                out.extend(n for n in nodes if n not in out)
        return tuple(out)
