"""The engines' task records (MasterTask, AgentTask, TrackedTask, in each engine's _status), C types in the
compiled build: what a new one holds, and that the status path's loops read and write
them."""
import pytest

from corral._core.acks import AckTracker
from corral.engines.agent._status import AgentTask, agent_intake
from corral.engines.master._status import MasterTask, master_acks, master_updates
from corral.engines.scheduler._status import TrackedTask, track_updates
from corral.protos import corral_pb2 as pb


def test_a_new_task_is_staging_with_no_update_yet():
    task = MasterTask("t1", "name", "fw-1", None, agent_id="a-1")
    assert (task.id, task.name, task.framework_id, task.agent_id, task.role) == ("t1", "name", "fw-1", "a-1", "*")
    assert task.state == task.status_update_state == pb.TASK_STAGING
    assert task.status_update_uuid == task.acked_uuid == b"" and task.healthy is None
    assert MasterTask("t2", "n", "fw-1", None, agent_id="a-1", state=pb.TASK_RUNNING, role="web").role == "web"
    with pytest.raises(TypeError):
        MasterTask("t3", "n", "fw-1", None)  # (the agent is required)


class _Agent:
    def __init__(self, agent_id: str) -> None:
        self.id = agent_id
        self.tasks: dict = {}


class _Framework:
    def __init__(self, tasks: dict) -> None:
        self.tasks = tasks


def test_the_master_loops_set_the_head_and_remember_the_acknowledged_uuid():
    task = MasterTask("t1", "n", "fw-1", None, agent_id="a-1")
    agent, frameworks, latest = _Agent("a-1"), {"fw-1": _Framework({"t1": task})}, []
    row = ("fw-1", "ex", "t1", pb.TASK_RUNNING, b"u" * 16, b"status", 1, pb.TASK_FINISHED)
    relayed, reacks, unknown = master_updates([row], agent, frameworks, {0: None, 1: True, 2: False},
                                                   lambda t, a, state: latest.append(state))
    assert relayed == {"fw-1": [row]} and reacks == [] and unknown == 0 and latest == [pb.TASK_FINISHED]
    assert (task.status_update_state, task.status_update_uuid, task.healthy) == (pb.TASK_RUNNING, b"u" * 16, True)
    forwarded, finished, invalid = master_acks([("a-1", "t1", b"u" * 16)], "fw-1", frameworks["fw-1"].tasks,
                                                    {"a-1": agent}, frozenset({pb.TASK_FINISHED}))
    assert forwarded == {"a-1": [("fw-1", "t1", b"u" * 16)]} and finished == [] and invalid == 0
    assert task.acked_uuid == b"u" * 16
    # a retry of the acknowledged update is acknowledged again, not relayed
    relayed, reacks, unknown = master_updates([row], agent, frameworks, {0: None, 1: True, 2: False},
                                                   lambda t, a, state: latest.append(state))
    assert relayed == {} and reacks == [("fw-1", "t1", b"u" * 16)]


def test_a_new_agent_task_is_staging_and_takes_the_state_of_its_updates():
    info = pb.TaskInfo(name="n", task_id=pb.TaskID(value="t1"))
    task = AgentTask(info, "fw-1", "ex-1")
    assert (task.info, task.framework_id, task.executor_id, task.container_id) == (info, "fw-1", "ex-1", "")
    assert task.state == pb.TASK_STAGING and task.checkpoint is False
    tracker = AckTracker()
    executor = type("Executor", (), {"transport": "tcp://e"})()
    row = ("fw-1", "ex-1", "t1", pb.TASK_RUNNING, b"u" * 16, b"s", 0, pb.TASK_RUNNING)
    heads, journal, acks, unknown, duplicates = agent_intake(
        [row], "tcp://e", {("fw-1", "ex-1"): executor}, {"fw-1": {"t1": task}}, tracker, b"", 1.0)
    assert task.state == pb.TASK_RUNNING and len(heads) == 1 and journal == [] and unknown == duplicates == 0
    assert acks == {"fw-1": [("t1", b"u" * 16)]}


def test_the_reconciler_records_a_task_and_then_its_updates_and_forgets_it_once_terminal():
    tasks, stuck, pending = {}, {"t1": 1.0}, {"t1": 0.5, "t2": 0.5}
    assert not track_updates([("t1", "a-1", pb.TASK_RUNNING, False)], tasks, stuck, pending, 2.0)
    record = tasks["t1"]
    assert isinstance(record, TrackedTask) and (record.agent_id, record.state, record.last_update) == (
        "a-1", pb.TASK_RUNNING, 2.0)
    assert track_updates([("t2", "", pb.TASK_STAGING, False), ("t1", "", pb.TASK_FINISHED, True)],
                              tasks, stuck, pending, 3.0)  # the round's last pending task: converged
    assert "t1" not in tasks and "t1" not in stuck and tasks["t2"].state == pb.TASK_STAGING
    assert not track_updates([("t2", "a-2", pb.TASK_RUNNING, False)], tasks, stuck, None, 4.0)
    assert (tasks["t2"].agent_id, tasks["t2"].state, tasks["t2"].last_update) == ("a-2", pb.TASK_RUNNING, 4.0)
