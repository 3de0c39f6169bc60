"""Finding the leading master: agents and drivers name the master's one HTTP address
(`HOST:PORT`) and learn from its `/info` endpoint where its message transport listens.

`MasterDetector` keeps asking, with capped backoff (`DETECTION_BACKOFF`), until a master
answers, then hands the transport address to a callback. It runs on its own thread,
never on the I/O loop.
"""
from __future__ import annotations

import json
import logging
import threading
import urllib.error
import urllib.request
from typing import Callable

from corral.engines.backoff import Backoff, Jitter
from corral.security.tls import client_context

log = logging.getLogger(__name__)


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


def fetch_info(address: str, timeout: float = 2.0) -> dict:
    """The master's /info document (over HTTPS, its certificate checked, when the
    address says https://)."""
    host, port = parse_master(address)
    if address.strip().startswith("https://"):
        with urllib.request.urlopen(f"https://{host}:{port}/info", timeout=timeout,
                                    context=client_context()) as response:
            return json.loads(response.read())
    with urllib.request.urlopen(f"http://{host}:{port}/info", timeout=timeout) as response:
        return json.loads(response.read())


#: how a detector asks again: 50 ms doubling to 2 s, fully jittered, so that the agents and
#: drivers that lost their master at once do not all ask the next one in step
DETECTION_BACKOFF = Backoff(0.05, 2.0, jitter=Jitter.FULL)


class MasterDetector:
    def __init__(self, address: str, on_master: Callable[[str], None], backoff: Backoff = DETECTION_BACKOFF) -> None:
        parse_master(address)  # fail fast on a malformed address
        self.address = address
        self._on_master = on_master
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
        retry = self._backoff.retry()
        while not self._stop.is_set():
            try:
                info = fetch_info(self.address)
            except (OSError, urllib.error.URLError, ValueError) as exc:
                log.debug("master %s not reachable yet: %s", self.address, exc)
            else:
                self._on_master(info["transport"])
                return
            self._stop.wait(max(0.0, retry.next_deadline() - self._backoff.clock()))

    def stop(self) -> None:
        self._stop.set()
