"""corral.framework.zkstore against a real ZooKeeper (each test its own server on a free
port in its temp dir): the state survives its writer, one instance holds it at a time,
an instance that lost it writes nothing, and garbage is named, not a crash."""
from __future__ import annotations

import json
import queue
import signal
import subprocess
import sys
import threading
import time
from typing import Iterator

import pytest
from kazoo.client import KazooClient

from corral.framework.statestore import SqliteStateStore, StateStoreError, open_state_store
from corral.framework.zkstore import StoreFenced, StoreLocked, ZooKeeperStateStore, znode_name
from corral.testing.cluster import wait_for
from corral.testing.zookeeper import ZooKeeperServer

pytestmark = pytest.mark.slow


@pytest.fixture
def zookeeper(tmp_path) -> Iterator[ZooKeeperServer]:
    with ZooKeeperServer(tmp_path / "zookeeper") as server:
        yield server


@pytest.fixture
def kz(zookeeper) -> Iterator[KazooClient]:
    client = KazooClient(hosts=zookeeper.connect_string)
    client.start(timeout=30)
    yield client
    client.stop()
    client.close()


def open_store(zookeeper: ZooKeeperServer, **options) -> ZooKeeperStateStore:
    options.setdefault("session_timeout", 3.0)
    options.setdefault("lock_timeout", 1.0)
    return ZooKeeperStateStore(zookeeper.url("/svc"), **options)


def expire_session(zookeeper: ZooKeeperServer, store: ZooKeeperStateStore) -> None:
    """End `store`'s ZooKeeper session as the server does when it times out: another
    client joins the session with its id and password, then closes it."""
    session_id, password = store.client.client_id
    thief = KazooClient(hosts=zookeeper.connect_string, client_id=(session_id, password))
    thief.start(timeout=30)
    thief.stop()
    thief.close()


def test_values_and_transactions_land_in_zookeeper_and_a_next_instance_reads_them(zookeeper, kz):
    store = open_store(zookeeper)
    store.save_framework_id("fw-1")
    store.put("node/node-0", {"agent": "a1", "volume": "v1"})
    store.put("node/node-1", [1, 2])
    store.put("config", {"nodes": 3})
    with store.transaction():
        store.put("node/node-2", {"agent": "a3"})
        with store.transaction():  # nested: joins the outer one
            store.delete("node/node-1")
        assert store.items("node/") == {"node/node-0": {"agent": "a1", "volume": "v1"},
                                        "node/node-2": {"agent": "a3"}}  # reads see the open transaction
        assert kz.exists("/svc/state/node%2Fnode-2") is None  # nothing written before it ends
    with pytest.raises(RuntimeError):
        with store.transaction():
            store.put("config", {"nodes": 5})
            store.put("node/node-9", {})
            raise RuntimeError("boom")
    assert store.get("config") == {"nodes": 3} and store.get("node/node-9") is None
    with pytest.raises(TypeError):
        store.put("bad", object())  # not JSON: refused before anything is written
    with pytest.raises(ValueError, match="invalid state key ''"):
        store.put("", 1)
    store.put("a.b", "dots")
    store.close()

    assert json.loads(kz.get("/svc/state/node%2Fnode-0")[0]) == {"agent": "a1", "volume": "v1"}
    assert sorted(kz.get_children("/svc/state")) == sorted(
        znode_name(k) for k in ("framework_id", "node/node-0", "node/node-2", "config", "a.b"))
    again = open_store(zookeeper)  # the lock was let go: no wait
    assert again.framework_id() == "fw-1"
    assert again.items() == {"a.b": "dots", "config": {"nodes": 3}, "framework_id": "fw-1",
                             "node/node-0": {"agent": "a1", "volume": "v1"}, "node/node-2": {"agent": "a3"}}
    assert again.get("missing", 7) == 7
    again.clear()
    assert again.items() == {} and kz.get_children("/svc/state") == []
    again.close()


def test_a_second_instance_is_refused_naming_the_holder_and_takes_over_once_the_first_is_sigkilled(zookeeper, tmp_path):
    program = (f"from corral.framework.zkstore import ZooKeeperStateStore; "
               f"s = ZooKeeperStateStore({zookeeper.url('/svc')!r}, session_timeout=2.0); "
               "s.save_framework_id('fw-1'); s.put('node/node-0', {'agent': 'a1'}); print('ready', flush=True); "
               "import time; time.sleep(120)")
    first = subprocess.Popen([sys.executable, "-c", program], stdout=subprocess.PIPE, text=True)
    try:
        assert first.stdout is not None and first.stdout.readline().strip() == "ready"
        with pytest.raises(StoreLocked, match=rf"another scheduler instance holds /svc/lock \(held by .*\"pid\": "
                                              rf"{first.pid}.*waited 1s"):
            open_store(zookeeper, lock_timeout=1.0)
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        # its lock lasts as long as its session: the next instance waits that long, no longer
        started = time.monotonic()
        second = open_store(zookeeper, lock_timeout=20.0)
        assert time.monotonic() - started < 15
        assert second.framework_id() == "fw-1" and second.items("node/") == {"node/node-0": {"agent": "a1"}}
        second.close()
    finally:
        first.kill()
        first.wait(10)


def test_an_instance_whose_session_expired_is_fenced_and_writes_nothing_once_another_took_over(zookeeper, kz):
    lost: queue.SimpleQueue[str] = queue.SimpleQueue()
    old = open_store(zookeeper, on_lost=lost.put)
    old.put("node/node-0", {"agent": "a1"})
    expire_session(zookeeper, old)
    assert "session expired" in lost.get(timeout=30)  # told at once, on a thread of its own
    new = open_store(zookeeper, lock_timeout=10.0)
    epoch = new.epoch
    with pytest.raises(StoreFenced, match="nothing was written to /svc/state"):
        old.put("node/node-0", {"agent": "stale"})
    with pytest.raises(StoreFenced):
        with old.transaction():
            old.put("node/node-1", {"agent": "stale"})
    assert json.loads(kz.get("/svc/state/node%2Fnode-0")[0]) == {"agent": "a1"}
    assert kz.exists("/svc/state/node%2Fnode-1") is None
    new.put("node/node-1", {"agent": "a2"})
    assert kz.get("/svc/epoch")[1].version == epoch
    old.close()  # lets nothing go: the lock is the new instance's
    assert new.get("node/node-1") == {"agent": "a2"}
    new.close()


def test_a_write_is_fenced_when_the_epoch_moves_or_the_lock_znode_goes(zookeeper, kz):
    lost: queue.SimpleQueue[str] = queue.SimpleQueue()
    store = open_store(zookeeper, on_lost=lost.put)
    store.put("k", 1)
    kz.set("/svc/epoch", b"another instance")  # what a next holder does first
    with pytest.raises(StoreFenced, match="another scheduler instance took /svc/epoch"):
        store.put("k", 2)
    assert "took /svc/epoch" in lost.get(timeout=10)
    assert kz.get("/svc/state/k")[0] == b"1"
    with pytest.raises(StoreFenced):
        store.put("k", 3)  # once lost, always refused
    store.close()

    store = open_store(zookeeper, on_lost=lost.put)
    for child in kz.get_children("/svc/lock"):
        kz.delete(f"/svc/lock/{child}")  # an operator removed the lock under it
    with pytest.raises(StoreFenced, match="no longer holds /svc/lock"):
        store.put("k", 4)
    assert kz.get("/svc/state/k")[0] == b"1" and "no longer holds" in lost.get(timeout=10)
    store.close()


def test_garbage_in_a_znode_is_a_clear_error_naming_it_and_the_lock_is_let_go(zookeeper, kz):
    store = open_store(zookeeper)
    store.put("node/node-0", {"agent": "a1"})
    store.close()
    kz.create("/svc/state/node%2Fnode-1", b"\xff\xfe not json")
    with pytest.raises(StateStoreError, match=r"znode /svc/state/node%2Fnode-1 \(state key 'node/node-1'\) does not "
                                              r"hold a JSON value"):
        open_store(zookeeper)
    kz.set("/svc/state/node%2Fnode-1", b"{truncated")
    with pytest.raises(StateStoreError, match="node%2Fnode-1.*does not hold a JSON value"):
        open_store(zookeeper)
    kz.delete("/svc/state/node%2Fnode-1")
    kz.create("/svc/state/some.thing", b"1")
    with pytest.raises(StateStoreError, match="znode /svc/state/some.thing is not a key of this store"):
        open_store(zookeeper)
    kz.delete("/svc/state/some.thing")
    store = open_store(zookeeper)  # each failed opening let the lock go: no wait
    assert store.items() == {"node/node-0": {"agent": "a1"}}
    # JSON that does not fit is for the store's user to name: where it is kept
    assert store.location("node/node-0") == "znode /svc/state/node%2Fnode-0"
    store.close()


def test_writes_wait_through_a_zookeeper_restart(zookeeper, kz):
    # a session that outlasts the restart, however slowly the JVM starts on a busy machine
    store = open_store(zookeeper, session_timeout=30.0, write_timeout=45.0)
    store.put("k", 1)
    zookeeper.stop()
    done = threading.Event()
    writer = threading.Thread(target=lambda: (store.put("k", 2), done.set()))
    writer.start()
    assert not done.wait(0.5)  # no ensemble: the write waits
    zookeeper.start()
    writer.join(60)
    assert done.is_set() and store.lost is None
    wait_for(lambda: kz.connected, 30, "the test's client reconnected")
    assert kz.get("/svc/state/k")[0] == b"2"
    store.close()


def test_no_ensemble_and_the_flags_choice_are_clear(tmp_path):
    with pytest.raises(StateStoreError, match=r"cannot reach ZooKeeper at 127.0.0.1:1 for zk://127.0.0.1:1/svc"):
        ZooKeeperStateStore("zk://127.0.0.1:1/svc", lock_timeout=1.0, session_timeout=1.0)
    with pytest.raises(ValueError, match="no path"):
        ZooKeeperStateStore("zk://127.0.0.1:2181")
    store = open_state_store(tmp_path / "state")
    assert isinstance(store, SqliteStateStore) and (tmp_path / "state" / "state.sqlite").exists()
    store.close()
    with pytest.raises(ValueError, match="give a state directory or a zk:// URL"):
        open_state_store(None)
