"""A deterministic in-memory simulator that runs the real engines together.

Owns the simulated world a test runs in: a `FakeClock`, a `SimNetwork` that carries
every `Send` between engines registered under their transport addresses (serialised
and re-parsed on delivery, so nothing passes that would not survive the wire), a
`FaultPlan` the network consults for each message (drop, duplicate, delay) and for
partitions, and that the cluster follows for process crashes and restarts, and a
`SimCluster`: one `MasterEngine` (or several masters electing their leader through a
simulated ZooKeeper, `election`), N `AgentEngine`s, schedulers run by
`SimSchedulerDriver` around a user's `corral.Scheduler`, and executors run by
`SimExecutorDriver` around a `corral.Executor` (by default `SimCommandExecutor`, which
plays out a task's shell command in simulated time).

What the real daemons keep on disk is kept in memory: each agent's checkpoints
(`SimCheckpoints`: the agent daemon's own `Checkpointer` over a `MemoryStore`, written
by the engine's checkpoint actions, read back by `AgentEngine.recover` when the agent
restarts), its persistent volumes (`SimCluster.volumes`) and the master's registry of
admitted agents (a `RegistryState`, handed to the next master after a master restart).

What the real processes do with their engines' actions is one table per simulated
process (`corral.runtime.actions`), checked by the tests against what each engine
declares it emits; user callbacks run through the real drivers' `run_callback`, and
an executor's engine is built from its launch's environment as `ExecutorDriver` builds
it (`ExecutorEnvironment`).

The transport is modelled as the real one behaves: each link (sender -> receiver) is
FIFO, so a delayed message holds back those behind it and reordering happens between
links; a crashed process's peers get `PeerEvent.DISCONNECTED` at once (its sockets are
closed), and peers cut off by a partition get it after `HEARTBEAT_TIMEOUT` (the
transport's heartbeats time out), as the ZeroMQ transport reports them.

Invariants:
- nothing sleeps and nothing reads the wall clock: time moves only when `run_until`,
  `run_for` or `step` jump the clock to the next event (a message delivery, an engine
  deadline, a scheduled process event);
- one seed gives one history: every random choice (engines' backoffs and uuids, fault
  decisions, which executor a crash hits) comes from `random.Random` instances derived
  from the cluster's seed, and simultaneous events are taken in a fixed order (messages
  in send order, then engines in creation order, then process events in scheduling
  order);
- a process that is down receives nothing (messages to it are undeliverable) and its
  engine's timers do not fire; a restarted process is a new engine at the same address
  (a scheduler: at a new address on the same host, as a new program would bind);
- user callbacks run synchronously, like the real drivers' callback thread would run
  them, and calls they make into their driver take effect before the next event;
- with several masters, at most one acts at any simulated time (`SimElection.overlaps`
  records any instant where two could): a master acts only under its lease, and
  nothing it emits past it is carried out.

Modules: `faults` (the fault plan and the addresses it names), `network` (the
simulated network), `drivers` (the simulated scheduler and executor drivers and the
simulated command executor), `checkpoints` (an agent's checkpoints, in memory) and
`cluster` (`SimCluster`, the clock, and the processes it starts, crashes and restarts)
and `election` (several masters: the simulated ZooKeeper and the masters' candidacies).
"""
