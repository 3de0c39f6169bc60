"""The driver on a corral cluster: a corral `Scheduler` whose callbacks become events of
the `DriverCore`, a TCP listener executors connect back to (the data path: tasks,
results, heartbeats), and the performer of the core's actions.

Each executor is a corral task running `python -m corral.examples.spark.executor` (a
custom `corral.Executor`) in its own container; its task data says where the driver
listens and the secret it must present. The master carries only the control path
(offers, launches, status updates); task descriptions and results go straight between
the driver and the executors, shuffle blocks between executors."""
from __future__ import annotations

import hmac
import logging
import socket
import sys
import threading
from typing import Any, Callable

import corral
from corral.examples.spark.core import CloseLink, SendToExecutor
from corral.examples.spark.loop import DriverLoop
from corral.examples.spark.pool import DeclineOffer, KillExecutor, LaunchExecutors, ReviveOffers, SuppressOffers
from corral.examples.spark.wire import Link, Msg

log = logging.getLogger(__name__)

EXECUTOR_PROGRAM = [sys.executable, "-m", "corral.examples.spark.executor"]
#: seconds `stop` waits for executors to hang up after being told to stop
STOP_GRACE = 5.0


class CorralScheduler(corral.Scheduler):
    """corral's callbacks, posted to the driver loop."""

    def __init__(self, loop: DriverLoop) -> None:
        self.loop = loop

    def resource_offers(self, driver, offers):
        self.loop.post(self.loop.core.offers, list(offers))

    def status_update(self, driver, status):
        self.loop.post(self.loop.core.executor_status, status)

    def agent_lost(self, driver, agent_id):
        self.loop.post(self.loop.core.agent_lost, agent_id.value)

    def error(self, driver, message):
        log.error("corral: %s", message)


class ClusterBackend:
    def __init__(self, master: str, app_name: str, token: str, resources: corral.Resources, cores: int,
                 executor_settings: dict[str, Any], environment: dict[str, str],
                 uris: list[corral.CommandInfo.URI], on_action: Callable[[Any], None], role: str | None) -> None:
        self.master = master
        self.app_name = app_name
        self._token = token
        self._resources = resources
        self._cores = cores
        self._settings = executor_settings
        self._environment = environment
        self._uris = uris
        self._on_action = on_action
        self._role = role
        self.host = _reachable_host(master)
        self._listener = socket.create_server((self.host, 0))
        self.address = f"{self.host}:{self._listener.getsockname()[1]}"
        self.links: dict[str, Link] = {}
        self._links_lock = threading.Lock()
        self._all_closed = threading.Condition(self._links_lock)
        self.loop: DriverLoop
        self.driver: corral.SchedulerDriver | None = None

    # -- what the pool launches -------------------------------------------------------
    def make_executor_task(self, executor_id: str, offer: corral.Offer) -> corral.TaskInfo:
        info = corral.executor_info(executor_id, EXECUTOR_PROGRAM, environment=self._environment,
                                    name=f"{self.app_name} executor", uris=self._uris)
        data = corral.pack({"driver": self.address, "token": self._token, "executor_id": executor_id,
                            "cores": self._cores, **self._settings})
        return corral.executor_task(f"{self.app_name} {executor_id}", info, offer.agent_id, self._resources,
                                    task_id=executor_id, data=data)

    # -- lifecycle ----------------------------------------------------------------------
    def start(self, loop: DriverLoop) -> None:
        self.loop = loop
        threading.Thread(target=self._accept, name="spark-driver-accept", daemon=True).start()
        framework = corral.FrameworkInfo(name=self.app_name, user="")
        if self._role:
            framework.role = self._role
        self.driver = corral.SchedulerDriver(CorralScheduler(loop), framework, self.master)
        self.driver.start()

    def stop(self) -> None:
        """After the core has told the executors to stop: wait for them to hang up, then
        stop the corral driver (which tears the framework down: what is left is killed)."""
        with self._all_closed:
            self._all_closed.wait_for(lambda: not self.links, STOP_GRACE)
            links = list(self.links.values())
            self.links.clear()
        for link in links:
            link.close()
        if self.driver is not None:
            self.driver.stop()
        self._listener.close()

    # -- the data path ------------------------------------------------------------------
    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(sock,), name="spark-executor-link", daemon=True).start()

    def _serve(self, sock: socket.socket) -> None:
        link = Link(sock)
        hello = link.receive()
        if not hello or hello[0][0] != Msg.REGISTER or len(hello[0]) != 6:
            link.close()
            return
        _, executor_id, token, block_address, pid, cores = hello[0]
        if not hmac.compare_digest(str(token), self._token):
            log.warning("an executor connection presented a wrong token: closed")
            link.close()
            return
        with self._links_lock:
            self.links[executor_id] = link
        if not self.loop.call(self.loop.core.executor_registered, executor_id, block_address, cores, pid):
            log.warning("executor %s is not one this driver waits for: closed", executor_id)
            self._close(executor_id, link)
            return
        while (messages := link.receive()) is not None:
            self.loop.post(self.loop.core.executor_message, executor_id, messages)
        self.loop.post(self.loop.core.executor_disconnected, executor_id)
        self._close(executor_id, link)

    def _close(self, executor_id: str, link: Link) -> None:
        with self._all_closed:
            if self.links.get(executor_id) is link:
                del self.links[executor_id]
            self._all_closed.notify_all()
        link.close()

    # -- actions --------------------------------------------------------------------------
    def perform(self, action: Any) -> None:
        driver = self.driver
        if isinstance(action, SendToExecutor):
            link = self.links.get(action.executor_id)
            if link is not None:
                try:
                    link.send(action.messages)
                except OSError as exc:
                    log.warning("cannot send to executor %s: %s", action.executor_id, exc)
                    self.loop.post(self.loop.core.executor_disconnected, action.executor_id)
        elif isinstance(action, CloseLink):
            link = self.links.get(action.executor_id)
            if link is not None:
                self._close(action.executor_id, link)
        elif driver is None:
            self._on_action(action)
        elif isinstance(action, LaunchExecutors):
            driver.launch_tasks(action.offer_id, action.tasks)
        elif isinstance(action, DeclineOffer):
            driver.decline_offer(action.offer_id, corral.Filters(refuse_seconds=action.refuse_seconds))
        elif isinstance(action, SuppressOffers):
            driver.suppress_offers()
        elif isinstance(action, ReviveOffers):
            driver.revive_offers()
        elif isinstance(action, KillExecutor):
            driver.kill_task(corral.TaskID(value=action.executor_id))
        else:
            self._on_action(action)


def _reachable_host(master: str) -> str:
    """This machine's address as the master's host sees it (the interface that routes there)."""
    host = master.rpartition(":")[0] or "127.0.0.1"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect((host, 9))
            return probe.getsockname()[0]
        except OSError:
            return "127.0.0.1"

