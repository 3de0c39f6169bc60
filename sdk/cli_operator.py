"""The `corral` command's operator commands: `agents`, `frameworks`, `tasks`, `task logs`,
`task kill`, `framework teardown`. Each asks the master named by `--master` (or
CORRAL_MASTER) over HTTP and prints an aligned table, or JSON with `--json`; a master
that cannot be reached, and what the master refuses, are errors that say so (exit 1).

A secured master: name it `https://HOST:PORT` when it serves HTTPS (its certificate is
checked against `--tls-ca` or CORRAL_TLS_CA, else the system's CAs), and give HTTP
credentials with `--http-principal` and `--http-secret`, or `--http-token` (defaults:
CORRAL_HTTP_PRINCIPAL, CORRAL_HTTP_SECRET, CORRAL_HTTP_TOKEN). A 401 or a 403 is an
error naming the principal and what it was refused.
"""
from __future__ import annotations

import argparse
import json
import os
import ssl
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import http.client as http_client
from http import HTTPStatus
from pathlib import Path
from typing import Any, Callable, Sequence, TextIO

from corral.runtime.detector import MasterAddressError, NoLeader, check_master_address, leader_http_address
from corral.security.client import PRINCIPAL_ENV, SECRET_ENV, TOKEN_ENV, ClientCredential
from corral.security.credentials import CredentialsError
from corral.security.tls import CA_ENV, TlsError, client_context

#: seconds an HTTP request to the master may take
REQUEST_TIMEOUT = 30.0
#: seconds between two reads of a followed log
FOLLOW_INTERVAL = 0.5
#: bytes read from the end of a log per step while looking for its last lines
TAIL_STEP = 64 * 1024
TERMINAL_STATES = frozenset({"TASK_FINISHED", "TASK_FAILED", "TASK_KILLED", "TASK_ERROR", "TASK_LOST",
                             "TASK_DROPPED", "TASK_GONE", "TASK_GONE_BY_OPERATOR"})


class OperatorError(Exception):
    """The master could not be asked, or refused; the message says why (exit 1)."""


class Master:
    """The master's operator endpoints, over HTTP, or HTTPS when `address` says
    https://; with `credential` when the master asks for HTTP credentials (a zk://
    URL: the leading master's, over HTTPS when its contender JSON says so)."""

    def __init__(self, address: str, credential: ClientCredential | None = None) -> None:
        self.credential = credential
        try:
            leader = leader_http_address(address.strip())  # (a zk:// URL: says https:// when the leader serves TLS)
            self.https = leader.startswith("https://")
            self.address = leader.removeprefix("https://").removeprefix("http://")
            self._tls: ssl.SSLContext | None = client_context() if self.https else None
        except (NoLeader, TlsError) as exc:
            raise OperatorError(str(exc)) from None

    def request(self, path: str, body: Any = None, query: dict[str, Any] | None = None) -> Any:
        url = f"{'https' if self.https else 'http'}://{self.address}{path}"
        if query:
            url += "?" + urllib.parse.urlencode({k: v for k, v in query.items() if v is not None})
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(url, data=data)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if self.credential is not None:
            request.add_header("Authorization", self.credential.authorization())
        try:
            with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT, context=self._tls) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            try:
                message = json.loads(exc.read())["error"]
            except (ValueError, KeyError, TypeError):
                message = f"HTTP {exc.code} from {path}: is {self.address} a corral master?"
            raise OperatorError(self._refusal(exc.code, path, message)) from None
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, ssl.SSLCertVerificationError):
                raise OperatorError(f"cannot trust the certificate of the master at {self.address} "
                                    f"({exc.reason.verify_message}): pass --tls-ca with the CA that signed it, or set "
                                    f"{CA_ENV}") from None
            hint = self._https_hint() if isinstance(exc.reason, ConnectionResetError) else ""
            raise OperatorError(f"cannot reach the master at {self.address}: {exc.reason}{hint}") from None
        except (ConnectionError, http_client.BadStatusLine) as exc:
            raise OperatorError(f"cannot read {path} from the master at {self.address}: {exc!r}"
                                f"{self._https_hint()}") from None
        except (OSError, ValueError) as exc:
            raise OperatorError(f"cannot read {path} from the master at {self.address}: {exc}") from None

    def _https_hint(self) -> str:
        """What to say when a plain HTTP request found the line dropped (as a daemon
        serving HTTPS drops it)."""
        return "" if self.https else " (if it serves HTTPS, name it https://HOST:PORT)"

    def _refusal(self, status: int, path: str, message: str) -> str:
        """What to say of a 401 or a 403 (the master's message for other errors)."""
        if status == HTTPStatus.UNAUTHORIZED:
            if self.credential is None:
                return (f"the master at {self.address} asks for HTTP credentials ({path}): pass --http-principal and "
                        f"--http-secret (or --http-token), or set {PRINCIPAL_ENV} and {SECRET_ENV} (or {TOKEN_ENV})")
            return f"the master at {self.address} did not accept the credentials of {self.credential.who} ({message})"
        if status == HTTPStatus.FORBIDDEN:
            return f"refused by the master at {self.address}: {message}"
        return message


# ------------------------------------------------------------------ output
def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], out: TextIO) -> None:
    """Columns aligned to their widest cell; numbers right-aligned."""
    cells = [[str(h) for h in headers]] + [["" if v is None else str(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    numeric = [all(_is_number(row[i]) for row in cells[1:]) and len(cells) > 1 for i in range(len(headers))]
    for row in cells:
        parts = [c.rjust(w) if n else c.ljust(w) for c, w, n in zip(row, widths, numeric)]
        out.write("  ".join(parts).rstrip() + "\n")


def _is_number(text: str) -> bool:
    try:
        float(text.split("/")[0])
        return True
    except ValueError:
        return False


def _fraction(used: dict[str, Any], total: dict[str, Any], name: str) -> str:
    t = total.get(name)
    if not isinstance(t, (int, float)):
        return "-"
    u = used.get(name, 0)
    return f"{u:g}/{t:g}"


def _emit(args: argparse.Namespace, value: Any, headers: Sequence[str], rows: list[list[Any]]) -> None:
    if args.json:
        json.dump(value, sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        table(headers, rows, sys.stdout)


# ------------------------------------------------------------------ commands
def agents(master: Master, args: argparse.Namespace) -> int:
    listed = master.request("/agents")["agents"]
    rows = [[a["id"], a["hostname"], a["state"], _fraction(a["used_resources"], a["resources"], "cpus"),
             _fraction(a["used_resources"], a["resources"], "mem"), _fraction(a["used_resources"], a["resources"], "disk"),
             a["task_count"]] for a in listed]
    _emit(args, listed, ["ID", "HOST", "STATE", "CPUS", "MEM", "DISK", "TASKS"], rows)
    return 0


def frameworks(master: Master, args: argparse.Namespace) -> int:
    state = master.request("/state")
    listed = [dict(f, state="active" if f["active"] else "inactive") for f in state["frameworks"]]
    if args.all:
        listed += [dict(f, state="completed") for f in state["completed_frameworks"]]
    for f in listed:
        f.pop("tasks", None)
        f.pop("completed_tasks", None)
    rows = [[f["id"], f["name"], ",".join(f["roles"]), f["state"], f["task_count"], f["offers"]] for f in listed]
    _emit(args, listed, ["ID", "NAME", "ROLES", "STATE", "TASKS", "OFFERS"], rows)
    return 0


def tasks(master: Master, args: argparse.Namespace) -> int:
    listed = master.request("/tasks", query={"framework_id": args.framework, "state": args.state,
                                             "all": "1" if args.all else None})["tasks"]
    rows = [[t["id"], t["name"], t["state"], t["framework_id"], t["agent_id"]] for t in listed]
    _emit(args, listed, ["ID", "NAME", "STATE", "FRAMEWORK", "AGENT"], rows)
    return 0


def task_kill(master: Master, args: argparse.Namespace) -> int:
    master.request("/tasks/kill", body={"task_id": args.task_id, "framework_id": args.framework})
    print(f"killing task {args.task_id}")
    return 0


def framework_teardown(master: Master, args: argparse.Namespace) -> int:
    master.request("/teardown", body={"framework_id": args.framework_id})
    print(f"framework {args.framework_id} torn down")
    return 0


def task_logs(master: Master, args: argparse.Namespace) -> int:
    task = master.request("/task", query={"task_id": args.task_id, "framework_id": args.framework})
    if not task["sandbox"]:
        raise OperatorError(f"task {args.task_id} has no sandbox yet (state {task['state']})")
    name = "stderr" if args.stderr else "stdout"
    log = LogReader(master, task["agent_id"], f"{task['sandbox']}/{name}")
    write = sys.stdout.buffer.write if hasattr(sys.stdout, "buffer") else (lambda b: sys.stdout.write(b.decode()))
    offset = log.size()
    start = 0 if args.tail is None else log.start_of_last_lines(args.tail, offset)
    offset = log.copy(start, write)
    sys.stdout.flush()
    if not args.follow:
        return 0
    state = task["state"]
    while True:
        ended = state in TERMINAL_STATES  # (known before the read: what it wrote last is read below)
        time.sleep(FOLLOW_INTERVAL)
        offset = log.copy(offset, write)
        sys.stdout.flush()
        if ended:
            return 0
        state = master.request("/task", query={"task_id": task["id"], "framework_id": task["framework_id"]})["state"]


class LogReader:
    """A file in an agent's sandbox, read through the master's /files/read."""

    def __init__(self, master: Master, agent_id: str, path: str) -> None:
        self.master = master
        self.agent_id = agent_id
        self.path = path

    def read(self, offset: int, length: int) -> dict[str, Any]:
        return self.master.request("/files/read", query={"agent_id": self.agent_id, "path": self.path,
                                                        "offset": offset, "length": length})

    def size(self) -> int:
        return int(self.read(-1, 0)["offset"])

    def start_of_last_lines(self, lines: int, size: int) -> int:
        """The offset where the last `lines` lines of the first `size` bytes begin."""
        if lines <= 0:
            return size
        start = size
        while start > 0:
            start = max(0, start - TAIL_STEP)
            data = self.read(start, size - start)["data"].encode()
            body = data[:-1] if data.endswith(b"\n") else data
            if body.count(b"\n") >= lines:
                cut = len(body)
                for _ in range(lines):
                    cut = body.rindex(b"\n", 0, cut)
                return start + cut + 1
        return 0

    def copy(self, offset: int, write: Callable[[bytes], Any]) -> int:
        """Write what the file has from `offset` on; the offset after it."""
        while True:
            chunk = self.read(offset, TAIL_STEP)
            if not chunk["length"]:
                return offset
            write(chunk["data"].encode())
            offset = int(chunk["offset"]) + int(chunk["length"])


COMMANDS: dict[str, Callable[[Master, argparse.Namespace], int]] = {
    "agents": agents, "frameworks": frameworks, "tasks": tasks, "task logs": task_logs, "task kill": task_kill,
    "framework teardown": framework_teardown,
}


# ------------------------------------------------------------------ parser
def master_from_environment(text: str | None) -> str:
    """`--master`, else CORRAL_MASTER; argparse.ArgumentTypeError naming the bad value."""
    address = text or os.environ.get("CORRAL_MASTER", "")
    if not address:
        raise argparse.ArgumentTypeError("no master: pass --master HOST:PORT (or a zk:// URL) or set CORRAL_MASTER")
    try:
        check_master_address(address)
    except MasterAddressError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return address


def add_http_client_flags(parser: argparse.ArgumentParser) -> None:
    """The flags of a client of a master that asks for HTTP credentials or serves HTTPS."""
    parser.add_argument("--http-principal", default=None, metavar="NAME",
                        help=f"the principal to ask the master's HTTP endpoints as (default ${PRINCIPAL_ENV})")
    parser.add_argument("--http-secret", default=None, metavar="SECRET",
                        help=f"its secret (HTTP basic); ${SECRET_ENV} keeps it out of `ps` (default ${SECRET_ENV})")
    parser.add_argument("--http-token", default=None, metavar="TOKEN",
                        help=f"a bearer token instead of a principal's secret (default ${TOKEN_ENV})")
    parser.add_argument("--tls-ca", type=Path, default=None, metavar="FILE",
                        help=f"the CA certificate (PEM) to check an https:// master's certificate with, e.g. a "
                             f"self-signed one's (default ${CA_ENV}, else the system's CAs)")


def http_client_security(args: argparse.Namespace) -> ClientCredential | None:
    """The HTTP credential the flags (else the CORRAL_HTTP_* variables) give; --tls-ca is
    set as CORRAL_TLS_CA for this process (what the drivers read too). OperatorError
    when they do not make one credential or the CA file is not there."""
    if args.tls_ca is not None:
        if not args.tls_ca.is_file():
            raise OperatorError(f"--tls-ca {str(args.tls_ca)!r}: no such file")
        os.environ[CA_ENV] = str(args.tls_ca.absolute())
    try:
        if args.http_principal or args.http_secret or args.http_token:
            return ClientCredential.of(args.http_principal, args.http_secret, args.http_token)
        return ClientCredential.from_environment()
    except CredentialsError as exc:
        raise OperatorError(str(exc)) from None


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--master", default=None, metavar="HOST:PORT|zk://...",
                        help="the master's address (https://HOST:PORT when it serves HTTPS), or a zk:// URL to ask "
                             "the leader (default: $CORRAL_MASTER)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    add_http_client_flags(parser)


def add_commands(sub: Any, line_count: Callable[[str], int]) -> None:
    """Add the operator commands to the `corral` command's subparsers (`line_count`:
    the argparse type of `--tail`'s number of lines, the `corral` command's)."""
    p = sub.add_parser("agents", help="list the agents", description="List the agents registered with the master.")
    _common(p)
    p = sub.add_parser("frameworks", help="list the frameworks", description="List the master's frameworks.")
    _common(p)
    p.add_argument("--all", action="store_true", help="completed frameworks too")
    p = sub.add_parser("tasks", help="list tasks", description="List tasks (active ones unless --all).")
    _common(p)
    p.add_argument("--framework", metavar="ID", help="only the tasks of this framework")
    p.add_argument("--state", metavar="STATE", help="only tasks in this state, e.g. running or TASK_FAILED")
    p.add_argument("--all", action="store_true", help="completed tasks and those of completed frameworks too")

    task = sub.add_parser("task", help="a task's logs, or kill it", description="Act on one task.")
    task_sub = task.add_subparsers(dest="action", required=True, metavar="ACTION")

    def task_command(name: str, summary: str, description: str) -> argparse.ArgumentParser:
        p = task_sub.add_parser(name, help=summary, description=description)
        _common(p)
        p.add_argument("task_id", metavar="TASK_ID")
        p.add_argument("--framework", metavar="ID", help="the task's framework, when several use the id")
        return p

    p = task_command("logs", "print a task's stdout (or stderr)",
                     "Print a task's stdout or stderr, read from its sandbox through the master.")
    p.add_argument("--stderr", action="store_true", help="stderr instead of stdout")
    p.add_argument("--follow", "-f", action="store_true",
                   help="keep printing what the task writes, until it has ended")
    p.add_argument("--tail", type=line_count, default=None, metavar="N",
                   help="only the last N lines")
    task_command("kill", "kill a task", "Kill a task, as its framework would.")

    framework = sub.add_parser("framework", help="tear a framework down", description="Act on one framework.")
    fw_sub = framework.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = fw_sub.add_parser("teardown", help="remove a framework and kill its tasks",
                          description="Remove a framework; its agents kill its tasks.")
    _common(p)
    p.add_argument("framework_id", metavar="ID")


def command_of(args: argparse.Namespace) -> str | None:
    """The operator command `args` asks for ("task logs", ...), None for others."""
    name = args.subcommand if getattr(args, "action", None) is None else f"{args.subcommand} {args.action}"
    return name if name in COMMANDS else None


def run(name: str, args: argparse.Namespace) -> int:
    """Run operator command `name`; argparse.ArgumentTypeError for a bad master address."""
    address = master_from_environment(args.master)
    master = Master(address, http_client_security(args))
    return COMMANDS[name](master, args)
