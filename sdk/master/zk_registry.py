"""The master's registry in ZooKeeper (with `--zk`), where whichever master leads next
can read it: admitted agents and their states, agents marked gone, role weights and
quota, and the frameworks a new leader keeps failover timers for.

Layout under the election path PATH:
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
"""
from __future__ import annotations

import hashlib
import logging
import threading
from dataclasses import dataclass, field
from typing import Any

import msgpack

from corral.engines.master import AgentRecordState, RegistryState
from corral.net.zookeeper import ZooKeeperUrl
from corral.protos import corral_pb2 as pb
from corral.resources import ResourceError, Resources

log = logging.getLogger(__name__)

#: buckets per kind: a bucket is one znode, rewritten whole on a change (ZooKeeper's
#: default limit is 1 MB a znode: 256 buckets hold about a million agents)
BUCKETS = 256
#: longest a registry write may wait for the ensemble before it counts as failed
WRITE_TIMEOUT = 5.0


class RegistryFenced(RuntimeError):
    """Another master took over the registry: this one no longer leads."""


def bucket_of(key: str) -> str:
    return f"{int.from_bytes(hashlib.blake2b(key.encode(), digest_size=2).digest(), 'big') % BUCKETS:03d}"


@dataclass
class _Kind:
    """One bucketed kind of entries: what the ensemble holds, as last read or written."""

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
        self._epoch_path = f"{self.root}/epoch"
        self._epoch_version: int | None = None
        self._lock = threading.Lock()
        self._agents = _Kind(f"{self.root}/agents")
        self._frameworks = _Kind(f"{self.root}/frameworks")
        self._weights: dict[str, Any] = {}
        self._quotas: dict[str, Any] = {}
        #: the maps (weights, quotas) the ensemble holds
        self._maps: set[str] = set()
        #: the znodes and entries found unreadable at take-over (each logged)
        self.unreadable: list[str] = []

    # -- take-over and reading --------------------------------------------------------
    def take_over(self) -> int:
        """Bump the leader epoch (fencing every earlier leader) and read the registry.
        Returns the new epoch."""
        from kazoo.exceptions import NodeExistsError

        for path in (self.root, self._agents.path, self._frameworks.path):
            self.client.ensure_path(path)
        try:
            self.client.create(self._epoch_path, self.master_id.encode())
        except NodeExistsError:
            pass
        stat = self.client.set(self._epoch_path, self.master_id.encode())
        self._epoch_version = stat.version
        with self._lock:
            self.unreadable = []
            self._maps = set()
            self._read_kind(self._agents)
            self._read_kind(self._frameworks)
            self._weights = self._read_map("weights")
            self._quotas = self._read_map("quotas")
        return stat.version

    def _read_kind(self, kind: _Kind) -> None:
        names = self.client.get_children(kind.path)
        pending = {name: self.client.get_async(f"{kind.path}/{name}") for name in names}
        kind.buckets = {}
        for name, result in pending.items():
            data, _stat = result.get(timeout=30)
            decoded = self._decode(data, f"{kind.path}/{name}")
            if decoded is not None:
                kind.buckets[name] = decoded

    def _read_map(self, name: str) -> dict[str, Any]:
        path = f"{self.root}/{name}"
        if self.client.exists(path) is None:
            return {}
        self._maps.add(name)
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

    # -- writing ----------------------------------------------------------------------
    def record_agent(self, agent_id: str, info: pb.AgentInfo | None, record: AgentRecordState, since: float,
                     principal: str | None = None) -> None:
        """Write an agent's entry; `info` None keeps the one stored, `principal` None the
        principal stored."""
        with self._lock:
            bucket = bucket_of(agent_id)
            old = self._agents.buckets.get(bucket, {}).get(agent_id)
            blob = info.SerializeToString(deterministic=True) if info is not None else (old[2] if old else b"")
            if principal is None and old is not None and len(old) > 3:
                principal = old[3]
            entry = [record.value, float(since) if record is AgentRecordState.UNREACHABLE else 0.0, blob, principal]
            if old == entry:
                return
            self._write_bucket(self._agents, bucket, agent_id, entry)

    def forget_agent(self, agent_id: str) -> None:
        with self._lock:
            self._write_bucket(self._agents, bucket_of(agent_id), agent_id, None)

    def record_framework(self, framework_id: str, info: pb.FrameworkInfo) -> None:
        with self._lock:
            bucket = bucket_of(framework_id)
            blob = info.SerializeToString(deterministic=True)
            if self._frameworks.buckets.get(bucket, {}).get(framework_id) == blob:
                return
            self._write_bucket(self._frameworks, bucket, framework_id, blob)

    def forget_framework(self, framework_id: str) -> None:
        with self._lock:
            self._write_bucket(self._frameworks, bucket_of(framework_id), framework_id, None)

    def set_weight(self, role: str, weight: float) -> None:
        with self._lock:
            weights = dict(self._weights, **{role: float(weight)})
            self._write_map("weights", weights)
            self._weights = weights

    def set_quota(self, role: str, quota: Resources | None) -> None:
        with self._lock:
            quotas = dict(self._quotas)
            if quota is None:
                quotas.pop(role, None)
            else:
                quotas[role] = quota.to_text()
            self._write_map("quotas", quotas)
            self._quotas = quotas

    def _write_bucket(self, kind: _Kind, bucket: str, key: str, value: Any) -> None:
        current = kind.buckets.get(bucket)
        if value is None and (current is None or key not in current):
            return
        updated = dict(current or {})
        if value is None:
            del updated[key]
        else:
            updated[key] = value
        self._commit(f"{kind.path}/{bucket}", msgpack.packb(updated, use_bin_type=True), exists=current is not None)
        kind.buckets[bucket] = updated

    def _write_map(self, name: str, value: dict[str, Any]) -> None:
        self._commit(f"{self.root}/{name}", msgpack.packb(value, use_bin_type=True), exists=name in self._maps)
        self._maps.add(name)

    def _commit(self, path: str, data: bytes, exists: bool) -> None:
        """Write `path` (which `exists` or not, as far as we know) if and only if this
        master still holds the leader epoch. RegistryFenced when another master took it;
        the ensemble's error (or a timeout after `write_timeout`) when it did not take
        the write."""
        from kazoo.exceptions import BadVersionError, NodeExistsError, NoNodeError, RolledBackError

        if self._epoch_version is None:
            raise RegistryFenced("this master has not taken over the registry")
        for attempt in range(2):
            transaction = self.client.transaction()
            transaction.check(self._epoch_path, self._epoch_version)
            if exists:
                transaction.set_data(path, data)
            else:
                transaction.create(path, data)
            results = transaction.commit_async().get(timeout=self.write_timeout)
            if not any(isinstance(r, Exception) for r in results):
                return
            if isinstance(results[0], BadVersionError):
                raise RegistryFenced(f"another master took the leader epoch ({self._epoch_path})")
            failure = next(r for r in results if isinstance(r, Exception) and not isinstance(r, RolledBackError))
            if attempt or not isinstance(failure, (NodeExistsError, NoNodeError)):
                raise failure
            exists = not exists  # a znode we skipped as unreadable, or one an operator removed

    def close(self) -> None:
        """The client belongs to the contender, which closes it."""
