"""`ZooKeeperServer`: a real, standalone ZooKeeper server on loopback, from the system's
`zookeeper` package (Debian: the jar under /usr/share/java, run with the system's java).

`corral local --masters N` and the high-availability tests start one each, in a folder
of their own on a free port; it can be stopped and started again on the same port and
data, as when an operator restarts ZooKeeper under running masters.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

#: where Debian's `zookeeper` package puts the server and its logging configuration
ZOOKEEPER_JAR = Path("/usr/share/java/zookeeper.jar")
ZOOKEEPER_CONF = Path("/etc/zookeeper/conf")
#: the server's tick: sessions may last 2 ticks (1 s) to MAX_SESSION_MS
TICK_MS = 500
#: the longest session a client may ask for (ZooKeeper's default is 20 ticks): tests that
#: restart the server under a loaded machine ask for sessions that outlast the restart
MAX_SESSION_MS = 60_000


class ZooKeeperError(RuntimeError):
    """ZooKeeper is not installed, or the server did not start."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def four_letter_word(host: str, port: int, word: str, timeout: float = 1.0) -> str:
    """Send one of ZooKeeper's four-letter commands; its answer ('' when unreachable)."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.sendall(word.encode())
            s.shutdown(socket.SHUT_WR)
            chunks = []
            while chunk := s.recv(4096):
                chunks.append(chunk)
        return b"".join(chunks).decode(errors="replace")
    except OSError:
        return ""


def find_server() -> tuple[str, Path]:
    """The java binary and the ZooKeeper jar, or ZooKeeperError naming the package."""
    java = shutil.which("java")
    if not ZOOKEEPER_JAR.exists() or java is None:
        missing = "java" if ZOOKEEPER_JAR.exists() else str(ZOOKEEPER_JAR)
        raise ZooKeeperError(f"ZooKeeper is not installed ({missing} not found): install Debian's "
                             "`zookeeper` package (apt-get install zookeeper)")
    return java, ZOOKEEPER_JAR


class ZooKeeperServer:
    """One standalone server. `connect_string` is what clients and `zk://` URLs name."""

    def __init__(self, work_dir: Path, port: int = 0, host: str = "127.0.0.1") -> None:
        self.java, self.jar = find_server()
        self.work_dir = Path(work_dir)
        self.host = host
        self.port = port or free_port(host)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def connect_string(self) -> str:
        return f"{self.host}:{self.port}"

    def url(self, path: str = "/corral") -> str:
        return f"zk://{self.connect_string}{path}"

    def _write_config(self) -> Path:
        data = self.work_dir / "data"
        data.mkdir(parents=True, exist_ok=True)
        config = self.work_dir / "zoo.cfg"
        config.write_text("\n".join([
            f"tickTime={TICK_MS}",
            f"maxSessionTimeout={MAX_SESSION_MS}",
            f"dataDir={data}",
            f"clientPort={self.port}",
            f"clientPortAddress={self.host}",
            "admin.enableServer=false",
            "4lw.commands.whitelist=ruok,srvr,mntr",
            "maxClientCnxns=0",
            "",
        ]))
        return config

    def start(self, timeout: float = 60.0) -> "ZooKeeperServer":
        """Start the server and wait until it answers `ruok`."""
        if self.alive():
            return self
        config = self._write_config()
        classpath = os.pathsep.join(p for p in (str(ZOOKEEPER_CONF), str(self.jar)) if Path(p).exists())
        log = open(self.work_dir / "zookeeper.log", "ab")
        self.process = subprocess.Popen(
            [self.java, "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
             "-Dzookeeper.log.dir=" + str(self.work_dir), "-Dzookeeper.root.logger=INFO,CONSOLE",
             "-cp", classpath, "org.apache.zookeeper.server.quorum.QuorumPeerMain", str(config)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        interval = 0.05
        while four_letter_word(self.host, self.port, "ruok") != "imok":
            if self.process.poll() is not None:
                raise ZooKeeperError(f"ZooKeeper exited with status {self.process.returncode}; "
                                     f"see {self.work_dir / 'zookeeper.log'}")
            if time.monotonic() > deadline:
                self.stop()
                raise ZooKeeperError(f"ZooKeeper did not answer on {self.connect_string} within {timeout:g}s")
            time.sleep(interval)
            interval = min(interval * 1.5, 0.5)
        return self

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM, then SIGKILL; its data stays for a restart."""
        if self.process is None:
            return
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)
        self.process = None

    def restart(self, timeout: float = 60.0) -> None:
        self.stop()
        self.start(timeout)

    def __enter__(self) -> "ZooKeeperServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
