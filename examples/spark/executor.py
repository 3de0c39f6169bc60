"""The executor process: `python -m corral.examples.spark.executor`, started by a corral
agent for one of the driver's executor tasks.

`SparkExecutor` is a custom corral `Executor`: its one corral task stands for the whole
executor (it stays TASK_RUNNING while the executor serves the driver). It connects back
to the driver named in the task's data, registers with the shared secret, runs the
tasks the driver sends (`ExecutorRuntime`) and serves its shuffle blocks to other
executors (`BlockServer`).

It exits on its own when the driver goes away: the driver's connection closes (its
process died), or nothing is heard from it for `driver_timeout` seconds (its machine
is unreachable). The corral task then ends TASK_FAILED naming why; when the driver
told it to stop, TASK_FINISHED."""
from __future__ import annotations

import logging
import os
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

import corral
from corral.examples.spark.blocks import BlockClient, BlockServer
from corral.examples.spark.taskrun import ExecutorRuntime
from corral.examples.spark.wire import Link, Msg

log = logging.getLogger("corral.examples.spark.executor")


class ExecutorBackend:
    """The executor's data path: its link to the driver, its tasks, its block server."""

    def __init__(self, conf: dict[str, Any], sandbox: Path) -> None:
        self.conf = conf
        self.executor_id: str = conf["executor_id"]
        host, _, port = conf["driver"].rpartition(":")
        sock = socket.create_connection((host, int(port)), timeout=30)
        sock.settimeout(None)
        self.link = Link(sock)
        self.runtime = ExecutorRuntime(self.executor_id, sandbox, int(conf["cores"]), self._send,
                                       bool(conf["compress_shuffle"]))
        self.server = BlockServer(self.runtime.shuffles, conf["token"], sock.getsockname()[0])
        self.runtime.blocks_source = BlockClient(conf["token"], self.executor_id, self.runtime.shuffles)
        self.heartbeat = float(conf["heartbeat_interval"])
        self.driver_timeout = float(conf["driver_timeout"])
        self.last_heard = time.monotonic()
        self.ended = threading.Event()
        self.reason = ""
        self.stopped_by_driver = False

    def start(self) -> None:
        self.server.start()
        self.runtime.start()
        self.link.send([(int(Msg.REGISTER), self.executor_id, self.conf["token"], self.server.address, os.getpid(),
                         self.runtime.cores)])
        threading.Thread(target=self._read, name="driver-link", daemon=True).start()
        threading.Thread(target=self._beat, name="heartbeat", daemon=True).start()

    def _send(self, messages: list[tuple[Any, ...]]) -> None:
        try:
            self.link.send(messages)
        except OSError as exc:
            self.end(f"cannot reach the driver: {exc}")

    def _read(self) -> None:
        while (messages := self.link.receive()) is not None:
            self.last_heard = time.monotonic()
            self.runtime.handle(messages)
            if any(m[0] == Msg.STOP for m in messages):
                self.stopped_by_driver = True
                self.end("stopped by the driver")
                return
        self.end("the driver closed its connection (it exited)")

    def _beat(self) -> None:
        while not self.ended.wait(self.heartbeat):
            silent = time.monotonic() - self.last_heard
            if silent > self.driver_timeout:
                self.end(f"no word from the driver for {silent:.0f}s")
                return
            self._send([(int(Msg.HEARTBEAT),)])

    def end(self, reason: str) -> None:
        if self.ended.is_set():
            return
        self.reason = reason
        self.ended.set()
        self.runtime.stop()
        self.server.close()
        self.link.close()


class SparkExecutor(corral.Executor):
    def __init__(self) -> None:
        self.backend: ExecutorBackend | None = None
        self.task_id: corral.TaskID | None = None
        self.killed = False

    def launch_task(self, driver, task):
        if self.backend is not None:
            driver.send_status_update(corral.task_status(task.task_id, corral.TASK_FAILED,
                                                         "this executor already runs for the driver"))
            return
        self.task_id = task.task_id
        conf = corral.unpack(task.data)
        sandbox = Path(driver.sandbox)
        for name in conf.get("py_files", []):
            sys.path.insert(0, str(sandbox / name) if name.endswith((".zip", ".egg")) else str(sandbox))
        try:
            self.backend = ExecutorBackend(conf, sandbox)
            self.backend.start()
        except OSError as exc:
            driver.send_status_update(corral.task_status(
                task.task_id, corral.TASK_FAILED, f"cannot reach the driver at {conf.get('driver')}: {exc}"))
            threading.Thread(target=driver.stop, daemon=True).start()
            return
        driver.send_status_update(corral.task_status(task.task_id, corral.TASK_RUNNING,
                                                     f"executor {self.backend.executor_id} serving blocks at "
                                                     f"{self.backend.server.address}"))
        threading.Thread(target=self._watch, args=(driver, self.backend), name="executor-watch", daemon=True).start()

    def _watch(self, driver, backend: ExecutorBackend) -> None:
        backend.ended.wait()
        if self.killed:
            state = corral.TASK_KILLED
        else:
            state = corral.TASK_FINISHED if backend.stopped_by_driver else corral.TASK_FAILED
        log.info("executor %s ends: %s", backend.executor_id, backend.reason)
        driver.send_status_update(corral.task_status(self.task_id, state, backend.reason))
        driver.stop()

    def kill_task(self, driver, task_id):
        self.killed = True
        if self.backend is not None:
            self.backend.end("killed")
        else:
            driver.send_status_update(corral.task_status(task_id, corral.TASK_KILLED))
            threading.Thread(target=driver.stop, daemon=True).start()

    def shutdown(self, driver):
        self.killed = True
        if self.backend is not None:
            self.backend.end("shut down by its agent")


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    status = corral.ExecutorDriver(SparkExecutor()).run()
    return 0 if status is corral.DriverStatus.STOPPED else 1


if __name__ == "__main__":
    sys.exit(main())
