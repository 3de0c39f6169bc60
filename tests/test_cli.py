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
        (["execute", "--master", "127.0.0.1:5050", "--command", "true", "--resources", "mem:-5"], "-5"),
        (["frobnicate"], "frobnicate"),
    ],
)
def test_bad_input_exits_2_naming_the_value(args: list[str], named: str) -> None:
    result = corral(*args)
    assert result.returncode == 2, result.stdout + result.stderr
    assert named in result.stderr
    assert "Traceback" not in result.stderr


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
