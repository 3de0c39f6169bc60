"""Every action type an engine can emit (its class's `ACTIONS`) has a
performer in each table that carries that engine's actions out: the runtimes of the
master and agent daemons and of the scheduler and executor drivers, and the simulator's
processes of each kind."""
from __future__ import annotations

import pytest

from corral import Executor, Scheduler, command_task
from corral.agent.daemon import AgentDaemon, AgentFlags
from corral.engines.agent import AgentEngine, KillContainer
from corral.engines.base import MasterLost
from corral.engines.executor import ExecutorEngine
from corral.engines.master import MasterEngine
from corral.engines.scheduler import SchedulerEngine
from corral.executor import ExecutorDriver
from corral.master.daemon import MasterDaemon, MasterFlags
from corral.protos import corral_pb2 as pb
from corral.resources import Resources
from corral.runtime.actions import UnhandledAction, perform, unhandled
from corral.scheduler import SchedulerDriver
from corral.testing import MASTER_ADDRESS, SimCluster, agent_address


def test_the_daemons_perform_every_action_of_their_engines(tmp_path):
    master_daemon = MasterDaemon(MasterFlags(work_dir=tmp_path / "master", port=0))
    master_daemon.start()
    agent_daemon = AgentDaemon(AgentFlags(master=master_daemon.address, work_dir=tmp_path / "agent", port=0,
                                          resources=Resources.parse("cpus:1;mem:64"), enforce_limits=False))
    agent_daemon.start()
    agent_daemon.stop()
    master_daemon.stop()
    assert unhandled(MasterEngine.ACTIONS, master_daemon.runtime.performs()) == []
    assert unhandled(AgentEngine.ACTIONS, agent_daemon.runtime.performs()) == []


def test_the_drivers_perform_every_action_of_their_engines():
    scheduler_driver = SchedulerDriver(Scheduler(), pb.FrameworkInfo(user="u", name="n"), "127.0.0.1:1")
    scheduler_driver.start()
    scheduler_driver.abort()
    executor_driver = ExecutorDriver(Executor(), {"CORRAL_AGENT_ENDPOINT": "tcp://127.0.0.1:1",
                                                  "CORRAL_FRAMEWORK_ID": "f", "CORRAL_EXECUTOR_ID": "e"})
    executor_driver.start()
    executor_driver.abort()
    assert unhandled(SchedulerEngine.ACTIONS, scheduler_driver._runtime.performs()) == []
    assert unhandled(ExecutorEngine.ACTIONS, executor_driver._runtime.performs()) == []


def test_an_action_without_a_performer_is_named():
    table = {KillContainer: lambda action: None}
    assert unhandled(AgentEngine.ACTIONS, table) == sorted(t.__name__ for t in AgentEngine.ACTIONS - {KillContainer})
    perform(table, KillContainer("c1", 0.0), "agent")
    with pytest.raises(UnhandledAction, match="the agent engine emitted an action nothing performs: .*MasterLost"):
        perform(table, MasterLost(), "agent")


class OneLongTask(Scheduler):
    launched = False

    def resource_offers(self, driver, offers):
        for offer in offers:
            if self.launched:
                driver.decline_offer(offer.id)
            else:
                driver.launch_tasks(offer.id, [command_task("t", "sleep infinity", offer.agent_id, "cpus:1;mem:64")])
                self.launched = True


def test_the_simulated_processes_perform_every_action_of_their_engines():
    cluster = SimCluster(agents=1)
    driver = cluster.add_scheduler(OneLongTask())
    assert cluster.run_until(lambda: cluster.live_executors(), 60)
    (executor_driver,) = cluster.live_executors()
    for address, engine in ((MASTER_ADDRESS, MasterEngine), (agent_address(1), AgentEngine),
                            (driver.address, SchedulerEngine), (executor_driver.address, ExecutorEngine)):
        assert unhandled(engine.ACTIONS, cluster.performs(address)) == [], address
