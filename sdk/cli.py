"""The `corral` command: `master`, `agent`, `local`, `execute`, `version`, and the
operator commands (`agents`, `frameworks`, `tasks`, `task logs|kill`, `framework
teardown`: `corral.cli_operator`), and `keys generate`.

Every user-facing error (a bad flag, a resource string that does not parse, an address
that is not HOST:PORT) exits with status 2 and a message that names the bad value; a
master that cannot be reached, a port that is taken, exit with status 1 and say so.
"""
from __future__ import annotations

import argparse
import contextlib
import logging
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from corral import __version__, _core, cli_operator
from corral.agent.checkpoint import BOOT_ID_PATH, CheckpointError
from corral.agent.gc import DEFAULT_GC_DELAY, DEFAULT_GC_DISK_HEADROOM
from corral.net.zookeeper import DEFAULT_SESSION_TIMEOUT, ZooKeeperUrlError, mask_credentials, parse_zk_url
from corral.runtime.detector import (
    MasterAddressError,
    MasterUnreachable,
    NoLeader,
    check_master_address,
    fetch_info,
    leader_http_address,
)
from corral.engines.agent import RecoverMode
from corral.resources import ResourceError, Resources, detect_resources, parse_attributes
from corral.security.acls import AclError
from corral.security.client import AGENT_CREDENTIAL_ENV
from corral.security.credentials import CredentialsError
from corral.security.keys import KeyFileError, generate
from corral.security.links import Credential
from corral.security.tls import TlsError

log = logging.getLogger("corral")

DEFAULT_TASK_RESOURCES = "cpus:0.1;mem:32"
#: what each agent of `corral local` has unless --resources says otherwise
LOCAL_RESOURCES = "cpus:2;mem:1024;disk:1024;ports:[31000-31099]"


class UsageError(Exception):
    """A flag value that cannot be used; the message names it."""


def _number(parse: Callable[[str], Any], kind: str, not_parsed: str, valid: Callable[[Any], bool],
            rule: str) -> Callable[[str], Any]:
    """An argparse type: `parse` the text, which must be `valid`; otherwise an error
    naming the text as an invalid `kind` that is `not_parsed` or breaks `rule`."""

    def convert(text: str) -> Any:
        try:
            value = parse(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid {kind} {text!r}: {not_parsed}") from None
        if not valid(value):
            raise argparse.ArgumentTypeError(f"invalid {kind} {text!r}: {rule}")
        return value

    return convert


_port = _number(int, "port", "not a whole number", lambda v: 0 <= v < 65536, "must be between 0 and 65535")
_positive_int = _number(int, "count", "not a whole number", lambda v: v >= 1, "must be at least 1")
_seconds = _number(float, "duration", "not a number of seconds", lambda v: v > 0, "must be positive")
_fraction = _number(float, "fraction", "not a number", lambda v: 0.0 <= v <= 1.0, "must be between 0 and 1")
_line_count = _number(int, "line count", "not a whole number", lambda v: v >= 0, "must be at least 0")


def _master_address(text: str) -> str:
    try:
        check_master_address(text)
    except MasterAddressError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _zk_url(text: str) -> str:
    try:
        parse_zk_url(text)
    except ZooKeeperUrlError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _quorum(text: str) -> int:
    """Mesos' --quorum sizes its replicated log; corral has none to size."""
    raise argparse.ArgumentTypeError(
        f"--quorum {text} is not taken: Mesos needs it with --zk to size its replicated log, but corral keeps "
        "the registry in ZooKeeper (--zk), whose ensemble quorum plays that role (3 ZooKeeper servers survive 1 "
        f"failure, 5 survive 2); drop --quorum {text} and size the ZooKeeper ensemble instead")


def _resources(text: str) -> Resources:
    try:
        return Resources.parse(text)
    except ResourceError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="corral", description="A Mesos-style cluster manager.")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                        help="what the daemons log (default INFO)")
    # not required here, so that an unknown option is named before a missing command (see main)
    sub = parser.add_subparsers(dest="subcommand", metavar="COMMAND")

    master = sub.add_parser("master", help="run a master")
    master.add_argument("--ip", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    master.add_argument("--advertise-ip", default=None, metavar="IP",
                        help="the address agents and frameworks are told to reach the master at, when it is not "
                             "--ip (e.g. with --ip 0.0.0.0)")
    master.add_argument("--port", type=_port, default=5050, help="HTTP port, the address users name (default 5050)")
    master.add_argument("--transport-port", type=_port, default=None,
                        help="message transport port (default: --port + 10000; any free port if --port is 0)")
    master.add_argument("--work-dir", type=Path, default=None, help="registry and state (default: a temporary dir)")
    master.add_argument("--allocation-interval", type=_seconds, default=1.0, help="seconds between allocation cycles")
    master.add_argument("--agent-ping-timeout", type=_seconds, default=15.0,
                        help="seconds between pings to each agent (default 15)")
    master.add_argument("--max-agent-ping-timeouts", type=_positive_int, default=5,
                        help="missed pongs before an agent is marked unreachable (default 5)")
    master.add_argument("--offer-timeout", type=_seconds, default=None,
                        help="rescind offers outstanding this long (default: never, as in Mesos)")
    master.add_argument("--agent-reregister-timeout", type=_seconds, default=600.0,
                        help="after a restart or a failover, how long admitted agents have to come back before "
                             "they are marked unreachable (default 600)")
    master.add_argument("--framework-reregister-timeout", type=_seconds, default=60.0,
                        help="after a restart or a failover, the least time frameworks have to resubscribe before "
                             "their failover timeout removes them (default 60)")
    master.add_argument("--zk", type=_zk_url, default=None, metavar="zk://HOST:PORT[,HOST:PORT...]/PATH",
                        help="run as one of several masters: elect the leader through ZooKeeper at this URL and "
                             "keep the registry there (default: this master alone, its registry in SQLite)")
    master.add_argument("--quorum", type=_quorum, default=None, metavar="N",
                        help="not taken (an error naming N): Mesos' replicated-log quorum; corral's registry lives "
                             "in ZooKeeper (--zk), whose ensemble quorum plays that role")
    master.add_argument("--zk-session-timeout", type=_seconds, default=DEFAULT_SESSION_TIMEOUT,
                        help="ZooKeeper session timeout in seconds; a leader stops acting 3/4 of it after "
                             f"ZooKeeper last answered (default {DEFAULT_SESSION_TIMEOUT:g})")
    master.add_argument("--key", type=Path, default=None,
                        help="the master's key pair (NAME.key_secret, `corral keys generate`); with --keys, every "
                             "link is CurveZMQ-encrypted and authenticated")
    master.add_argument("--keys", type=Path, default=None,
                        help="who may connect: a folder of public NAME.key files or a JSON file "
                             '{"principal": "public key"}; read again when it changes')
    master.add_argument("--agent-http-credential", type=Path, default=_env_path(AGENT_CREDENTIAL_ENV), metavar="FILE",
                        help='the master\'s HTTP credential for agents started with --http-credentials (it reads '
                             'their sandboxes for the callers the ACLs allow), {"principal": ..., "secret": ...} '
                             f"(default ${AGENT_CREDENTIAL_ENV})")
    _add_http_security(master)

    agent = sub.add_parser("agent", help="run an agent")
    agent.add_argument("--master", type=_master_address, required=True, metavar="HOST:PORT|zk://...",
                       help="the master's address (its HTTP HOST:PORT), or zk://HOST:PORT[,HOST:PORT...]/PATH to "
                            "follow the leader of several masters")
    agent.add_argument("--ip", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    agent.add_argument("--advertise-ip", default=None, metavar="IP",
                       help="the address the master and executors are told to reach the agent at, when it is not "
                            "--ip (e.g. with --ip 0.0.0.0)")
    agent.add_argument("--port", type=_port, default=5051, help="HTTP port (default 5051)")
    agent.add_argument("--transport-port", type=_port, default=None,
                       help="message transport port (default: --port + 10000; any free port if --port is 0)")
    agent.add_argument("--work-dir", type=Path, default=None,
                       help="sandboxes, checkpoints and volumes; created if missing (default: a temporary dir)")
    agent.add_argument("--resources", type=_resources, default=None,
                       help='e.g. "cpus:2;mem:1024;disk:4096;ports:[31000-32000]" (default: detected)')
    agent.add_argument("--attributes", default="", help='e.g. "rack:r1;zone:z2"')
    agent.add_argument("--recover", choices=[m.value for m in RecoverMode], default=RecoverMode.RECONNECT.value,
                       help="on restart, reconnect to the executors left running (default) or kill them")
    agent.add_argument("--recovery-timeout", type=_seconds, default=2.0,
                       help="seconds recovered executors get to reregister after a restart (default 2)")
    agent.add_argument("--boot-id-file", type=Path, default=BOOT_ID_PATH,
                       help=f"where the machine's boot id is read (default {BOOT_ID_PATH}); a new one means a fresh agent")
    agent.add_argument("--enforce-limits", action=argparse.BooleanOptionalAction, default=True,
                       help="kill containers that use more memory or sandbox disk than their resources (default on; "
                            "cgroup v2 where delegated, else by polling the RSS of each container's processes)")
    agent.add_argument("--limit-check-interval", type=_seconds, default=0.25,
                       help="seconds between memory checks of the containers (default 0.25)")
    agent.add_argument("--container-disk-watch-interval", type=_seconds, default=15.0,
                       help="seconds between measurements of each sandbox's disk usage (default 15)")
    agent.add_argument("--gc-delay", type=_seconds, default=DEFAULT_GC_DELAY,
                       help="seconds a completed sandbox is kept before it is deleted (default one week)")
    agent.add_argument("--gc-disk-headroom", type=_fraction, default=DEFAULT_GC_DISK_HEADROOM,
                       help="fraction of the work dir's filesystem to keep free by deleting the oldest completed "
                            "sandboxes early (default 0.1)")
    agent.add_argument("--disk-watch-interval", type=_seconds, default=60.0,
                       help="seconds between checks of the work dir's filesystem usage (default 60)")
    agent.add_argument("--switch-user", action=argparse.BooleanOptionalAction, default=True,
                       help="when the agent runs as root, run each task as its command's user, else its framework's "
                            "(default on, as in Mesos)")
    _add_client_keys(agent, "agent")
    _add_http_security(agent)

    local = sub.add_parser("local", help="run a master (or several) and N agents on this machine")
    local.add_argument("--agents", type=_positive_int, default=1, help="how many agents (default 1)")
    local.add_argument("--masters", type=_positive_int, default=1,
                       help="masters; several elect their leader through a ZooKeeper server that `corral local` "
                            "starts (Debian's `zookeeper` package) and agents follow the leader (default 1)")
    local.add_argument("--ip", default="127.0.0.1", help="address every daemon listens on (default 127.0.0.1)")
    local.add_argument("--port", type=_port, default=5050,
                       help="master HTTP port; further masters and then agents use the next ones")
    local.add_argument("--work-dir", type=Path, default=None,
                       help="where the daemons keep their state and logs, kept on exit (default: a temporary dir, "
                            "removed on exit)")
    local.add_argument("--resources", type=_resources, default=None,
                       help="each agent's resources; each agent gets its own slice of the ports (default "
                            f"{LOCAL_RESOURCES!r})")
    local.add_argument("--run", default=None, metavar="CMD",
                       help="run CMD (with CORRAL_MASTER set) once the cluster is up, then stop; exit with its status")
    local.add_argument("--secure", action="store_true",
                       help="generate keys, HTTP credentials and ACLs under the work dir and start every daemon "
                            "secured; --run gets CORRAL_KEY, CORRAL_MASTER_KEY and the operator's "
                            "CORRAL_HTTP_PRINCIPAL and CORRAL_HTTP_SECRET too")

    execute = sub.add_parser("execute", help="run one shell command as a task")
    execute.add_argument("--master", default=None, metavar="HOST:PORT|zk://...",
                         help="the master's address (https://HOST:PORT when it serves HTTPS), or a zk:// URL "
                              "(default: $CORRAL_MASTER)")
    execute.add_argument("--name", default="corral-execute", help="the framework's and the task's name")
    execute.add_argument("--command", required=True, help="the shell command to run")
    execute.add_argument("--resources", type=_resources, default=Resources.parse(DEFAULT_TASK_RESOURCES),
                         help=f"what the task uses (default {DEFAULT_TASK_RESOURCES!r})")
    execute.add_argument("--timeout", type=_seconds, default=None, help="give up after this many seconds")
    _add_client_keys(execute, "framework")
    cli_operator.add_http_client_flags(execute)

    keys = sub.add_parser("keys", help="manage CurveZMQ keys")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    generate = keys_sub.add_parser("generate", help="write a key pair for each NAME")
    generate.add_argument("--out", type=Path, required=True, help="the folder to write NAME.key and NAME.key_secret in")
    generate.add_argument("names", nargs="+", metavar="NAME", help="a principal (letters, digits, '.', '_', '-')")

    cli_operator.add_commands(sub, line_count=_line_count)
    sub.add_parser("version", help="print the version and the core in use")
    return parser


def _add_client_keys(parser: argparse.ArgumentParser, who: str) -> None:
    """--key and --master-key, defaulting to CORRAL_KEY and CORRAL_MASTER_KEY."""
    parser.add_argument("--key", type=Path, default=_env_path("CORRAL_KEY"),
                        help=f"the {who}'s key pair (NAME.key_secret) for a secured master (default $CORRAL_KEY)")
    parser.add_argument("--master-key", type=Path, default=_env_path("CORRAL_MASTER_KEY"),
                        help="the master's public key (its .key file) (default $CORRAL_MASTER_KEY)")


def _add_http_security(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--acls", type=Path, default=None,
                        help="what each principal may do: Mesos-shaped JSON ACLs (default: everything)")
    parser.add_argument("--http-credentials", type=Path, default=None,
                        help='HTTP credentials, {"credentials": [{"principal": ..., "secret": ...}]}: every endpoint '
                             "but /health and /info then asks for basic or bearer credentials")
    parser.add_argument("--tls-cert", type=Path, default=None, help="serve HTTPS with this certificate (PEM)")
    parser.add_argument("--tls-key", type=Path, default=None, help="the key of --tls-cert (PEM)")


def _env_path(name: str) -> Path | None:
    value = os.environ.get(name)
    return Path(value) if value else None


# ------------------------------------------------------------------ daemons
def _wait_for_signal() -> None:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()


def _work_dir(given: Path | None, name: str) -> Path:
    """`given` (absolute, created with its parents when missing), or a new temporary
    folder; UsageError naming it when it cannot be made."""
    if given is None:
        return Path(tempfile.mkdtemp(prefix=f"corral-{name}-"))
    path = given.absolute()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot use --work-dir {str(given)!r}: {exc.strerror or exc}") from None
    return path


def _transport_port(given: int | None, port: int) -> int:
    from corral.master.daemon import default_transport_port

    return given if given is not None else default_transport_port(port)


def run_master(args: argparse.Namespace) -> int:
    from corral.engines.master import MasterConfig
    from corral.master.daemon import MasterDaemon, MasterFlags

    flags = MasterFlags(work_dir=_work_dir(args.work_dir, "master"), host=args.ip, port=args.port,
                        transport_port=args.transport_port, key=args.key, keys=args.keys, acls=args.acls,
                        http_credentials=args.http_credentials, tls_cert=args.tls_cert, tls_key=args.tls_key,
                        advertise_ip=args.advertise_ip, zk=args.zk, zk_session_timeout=args.zk_session_timeout,
                        agent_http_credential=args.agent_http_credential)
    with _security_files():
        daemon = MasterDaemon(flags, MasterConfig(allocation_interval=args.allocation_interval,
                                                  ping_interval=args.agent_ping_timeout,
                                                  max_missed_pongs=args.max_agent_ping_timeouts,
                                                  offer_timeout=args.offer_timeout,
                                                  agent_reregister_timeout=args.agent_reregister_timeout,
                                                  framework_reregister_timeout=args.framework_reregister_timeout))
    daemon.start()
    election = f", contending for the leadership at {mask_credentials(args.zk)}" if args.zk else ""
    print(f"corral master {daemon.master_id} listening on {daemon.address} (transport {daemon.transport_address}); "
          f"web UI at http://{daemon.address}/{election}", flush=True)
    _wait_for_signal()
    daemon.stop()
    return 0


def run_agent(args: argparse.Namespace) -> int:
    from corral.agent.daemon import AgentDaemon, AgentFlags

    try:
        attributes = parse_attributes(args.attributes) if args.attributes else []
    except ResourceError as exc:
        raise UsageError(f"--attributes: {exc}") from None
    work_dir = _work_dir(args.work_dir, "agent")
    try:
        resources = args.resources if args.resources is not None else detect_resources(str(work_dir))
    except ResourceError as exc:
        raise UsageError(f"{exc}; pass --resources") from None
    flags = AgentFlags(master=args.master, work_dir=work_dir, resources=resources, attributes=attributes,
                       host=args.ip, port=args.port, transport_port=_transport_port(args.transport_port, args.port),
                       recover=RecoverMode(args.recover), recovery_timeout=args.recovery_timeout,
                       boot_id_file=args.boot_id_file, enforce_limits=args.enforce_limits,
                       limit_check_interval=args.limit_check_interval,
                       container_disk_watch_interval=args.container_disk_watch_interval, gc_delay=args.gc_delay,
                       gc_disk_headroom=args.gc_disk_headroom, disk_watch_interval=args.disk_watch_interval,
                       key=args.key, master_key=args.master_key, acls=args.acls,
                       http_credentials=args.http_credentials, switch_user=args.switch_user, tls_cert=args.tls_cert,
                       tls_key=args.tls_key, advertise_ip=args.advertise_ip)
    with _security_files():
        daemon = AgentDaemon(flags)
    try:
        daemon.start()
    except CheckpointError as exc:
        raise UsageError(f"cannot recover: {exc} (remove {daemon.checkpointer.root} to start as a new agent)") from None
    print(f"corral agent listening on {daemon.address} (transport {daemon.runtime.address}), "
          f"master {mask_credentials(args.master)}, resources {resources}, work dir {work_dir}", flush=True)
    _wait_for_signal()
    daemon.stop()
    return 0


def run_local(args: argparse.Namespace) -> int:
    from corral.testing.cluster import ClusterError, LocalCluster
    from corral.testing.zookeeper import ZooKeeperError

    temporary = args.work_dir is None
    root = _work_dir(args.work_dir, "local")
    resources = str(args.resources) if args.resources is not None else LOCAL_RESOURCES
    try:
        cluster = LocalCluster(root, args.agents, port=args.port, ip=args.ip, log_level=args.log_level,
                               resources=resources, masters=args.masters, secure=args.secure)
    except ZooKeeperError as exc:
        raise UsageError(str(exc)) from None
    try:
        try:
            cluster.start()
        except (ClusterError, ZooKeeperError) as exc:
            raise UsageError(f"{exc} (work dir {root})") from None
        kept = "removed on exit; --work-dir keeps one" if temporary else "kept on exit"
        if cluster.zookeeper is not None:
            masters = ", ".join(f"{m.address} (pid {m.pid})" for m in cluster.masters)
            print(f"corral local: {len(cluster.masters)} masters ({masters}) electing their leader at "
                  f"{cluster.master_url}; leading now: {cluster.master_address}", flush=True)
        print(f"corral local: master at {cluster.master_url} with {len(cluster.agents)} agent(s)\n"
              f"  web UI:   http://{cluster.master_address}/\n"
              f"  state:    http://{cluster.master_address}/state\n"
              f"  work dir: {root} (logs and sandboxes; {kept})", flush=True)
        if cluster.secure is not None:
            print(f"corral local: secured: keys in {cluster.secure.keys}; a framework's key pair "
                  f"CORRAL_KEY={cluster.secure.framework_key} CORRAL_MASTER_KEY={cluster.secure.master_public}; "
                  f"HTTP credentials in {cluster.secure.http_credentials} (operator: {cluster.secure.operator_auth}; "
                  f"the CLI takes CORRAL_HTTP_PRINCIPAL=operator CORRAL_HTTP_SECRET=..., which --run gets)",
                  flush=True)
        if args.run:
            env = dict(os.environ, **cluster.client_env())
            return subprocess.call(shlex.split(args.run), env=env)
        _wait_for_signal()
        return 0
    finally:
        cluster.stop()
        if temporary:
            shutil.rmtree(root, ignore_errors=True)


def run_execute(args: argparse.Namespace) -> int:
    from corral.tasks import command_task, unpack
    from corral.scheduler import Scheduler, SchedulerDriver
    from corral.protos import corral_pb2 as pb
    from corral.engines.common import is_terminal, state_name

    try:
        master = cli_operator.master_from_environment(args.master)
    except argparse.ArgumentTypeError as exc:
        raise UsageError(str(exc)) from None
    http_credential = cli_operator.http_client_security(args)
    try:
        fetch_info(leader_http_address(master))  # (a master that is down is an error now, not a silent wait)
    except (MasterUnreachable, NoLeader) as exc:
        raise cli_operator.OperatorError(str(exc)) from None

    class Execute(Scheduler):
        def __init__(self) -> None:
            self.launched = False
            self.final: pb.TaskStatus | None = None
            self.done = threading.Event()

        def resource_offers(self, driver, offers):  # type: ignore[no-untyped-def]
            for offer in offers:
                available = Resources.from_protos(offer.resources)
                if self.launched or not available.contains(args.resources):
                    driver.decline_offer(offer.id, pb.Filters(refuse_seconds=1.0 if not self.launched else 3600))
                    continue
                self.launched = True
                task = command_task(args.name, args.command, offer.agent_id, args.resources)
                driver.launch_tasks(offer.id, [task])
                print(f"launched task {task.task_id.value} on agent {offer.agent_id.value}", flush=True)

        def status_update(self, driver, status):  # type: ignore[no-untyped-def]
            line = f"{status.task_id.value}: {state_name(status.state)}"
            if status.message:
                line += f" ({status.message})"
            print(line, flush=True)
            if is_terminal(status.state):
                self.final = status
                self.done.set()

        def error(self, driver, message):  # type: ignore[no-untyped-def]
            print(f"error: {message}", file=sys.stderr, flush=True)

    scheduler = Execute()
    framework = pb.FrameworkInfo(name=args.name, user="")
    credential = None
    if args.key is not None or args.master_key is not None:
        if args.key is None or args.master_key is None:
            raise UsageError("a secured master needs both --key (this client's key pair) and --master-key")
        with _security_files():
            credential = Credential.load(args.key, args.master_key)
    driver = SchedulerDriver(scheduler, framework, master, credential=credential)
    driver.start()
    finished = scheduler.done.wait(args.timeout)
    framework_id = driver.framework_id
    driver.stop()
    if not finished or scheduler.final is None:
        print(f"timed out after {args.timeout:g}s", file=sys.stderr)
        return 124
    final = scheduler.final
    _print_output(cli_operator.Master(master, http_credential), framework_id, final.task_id.value)
    exit_status = unpack(final.data).get("exit_status") if final.data else None
    if isinstance(exit_status, int):
        return exit_status if exit_status >= 0 else 128 - exit_status  # (negative: the signal, as a shell says)
    return 0 if final.state == pb.TASK_FINISHED else 1


def _print_output(master: cli_operator.Master, framework_id: str | None, task_id: str) -> None:
    """The sandbox of an ended task, then its stdout (on stdout) and stderr (on stderr)."""
    try:
        task = master.request("/task", query={"task_id": task_id, "framework_id": framework_id})
        if not task["sandbox"]:
            return
        print(f"sandbox: {task['sandbox']} on agent {task['agent_id']} "
              f"(corral task logs {task_id} --framework {framework_id})", flush=True)
        for name, out in (("stdout", sys.stdout), ("stderr", sys.stderr)):
            log = cli_operator.LogReader(master, task["agent_id"], f"{task['sandbox']}/{name}")
            log.copy(0, lambda data: out.write(data.decode("utf-8", errors="replace")))
            out.flush()
    except cli_operator.OperatorError as exc:
        print(f"cannot show the task's output: {exc}", file=sys.stderr)


def run_keys(args: argparse.Namespace) -> int:
    with _security_files():
        written = generate(args.out, args.names)
    for public in written:
        print(f"{public} (public: hand it to the master's --keys) and {public}_secret (keep it private)")
    return 0


@contextlib.contextmanager
def _security_files() -> Iterator[None]:
    """A key, ACL or credentials file that cannot be used is a usage error naming it."""
    try:
        yield
    except (KeyFileError, AclError, CredentialsError, TlsError) as exc:
        raise UsageError(str(exc)) from None


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.subcommand is None:
        parser.error("a COMMAND is required: " + ", ".join(parser._subparsers._group_actions[0].choices))  # type: ignore[union-attr]
    logging.basicConfig(level=getattr(logging, args.log_level),
                        format="%(asctime)s %(name)s %(levelname)s %(message)s", stream=sys.stderr)
    if args.subcommand == "version":
        print(f"corral {__version__}")
        print(f"core: {_core.CORE}")
        return 0
    runners = {"master": run_master, "agent": run_agent, "local": run_local, "execute": run_execute, "keys": run_keys}
    name = cli_operator.command_of(args) or args.subcommand
    if name not in ("master", "agent", "local"):
        # a one-shot command that asks ZooKeeper for the leader: kazoo's connection
        # chatter is not the user's business
        logging.getLogger("kazoo").setLevel(logging.WARNING)
    try:
        if name in runners:
            return runners[name](args)
        return cli_operator.run(name, args)
    except (UsageError, argparse.ArgumentTypeError) as exc:
        parser.exit(2, f"corral {name}: error: {exc}\n")
    except cli_operator.OperatorError as exc:
        parser.exit(1, f"corral {name}: error: {exc}\n")
    except OSError as exc:  # e.g. a port already in use
        parser.exit(1, f"corral {name}: error: {exc}\n")
    return 1


if __name__ == "__main__":
    sys.exit(main())
