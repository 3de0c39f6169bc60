"""The scheduler's stored state, read back at start: what does not fit (a store edited by
hand, or garbage) is a clear error naming where it is kept, and the store is left as it
was; what fits is taken back whole."""
from __future__ import annotations

from typing import Any

import pytest

from corral.examples.cassandra.config import ServiceConfig
from corral.examples.cassandra.service import CassandraService
from corral.framework.statestore import SqliteStateStore, StateStoreError

CONFIG = dict(nodes=3, replication=3, node_resources="cpus:0.5;mem:256;disk:256")


def service(store: SqliteStateStore) -> CassandraService:
    return CassandraService(store, ServiceConfig(**CONFIG).validate(), clock=lambda: 1000.0)


@pytest.mark.parametrize("key, value, problem", [
    ("node/node-1", 7, "a int, not a JSON object"),
    ("node/node-1", {"name": "node-1"}, "missing 1 required positional argument: 'index'"),
    ("node/node-1", {"name": "node-1", "index": "one"}, "field 'index' is 'one', not int"),
    ("node/node-1", {"name": "node-1", "index": 1, "port": True}, "field 'port' is True, not int | None"),
    ("node/node-1", {"name": "node-1", "index": 1, "colour": "red"}, "unknown field 'colour'"),
    ("node/node-1", {"name": "node-2", "index": 2}, "holds the record of another node, 'node-2'"),
    ("config", {"nodez": 3}, "unexpected keyword argument 'nodez'"),
    ("config", dict(CONFIG, replication=0), "invalid replication factor 0"),
    ("interrupted", ["deploy"], "a list, not a dict"),
    ("uninstalling", "yes", "a str, not a bool"),
    ("framework_id", 42, "a int, not a str"),
])
def test_stored_state_that_does_not_fit_is_named_and_left_alone(tmp_path, key: str, value: Any, problem: str):
    path = tmp_path / "state.sqlite"
    store = SqliteStateStore(path)
    service(store)  # a first start: config and node records stored
    store.save_framework_id("fw-1")
    store.put(key, value)
    before = store.items()
    with pytest.raises(StateStoreError, match=rf"key '{key}' in {path}") as failure:
        service(store)
    assert problem in str(failure.value)
    assert store.items() == before
    store.close()


def test_stored_state_that_fits_is_taken_back(tmp_path):
    store = SqliteStateStore(tmp_path / "state.sqlite")
    first = service(store)
    first.interrupt("deploy", True)
    store.save_framework_id("fw-1")
    again = service(store)
    assert again.framework_id == "fw-1" and again.interrupted == {"deploy": True}
    assert again.records == first.records and again.config == first.config
    store.close()
