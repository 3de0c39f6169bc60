"""Finding the leading master: agents and drivers name the master's one HTTP address
(`HOST:PORT`) and learn from its `/info` endpoint where its message transport listens.

`MasterDetector` keeps asking, with capped backoff (`DETECTION_BACKOFF`), until a master
answers, then hands the transport address to a callback. It runs on its own thread,
never on the I/O loop. A master that cannot be reached (or an address where something
else answers) is logged as a warning when it starts failing and every
UNREACHABLE_LOG_INTERVAL seconds while it goes on, and reported once per outage to
`on_unreachable` (the scheduler driver's `error` callback).
"""
from __future__ import annotations

import http.client
import json
import logging
import threading
import urllib.error
import urllib.request
from typing import Any, Callable

from corral.engines.backoff import Backoff, Jitter
from corral.security.tls import client_context

log = logging.getLogger(__name__)

#: seconds between two warnings that the master is still unreachable
UNREACHABLE_LOG_INTERVAL = 30.0


class MasterAddressError(ValueError):
    """The master address does not have the form HOST:PORT."""


def parse_master(address: str) -> tuple[str, int]:
    """Split "HOST:PORT" (an http:// or https:// prefix is tolerated) into host and port."""
    text = address.strip()
    for scheme in ("http://", "https://"):
        if text.startswith(scheme):
            text = text[len(scheme):]
    text = text.rstrip("/")
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise MasterAddressError(f"invalid master address {address!r}: expected HOST:PORT, e.g. 127.0.0.1:5050")
    return host, int(port)


class MasterUnreachable(OSError):
    """The master's /info could not be read, or what answered is not a corral master;
    the message says which and why."""


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


#: how a detector asks again: 50 ms doubling to 2 s, fully jittered, so that the agents and
#: drivers that lost their master at once do not all ask the next one in step
DETECTION_BACKOFF = Backoff(0.05, 2.0, jitter=Jitter.FULL)


class MasterDetector:
    def __init__(self, address: str, on_master: Callable[[str], None], backoff: Backoff = DETECTION_BACKOFF,
                 on_unreachable: Callable[[str], None] | None = None) -> None:
        parse_master(address)  # fail fast on a malformed address
        self.address = address
        self._on_master = on_master
        self._on_unreachable = on_unreachable
        self._backoff = backoff
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
        failing_since: float | None = None
        next_warning = 0.0
        while not self._stop.is_set():
            try:
                info = fetch_info(self.address)
            except MasterUnreachable as exc:
                now = clock()
                first = failing_since is None
                if first:
                    failing_since = now
                if now >= next_warning:
                    next_warning = now + UNREACHABLE_LOG_INTERVAL
                    log.warning("%s (retrying for %.0fs so far)", exc, now - failing_since)
                else:
                    log.debug("%s", exc)
                if first and self._on_unreachable is not None:
                    self._on_unreachable(f"{exc}; retrying")
            else:
                if failing_since is not None:
                    log.info("master %s reached after %.1fs", self.address, clock() - failing_since)
                self._on_master(info["transport"])
                return
            self._stop.wait(max(0.0, retry.next_deadline() - clock()))

    def stop(self) -> None:
        self._stop.set()
