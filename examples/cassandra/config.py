"""The service's configuration: how many nodes, their resources, and the node settings a
rolling update can change.

`ServiceConfig` is what the scheduler deploys; `config_id` names a version of what
each node runs (its resources and settings), so the deploy plan can tell which nodes
run an older one. A node's resources may change in an update (cpus, mem and other
scalars; the service reserves more or gives back the excess as it restarts each node
in place), except its disk: a persistent volume keeps its size. `ServiceConfig.updated(changes)` validates an operator's changes (a
JSON object of setting -> value) and returns the new config, or raises ConfigError
naming the bad key or value; nothing changes on an error.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from corral.constraints import Constraint, ConstraintError
from corral.resources import ResourceError, Resources

from corral.examples.cassandra.storage import SyncMode


class ConfigError(ValueError):
    """A configuration that cannot be used; the message names the bad part."""


def _positive_float(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ConfigError(f"invalid value {value!r} for {key}: expected a positive number")
    try:
        number = float(value)
    except ValueError:
        raise ConfigError(f"invalid value {value!r} for {key}: expected a positive number") from None
    if not number > 0:
        raise ConfigError(f"invalid value {value!r} for {key}: must be positive")
    return number


def _boolean(key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "on", "off", "1", "0"):
        return value.lower() in ("true", "yes", "on", "1")
    raise ConfigError(f"invalid value {value!r} for {key}: expected true or false")


def _sync(key: str, value: Any) -> str:
    try:
        return SyncMode(value).value
    except ValueError:
        raise ConfigError(f"invalid value {value!r} for {key}: expected one of "
                          f"{', '.join(m.value for m in SyncMode)}") from None


def _placement(key: str, value: Any) -> list[list[str]]:
    """Marathon-style constraints, as JSON text or a list: [["zone", "UNLIKE", "z3"], ...]."""
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else []
        except ValueError as exc:
            raise ConfigError(f"invalid value {value!r} for {key}: not JSON ({exc})") from None
    if not isinstance(value, list) or not all(isinstance(c, list) and all(isinstance(p, str) for p in c)
                                              for c in value):
        raise ConfigError(f"invalid value {value!r} for {key}: expected a list of constraints such as "
                          '[["hostname", "UNIQUE"], ["zone", "LIKE", "us-.*"]]')
    try:
        for spec in value:
            Constraint.parse(spec)
    except ConstraintError as exc:
        raise ConfigError(f"invalid value for {key}: {exc}") from None
    return [list(c) for c in value]


#: node settings a rolling update may change: name -> (parser, default)
NODE_SETTINGS: dict[str, tuple[Any, Any]] = {
    "gossip_interval": (_positive_float, 0.5),
    "ring_delay": (_positive_float, 3.0),
    "phi_threshold": (_positive_float, 8.0),
    "write_timeout": (_positive_float, 2.0),
    "read_timeout": (_positive_float, 2.0),
    "hinted_handoff": (_boolean, True),
    "commitlog_sync": (_sync, SyncMode.BATCH.value),
    "gc_grace": (_positive_float, 864000.0),
    "compaction_interval": (_positive_float, 60.0),
}
#: scheduler settings an update may change (they need no restart of any node; a new
#: placement applies to the nodes placed from then on)
SCHEDULER_SETTINGS: dict[str, tuple[Any, Any]] = {
    "permanent_failure_timeout": (_positive_float, 600.0),
    "auto_replace": (_boolean, True),
    "placement": (_placement, []),
}
IMMUTABLE = {
    "replication": "the replication factor is fixed once the ring exists",
    "num_tokens": "a node's tokens are fixed once it joined",
    "nodes": "use scale to change the number of nodes",
    "name": "the service name is fixed", "role": "the service role is fixed",
}


def parse_node_resources(text: str) -> Resources:
    try:
        resources = Resources.parse(text)
    except ResourceError as exc:
        raise ConfigError(f"invalid node resources {text!r}: {exc}") from None
    for name in ("cpus", "mem", "disk"):
        if resources.scalar(name) <= 0:
            raise ConfigError(f"invalid node resources {text!r}: {name} is required")
    for name in sorted(resources.names()):
        if resources.scalar(name) <= 0:
            raise ConfigError(f"invalid node resources {text!r}: {name} is not a scalar; give scalars only "
                              "(the service picks each node's port)")
    if resources.reserved():
        raise ConfigError(f"invalid node resources {text!r}: give unreserved amounts; the service reserves them")
    return resources


@dataclass
class ServiceConfig:
    name: str = "cassandra"
    role: str = "cassandra"
    principal: str = "cassandra"
    nodes: int = 3
    replication: int = 3
    num_tokens: int = 16
    node_resources: str = "cpus:0.5;mem:256;disk:512"
    settings: dict[str, Any] = field(default_factory=lambda: {k: d for k, (_, d) in NODE_SETTINGS.items()})
    permanent_failure_timeout: float = 600.0
    auto_replace: bool = True
    #: constraints over agent attributes (and `hostname`) on top of one node per agent
    placement: list[list[str]] = field(default_factory=list)

    def validate(self) -> "ServiceConfig":
        if self.replication < 1:
            raise ConfigError(f"invalid replication factor {self.replication}: must be at least 1")
        if self.nodes < self.replication:
            raise ConfigError(f"cannot run {self.nodes} node(s) with replication factor {self.replication}: "
                              f"at least {self.replication} are needed")
        self.node_resources = parse_node_resources(self.node_resources).to_text()
        self.placement = _placement("placement", self.placement)
        for key, value in self.settings.items():
            if key not in NODE_SETTINGS:
                raise ConfigError(f"unknown setting {key!r}")
            NODE_SETTINGS[key][0](key, value)
        return self

    @property
    def constraints(self) -> list[Constraint]:
        return [Constraint.parse(spec) for spec in self.placement]

    @property
    def resources(self) -> Resources:
        return parse_node_resources(self.node_resources)

    @property
    def config_id(self) -> str:
        """Names what a node runs: its resources and settings."""
        text = json.dumps({"resources": self.node_resources, "settings": self.settings,
                           "num_tokens": self.num_tokens}, sort_keys=True)
        return hashlib.sha1(text.encode()).hexdigest()[:12]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "ServiceConfig":
        return cls(**values)

    def updated(self, changes: Any) -> "ServiceConfig":
        """This config with `changes` (setting -> value) applied; ConfigError on a bad one."""
        if not isinstance(changes, dict) or not changes:
            raise ConfigError(f"a config update is a non-empty JSON object of setting: value, not {changes!r}")
        settings = dict(self.settings)
        scheduler: dict[str, Any] = {}
        for key, value in changes.items():
            if key in IMMUTABLE:
                raise ConfigError(f"cannot change {key}: {IMMUTABLE[key]}")
            if key == "node_resources":
                scheduler[key] = self._resized(value)
            elif key in NODE_SETTINGS:
                settings[key] = NODE_SETTINGS[key][0](key, value)
            elif key in SCHEDULER_SETTINGS:
                scheduler[key] = SCHEDULER_SETTINGS[key][0](key, value)
            else:
                known = ", ".join(sorted([*NODE_SETTINGS, *SCHEDULER_SETTINGS, "node_resources"]))
                raise ConfigError(f"unknown setting {key!r}: the settings are {known}")
        return dataclasses.replace(self, settings=settings, **scheduler).validate()

    def _resized(self, text: Any) -> str:
        """New node resources, checked: the disk (each node's volume) keeps its size."""
        if not isinstance(text, str):
            raise ConfigError(f"invalid node resources {text!r}: expected text such as 'cpus:1;mem:512;disk:512'")
        resources = parse_node_resources(text)
        if resources.disk != self.resources.disk:
            raise ConfigError(f"cannot change the nodes' disk from {self.resources.disk:g} to {resources.disk:g} MB: "
                              "a persistent volume keeps its size (scale out onto new nodes instead)")
        return resources.to_text()

    def node_flags(self) -> list[str]:
        """The `node` command's flags for these settings."""
        flags = ["--replication", str(self.replication), "--num-tokens", str(self.num_tokens)]
        for key, value in sorted(self.settings.items()):
            flag = "--" + key.replace("_", "-")
            if isinstance(value, bool):
                flags.append(flag if value else "--no-" + key.replace("_", "-"))
            else:
                flags += [flag, str(value)]
        return flags
