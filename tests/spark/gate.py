"""A barrier across processes for fault tests: tasks on executors call `pass_gate`,
which blocks until the test opens the gate; the test learns how many have arrived.
(Registered with cloudpickle by value: executors cannot import this test module.)"""
from __future__ import annotations

import socket
import threading
from typing import Any, Iterator

import cloudpickle


class Gate:
    def __init__(self) -> None:
        self._server = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self._server.getsockname()[1]}"
        self._cond = threading.Condition()
        self._held: list[socket.socket] = []
        self.arrived = 0
        self.opened = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            with self._cond:
                self.arrived += 1
                if self.opened:
                    conn.sendall(b"1")
                    conn.close()
                else:
                    self._held.append(conn)
                self._cond.notify_all()

    def wait_arrivals(self, count: int, timeout: float = 60.0) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self.arrived >= count, timeout)

    def open(self) -> None:
        with self._cond:
            self.opened = True
            for conn in self._held:
                try:
                    conn.sendall(b"1")
                except OSError:
                    pass  # its task's executor was killed
                conn.close()
            self._held.clear()

    def close(self) -> None:
        self.open()
        self._server.close()


def pass_gate(address: str) -> None:
    host, _, port = address.rpartition(":")
    with socket.create_connection((host, int(port))) as conn:
        conn.recv(1)


class GatedPartition:
    """map_partitions function: wait at the gate, then pass the records on."""

    def __init__(self, address: str) -> None:
        self.address = address

    def __call__(self, records: Iterator[Any]) -> Iterator[Any]:
        pass_gate(self.address)
        return records


cloudpickle.register_pickle_by_value(__import__(__name__))
