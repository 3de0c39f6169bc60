"""Followers find the leading master from a zk:// URL (a real ZooKeeper server; the
masters are stand-ins that serve /info)."""
from __future__ import annotations

import json
import queue
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from kazoo.client import KazooClient

from corral.runtime.detector import (
    HttpDetector,
    MasterAddressError,
    NoLeader,
    ZooKeeperDetector,
    check_master_address,
    leader_http_address,
    master_detector,
)
from corral.net.zookeeper import CONTENDER_PREFIX, encode_master_info


class FakeMaster:
    """Serves /info as a master would: its transport, and whether it leads."""

    def __init__(self, transport: str, leader: bool = True) -> None:
        self.info = {"transport": transport, "leader": leader}
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = json.dumps(owner.info).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def kz(zookeeper):
    client = KazooClient(hosts=zookeeper.connect_string, timeout=4.0)
    client.start(timeout=10)
    yield client
    client.stop()


def contend(kz: KazooClient, master: FakeMaster, name: str) -> str:
    return kz.create(f"/masters/{CONTENDER_PREFIX}", encode_master_info(name, "localhost", "127.0.0.1", master.port,
                                                                         "0.1.0"), sequence=True, makepath=True)


def test_the_detector_is_chosen_by_the_address_and_bad_ones_are_named():
    assert isinstance(master_detector("127.0.0.1:5050", lambda t: None), HttpDetector)
    detector = master_detector("zk://127.0.0.1:2181/corral", lambda t: None)
    assert isinstance(detector, ZooKeeperDetector)
    detector.stop()
    for bad in ("zk://127.0.0.1:2181", "zk://host/corral", "nonsense", "zk://a:1,b:x/p"):
        with pytest.raises(MasterAddressError, match="invalid"):
            check_master_address(bad)


def test_followers_report_the_leader_and_follow_a_new_one(zookeeper, kz):
    first, second = FakeMaster("tcp://127.0.0.1:1111"), FakeMaster("tcp://127.0.0.1:2222", leader=False)
    reported: queue.Queue[str] = queue.Queue()
    detector = master_detector(zookeeper.url("/masters"), reported.put)
    try:
        first_node = contend(kz, first, "m1")
        contend(kz, second, "m2")
        detector.detect()
        assert reported.get(timeout=15) == "tcp://127.0.0.1:1111"
        assert leader_http_address(zookeeper.url("/masters")) == f"127.0.0.1:{first.port}"
        # the leader goes; the next one is reported once its /info says it leads
        second.info["leader"] = True
        kz.delete(first_node)
        assert reported.get(timeout=15) == "tcp://127.0.0.1:2222"
        detector.detect()  # asked again (the connection was lost): the same leader again
        assert reported.get(timeout=15) == "tcp://127.0.0.1:2222"
    finally:
        detector.stop()
        first.close()
        second.close()


def test_garbage_in_the_lowest_contender_is_logged_and_skipped(zookeeper, kz, caplog):
    good = FakeMaster("tcp://127.0.0.1:3333")
    reported: queue.Queue[str] = queue.Queue()
    detector = master_detector(zookeeper.url("/masters"), reported.put)
    try:
        garbage = kz.create(f"/masters/{CONTENDER_PREFIX}", b"\x00garbage", sequence=True, makepath=True)
        contend(kz, good, "m2")
        with caplog.at_level("ERROR"):
            detector.detect()
            assert reported.get(timeout=15) == "tcp://127.0.0.1:3333"
            assert leader_http_address(zookeeper.url("/masters")) == f"127.0.0.1:{good.port}"
        assert f"{garbage} does not hold a JSON MasterInfo" in caplog.text
    finally:
        detector.stop()
        good.close()


def test_no_leader_is_said_clearly(zookeeper):
    with pytest.raises(NoLeader, match="no master leads"):
        leader_http_address(zookeeper.url("/empty"))


def test_a_leader_serving_tls_is_named_with_https_and_a_bad_scheme_is_skipped(zookeeper, kz, caplog):
    # the CLI given zk:// talks HTTPS to a leader whose contender JSON says it serves TLS
    kz.create(f"/tls/{CONTENDER_PREFIX}", encode_master_info("m1", "localhost", "127.0.0.1", 5050, "0.1.0",
                                                             "tcp://127.0.0.1:15050", https=True),
              sequence=True, makepath=True)
    assert leader_http_address(zookeeper.url("/tls")) == "https://127.0.0.1:5050"
    plain = encode_master_info("m2", "localhost", "127.0.0.1", 5051, "0.1.0", "tcp://127.0.0.1:15051")
    assert b"scheme" not in plain  # (Mesos' layout, as before, for a master without TLS)
    bad = plain.replace(b'"version"', b'"scheme": "gopher", "version"')
    kz.create(f"/bad/{CONTENDER_PREFIX}", bad, sequence=True, makepath=True)
    kz.create(f"/bad/{CONTENDER_PREFIX}", plain, sequence=True, makepath=True)
    with caplog.at_level("ERROR"):
        assert leader_http_address(zookeeper.url("/bad")) == "127.0.0.1:5051"
    assert "scheme 'gopher' is neither http nor https" in caplog.text
