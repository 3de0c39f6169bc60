"""`Executor`, the base class of custom executors, and `ExecutorDriver`, which
registers it with the agent that launched the process and carries its status updates
reliably (retried until the agent acknowledges them). For a framework that checkpoints
(CORRAL_CHECKPOINT=1) the driver survives an agent restart: it waits up to
CORRAL_RECOVERY_TIMEOUT seconds for the restarted agent and reregisters with it, and
`stop()` waits that long for its last updates to be acknowledged."""
from __future__ import annotations

import logging
import os
import random
import threading
from dataclasses import dataclass
from typing import Mapping

from corral.runtime.driver import DriverBase, DriverStatus
from corral.engines.base import Callback
from corral.engines.executor import AllAcknowledged, ExecutorEngine, ExecutorEvent, Stop, serialise_status
from corral.protos import corral_pb2 as pb
from corral.runtime import Runtime
from corral.runtime.actions import Performer
from corral.security.keys import KeyPair
from corral.security.links import AGENT_KEY_ENV, AGENT_PRINCIPAL, EXECUTOR_KEY_ENV, CurveLinks, KeyTable

log = logging.getLogger(__name__)

#: how long `stop()` waits for the agent to acknowledge what was sent
FLUSH_TIMEOUT = 10.0


class ExecutorEnvironmentError(RuntimeError):
    """The process was not started by a corral agent (identity variables missing)."""


@dataclass(frozen=True)
class ExecutorEnvironment:
    """What the agent tells an executor process it launches, in CORRAL_* environment
    variables (`corral.engines.agent` sets them): who the executor is, where its agent
    listens, and how its driver retries and waits."""

    agent_endpoint: str
    framework_id: str
    executor_id: str
    sandbox: str
    status_update_backoff: float
    checkpoint: bool
    recovery_timeout: float
    #: on CurveZMQ links: the executor's own secret key and its agent's public key (Z85)
    executor_key: bytes | None = None
    agent_key: bytes | None = None

    @classmethod
    def parse(cls, env: Mapping[str, str]) -> ExecutorEnvironment:
        """ExecutorEnvironmentError naming the missing identity variables."""
        missing = [k for k in ("CORRAL_AGENT_ENDPOINT", "CORRAL_FRAMEWORK_ID", "CORRAL_EXECUTOR_ID") if not env.get(k)]
        if missing:
            raise ExecutorEnvironmentError(
                f"not started by a corral agent: missing environment variable(s) {', '.join(missing)}")
        return cls(
            agent_endpoint=env["CORRAL_AGENT_ENDPOINT"],
            framework_id=env["CORRAL_FRAMEWORK_ID"],
            executor_id=env["CORRAL_EXECUTOR_ID"],
            sandbox=env.get("CORRAL_SANDBOX", os.getcwd()),
            status_update_backoff=float(env.get("CORRAL_STATUS_UPDATE_BACKOFF", "10")),
            checkpoint=env.get("CORRAL_CHECKPOINT") == "1",
            recovery_timeout=float(env.get("CORRAL_RECOVERY_TIMEOUT", "900")),
            executor_key=env[EXECUTOR_KEY_ENV].encode() if env.get(EXECUTOR_KEY_ENV) else None,
            agent_key=env[AGENT_KEY_ENV].encode() if env.get(AGENT_KEY_ENV) else None,
        )

    def links(self) -> CurveLinks | None:
        """CurveZMQ links with the executor's own key, admitting its agent only (None:
        the agent gave no key: plaintext)."""
        if self.executor_key is None or self.agent_key is None:
            return None
        import zmq

        agent_key = self.agent_key
        pair = KeyPair(zmq.curve_public(self.executor_key), self.executor_key)
        return CurveLinks(pair, KeyTable({agent_key: AGENT_PRINCIPAL}), lambda _address: agent_key)

    @property
    def host(self) -> str:
        """Where the driver's transport listens: on the agent's host."""
        return self.agent_endpoint.removeprefix("tcp://").rpartition(":")[0] or "127.0.0.1"

    def engine(self, transport: str, rng: random.Random) -> ExecutorEngine:
        """The executor engine this environment describes, listening at `transport`."""
        return ExecutorEngine(self.framework_id, self.executor_id, self.agent_endpoint, transport,
                              status_update_backoff=self.status_update_backoff, rng=rng,
                              checkpoint=self.checkpoint, recovery_timeout=self.recovery_timeout)


class Executor:
    """Subclass and override what you need; every callback gets the driver first."""

    def registered(self, driver: "ExecutorDriver", executor_info: pb.ExecutorInfo,
                   framework_info: pb.FrameworkInfo, agent_info: pb.AgentInfo) -> None:
        """The agent accepted this executor."""

    def reregistered(self, driver: "ExecutorDriver", agent_info: pb.AgentInfo) -> None:
        """A restarted agent took this executor back."""

    def disconnected(self, driver: "ExecutorDriver") -> None:
        """The agent is gone (it may come back)."""

    def launch_task(self, driver: "ExecutorDriver", task: pb.TaskInfo) -> None:
        """Run `task`; report its progress with `driver.send_status_update`."""

    def kill_task(self, driver: "ExecutorDriver", task_id: pb.TaskID) -> None:
        """Stop the task and send a terminal update (TASK_KILLED)."""

    def framework_message(self, driver: "ExecutorDriver", data: bytes) -> None:
        """The scheduler sent a message (best effort)."""

    def shutdown(self, driver: "ExecutorDriver") -> None:
        """Kill every task: the executor is being shut down."""

    def error(self, driver: "ExecutorDriver", message: str) -> None:
        log.error("executor error: %s", message)


class ExecutorDriver(DriverBase):
    """Connects an `Executor` to its agent, found from the CORRAL_* environment."""

    def __init__(self, executor: Executor, environ: Mapping[str, str] | None = None) -> None:
        self.environment = ExecutorEnvironment.parse(os.environ if environ is None else environ)
        super().__init__(executor, self.environment.host)
        self.framework_id = self.environment.framework_id
        self.executor_id = self.environment.executor_id
        self.sandbox = self.environment.sandbox
        self.checkpoint = self.environment.checkpoint
        self.recovery_timeout = self.environment.recovery_timeout
        self._all_acked = threading.Event()
        #: the agent is gone for good: abort once the shutdown callback has run
        self._abandoned = False

    def _make_engine(self, address: str) -> ExecutorEngine:
        return self.environment.engine(address, random.Random())

    def _links(self) -> CurveLinks | None:
        return self.environment.links()

    def _performers(self) -> dict[type, Performer]:
        return {**super()._performers(), Stop: self._perform_stop, AllAcknowledged: lambda _a: self._check_flushed()}

    def _on_started(self, runtime: Runtime) -> None:
        runtime.call_soon(lambda: self.engine.start(self._now()))

    def _perform_stop(self, action: Stop) -> None:
        if action.flush:
            threading.Thread(target=self.stop, daemon=True).start()
        else:
            self._abandoned = True

    def _after_callback(self, callback: Callback, failed: bool) -> None:
        if self._abandoned and callback.event is ExecutorEvent.SHUTDOWN:
            log.error("the agent did not come back: executor aborted")
            self.abort()

    def send_status_update(self, status: pb.TaskStatus) -> DriverStatus:
        """Send `status` reliably: it is retried until the agent acknowledges it. The
        status is taken as it is now (changing it afterwards changes nothing sent);
        InvalidStatusUpdate, and nothing sent, without a task id or state or for
        TASK_STAGING."""
        return self._call(self._send_status_update, serialise_status(status))

    def _send_status_update(self, data: bytes) -> None:
        """On the I/O thread."""
        runtime = self._runtime
        runtime.engine.send_status_update(data, runtime.clock())

    def _check_flushed(self) -> None:
        """On the I/O thread: wake `stop` once nothing is waiting for an ack."""
        if self.engine.unacknowledged() == 0:
            self._all_acked.set()

    def send_framework_message(self, data: bytes) -> DriverStatus:
        return self._call(self.engine.send_framework_message, data)

    def stop(self) -> DriverStatus:
        """Stop after the agent has acknowledged every update (at most FLUSH_TIMEOUT, or
        the recovery timeout when the framework checkpoints: the agent may be restarting)."""
        if self.status is DriverStatus.RUNNING and self._runtime is not None:
            self._all_acked.clear()
            self._runtime.call_soon(self._check_flushed)
            if not self._all_acked.wait(max(FLUSH_TIMEOUT, self.recovery_timeout) if self.checkpoint else FLUSH_TIMEOUT):
                log.warning("stopping with unacknowledged status updates")
        return self._finish(DriverStatus.STOPPED)
