"""The `corral` command: bad input exits 2 with a message naming the bad value."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from corral import _core


def corral(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "corral", *args], capture_output=True, text=True, timeout=60)


def test_version_names_the_core_in_use() -> None:
    result = corral("version")
    assert result.returncode == 0
    assert result.stdout.startswith("corral ")
    expected = "python" if os.environ.get("CORRAL_NO_EXTENSIONS") == "1" else "cython"
    assert f"core: {expected}" in result.stdout
    assert _core.CORE == expected


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["agent", "--master", "127.0.0.1:5050", "--resources", "cpus:abc;mem:1024"], "abc"),
        (["agent", "--master", "127.0.0.1:5050", "--resources", "ports:[5-3]"], "[5-3]"),
        (["agent", "--master", "127.0.0.1:5050", "--resources", "cpus:2;mem:1024", "--attributes", "rack"], "rack"),
        (["agent", "--master", "localhost", "--resources", "cpus:1"], "localhost"),
        (["master", "--port", "99999"], "99999"),
        (["master", "--port", "http"], "http"),
        (["master", "--offer-timeout", "soon"], "soon"),
        (["master", "--agent-ping-timeout", "-1"], "-1"),
        (["local", "--agents", "0"], "0"),
        (["local", "--masters", "0"], "0"),
        (["master", "--zk", "zk://127.0.0.1:2181"], "zk://127.0.0.1:2181"),
        (["master", "--zk", "zk://127.0.0.1:two/corral"], "127.0.0.1:two"),
        (["master", "--zk-session-timeout", "0"], "0"),
        (["master", "--zk", "zk://127.0.0.1:2181/corral", "--quorum", "2"], "--quorum 2 is not taken"),
        (["agent", "--master", "zk://host/corral", "--resources", "cpus:1"], "zk://host/corral"),
        (["execute", "--master", "zk:/127.0.0.1:2181/corral", "--command", "true"], "zk:/127.0.0.1:2181/corral"),
        (["execute", "--master", "127.0.0.1:5050", "--command", "true", "--resources", "mem:-5"], "-5"),
        (["frobnicate"], "frobnicate"),
    ],
)
def test_bad_input_exits_2_naming_the_value(args: list[str], named: str) -> None:
    result = corral(*args)
    assert result.returncode == 2, result.stdout + result.stderr
    assert named in result.stderr
    assert "Traceback" not in result.stderr


def test_quorum_says_zookeeper_plays_that_role() -> None:
    result = corral("master", "--zk", "zk://127.0.0.1:2181/corral", "--quorum=3")
    assert result.returncode == 2
    message = result.stderr.strip().splitlines()[-1]
    assert "--quorum 3" in message and "replicated log" in message and "ZooKeeper" in message
    assert "unrecognized arguments" not in result.stderr


def test_port_in_use_is_a_clear_error(tmp_path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = corral("master", "--port", str(port), "--work-dir", str(tmp_path))
    assert result.returncode == 1
    assert "Address already in use" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_master_address_defaults_to_corral_master_and_is_checked() -> None:
    result = subprocess.run([sys.executable, "-m", "corral", "execute", "--command", "true"], capture_output=True,
                            text=True, timeout=60, env=dict(os.environ, CORRAL_MASTER="nonsense"))
    assert result.returncode == 2 and "nonsense" in result.stderr
    result = subprocess.run([sys.executable, "-m", "corral", "execute", "--command", "true"], capture_output=True,
                            text=True, timeout=60, env={k: v for k, v in os.environ.items() if k != "CORRAL_MASTER"})
    assert result.returncode == 2 and "--master" in result.stderr


def test_several_local_masters_without_zookeeper_installed_name_the_package(monkeypatch, capsys, tmp_path) -> None:
    from corral import cli
    from corral.testing import zookeeper

    monkeypatch.setattr(zookeeper, "ZOOKEEPER_JAR", tmp_path / "no-such.jar")
    with pytest.raises(SystemExit) as exited:
        cli.main(["local", "--masters", "3", "--work-dir", str(tmp_path / "local")])
    assert exited.value.code == 2
    assert "apt-get install zookeeper" in capsys.readouterr().err


def test_an_unknown_option_is_named_before_a_missing_command() -> None:
    result = corral("--bogus")
    assert result.returncode == 2
    assert "unrecognized arguments: --bogus" in result.stderr
    assert "COMMAND" not in result.stderr.splitlines()[-1]
    result = corral()
    assert result.returncode == 2 and "a COMMAND is required" in result.stderr


@pytest.mark.parametrize("command", ["local", "execute", "agent", "master", "tasks", "agents", "frameworks"])
def test_every_flag_has_help_text(command: str) -> None:
    import argparse

    from corral.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[command]
    missing = [a.option_strings for a in sub._actions if a.option_strings and not a.help]
    assert missing == []


def test_a_taken_http_port_is_named(tmp_path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = corral("agent", "--master", "127.0.0.1:1", "--port", str(port), "--work-dir", str(tmp_path),
                        "--resources", "cpus:1;mem:64")
    assert result.returncode == 1
    assert f"127.0.0.1:{port}" in result.stderr and "Address already in use" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_taken_transport_port_is_named(tmp_path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = corral("master", "--port", "0", "--transport-port", str(port), "--work-dir", str(tmp_path))
    assert result.returncode == 1
    assert f"tcp://127.0.0.1:{port}" in result.stderr and "Address already in use" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_agent_work_dir_that_cannot_be_made_is_a_usage_error_naming_it(tmp_path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = corral("agent", "--master", "127.0.0.1:1", "--work-dir", str(blocker / "sub"), "--port", "0")
    assert result.returncode == 2
    assert str(blocker / "sub") in result.stderr
    assert "Traceback" not in result.stderr


def test_execute_against_a_master_that_is_down_fails_at_once_saying_so() -> None:
    result = corral("execute", "--master", "127.0.0.1:1", "--command", "true")
    assert result.returncode == 1
    assert "cannot reach the master at 127.0.0.1:1" in result.stderr


def test_execute_against_something_that_is_not_a_master_says_so() -> None:
    import http.server
    import threading

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        result = corral("execute", "--master", f"127.0.0.1:{server.server_address[1]}", "--command", "true")
    finally:
        server.shutdown()
    assert result.returncode == 1
    assert "is not a corral master" in result.stderr


def test_execute_takes_the_master_from_corral_master() -> None:
    result = subprocess.run([sys.executable, "-m", "corral", "execute", "--command", "true"], capture_output=True,
                            text=True, timeout=60, env=dict(os.environ, CORRAL_MASTER="127.0.0.1:1"))
    assert result.returncode == 1 and "127.0.0.1:1" in result.stderr
    env = {k: v for k, v in os.environ.items() if k != "CORRAL_MASTER"}
    result = subprocess.run([sys.executable, "-m", "corral", "execute", "--command", "true"], capture_output=True,
                            text=True, timeout=60, env=env)
    assert result.returncode == 2 and "CORRAL_MASTER" in result.stderr


def test_keys_generate_writes_pairs_and_refuses_to_overwrite(tmp_path) -> None:
    result = corral("keys", "generate", "--out", str(tmp_path / "keys"), "master", "agent-1")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "keys").iterdir()) == [
        "agent-1.key", "agent-1.key_secret", "master.key", "master.key_secret"]
    assert oct((tmp_path / "keys" / "master.key_secret").stat().st_mode & 0o777) == "0o600"
    again = corral("keys", "generate", "--out", str(tmp_path / "keys"), "master")
    assert again.returncode == 2 and "master.key exists already" in again.stderr
    bad = corral("keys", "generate", "--out", str(tmp_path / "keys"), "../evil")
    assert bad.returncode == 2 and "'../evil'" in bad.stderr


@pytest.mark.parametrize("problem, named", [
    ("key-without-ring", "--keys"),
    ("public-key-as-own", "holds no secret key"),
    ("acls-not-json", "acls.json is not JSON"),
    ("acls-unknown-action", "unknown action 'run_task'"),
    ("credentials-missing", "cannot read credentials file"),
])
def test_unusable_security_files_exit_2_naming_them(tmp_path, problem: str, named: str) -> None:
    assert corral("keys", "generate", "--out", str(tmp_path), "master").returncode == 0
    (tmp_path / "ring").mkdir()
    base = ["master", "--port", "0", "--work-dir", str(tmp_path / "work")]
    (tmp_path / "acls.json").write_text({"acls-not-json": "{", "acls-unknown-action": '{"run_task": []}'}.get(problem, "{}"))
    args = {
        "key-without-ring": ["--key", str(tmp_path / "master.key_secret")],
        "public-key-as-own": ["--key", str(tmp_path / "master.key"), "--keys", str(tmp_path / "ring")],
        "acls-not-json": ["--acls", str(tmp_path / "acls.json")],
        "acls-unknown-action": ["--acls", str(tmp_path / "acls.json")],
        "credentials-missing": ["--http-credentials", str(tmp_path / "nowhere.json")],
    }[problem]
    result = corral(*base, *args)
    assert result.returncode == 2, result.stdout + result.stderr
    assert named in result.stderr and "Traceback" not in result.stderr
