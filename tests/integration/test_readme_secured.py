"""The README's secured set-up on several machines, followed on this one as a new user
would: its shell blocks run as printed (keys, HTTP credentials, a self-signed
certificate; the master, an agent and a framework; an operator's commands), with the
machines' addresses made 127.0.0.1, ports of the test's own, a work dir under the
test's folder (every machine's files in one folder), the example framework for
`my_framework.py`, and permissive ACLs (the README's ACL example, further down, admits
only the role "batch")."""
from __future__ import annotations

import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
from pathlib import Path

import pytest

from corral.testing.cluster import basic_auth, get_json, wait_for

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"


def section() -> str:
    text = README.read_text()
    start = text.index("**Several machines.**")
    return text[start:text.index("**ACLs**", start)]


def shell_blocks() -> list[str]:
    """The set-up's four blocks: keys; HTTP credentials and certificate; the daemons and
    a framework; an operator's commands (several masters come after them)."""
    blocks = re.findall(r"```sh\n(.*?)```", section(), re.S)[:4]
    assert "keys generate" in blocks[0] and "openssl" in blocks[1] and "corral agent" in blocks[2] \
        and "corral tasks" in blocks[3], blocks
    return blocks


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def localised(script: str, master_port: int, agent_port: int, work: Path) -> str:
    """The README's commands for this machine: both hosts are 127.0.0.1, with the test's
    ports (transport ports any free ones), `corral` this checkout's."""
    script = script.replace("/var/lib/corral", str(work / "master-work"))
    script = script.replace("10.0.0.1:5050", f"127.0.0.1:{master_port}")
    script = script.replace("--ip 10.0.0.1", f"--ip 127.0.0.1 --port {master_port} --transport-port 0")
    script = script.replace("--ip 10.0.0.2", f"--ip 127.0.0.1 --port {agent_port} --transport-port 0 "
                                             f"--work-dir {work / 'agent-work'}")
    script = script.replace("10.0.0.1", "127.0.0.1").replace("10.0.0.2", "127.0.0.1")
    script = script.replace("python my_framework.py", f"{sys.executable} {ROOT / 'examples' / 'hello_framework.py'}")
    return re.sub(r"(^|\s)corral ", rf"\1{sys.executable} -m corral ", script)


def commands(block: str) -> list[str]:
    """The commands of a block (continued lines joined)."""
    return [line for line in block.replace("\\\n", " ").splitlines() if line.strip()]


def run(script: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CORRAL_")}
    return subprocess.run(["bash", "-euc", script], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def test_the_readmes_secured_multi_machine_set_up_works(tmp_path: Path):
    keys, http, daemons, operator = shell_blocks()
    master_port, agent_port = free_port(), free_port()
    for block in (keys, http):
        done = run(localised(block, master_port, agent_port, tmp_path), tmp_path)
        assert done.returncode == 0, done.stderr
    for name in ("master.key_secret", "master.key", "agent-1.key_secret", "analytics.key_secret"):
        shutil.copy(tmp_path / "keys" / name, tmp_path / name)  # "Copy ... to the master, ... to each agent"
    (tmp_path / "acls.json").write_text("{}")
    master_cmd, agent_cmd, framework_cmd = commands(localised(daemons, master_port, agent_port, tmp_path))
    started = []
    logs = {name: open(tmp_path / f"{name}.log", "w") for name in ("master", "agent")}
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CORRAL_")}
        for name, command in (("master", master_cmd), ("agent", agent_cmd)):
            started.append(subprocess.Popen(["bash", "-euc", f"exec env {command}"], cwd=tmp_path, env=env,
                                            stdout=logs[name], stderr=subprocess.STDOUT))
        tls = ssl.create_default_context(cafile=str(tmp_path / "cert.pem"))

        def agents_registered() -> bool:
            try:
                agents = get_json(f"127.0.0.1:{master_port}", "/agents", authorization=basic_auth("ops", "CHANGE-ME-1"),
                                  tls=tls)["agents"]
            except OSError:
                return False
            return any(a["state"] == "registered" for a in agents)

        wait_for(agents_registered, 60, "the README's agent to register with the README's master")
        framework = run(framework_cmd, tmp_path)
        assert framework.returncode == 0, framework.stdout + framework.stderr
        assert "4/4 tasks finished" in framework.stdout, framework.stdout
        task_id = re.search(r"^  (\S+): TASK_FINISHED", framework.stdout, re.M).group(1)

        script = localised(operator, master_port, agent_port, tmp_path).replace("TASK_ID", task_id)
        ops = run(script, tmp_path)
        assert ops.returncode == 0, ops.stdout + ops.stderr
        assert "Linux" in ops.stdout  # corral execute's task printed `uname -a`
        refused = run(f"{sys.executable} -m corral agents --master https://127.0.0.1:{master_port} "
                      f"--tls-ca cert.pem", tmp_path)
        assert refused.returncode == 1 and "asks for HTTP credentials" in refused.stderr, refused.stderr
    finally:
        for process in started:
            process.terminate()
        for process in started:
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
        for log in logs.values():
            log.close()
