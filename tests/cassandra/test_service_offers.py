"""The framework's offer handling without processes: a `CassandraService` fed crafted
offers and status updates through a driver that records what it is asked to do
(placement constraints; reserving, creating, launching; growing a node's reservation
before a rolling restart and giving back what it no longer needs)."""
from __future__ import annotations

import itertools
from typing import Any

import pytest

import corral
from corral.framework.reservations import reserved_to, volume
from corral.framework.statestore import StateStore
from corral.resources import Resources, parse_attributes

from corral.examples.cassandra.config import ConfigError, ServiceConfig
from corral.examples.cassandra.service import CassandraService

Op = corral.Offer.Operation
ROLE = PRINCIPAL = "cassandra"
AGENT_RESOURCES = "cpus:2;mem:2048;disk:2048;ports:[31000-31009]"
_offer_ids = itertools.count()


class RecordingDriver:
    def __init__(self) -> None:
        self.accepted: list[tuple[str, list[Any]]] = []
        self.declined: list[str] = []
        self.killed: list[str] = []
        self.revived = 0

    def accept_offers(self, offer_ids, operations, filters=None) -> None:
        self.accepted.append((offer_ids[0].value, list(operations)))

    def decline_offer(self, offer_id, filters=None) -> None:
        self.declined.append(offer_id.value)

    def kill_task(self, task_id) -> None:
        self.killed.append(task_id.value)

    def revive_offers(self) -> None:
        self.revived += 1


def offer(agent: str, resources: Resources, attributes: str = "") -> corral.Offer:
    made = corral.Offer(id=corral.OfferID(value=f"o{next(_offer_ids)}"), agent_id=corral.AgentID(value=agent),
                        hostname="127.0.0.1", resources=resources.to_protos())
    made.attributes.extend(parse_attributes(attributes) if attributes else [])
    return made


def kinds(operations: list[Any]) -> list[str]:
    return [Op.Type.Name(op.type) for op in operations]


@pytest.fixture
def make_service(tmp_path):
    made = []

    def make(**config: Any) -> tuple[CassandraService, RecordingDriver]:
        settings = dict(nodes=1, replication=1, node_resources="cpus:0.5;mem:256;disk:256")
        settings.update(config)
        service = CassandraService(StateStore(tmp_path / f"state-{len(made)}.sqlite"),
                                   ServiceConfig(**settings).validate(), clock=lambda: 1000.0)
        driver = RecordingDriver()
        service.driver = driver  # as start() would, without a master
        made.append(service)
        return service, driver

    yield make
    for service in made:
        service.store.close()


def test_placement_constraints_rule_agents_out_and_the_node_keeps_its_agents_attributes(make_service):
    service, driver = make_service(placement='[["zone", "UNLIKE", "z3"]]')
    service.resource_offers(driver, [offer("a3", Resources.parse(AGENT_RESOURCES), "zone:z3")])
    assert driver.accepted == [] and driver.declined
    assert "ruled out by the placement" in service.plans()["deploy"].to_dict()["phases"][0]["steps"][0]["message"]
    service.resource_offers(driver, [offer("a1", Resources.parse(AGENT_RESOURCES), "zone:z1")])
    ((_, operations),) = driver.accepted
    assert kinds(operations) == ["RESERVE", "CREATE", "LAUNCH"]
    record = service.records["node-0"]
    assert record.agent_id == "a1" and record.attributes == {"zone": "z1", "hostname": "127.0.0.1"}
    assert record.reserved == "cpus:0.5;mem:256"


def test_bad_placement_is_refused_with_the_constraint_named(make_service):
    service, _ = make_service()
    with pytest.raises(ConfigError, match="unknown operator 'NEAR'"):
        service.update_config({"placement": [["zone", "NEAR", "z1"]]})
    with pytest.raises(ConfigError, match="not JSON"):
        ServiceConfig(placement="[zone").validate()


def test_a_resource_update_grows_the_reservation_before_the_restart_and_shrinks_it_at_the_relaunch(make_service):
    service, driver = make_service()
    service.resource_offers(driver, [offer("a1", Resources.parse(AGENT_RESOURCES))])
    ((_, operations),) = driver.accepted
    task = operations[-1].launch.task_infos[0]
    service.status_update(driver, corral.task_status(task.task_id, corral.TASK_RUNNING, "pid 4242"))
    record = service.records["node-0"]
    port, volume_id = record.port, record.volume_id
    ports = Resources.parse(f"ports:[{port}-{port}]")

    service.update_config({"node_resources": "cpus:0.75;mem:200;disk:256"})
    service.evaluate()
    assert driver.killed == []  # not restarted before its agent has the extra cpus reserved
    # an agent that lacks the extra: the node runs on, and its step says why
    short = Resources.parse("cpus:0.1;mem:1000")
    service.resource_offers(driver, [offer("a1", short)])
    assert len(driver.accepted) == 1 and driver.killed == []
    step = service.plans()["deploy"].to_dict()["phases"][0]["steps"][0]
    assert "lacks cpus:0.25" in step["message"]
    # the agent has it: reserved while the node runs, then the rolling restart
    service.resource_offers(driver, [offer("a1", Resources.parse("cpus:1.5;mem:1792;disk:1792"))])
    _, grow = driver.accepted[-1]
    assert kinds(grow) == ["RESERVE"]
    assert Resources.from_protos(grow[0].reserve.resources) == reserved_to(Resources.parse("cpus:0.25"), ROLE,
                                                                            PRINCIPAL)
    service.evaluate()
    assert driver.killed == [task.task_id.value]
    service.status_update(driver, corral.task_status(task.task_id, corral.TASK_KILLED))
    # its agent offers the node's reservation (grown) and volume back: relaunched in place,
    # the memory it no longer needs unreserved
    held = reserved_to(Resources.parse("cpus:0.75;mem:256") + ports, ROLE, PRINCIPAL) + \
        Resources.from_protos([volume(ROLE, PRINCIPAL, 256, volume_id, "data")])
    service.resource_offers(driver, [offer("a1", held + Resources.parse("cpus:1.25;mem:1792;disk:1792"))])
    _, relaunch = driver.accepted[-1]
    assert kinds(relaunch) == ["UNRESERVE", "LAUNCH"]
    assert Resources.from_protos(relaunch[0].unreserve.resources) == reserved_to(Resources.parse("mem:56"), ROLE,
                                                                                  PRINCIPAL)
    launched = Resources.from_protos(relaunch[1].launch.task_infos[0].resources)
    assert (launched.cpus, launched.mem, launched.disk) == (0.75, 200, 256)
    assert (record.agent_id, record.port, record.volume_id) == ("a1", port, volume_id)
    assert record.reserved == "cpus:0.75;mem:200" and record.config_id == service.config.config_id
