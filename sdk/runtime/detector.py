"""Finding the leading master. Agents, drivers and the CLI name the master by one
address, and the form of that address picks the detector (`master_detector`):

- `HOST:PORT`: the master's HTTP address; its `/info` says where its message transport
  listens (`HttpDetector`);
- `zk://HOST:PORT[,HOST:PORT...]/PATH`: the masters' ZooKeeper path; the lowest
  `json.info_` contender leads, and its JSON names its transport address (corral's
  masters add it to Mesos' layout), or else its HTTP address, whose `/info` says where
  its transport listens once it leads (`ZooKeeperDetector`). A follower reports a new
  leader at once: what it sends waits in ZeroMQ until the new leader, done reading its
  registry, opens its transport.

A detector hands the leader's transport address to a callback, on its own thread, never
on the I/O loop: once when asked (`detect`, after the connection to the master was
lost), and, with ZooKeeper, whenever another master takes the lead. Both ask again
after a failure as `DETECTION_BACKOFF` says. A master that cannot be reached (or an
address where something else answers), or no leader at a zk:// URL, is logged as a
warning when it starts failing and every UNREACHABLE_LOG_INTERVAL seconds while it goes
on, and reported once per outage to `on_unreachable` (the scheduler driver's `error`
callback).
"""
from __future__ import annotations

import enum
import http.client
import json
import logging
import queue
import threading
import urllib.error
import urllib.request
from typing import Any, Callable, Protocol

from corral.engines.backoff import Backoff, Jitter, Retry
from corral.net.zookeeper import (
    DEFAULT_SESSION_TIMEOUT,
    ZooKeeperUrl,
    ZooKeeperUrlError,
    is_zk_url,
    kazoo_client,
    parse_zk_url,
    read_leader,
)
from corral.security.tls import client_context

log = logging.getLogger(__name__)

#: seconds between two warnings that the master is still unreachable
UNREACHABLE_LOG_INTERVAL = 30.0


class MasterAddressError(ValueError):
    """The master address is neither HOST:PORT nor a zk:// URL."""


class MasterUnreachable(OSError):
    """The master's /info could not be read, or what answered is not a corral master;
    the message says which and why."""


class NoLeader(RuntimeError):
    """No master leads at the moment (or none could be reached)."""


def parse_master(address: str) -> tuple[str, int]:
    """Split "HOST:PORT" (an http:// or https:// prefix is tolerated) into host and port."""
    text = address.strip()
    for scheme in ("http://", "https://"):
        if text.startswith(scheme):
            text = text[len(scheme):]
    text = text.rstrip("/")
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise MasterAddressError(f"invalid master address {address!r}: expected HOST:PORT (e.g. 127.0.0.1:5050) "
                                 "or zk://HOST:PORT/PATH")
    return host, int(port)


def check_master_address(address: str) -> str:
    """`address` if it is a usable master address, else MasterAddressError naming it."""
    if is_zk_url(address):
        try:
            parse_zk_url(address)
        except ZooKeeperUrlError as exc:
            raise MasterAddressError(str(exc)) from None
    else:
        parse_master(address)
    return address


def fetch_info(address: str, timeout: float = 2.0) -> dict[str, Any]:
    """The master's /info document (over HTTPS, its certificate checked, when the
    address says https://); MasterUnreachable when there is none."""
    host, port = parse_master(address)
    https = address.strip().startswith("https://")
    try:
        with urllib.request.urlopen(f"{'https' if https else 'http'}://{host}:{port}/info", timeout=timeout,
                                    context=client_context() if https else None) as response:
            info = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        raise MasterUnreachable(f"{address} is not a corral master: its /info answered HTTP {exc.code}") from None
    except urllib.error.URLError as exc:
        raise MasterUnreachable(f"cannot reach the master at {address}: {exc.reason}") from None
    except http.client.HTTPException as exc:  # something that does not speak HTTP
        raise MasterUnreachable(f"{address} is not a corral master: {type(exc).__name__} {exc}") from None
    except (OSError, ValueError) as exc:  # a timeout, a reset, or an answer that is not JSON
        what = "not a corral master (its /info is not JSON)" if isinstance(exc, ValueError) else f"unreachable: {exc}"
        raise MasterUnreachable(f"{address} is {what}") from None
    if not isinstance(info, dict) or not isinstance(info.get("transport"), str) or "leader" not in info:
        raise MasterUnreachable(f"{address} is not a corral master: its /info does not describe one")
    return info


def leader_http_address(address: str, timeout: float = 5.0) -> str:
    """The leading master's HTTP address (for the CLI and tools): `address` itself when
    it is HOST:PORT, the leading contender's when it is a zk:// URL (https://HOST:PORT
    when the leader serves TLS). NoLeader when ZooKeeper knows no leader or cannot be
    reached."""
    check_master_address(address)
    if not is_zk_url(address):
        return address
    url = parse_zk_url(address)
    client = kazoo_client(url, timeout)
    try:
        client.start(timeout=timeout)
    except Exception as exc:
        client.close()
        raise NoLeader(f"cannot reach ZooKeeper at {url.connect_string}: {exc}") from None
    try:
        children = client.get_children(url.path) if client.exists(url.path) else []
        leader = read_leader(client, url.path, children, set())
        if leader is None:
            raise NoLeader(f"no master leads at {url}")
        return f"https://{leader.http_address}" if leader.https else leader.http_address
    finally:
        client.stop()
        client.close()


#: how a detector asks again: 50 ms doubling to 2 s, fully jittered, so that the agents and
#: drivers that lost their master at once do not all ask the next one in step
DETECTION_BACKOFF = Backoff(0.05, 2.0, jitter=Jitter.FULL)


class MasterDetector(Protocol):
    """What agents and drivers use: `detect` (find the leader and report it), `stop`."""

    def detect(self) -> None: ...

    def stop(self) -> None: ...


def master_detector(address: str, on_master: Callable[[str], None], backoff: Backoff = DETECTION_BACKOFF,
                    on_unreachable: Callable[[str], None] | None = None) -> MasterDetector:
    """The detector for `address` (HOST:PORT or zk://...); MasterAddressError when it is
    neither."""
    check_master_address(address)
    if is_zk_url(address):
        return ZooKeeperDetector(parse_zk_url(address), on_master, backoff, on_unreachable=on_unreachable)
    return HttpDetector(address, on_master, backoff, on_unreachable)


class _Outage:
    """How a detector reports that it cannot find the master: a warning when it starts
    and every UNREACHABLE_LOG_INTERVAL seconds while it goes on, `on_unreachable` once
    per outage, a note when it ends."""

    def __init__(self, clock: Callable[[], float], on_unreachable: Callable[[str], None] | None) -> None:
        self._clock = clock
        self._on_unreachable = on_unreachable
        self._since: float | None = None
        self._next_warning = 0.0

    def failed(self, problem: str) -> None:
        now = self._clock()
        first = self._since is None
        if first:
            self._since = now
        if now >= self._next_warning:
            self._next_warning = now + UNREACHABLE_LOG_INTERVAL
            log.warning("%s (retrying for %.0fs so far)", problem, now - (self._since or now))
        else:
            log.debug("%s", problem)
        if first and self._on_unreachable is not None:
            self._on_unreachable(f"{problem}; retrying")

    def ended(self, what: str) -> None:
        if self._since is not None:
            log.info("%s found after %.1fs", what, self._clock() - self._since)
        self._since = None
        self._next_warning = 0.0


class HttpDetector:
    """Asks `address`'s /info until a master answers, then hands its transport address
    to `on_master`."""

    def __init__(self, address: str, on_master: Callable[[str], None], backoff: Backoff = DETECTION_BACKOFF,
                 on_unreachable: Callable[[str], None] | None = None) -> None:
        parse_master(address)  # fail fast on a malformed address
        self.address = address
        self._on_master = on_master
        self._backoff = backoff
        self._on_unreachable = on_unreachable
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def detect(self) -> None:
        """Start (or restart) looking for the master in the background."""
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._thread = threading.Thread(target=self._run, name="master-detector", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        clock = self._backoff.clock
        retry = self._backoff.retry()
        outage = _Outage(clock, self._on_unreachable)
        while not self._stop.is_set():
            try:
                info = fetch_info(self.address)
            except MasterUnreachable as exc:
                outage.failed(str(exc))
            else:
                outage.ended(f"master {self.address}")
                self._on_master(info["transport"])
                return
            self._stop.wait(max(0.0, retry.next_deadline() - clock()))

    def stop(self) -> None:
        self._stop.set()


class _Wake(enum.Enum):
    """Why the ZooKeeper detector's thread runs again."""

    ASKED = "asked"  # detect(): report the leader even if it did not change
    CHANGED = "changed"  # the contenders changed
    STOP = "stop"


class ZooKeeperDetector:
    """Follows the leading master at a zk:// URL: watches the contenders, and reports
    the leader's transport address whenever another master leads (or when asked). A
    contender whose znode holds garbage is logged
    with its path and skipped (the next one leads, as the masters agree). While no
    leader can be found it looks again as `backoff` says; a change of the contenders
    looks at once."""

    def __init__(self, url: ZooKeeperUrl, on_master: Callable[[str], None], backoff: Backoff = DETECTION_BACKOFF,
                 *, session_timeout: float = DEFAULT_SESSION_TIMEOUT,
                 on_unreachable: Callable[[str], None] | None = None) -> None:
        from kazoo.retry import KazooRetry

        self.url = url
        self._on_master = on_master
        self._backoff = backoff
        self._outage = _Outage(backoff.clock, on_unreachable)
        self._wakes: queue.SimpleQueue[_Wake] = queue.SimpleQueue()
        self._stopped = threading.Event()
        self._reported: str | None = None
        #: contenders found to hold garbage (skipped)
        self._garbage: set[str] = set()
        self.client = kazoo_client(url, session_timeout,
                                   connection_retry=KazooRetry(max_tries=-1, delay=0.1, max_delay=1.0))
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def detect(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="master-detector-zk", daemon=True)
                self._thread.start()
        self._wakes.put(_Wake.ASKED)

    def stop(self) -> None:
        self._stopped.set()
        self._wakes.put(_Wake.STOP)
        with self._lock:
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(5.0)
        try:
            self.client.stop()
            self.client.close()
        except Exception:
            log.debug("closing the ZooKeeper client", exc_info=True)

    def _changed(self, _children: list[str]) -> bool:
        self._wakes.put(_Wake.CHANGED)  # kazoo's thread: no ZooKeeper calls here
        return not self._stopped.is_set()

    def _run(self) -> None:
        from kazoo.recipe.watchers import ChildrenWatch

        self.client.start_async()
        watching = False
        force = False
        retry: Retry | None = None
        while not self._stopped.is_set():
            found = False
            if self.client.connected:  # (kazoo logs its own connection attempts)
                try:
                    if not watching:
                        self.client.ensure_path(self.url.path)
                        ChildrenWatch(self.client, self.url.path, self._changed)
                        watching = True
                    transport = self._leader_transport()
                except NoLeader as exc:
                    self._outage.failed(f"{exc}; waiting for a leading master")
                except Exception as exc:
                    self._outage.failed(f"cannot find the leading master at {self.url}: {exc}")
                else:
                    found = True
                    self._outage.ended(f"the leading master at {self.url}")
                    if force or transport != self._reported:
                        self._reported = transport
                        force = False
                        log.info("leading master at %s is %s", self.url, transport)
                        self._on_master(transport)
            wait: float | None = None
            if found:
                retry = None  # wait for the contenders to change (or to be asked)
            else:
                retry = retry or self._backoff.retry()
                wait = retry.delay()
            try:
                wake = self._wakes.get(timeout=wait)
            except queue.Empty:
                continue
            if wake is _Wake.STOP:
                return
            force = force or wake is _Wake.ASKED

    def _leader_transport(self) -> str:
        """The leader's transport address: as its contender znode names it, or else
        (a master that does not say) once its /info says it leads. A contender whose
        znode holds garbage is logged and skipped: the next one leads."""
        children = self.client.get_children(self.url.path)
        contender = read_leader(self.client, self.url.path, children, self._garbage)
        if contender is None:
            raise NoLeader(f"no master leads at {self.url}")
        if contender.transport:
            return contender.transport
        try:
            info = fetch_info(("https://" if contender.https else "") + contender.http_address)
        except MasterUnreachable as exc:
            raise NoLeader(f"the leading master {contender.http_address} does not answer: {exc}") from None
        if not info.get("leader"):
            raise NoLeader(f"{contender.http_address} is not leading yet")
        return str(info["transport"])
