"""Whole clusters in the simulator: a user `Scheduler` subclass runs tasks through the
real master, agent, scheduler and executor engines, with and without faults."""
from __future__ import annotations

import pytest

from corral import Scheduler, command_task, executor_info, executor_task, is_terminal
from corral.protos import corral_pb2 as pb
from corral.testing import RETRIED_TYPES, CallbackErrors, FaultPlan, NetEvent, SimCluster, SimCommandExecutor

COMMANDS = ["exit 0", "exit 3", "sleep 5; exit 0", "sleep 2; false", "true", "no-such-command"]


class Runner(Scheduler):
    """Launches one task per command (a few per offer) and records every update:
    the task's own updates (from its executor or agent) in `statuses`, and the
    master's reconciliation answers the driver asked for in `answers`."""

    def __init__(self, commands: list[str], explicit_acks: bool = False) -> None:
        self.pending = [(f"task-{i}", c) for i, c in enumerate(commands)]
        self.commands = dict(self.pending)
        self.explicit_acks = explicit_acks
        self.statuses: dict[str, list[pb.TaskStatus]] = {tid: [] for tid in self.commands}
        self.unacked: list[pb.TaskStatus] = []
        self.answers: list[pb.TaskStatus] = []

    def resource_offers(self, driver, offers):
        for offer in offers:
            batch, self.pending = self.pending[:3], self.pending[3:]
            if batch:
                driver.launch_tasks(offer.id, [command_task(tid, cmd, offer.agent_id, "cpus:0.5;mem:64", task_id=tid)
                                               for tid, cmd in batch])
            else:
                driver.decline_offer(offer.id, pb.Filters(refuse_seconds=30.0))

    def status_update(self, driver, status):
        if status.reason == pb.TaskStatus.REASON_RECONCILIATION and status.source == pb.TaskStatus.SOURCE_MASTER:
            self.answers.append(status)
            return
        self.statuses[status.task_id.value].append(status)
        if self.explicit_acks:
            self.unacked.append(status)

    def states(self, tid: str) -> list[int]:
        return [s.state for s in self.statuses[tid]]

    def done(self) -> bool:
        return all(s and is_terminal(s[-1].state) for s in self.statuses.values())


def true_state(command: str) -> int:
    """How the command really ends (what SimCommandExecutor makes of its last step)."""
    return pb.TASK_FINISHED if command.endswith(("exit 0", "true")) else pb.TASK_FAILED


def assert_history(runner: Runner) -> None:
    """Every task: STARTING, RUNNING, then its true terminal state, each update once."""
    for tid, command in runner.commands.items():
        truth = true_state(command)
        assert runner.states(tid) == [pb.TASK_STARTING, pb.TASK_RUNNING, truth], (tid, command)
        uuids = [s.uuid for s in runner.statuses[tid]]
        assert len(set(uuids)) == len(uuids) and all(uuids)


def settled(cluster: SimCluster) -> bool:
    """Every update acknowledged all the way back and every task forgotten."""
    return (all(not fw.tasks for fw in cluster.master.frameworks.values())
            and all(len(a.updates) == 0 and not a.tasks for a in cluster.agents)
            and not cluster.live_executors())


def test_tasks_run_to_their_terminal_states_with_each_update_once_in_order():
    cluster = SimCluster(agents=2, seed=1, record=True)
    runner = Runner(list(COMMANDS))
    cluster.add_scheduler(runner)
    assert cluster.run_until(runner.done, max_time=60.0)
    assert_history(runner)
    assert cluster.run_until(lambda: settled(cluster), max_time=60.0)
    # everything went over the wire: the run really used the network
    assert cluster.network.stats[NetEvent.DELIVERED] == len(cluster.network.deliveries) > 50


def test_sleep_runs_in_simulated_time():
    cluster = SimCluster(seed=2)
    runner = Runner(["sleep 100; exit 0"])
    cluster.add_scheduler(runner)
    assert cluster.run_until(lambda: runner.states("task-0")[-1:] == [pb.TASK_RUNNING], max_time=30.0)
    started = cluster.clock.now
    assert cluster.run_until(runner.done, max_time=200.0)
    assert 99.9 <= cluster.clock.now - started < 101.0  # RUNNING took a few ms to arrive
    assert runner.states("task-0")[-1] == pb.TASK_FINISHED


def test_killing_a_sleeping_task():
    cluster = SimCluster(seed=3)
    runner = Runner(["sleep infinity"])
    driver = cluster.add_scheduler(runner)
    assert cluster.run_until(lambda: runner.states("task-0")[-1:] == [pb.TASK_RUNNING], max_time=30.0)
    assert not cluster.run_until(runner.done, max_time=500.0)  # it really does not end on its own
    driver.kill_task(pb.TaskID(value="task-0"))
    assert cluster.run_until(runner.done, max_time=10.0)
    assert runner.states("task-0") == [pb.TASK_STARTING, pb.TASK_RUNNING, pb.TASK_KILLED]
    assert cluster.run_until(lambda: settled(cluster), max_time=60.0)


def test_explicit_acknowledgements_hold_the_stream_until_the_framework_acks():
    cluster = SimCluster(seed=4)
    runner = Runner(["exit 0"], explicit_acks=True)
    driver = cluster.add_scheduler(runner, implicit_acknowledgements=False)
    assert cluster.run_until(lambda: runner.statuses["task-0"], max_time=30.0)
    cluster.run_for(300.0)
    # STARTING is retried by the agent but delivered once; RUNNING waits behind it
    assert runner.states("task-0") == [pb.TASK_STARTING]
    assert cluster.master.frameworks[driver.framework_id].tasks["task-0"].status_update_state == pb.TASK_STARTING
    while not runner.done():
        for status in runner.unacked:
            driver.acknowledge_status_update(status)
        runner.unacked.clear()
        assert cluster.run_until(lambda: runner.unacked, max_time=60.0)
    assert_history(runner)
    for status in runner.unacked:
        driver.acknowledge_status_update(status)
    assert cluster.run_until(lambda: settled(cluster), max_time=60.0)


def test_a_partitioned_scheduler_gets_every_update_in_order_after_healing():
    cluster = SimCluster(agents=2, seed=5)
    runner = Runner(["sleep 10; exit 0", "sleep 20; exit 3", "sleep 30; exit 0"])
    # the master learns of the partition (heartbeats) and disconnects the framework: its
    # tasks survive for failover_timeout
    driver = cluster.add_scheduler(runner, pb.FrameworkInfo(user="sim", name="runner", failover_timeout=3600.0))
    assert cluster.run_until(lambda: all(runner.states(t) for t in runner.commands), max_time=30.0)
    cut = cluster.network.partition([driver.address], cluster.clock.now)
    cluster.run_for(120.0)
    assert not runner.done()
    assert cluster.network.stats[NetEvent.PARTITIONED] > 0
    cluster.network.heal(cut, cluster.clock.now)
    assert cluster.run_until(runner.done, max_time=1200.0)
    assert_history(runner)


def test_same_seed_same_history():
    def history(seed):
        cluster = SimCluster(agents=2, seed=seed, faults=FaultPlan.lossy(0.2, 0.1, types=RETRIED_TYPES))
        runner = Runner(list(COMMANDS))
        cluster.add_scheduler(runner)
        cluster.run_until(runner.done, max_time=3000.0)
        return cluster.clock.now, dict(cluster.network.stats), {t: runner.states(t) for t in runner.commands}

    assert history(11) == history(11)
    assert history(11)[:2] != history(12)[:2]


@pytest.mark.parametrize("seed", range(50))
def test_lossy_network_every_task_reaches_its_true_terminal_state(seed):
    """20% of messages dropped and 10% duplicated on every path the protocol retries
    (registration, subscription, and status updates and acks on all three
    hops): every task still ends in its true state at the scheduler, every update is
    delivered once and in order, and every update is eventually acknowledged."""
    cluster = SimCluster(agents=3, seed=seed, faults=FaultPlan.lossy(0.2, 0.1, types=RETRIED_TYPES))
    runner = Runner(list(COMMANDS) * 2)
    cluster.add_scheduler(runner)
    assert cluster.run_until(runner.done, max_time=20000.0), {t: runner.states(t) for t in runner.commands}
    assert_history(runner)
    stats = cluster.network.stats
    assert stats[NetEvent.DROPPED] > 0 and stats[NetEvent.DUPLICATED] > 0
    assert cluster.run_until(lambda: settled(cluster), max_time=5000.0)


def test_custom_executors_come_from_the_factory():
    launched = []

    def factory(launch):
        launched.append(launch.executor.executor_id.value)
        return SimCommandExecutor()  # an empty command: ends at once with status 0

    class Custom(Runner):
        def resource_offers(self, driver, offers):
            for offer in offers:
                if not self.pending:
                    driver.decline_offer(offer.id)
                    continue
                tid, _ = self.pending.pop()
                driver.launch_tasks(offer.id, [executor_task(tid, executor_info("my-executor", "./my-executor"),
                                                             offer.agent_id, "cpus:0.5;mem:64", task_id=tid)])

    cluster = SimCluster(seed=6, executor_factory=factory)
    runner = Custom([""])
    cluster.add_scheduler(runner)
    assert cluster.run_until(runner.done, max_time=60.0)
    assert launched == ["my-executor"]
    assert runner.states("task-0") == [pb.TASK_STARTING, pb.TASK_RUNNING, pb.TASK_FINISHED]


def test_a_custom_executor_without_a_factory_is_a_clear_error():
    cluster = SimCluster(seed=7)

    class Custom(Runner):
        def resource_offers(self, driver, offers):
            driver.launch_tasks(offers[0].id, [executor_task("t", executor_info("mine", "./mine"), offers[0].agent_id,
                                                             "cpus:0.5;mem:64", task_id="t")])

    cluster.add_scheduler(Custom([]))
    with pytest.raises(ValueError, match="executor_factory"):
        cluster.run_for(10.0)


def test_checkpointing_framework_runs_in_the_simulator():
    cluster = SimCluster(agents=2, seed=21)
    runner = Runner(list(COMMANDS))
    cluster.add_scheduler(runner, pb.FrameworkInfo(user="sim", name="checkpointing", checkpoint=True))
    assert cluster.run_until(runner.done, max_time=600.0)
    assert_history(runner)


class VolumeKeeper(Scheduler):
    """Reserves disk for its role and creates a persistent volume on it, then destroys it
    once it is offered back."""

    def __init__(self) -> None:
        reserved = pb.Resource(name="disk", type=pb.Value.SCALAR, scalar=pb.Value.Scalar(value=100), role="db")
        reserved.reservations.add(type=pb.Resource.ReservationInfo.DYNAMIC, role="db")
        self.reserved = reserved
        self.volume = pb.Resource()
        self.volume.CopyFrom(reserved)
        self.volume.disk.persistence.id = "vol-1"
        self.volume.disk.volume.container_path = "data"
        self.volume.disk.volume.mode = pb.Volume.RW
        self.created = self.destroyed = False

    def resource_offers(self, driver, offers):
        Op = pb.Offer.Operation
        for offer in offers:
            if not self.created:
                self.created = True
                driver.accept_offers([offer.id], [Op(type=Op.RESERVE, reserve=Op.Reserve(resources=[self.reserved])),
                                                  Op(type=Op.CREATE, create=Op.Create(volumes=[self.volume]))])
            elif not self.destroyed and any(r.disk.persistence.id == "vol-1" for r in offer.resources):
                self.destroyed = True
                driver.accept_offers([offer.id], [Op(type=Op.DESTROY, destroy=Op.Destroy(volumes=[self.volume]))])
            else:
                driver.decline_offer(offer.id)


def test_persistent_volumes_are_kept_by_the_simulated_agent():
    cluster = SimCluster(agents=1)
    keeper = VolumeKeeper()
    cluster.add_scheduler(keeper, pb.FrameworkInfo(user="sim", name="volumes", roles=["db"]))
    assert cluster.run_until(lambda: cluster.volumes["sim://agent-1"] == {("db", "vol-1")}, 60)
    assert cluster.run_until(lambda: keeper.destroyed and not cluster.volumes["sim://agent-1"], 60)


class FailsOnce(Scheduler):
    """Launches one task; its status_update raises the first time it sees TASK_RUNNING."""

    def __init__(self) -> None:
        self.launched = False
        self.running_seen = 0
        self.errors: list[str] = []

    def resource_offers(self, driver, offers):
        for offer in offers:
            if self.launched:
                driver.decline_offer(offer.id)
            else:
                self.launched = True
                driver.launch_tasks(offer.id, [command_task("t", "sleep infinity", offer.agent_id, "cpus:1;mem:64")])

    def status_update(self, driver, status):
        if status.state == pb.TASK_RUNNING:
            self.running_seen += 1
            if self.running_seen == 1:
                raise RuntimeError("not now")

    def error(self, driver, message):
        self.errors.append(message)


def test_reported_callback_errors_leave_the_update_to_be_delivered_again_as_the_real_driver_does():
    cluster = SimCluster(agents=1, callback_errors=CallbackErrors.REPORT)
    user = FailsOnce()
    driver = cluster.add_scheduler(user)
    assert cluster.run_until(lambda: user.running_seen == 2, 120)  # the agent's retry, delivered again
    assert user.errors == ["status_update callback raised RuntimeError: not now"]
    assert [str(e) for e in driver.callback_errors] == ["not now"]
