"""What goes wrong in a simulated cluster: a `FaultPlan` of rules applied to each
message (drop, duplicate, delay), partitions, and process crashes and restarts, and the
addresses the plans name (`MASTER_ADDRESS`, `master_address`, `ZOOKEEPER_ADDRESS`,
`agent_address`, `scheduler_address`)."""
from __future__ import annotations

import enum
import math
import random
from dataclasses import dataclass, field
from typing import Iterable

from corral.net.protocol import MessageType

MASTER_ADDRESS = "sim://master"
#: where the simulated ZooKeeper ensemble is, for partitions (with several masters)
ZOOKEEPER_ADDRESS = "sim://zookeeper"


def master_address(index: int) -> str:
    """The address of the `index`-th master (from 1) of a cluster of several."""
    return f"sim://master-{index}"


def is_master_address(address: str) -> bool:
    return address == MASTER_ADDRESS or address.startswith("sim://master-")


def agent_address(index: int) -> str:
    """The address of the `index`-th agent (from 1), the same across its restarts."""
    return f"sim://agent-{index}"


def scheduler_address(index: int) -> str:
    """The host of the `index`-th scheduler (from 1): its first process listens there,
    a restarted one under it (so partitions and rules naming it still apply)."""
    return f"sim://scheduler-{index}"


#: Messages whose loss the protocol repairs by retrying (registration, subscription, the
#: at-least-once status-update path, and the master's reconcile answers, which the
#: driver's reconciliation asks for again). Everything else is at-most-once by design
#: (offers, accepts, launches, kills, framework messages: a fault plan that drops those
#: tests the framework's own recovery), or, for pings and pongs, a loss is the very
#: signal the master uses to declare an agent unreachable.
RETRIED_TYPES: frozenset[MessageType] = frozenset({
    MessageType.SUBSCRIBE, MessageType.SUBSCRIBED,
    MessageType.REGISTER_AGENT, MessageType.REREGISTER_AGENT,
    MessageType.AGENT_REGISTERED, MessageType.AGENT_REREGISTERED,
    MessageType.REGISTER_EXECUTOR, MessageType.EXECUTOR_REGISTERED,
    MessageType.EXECUTOR_STATUS_UPDATE, MessageType.EXECUTOR_STATUS_UPDATE_ACK,
    MessageType.STATUS_UPDATE, MessageType.STATUS_UPDATE_ACK,
    MessageType.UPDATES, MessageType.ACKNOWLEDGE,
})


class Fault(enum.Enum):
    DROP = "drop"
    DUPLICATE = "duplicate"
    #: the message arrives `delay` later, and so do those behind it on its link
    DELAY = "delay"


class Process(enum.Enum):
    """The kinds of process a `Crash` can hit."""

    MASTER = "master"
    AGENT = "agent"
    EXECUTOR = "executor"
    SCHEDULER = "scheduler"


@dataclass(frozen=True)
class Crash:
    """At simulated time `at`, a process of kind `process` dies; it starts again
    `restart_after` seconds later (None: it stays down).

    `target` names which one: an agent's or a scheduler's address (`agent_address`,
    `scheduler_address`); for executors an address prefix (an agent's address: one of
    its executors) or "" (any), the executor being drawn from the cluster's RNG among
    the live ones that match (none live: nothing happens). A master crash needs no
    target: it hits the master (of several: the leading one, or the one `target`
    names). Executors never restart (their agent reports their tasks failed)."""

    process: Process
    at: float
    target: str = ""
    restart_after: float | None = None

    def __post_init__(self) -> None:
        if self.process is Process.EXECUTOR and self.restart_after is not None:
            raise ValueError("executors do not restart: their agent fails their tasks")
        if self.process in (Process.AGENT, Process.SCHEDULER) and not self.target:
            raise ValueError(f"a {self.process.value} crash needs a target address")


def address_matches(address: str, names: frozenset[str]) -> bool:
    """An address matches a name when it is that name or lives under it (an executor
    at "sim://agent-1/<container>" is under "sim://agent-1")."""
    return address in names or any(address.startswith(name + "/") for name in names)


@dataclass(frozen=True)
class FaultRule:
    """With `probability`, apply `fault` to a matching message. Empty filters match
    everything; `delay` is the extra latency of a DELAY; the rule is active in
    [start, end) of simulated time."""

    fault: Fault
    probability: float = 1.0
    delay: float = 0.0
    types: frozenset[MessageType] = frozenset()
    senders: frozenset[str] = frozenset()
    receivers: frozenset[str] = frozenset()
    start: float = 0.0
    end: float = math.inf

    def applies(self, sender: str, to: str, msg_type: MessageType, now: float) -> bool:
        return (
            self.start <= now < self.end
            and (not self.types or msg_type in self.types)
            and (not self.senders or address_matches(sender, self.senders))
            and (not self.receivers or address_matches(to, self.receivers))
        )


@dataclass(frozen=True)
class Partition:
    """During [start, end) no message crosses between `addresses` (and what lives under
    them) and the rest of the network."""

    addresses: frozenset[str]
    start: float = 0.0
    end: float = math.inf

    def separates(self, a: str, b: str, now: float) -> bool:
        return (self.start <= now < self.end
                and address_matches(a, self.addresses) != address_matches(b, self.addresses))


@dataclass
class FaultPlan:
    """What goes wrong: rules applied to each message as it is sent (in order; a DROP
    ends the evaluation), partitions checked as it is delivered, and process crashes
    (and restarts) that the cluster performs at their times."""

    rules: list[FaultRule] = field(default_factory=list)
    partitions: list[Partition] = field(default_factory=list)
    crashes: list[Crash] = field(default_factory=list)

    @classmethod
    def random(cls, rng: random.Random, *, agents: int, schedulers: int = 1, duration: float = 300.0,
               crashes: int = 3, partitions: int = 2, masters: int = 1) -> FaultPlan:
        """A plan drawn from `rng`, every fault of it over by `duration` (partitions healed,
        crashed processes restarted): up to 20% of the retried messages dropped, up to 10%
        duplicated, up to 10% of all messages delayed by up to 5 s; up to `partitions`
        partitions (an agent, a scheduler or a master cut off for 1 s to 2 min: with
        several masters, from ZooKeeper too); and up to `crashes` crashes of processes of
        any kind (a master: the leading one), restarted after 0.1 s to 1 min."""
        end = duration
        rules = [
            FaultRule(Fault.DROP, rng.uniform(0.0, 0.2), types=RETRIED_TYPES, end=end),
            FaultRule(Fault.DUPLICATE, rng.uniform(0.0, 0.1), types=RETRIED_TYPES, end=end),
            FaultRule(Fault.DELAY, rng.uniform(0.0, 0.1), delay=rng.uniform(0.01, 5.0), end=end),
        ]
        masters_at = [MASTER_ADDRESS] if masters == 1 else [master_address(i) for i in range(1, masters + 1)]
        hosts = (masters_at + [agent_address(i) for i in range(1, agents + 1)]
                 + [scheduler_address(i) for i in range(1, schedulers + 1)])
        cuts = []
        for _ in range(rng.randint(0, partitions)):
            length = rng.uniform(1.0, 120.0)
            start = rng.uniform(0.0, end - length)
            cuts.append(Partition(frozenset({rng.choice(hosts)}), start, start + length))
        plan_crashes = []
        for _ in range(rng.randint(0, crashes)):
            kind = rng.choice(list(Process))
            restart = None if kind is Process.EXECUTOR else rng.uniform(0.1, 60.0)
            at = rng.uniform(0.0, end - (restart or 0.0))
            target = {Process.MASTER: "", Process.EXECUTOR: "",
                      Process.AGENT: agent_address(rng.randint(1, agents)),
                      Process.SCHEDULER: scheduler_address(rng.randint(1, schedulers))}[kind]
            plan_crashes.append(Crash(kind, at, target, restart))
        return cls(rules, cuts, sorted(plan_crashes, key=lambda c: c.at))

    @classmethod
    def lossy(cls, drop: float = 0.0, duplicate: float = 0.0, *,
              types: Iterable[MessageType] = ()) -> FaultPlan:
        """Drop a fraction `drop` and duplicate a fraction `duplicate` of the messages
        (of `types`, or all)."""
        kinds = frozenset(types)
        rules = []
        if drop:
            rules.append(FaultRule(Fault.DROP, drop, types=kinds))
        if duplicate:
            rules.append(FaultRule(Fault.DUPLICATE, duplicate, types=kinds))
        return cls(rules)

    def copies(self, rng: random.Random, sender: str, to: str, msg_type: MessageType,
               now: float) -> list[float]:
        """The extra delays of the copies of one message to deliver ([] = dropped)."""
        copies = [0.0]
        for rule in self.rules:
            if not rule.applies(sender, to, msg_type, now) or rng.random() >= rule.probability:
                continue
            if rule.fault is Fault.DROP:
                return []
            if rule.fault is Fault.DUPLICATE:
                copies.append(copies[-1])
            else:
                copies = [c + rule.delay for c in copies]
        return copies

    def partitioned(self, a: str, b: str, now: float) -> bool:
        return any(p.separates(a, b, now) for p in self.partitions)

