"""`SimCluster`: the real master, agent, scheduler and executor engines run together
on a `SimNetwork` and a `FakeClock`, with process crashes and restarts (see the
package's docstring for the model and its invariants)."""
from __future__ import annotations

import heapq
import itertools
import random
from dataclasses import dataclass, field
from functools import partial
from typing import Callable

from google.protobuf.message import Message

from corral.engines.agent import (
    AgentConfig, AgentEngine, KillContainer, LaunchExecutor, LinkVolumes, RecoverMode, UpdateVolumes,
)
from corral.engines.base import Engine, MasterLost, Send
from corral.engines.master import (
    REGISTRY_ACTIONS, MasterConfig, MasterEngine, RegistryState, apply_to_registry,
)
from corral.engines.scheduler import SchedulerConfig, SchedulerEngine
from corral.executor import Executor, ExecutorEnvironment
from corral.net.protocol import PeerEvent, message_type
from corral.protos import corral_pb2 as pb
from corral.resources import Resources
from corral.runtime.actions import Performer, perform
from corral.runtime.driver import DriverStatus
from corral.scheduler import Scheduler
from corral.testing.sim.checkpoints import SimCheckpoints
from corral.testing.sim.drivers import (
    CallbackErrors, ExecutorFactory, SimCommandExecutor, SimExecutorDriver, SimSchedulerDriver,
)
from corral.testing.sim.faults import (
    MASTER_ADDRESS, Crash, FaultPlan, Partition, Process, address_matches, agent_address, master_address,
    scheduler_address,
)
from corral.testing.sim.election import SimElection
from corral.testing.sim.network import NetEvent, SimNetwork

#: seconds after which the peers cut off by a partition learn it (PeerEvent.DISCONNECTED),
#: as the transport's heartbeats time out (corral.net.transport.HEARTBEAT_TIMEOUT_MS)
HEARTBEAT_TIMEOUT = 5.0


class FakeClock:
    """Simulated seconds; moves only when told to."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def advance(self, seconds: float) -> float:
        if seconds < 0:
            raise ValueError(f"cannot move the clock backwards by {seconds}s")
        self.now += seconds
        return self.now

    def advance_to(self, when: float) -> float:
        """Move to `when` (never backwards)."""
        self.now = max(self.now, when)
        return self.now

    def __call__(self) -> float:
        return self.now



@dataclass(order=True)
class _Event:
    at: float
    seq: int
    fn: Callable[[], None] = field(compare=False)


@dataclass(eq=False)
class _Node:
    """One engine on the network: its address, and its process's one table of what
    carries out each kind of action the engine emits (`corral.runtime.actions`)."""

    engine: Engine
    address: str
    #: which engine it runs, for errors ("agent", ...)
    kind: str
    performers: dict[type, Performer]
    #: whether the process may act at all (a master of several: while its leadership
    #: says so); what its engine emits otherwise is dropped
    acting: Callable[[], bool] | None = None


class SimCluster:
    """A whole cluster in memory: the real master, agent, scheduler and executor
    engines, a simulated network and clock. Add schedulers with `add_scheduler`, then
    drive time with `run_until` / `run_for`. Command tasks run in `SimCommandExecutor`;
    custom executors come from `executor_factory`.

    Processes crash and restart as the fault plan's `crashes` say, or when a test calls
    `crash_master`, `crash_agent`, `crash_executor` or `crash_scheduler`:
    - master: a fresh `MasterEngine` (a new master id, the registry the old one left,
      nothing else) starts at the same address; agents and schedulers reregister. With
      `masters` above 1 the masters elect a leader through a simulated ZooKeeper
      (`corral.testing.sim.election`): a crash hits the leader, whose session expires
      after `zk_session_timeout`, and the next master leads, from the registry;
    - agent: a fresh `AgentEngine` at the same address recovers from its checkpoints
      (`AgentEngine.recover`, reconnecting to the executors still running) when it has
      any; executors of frameworks that checkpoint wait for it, the others shut down
      when they lose it (their engine's rule);
    - executor: its process dies; the agent is told (`executor_exited`);
    - scheduler: a new `SchedulerEngine` with the framework's id (a failover, as a
      restarted framework that saved its id does) at a new address on the same host;
      the same `Scheduler` object serves it (it stands for the framework's own store).
    """

    def __init__(
        self,
        agents: int = 1,
        *,
        agent_resources: str = "cpus:4;mem:4096;disk:10000",
        seed: int = 0,
        faults: FaultPlan | None = None,
        latency: float = 0.001,
        master_config: MasterConfig | None = None,
        agent_config: AgentConfig | None = None,
        executor_factory: ExecutorFactory | None = None,
        callback_errors: CallbackErrors = CallbackErrors.RAISE,
        record: bool = False,
        batch: bool = False,
        masters: int = 1,
        zk_session_timeout: float = 10.0,
    ) -> None:
        self.clock = FakeClock()
        #: every engine collects the status path's rows per peer and turn (`Engine.batch`),
        #: as under `Runtime(batch=True)`
        self.batch = batch
        self.seed = seed
        self._rng = random.Random(seed)
        self.network = SimNetwork(self._child_rng(), faults, latency, record)
        self.network.on_partition = self._watch_partition
        self.callback_errors = callback_errors
        self.executor_factory = executor_factory
        self.master_config = master_config
        self.agent_config = agent_config or AgentConfig()
        self._events: list[_Event] = []
        self._event_seq = itertools.count()
        self._nodes: dict[str, _Node] = {}
        #: addresses of the processes that crashed and have not restarted
        self.down: set[str] = set()
        #: the master's registry of agents, as a restarted master finds it
        self.registry = RegistryState()
        #: each agent's checkpoints, by agent address
        self.checkpoints: dict[str, SimCheckpoints] = {}
        #: each agent's persistent volumes (role, persistence id), by agent address
        self.volumes: dict[str, set[tuple[str, str]]] = {}
        self._masters = 0
        #: with several masters, their election (None: one master, always leading)
        self.election: SimElection | None = None
        #: the (last) leading master's engine
        self.master: MasterEngine
        #: what masters emitted while they could not act (dropped)
        self.dropped_actions = 0
        if masters == 1:
            self.master = self._start_master()
        else:
            self.election = SimElection(self, [master_address(i) for i in range(1, masters + 1)], zk_session_timeout)
            self.election.start()

        resources = Resources.parse(agent_resources).to_protos()
        self._agent_infos: dict[str, pb.AgentInfo] = {}
        #: the current process of each agent (the last one, while it is down)
        self.agents: list[AgentEngine] = []
        for i in range(1, agents + 1):
            address = agent_address(i)
            self._agent_infos[address] = pb.AgentInfo(hostname=f"agent-{i}", resources=resources)
            self.checkpoints[address] = SimCheckpoints()
            self.volumes[address] = set()
            self.agents.append(self._start_agent(address))

        self.schedulers: list[SimSchedulerDriver] = []
        #: every executor ever started, by address (exited ones have status != RUNNING)
        self.executors: dict[str, SimExecutorDriver] = {}
        for part in self.network.plan.partitions:
            self._watch_partition(part)
        for crash in self.network.plan.crashes:
            self.schedule(crash.at, lambda crash=crash: self.crash(crash))

    # ------------------------------------------------------------------ set-up
    def _child_rng(self) -> random.Random:
        return random.Random(self._rng.getrandbits(64))

    def _add_node(self, engine: Engine, address: str, kind: Process, performers: dict[type, Performer]) -> _Node:
        """Put `engine` on the network at `address`; its process performs its actions with
        `performers` (its Sends go on the network)."""
        engine.batch = self.batch
        send = self.network.send
        node = _Node(engine, address, kind.value,
                     {Send: lambda action: send(address, action.to, action.body, self.clock.now), **performers})
        self._nodes[address] = node
        handled = set(engine.handled_types())

        def receive(sender: str, body: Message) -> None:
            if message_type(body) not in handled:
                self.network.stats[NetEvent.UNHANDLED] += 1
                return
            engine.handle(sender, body, self.clock.now)
            self._pump(node)

        self.network.attach(address, receive)
        return node

    def _node_of(self, engine: Engine) -> _Node:
        return next(n for n in self._nodes.values() if n.engine is engine)

    def _remove_node(self, engine: Engine) -> None:
        node = self._node_of(engine)
        self._pump(node)  # what it sent before it went still goes out
        self.network.detach(node.address)
        del self._nodes[node.address]

    def _start_master(self) -> MasterEngine:
        self._masters += 1
        master_id = f"sim{self.seed}" if self._masters == 1 else f"sim{self.seed}r{self._masters}"
        info = pb.MasterInfo(id=master_id, hostname="master", port=5050, transport=MASTER_ADDRESS,
                             version="sim", start_time=self.clock.now)
        master = MasterEngine(info, self.master_config, now=self.clock.now, registry=self.registry)
        registry = partial(apply_to_registry, self.registry)
        self._add_node(master, MASTER_ADDRESS, Process.MASTER, {action: registry for action in REGISTRY_ACTIONS})
        return master

    def _start_agent(self, address: str) -> AgentEngine:
        """An agent process starts at `address`: it recovers from its checkpoints (if it
        has any), then looks for the master."""
        info = pb.AgentInfo()
        info.CopyFrom(self._agent_infos[address])
        agent = AgentEngine(info, address, self.agent_config, self._child_rng())
        node = self._add_node(agent, address, Process.AGENT, self._agent_performers(agent))
        state = self.checkpoints[address].recovered()
        if state is not None:
            live = {d.container_id for d in self.live_executors() if d.agent_address == address}
            agent.recover(state, live, RecoverMode.RECONNECT, self.clock.now)
        self.find_master(agent.connect)
        self._pump(node)
        return agent

    def add_scheduler(self, scheduler: Scheduler, framework_info: pb.FrameworkInfo | None = None, *,
                      implicit_acknowledgements: bool = True,
                      config: SchedulerConfig | None = None) -> SimSchedulerDriver:
        """Start a scheduler driver for `scheduler`; it subscribes at once. Pass a
        `framework_info` with an id to fail over an existing framework."""
        info = framework_info or pb.FrameworkInfo(user="sim", name=type(scheduler).__name__)
        config = config or SchedulerConfig(implicit_acknowledgements=implicit_acknowledgements)
        host = scheduler_address(len(self.schedulers) + 1)
        engine = SchedulerEngine(info, host, config, self._child_rng())
        driver = SimSchedulerDriver(self, scheduler, engine, host)
        self.schedulers.append(driver)
        self._start_scheduler(driver)
        return driver

    def _start_scheduler(self, driver: SimSchedulerDriver) -> None:
        node = self._add_node(driver.engine, driver.address, Process.SCHEDULER, driver._performers())
        driver.status = DriverStatus.RUNNING
        self.find_master(driver.engine.connect)
        self._pump(node)

    def _finish_scheduler(self, driver: SimSchedulerDriver, status: DriverStatus) -> None:
        driver.status = status
        self._remove_node(driver.engine)

    # ------------------------------------------------------- crashes, restarts
    def crash(self, crash: Crash) -> None:
        """Perform one `Crash` now (its `at` is the plan's business)."""
        if crash.process is Process.MASTER:
            self.crash_master(crash.restart_after, crash.target)
        elif crash.process is Process.AGENT:
            self.crash_agent(crash.target, crash.restart_after)
        elif crash.process is Process.SCHEDULER:
            for driver in self.schedulers:
                if driver.host == crash.target:
                    self.crash_scheduler(driver, crash.restart_after)
        else:
            live = [d for d in self.live_executors()
                    if not crash.target or address_matches(d.address, frozenset({crash.target}))]
            if live:
                self.crash_executor(self._rng.choice(live))

    def _kill_process(self, address: str) -> None:
        """The process at `address` dies now: what it had not done is lost, nothing
        reaches it any more, and every peer with a connection to it learns at once (a
        standby master has no engine on the network)."""
        self._nodes.pop(address, None)
        self.network.detach(address)
        self.down.add(address)
        self._disconnect(lambda sender, to: to == address)

    def _disconnect(self, broken: Callable[[str, str], bool]) -> None:
        """Tell the live senders of the `broken` links that their peer is gone."""
        for sender, to in list(self.network.links):
            node = self._nodes.get(sender)
            if node is not None and broken(sender, to):
                node.engine.peer_event(to, PeerEvent.DISCONNECTED, self.clock.now)
                self._pump(node)

    def _watch_partition(self, part: Partition) -> None:
        def heartbeats_fail() -> None:
            if part in self.network.plan.partitions:  # not healed yet
                self._disconnect(lambda a, b: part.separates(a, b, self.clock.now))

        self.schedule(max(0.0, part.start + HEARTBEAT_TIMEOUT - self.clock.now), heartbeats_fail)

    def crash_master(self, restart_after: float | None = None, target: str = "") -> None:
        """The master process dies now (of several: the one at `target`, or the leading
        one); with `restart_after`, a fresh one starts at the same address that many
        seconds later (`restart_master`)."""
        address = target or self._leading_master()
        if address is None or address in self.down:
            return
        if self.election is not None:
            self.election.crashed(address)
        self._kill_process(address)
        if restart_after is not None:
            self.schedule(restart_after, lambda: self.restart_master(address))

    def restart_master(self, address: str = MASTER_ADDRESS) -> None:
        if address in self.down:
            self.down.discard(address)
            if self.election is None:
                self.master = self._start_master()
            else:
                self.election.restarted(address)  # a standby until it is elected

    def _leading_master(self) -> str | None:
        if self.election is None:
            return MASTER_ADDRESS
        acting = [a for a in self.election.candidates if self.election.acting(a)]
        return acting[0] if acting else self.election.leader_address()

    # ------------------------------------------------------- several masters
    def find_master(self, connect: Callable[[str, float], None]) -> None:
        """A follower (agent, scheduler) looks for the master: `connect` to the leading
        one, now or (several masters, none leading) once one is known."""
        if self.election is None:
            connect(MASTER_ADDRESS, self.clock.now)
        else:
            self.election.find_master(connect)

    def followers(self) -> list[Engine]:
        """The engines of the live agents and schedulers."""
        return [n.engine for n in self._nodes.values() if n.kind in (Process.AGENT.value, Process.SCHEDULER.value)]

    def pump(self, engine: Engine) -> None:
        """Carry out what `engine` asked for (after a call made on it from outside)."""
        self._pump(self._node_of(engine))

    def add_master_node(self, engine: MasterEngine, address: str, performers: dict[type, Performer],
                        acting: Callable[[], bool]) -> None:
        """An elected master's engine goes on the network; it acts while `acting()`."""
        node = self._add_node(engine, address, Process.MASTER, performers)
        node.acting = acting
        self.master = engine

    def drop_master_node(self, address: str) -> None:
        """A deposed master drops its engine: it is off the network (its transport
        closed), and its peers learn it; the process lives on as a standby."""
        if self._nodes.pop(address, None) is not None:
            self.network.detach(address)
            self._disconnect(lambda sender, to: to == address)

    def crash_agent(self, address: str, restart_after: float | None = None) -> None:
        """The agent process at `address` dies now (its executors keep running); with
        `restart_after`, it starts again that many seconds later (`restart_agent`)."""
        if address in self.down or address not in self._agent_infos:
            return
        self._kill_process(address)
        if restart_after is not None:
            self.schedule(restart_after, lambda: self.restart_agent(address))

    def restart_agent(self, address: str) -> None:
        if address in self.down:
            self.down.discard(address)
            index = list(self._agent_infos).index(address)
            self.agents[index] = self._start_agent(address)

    def crash_executor(self, driver: SimExecutorDriver) -> None:
        """The executor's process dies now (SIGKILL); its agent learns it as the next event."""
        self._exit_executor(driver, -9, "executor crashed")

    def crash_scheduler(self, driver: SimSchedulerDriver, restart_after: float | None = None) -> None:
        """The scheduler's process dies now; with `restart_after`, the framework's program
        starts again that many seconds later and fails over (`restart_scheduler`)."""
        if driver.status is not DriverStatus.RUNNING:
            return
        driver.status = DriverStatus.ABORTED
        self._kill_process(driver.address)
        if restart_after is not None:
            self.schedule(restart_after, lambda: self.restart_scheduler(driver))

    def restart_scheduler(self, driver: SimSchedulerDriver) -> None:
        if driver.address not in self.down:
            return
        self.down.discard(driver.address)
        driver.incarnation += 1
        old = driver.engine
        driver.engine = SchedulerEngine(old.info, f"{driver.host}/{driver.incarnation}", old.config,
                                        self._child_rng())
        self._start_scheduler(driver)

    # ---------------------------------------------------------------- actions
    def _pump(self, node: _Node) -> None:
        """Perform everything `node`'s engine asked for, including what the callbacks
        it triggers ask for in turn."""
        while actions := node.engine.take_actions():
            if node.acting is not None and not node.acting():
                self.dropped_actions += len(actions)
                continue
            for action in actions:
                perform(node.performers, action, node.kind)

    def _agent_performers(self, agent: AgentEngine) -> dict[type, Performer]:
        """What an agent process does with its engine's actions: executors are simulated
        processes, checkpoints go to its `SimCheckpoints`, persistent volumes are entries
        in `volumes` (a simulated sandbox has nothing to link them into)."""
        volumes = self.volumes[agent.transport]

        def kill(action: KillContainer) -> None:
            driver = self.executors.get(f"{agent.transport}/{action.container_id}")
            if driver is not None:
                self._exit_executor(driver, -9 if action.grace == 0 else -15, "killed by the agent")

        def update_volumes(action: UpdateVolumes) -> None:
            volumes.update(action.create)
            volumes.difference_update(action.destroy)

        return {
            LaunchExecutor: partial(self._launch_executor, agent),
            KillContainer: kill,
            MasterLost: lambda _action: self.find_master(agent.connect),
            UpdateVolumes: update_volumes,
            LinkVolumes: lambda _action: None,
            **self.checkpoints[agent.transport].performers(),
        }

    def performs(self, address: str) -> frozenset[type]:
        """Every action type the process at `address` carries out (as `Runtime.performs`)."""
        return frozenset(self._nodes[address].performers)

    def _launch_executor(self, agent: AgentEngine, launch: LaunchExecutor) -> None:
        if list(launch.executor.command.arguments) == list(agent.config.command_executor):
            executor: Executor = SimCommandExecutor()
        elif self.executor_factory is not None:
            executor = self.executor_factory(launch)
        else:
            raise ValueError(f"no simulated executor for custom executor {launch.executor.executor_id.value!r}: "
                             "pass SimCluster(executor_factory=...)")
        address = f"{agent.transport}/{launch.container_id}"
        engine = ExecutorEnvironment.parse(launch.environment).engine(address, self._child_rng())
        driver = SimExecutorDriver(self, executor, engine, agent.transport, launch.container_id)
        self.executors[address] = driver
        node = self._add_node(engine, address, Process.EXECUTOR, driver._performers())
        engine.start(self.clock.now)
        self._pump(node)

    def _exit_executor(self, driver: SimExecutorDriver, status: int, message: str) -> None:
        """The executor's process ends now; its agent (if it is up) learns it as the
        next event, a restarted one when it recovers."""
        if driver.status is not DriverStatus.RUNNING:
            return
        driver.status = DriverStatus.STOPPED if status == 0 else DriverStatus.ABORTED
        self._remove_node(driver.engine)

        def exited() -> None:
            node = self._nodes.get(driver.agent_address)
            if node is not None:
                assert isinstance(node.engine, AgentEngine)
                node.engine.executor_exited(driver.container_id, status, message, self.clock.now)
                self._pump(node)

        self.schedule(0.0, exited)

    def schedule(self, delay: float, fn: Callable[[], None]) -> None:
        """Run `fn` `delay` simulated seconds from now, as an event of its own."""
        heapq.heappush(self._events, _Event(self.clock.now + delay, next(self._event_seq), fn))

    # ----------------------------------------------------------------- running
    def next_event_time(self) -> float | None:
        times = [t for t in (self.network.next_delivery(), *(n.engine.next_deadline() for n in self._nodes.values()))
                 if t is not None]
        if self._events:
            times.append(self._events[0].at)
        return min(times) if times else None

    def step(self) -> bool:
        """Jump to the next event and process it (one message, one engine's due
        timers, or one process event). False when nothing is left to happen."""
        when = self.next_event_time()
        if when is None:
            return False
        now = self.clock.advance_to(when)
        if self.network.deliver_next(now):
            return True
        for node in list(self._nodes.values()):
            deadline = node.engine.next_deadline()
            if deadline is not None and deadline <= now:
                node.engine.tick(now)
                self._pump(node)
                return True
        if self._events and self._events[0].at <= now:
            heapq.heappop(self._events).fn()
            return True
        raise RuntimeError(f"no event was due at {now} although one was announced")

    def run_until(self, predicate: Callable[[], bool], max_time: float = 600.0) -> bool:
        """Process events until `predicate()` holds (True) or `max_time` simulated
        seconds have passed (False; the clock then stands at the limit)."""
        limit = self.clock.now + max_time
        while not predicate():
            when = self.next_event_time()
            if when is None or when > limit:
                self.clock.advance_to(limit)
                return predicate()
            self.step()
        return True

    def run_for(self, seconds: float) -> None:
        """Process every event of the next `seconds` simulated seconds."""
        self.run_until(lambda: False, seconds)

    # ------------------------------------------------------------------ views
    def agent_by_id(self, agent_id: str) -> AgentEngine:
        return next(a for a in self.agents if a.agent_id == agent_id)

    def live_executors(self) -> list[SimExecutorDriver]:
        return [d for d in self.executors.values() if d.status is DriverStatus.RUNNING]

    def is_up(self, address: str) -> bool:
        """True when a process listens at `address` (not crashed, not exited)."""
        return address in self._nodes

