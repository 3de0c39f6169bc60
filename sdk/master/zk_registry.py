"""The master's registry in ZooKeeper (with `--zk`), where whichever master leads next
can read it: admitted agents and their states, agents marked gone, role weights and
quota, and the frameworks a new leader keeps failover timers for.

Layout under the election path PATH (with credentials in the URL, every znode here is
readable and writable by the masters' user only: `corral.net.zookeeper.Acl.PRIVATE`):
  PATH/registry/epoch             the leader epoch: its version is the fencing token
  PATH/registry/agents/NNN        agents, in buckets by a hash of their id (msgpack maps of
                                  id -> [state, since, AgentInfo, principal admitted by])
  PATH/registry/frameworks/NNN    frameworks, the same way
  PATH/registry/weights           {role: weight}
  PATH/registry/quotas            {role: resources text}

A master that is elected first bumps the epoch (`take_over`) and from then on writes only
in transactions that check the epoch still has the version it set: once another master
has taken over, every write of the old leader fails with `RegistryFenced` and changes
nothing. The leader is the only writer, so it keeps the registry in memory as well, reads
the ensemble once at take-over, and skips writes that change nothing (agents coming back
after a failover reregister with what the registry already holds). A znode or an entry
that cannot be read is logged, naming it, and skipped: the leader's next write to that
bucket replaces it.

Writes are staged, then made durable together by `commit`: every znode changed since
the last commit is written once, in one fenced transaction (several, in order, when
they exceed TRANSACTION_BYTES), all of it or none. The master daemon commits once per
turn of its I/O loop, after the turn's registry actions and before any of its messages
leave (`Runtime.add_commit`): the registry actions of a whole batch of messages (up to
the transport's DRAIN_BATCH) cost one round trip to the ensemble instead of one each,
and nothing is acknowledged before the write that covers it committed. A commit that
fails raises, and the master stops leading; what it staged is then lost with the term.
"""
from __future__ import annotations

import hashlib
import logging
import threading
from dataclasses import dataclass, field
from typing import Any

import msgpack

from corral.engines.master import AgentRecordState, RegistryState
from corral.net.zookeeper import Acl, ZooKeeperUrl
from corral.protos import corral_pb2 as pb
from corral.resources import ResourceError, Resources

log = logging.getLogger(__name__)

#: buckets per kind: a bucket is one znode, rewritten whole on a change (ZooKeeper's
#: default limit is 1 MB a znode: 256 buckets hold about a million agents)
BUCKETS = 256
#: longest a registry write may wait for the ensemble before it counts as failed
WRITE_TIMEOUT = 5.0
#: most data one fenced transaction carries: ZooKeeper refuses a request larger than its
#: jute.maxbuffer (1 MB by default) and drops the client's connection, so a commit larger
#: than this is split into several transactions, committed in order
TRANSACTION_BYTES = 512 * 1024


class RegistryFenced(RuntimeError):
    """Another master took over the registry: this one no longer leads."""


def bucket_of(key: str) -> str:
    return f"{int.from_bytes(hashlib.blake2b(key.encode(), digest_size=2).digest(), 'big') % BUCKETS:03d}"


@dataclass
class _Kind:
    """One bucketed kind of entries: what the ensemble holds, as last read or staged."""

    path: str
    buckets: dict[str, dict[str, Any]] = field(default_factory=dict)


class ZooKeeperRegistry:
    """The registry of the masters at `url` on the ensemble `client` (a started
    KazooClient, shared with the master's contender). Call `take_over` once elected,
    before reading or writing."""

    def __init__(self, client: Any, url: ZooKeeperUrl, master_id: str, write_timeout: float = WRITE_TIMEOUT) -> None:
        self.client = client
        self.root = f"{url.path}/registry"
        self.master_id = master_id
        self.write_timeout = write_timeout
        #: every registry znode's: only the masters' credentials read or write it
        self._acl = url.acl(Acl.PRIVATE)
        self._epoch_path = f"{self.root}/epoch"
        self._epoch_version: int | None = None
        self._lock = threading.Lock()
        self._agents = _Kind(f"{self.root}/agents")
        self._frameworks = _Kind(f"{self.root}/frameworks")
        self._weights: dict[str, Any] = {}
        self._quotas: dict[str, Any] = {}
        #: the znodes the ensemble holds, as far as this master knows (a write sets them;
        #: any other is created)
        self._stored: set[str] = set()
        #: the znodes changed since the last commit: path -> the map to write there
        self._staged: dict[str, dict[str, Any]] = {}
        #: the znodes and entries found unreadable at take-over (each logged)
        self.unreadable: list[str] = []

    # -- take-over and reading --------------------------------------------------------
    def take_over(self) -> int:
        """Bump the leader epoch (fencing every earlier leader) and read the registry.
        Returns the new epoch."""
        from kazoo.exceptions import NodeExistsError

        for path in (self.root, self._agents.path, self._frameworks.path):
            self.client.ensure_path(path, acl=self._acl)
        try:
            self.client.create(self._epoch_path, self.master_id.encode(), acl=self._acl)
        except NodeExistsError:
            pass
        stat = self.client.set(self._epoch_path, self.master_id.encode())
        self._epoch_version = stat.version
        with self._lock:
            self.unreadable = []
            self._stored = set()
            self._staged = {}
            self._read_kind(self._agents)
            self._read_kind(self._frameworks)
            self._weights = self._read_map("weights")
            self._quotas = self._read_map("quotas")
        return stat.version

    def _read_kind(self, kind: _Kind) -> None:
        names = self.client.get_children(kind.path)
        pending = {name: self.client.get_async(f"{kind.path}/{name}") for name in names}
        kind.buckets = {}
        self._stored.update(f"{kind.path}/{name}" for name in names)
        for name, result in pending.items():
            data, _stat = result.get(timeout=30)
            decoded = self._decode(data, f"{kind.path}/{name}")
            if decoded is not None:
                kind.buckets[name] = decoded

    def _read_map(self, name: str) -> dict[str, Any]:
        path = f"{self.root}/{name}"
        if self.client.exists(path) is None:
            return {}
        self._stored.add(path)
        data, _stat = self.client.get(path)
        return self._decode(data, path) or {}

    def _decode(self, data: bytes, path: str) -> dict[str, Any] | None:
        try:
            value = msgpack.unpackb(data, raw=False) if data else {}
        except (ValueError, msgpack.UnpackException) as exc:
            return self._skip(f"registry znode {path} holds unreadable data ({exc}): skipped")
        if not isinstance(value, dict):
            return self._skip(f"registry znode {path} holds a {type(value).__name__}, not a map: skipped")
        return value

    def _skip(self, problem: str) -> None:
        log.error("%s", problem)
        self.unreadable.append(problem)
        return None

    def state(self) -> RegistryState:
        """What the registry held at take-over (what the new leader's engine starts from)."""
        state = RegistryState()
        with self._lock:
            for bucket, entries in self._agents.buckets.items():
                for agent_id, entry in entries.items():
                    try:
                        kind, since, blob, *rest = entry  # (no principal: written before they were kept)
                        record = AgentRecordState(kind)
                        if record is AgentRecordState.ADMITTED:
                            state.admitted[agent_id] = pb.AgentInfo.FromString(blob)
                        elif record is AgentRecordState.UNREACHABLE:
                            state.unreachable[agent_id] = float(since)
                        else:
                            state.gone.add(agent_id)
                        if rest and rest[0] is not None and record is not AgentRecordState.GONE:
                            state.principals[agent_id] = str(rest[0])
                    except Exception as exc:
                        self._skip(f"registry znode {self._agents.path}/{bucket}: agent {agent_id!r} has an "
                                   f"unreadable entry ({exc}): skipped")
            for bucket, entries in self._frameworks.buckets.items():
                for framework_id, blob in entries.items():
                    try:
                        state.frameworks[framework_id] = pb.FrameworkInfo.FromString(blob)
                    except Exception as exc:
                        self._skip(f"registry znode {self._frameworks.path}/{bucket}: framework {framework_id!r} "
                                   f"has an unreadable entry ({exc}): skipped")
            for role, weight in sorted(self._weights.items()):
                try:
                    state.weights[str(role)] = float(weight)
                except (TypeError, ValueError) as exc:
                    self._skip(f"registry znode {self.root}/weights: role {role!r}: {exc}: skipped")
            for role, text in sorted(self._quotas.items()):
                try:
                    state.quotas[str(role)] = Resources.parse(str(text))
                except ResourceError as exc:
                    self._skip(f"registry znode {self.root}/quotas: role {role!r}: {exc}: skipped")
        return state

    # -- writing: staged, then committed ------------------------------------------------
    def record_agent(self, agent_id: str, info: pb.AgentInfo | None, record: AgentRecordState, since: float,
                     principal: str | None = None) -> None:
        """Stage an agent's entry; `info` None keeps the one stored, `principal` None the
        principal stored."""
        with self._lock:
            bucket = bucket_of(agent_id)
            old = self._agents.buckets.get(bucket, {}).get(agent_id)
            blob = info.SerializeToString(deterministic=True) if info is not None else (old[2] if old else b"")
            if principal is None and old is not None and len(old) > 3:
                principal = old[3]
            entry = [record.value, float(since) if record is AgentRecordState.UNREACHABLE else 0.0, blob, principal]
            if old != entry:
                self._stage_entry(self._agents, bucket, agent_id, entry)

    def forget_agent(self, agent_id: str) -> None:
        with self._lock:
            self._stage_entry(self._agents, bucket_of(agent_id), agent_id, None)

    def record_framework(self, framework_id: str, info: pb.FrameworkInfo) -> None:
        with self._lock:
            bucket = bucket_of(framework_id)
            blob = info.SerializeToString(deterministic=True)
            if self._frameworks.buckets.get(bucket, {}).get(framework_id) != blob:
                self._stage_entry(self._frameworks, bucket, framework_id, blob)

    def forget_framework(self, framework_id: str) -> None:
        with self._lock:
            self._stage_entry(self._frameworks, bucket_of(framework_id), framework_id, None)

    def set_weight(self, role: str, weight: float) -> None:
        with self._lock:
            self._weights[role] = float(weight)
            self._staged[f"{self.root}/weights"] = self._weights

    def set_quota(self, role: str, quota: Resources | None) -> None:
        with self._lock:
            if quota is None:
                self._quotas.pop(role, None)
            else:
                self._quotas[role] = quota.to_text()
            self._staged[f"{self.root}/quotas"] = self._quotas

    def _stage_entry(self, kind: _Kind, bucket: str, key: str, value: Any) -> None:
        """Set (None: remove) `key` in `bucket`, to be written at the next commit."""
        entries = kind.buckets.get(bucket)
        if value is None:
            if entries is None or key not in entries:
                return
            del entries[key]
        else:
            entries = kind.buckets.setdefault(bucket, {})
            entries[key] = value
        self._staged[f"{kind.path}/{bucket}"] = entries

    @property
    def staged(self) -> int:
        """How many znodes the next commit writes."""
        return len(self._staged)

    def commit(self) -> None:
        """Write every znode staged since the last commit, if and only if this master
        still holds the leader epoch: in one transaction, or in several of at most
        TRANSACTION_BYTES each, in order. Each transaction is all or nothing:
        RegistryFenced when another master took the epoch, the ensemble's error (or a
        timeout after `write_timeout`) when it did not take the transaction."""
        with self._lock:
            if not self._staged:
                return
            if self._epoch_version is None:
                raise RegistryFenced("this master has not taken over the registry")
            chunk: list[tuple[str, bytes]] = []
            size = 0
            for path, value in list(self._staged.items()):
                data = msgpack.packb(value, use_bin_type=True)
                if chunk and size + len(data) + len(path) > TRANSACTION_BYTES:
                    self._commit_transaction(chunk)
                    chunk, size = [], 0
                chunk.append((path, data))
                size += len(data) + len(path)
            self._commit_transaction(chunk)

    def _commit_transaction(self, writes: list[tuple[str, bytes]]) -> None:
        """One fenced transaction: check the epoch, then write each znode (set if the
        ensemble holds it, else create). A znode we were wrong about (one skipped as
        unreadable, or one an operator removed) is tried again the other way."""
        from kazoo.exceptions import BadVersionError, NodeExistsError, NoNodeError, RolledBackError

        for _attempt in range(len(writes) + 1):
            transaction = self.client.transaction()
            transaction.check(self._epoch_path, self._epoch_version)
            for path, data in writes:
                if path in self._stored:
                    transaction.set_data(path, data)
                else:
                    transaction.create(path, data, acl=self._acl)
            results = transaction.commit_async().get(timeout=self.write_timeout)
            failed = next((i for i, r in enumerate(results)
                           if isinstance(r, Exception) and not isinstance(r, RolledBackError)), None)
            if failed is None:
                for path, _data in writes:
                    self._stored.add(path)
                    self._staged.pop(path, None)
                return
            failure = results[failed]
            if failed == 0 and isinstance(failure, BadVersionError):
                raise RegistryFenced(f"another master took the leader epoch ({self._epoch_path})")
            if failed == 0 or not isinstance(failure, (NodeExistsError, NoNodeError)):
                raise failure
            self._stored.symmetric_difference_update({writes[failed - 1][0]})
        raise RuntimeError(f"the registry transaction of {len(writes)} znodes kept failing")

    def close(self) -> None:
        """The client belongs to the contender, which closes it."""
