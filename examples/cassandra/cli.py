"""`python -m corral.examples.cassandra COMMAND`: run a node, talk to the store, run the
framework's scheduler, and operate the service through the scheduler's HTTP API.

    node --name N --listen HOST:PORT --data DIR --seeds A,B [--replace ADDRESS] ...
    client --contact HOST:PORT[,...] put KEY VALUE | get KEY | delete KEY | ring
                                     | repair NODE | decommission NODE
    scheduler --master HOST:PORT --nodes 3 --replication 3 --node-resources R --api-port P --state-dir D
    plan status [NAME] | plan interrupt|continue NAME     pod list | pod info|restart|replace NODE
    config show | config update KEY=VALUE...               scale N     endpoints     uninstall

Errors a user can cause (a bad flag, an unknown node, no reachable node) exit with
status 2 (1 for a request the store or the scheduler refused) and a message naming what
was wrong.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from typing import Any, Sequence

from corral.examples.cassandra.client import Client, NoHostAvailable, StoreError, parse_address
from corral.examples.cassandra.ring import Consistency
from corral.examples.cassandra.storage import StorageError, SyncMode

CONTACT_ENV = "CASSANDRA_CONTACT_POINTS"
API_ENV = "CASSANDRA_API"


class UsageError(Exception):
    """A command-line value that cannot be used; the message names it."""


def _address(text: str) -> str:
    try:
        return parse_address(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _addresses(text: str) -> list[str]:
    return [_address(part) for part in text.split(",") if part.strip()]


def _consistency(text: str) -> str:
    try:
        return Consistency.parse(text).value
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _positive(kind: type) -> Any:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid value {text!r}: not a number") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"invalid value {text!r}: must be positive")
        return value
    return parse


def _setting(key: str, parse: Any) -> Any:
    """An argparse type for node setting `key` (config.NODE_SETTINGS' parser)."""
    from corral.examples.cassandra.config import ConfigError

    def convert(text: str) -> Any:
        try:
            return parse(key, text)
        except ConfigError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    return convert


def add_setting_flags(parser: argparse.ArgumentParser, prefix: str) -> None:
    """A flag per node setting (config.NODE_SETTINGS: one list of settings and defaults
    for the node command and for the scheduler, which passes them on to its nodes)."""
    from corral.examples.cassandra.config import NODE_SETTINGS

    for key, (parse, default) in NODE_SETTINGS.items():
        flag = prefix + key.replace("_", "-")
        if isinstance(default, bool):
            parser.add_argument(flag, dest=f"setting_{key}", action=argparse.BooleanOptionalAction, default=default)
        else:
            parser.add_argument(flag, dest=f"setting_{key}", type=_setting(key, parse), default=default,
                                metavar=key.upper(), help=f"node setting {key} (default {default})")


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    from corral.examples.cassandra.config import NODE_SETTINGS

    return {key: getattr(args, f"setting_{key}") for key in NODE_SETTINGS}


def add_node_parser(sub: Any) -> None:
    node = sub.add_parser("node", help="run one store node")
    node.add_argument("--name", required=True)
    node.add_argument("--listen", type=_address, required=True, help="HOST:PORT the node serves on")
    node.add_argument("--data", required=True, help="data directory (the task's persistent volume)")
    node.add_argument("--seeds", type=_addresses, default=None, help="seed addresses, comma-separated (default: itself)")
    node.add_argument("--cluster", default="corral")
    node.add_argument("--replication", type=_positive(int), default=3)
    node.add_argument("--num-tokens", type=_positive(int), default=16)
    node.add_argument("--replace", default=None, help="address or name of the dead node whose place this node takes")
    add_setting_flags(node, "--")  # commitlog-sync: batch fdatasyncs before acknowledging, periodic at flushes


def add_client_parser(sub: Any) -> None:
    client = sub.add_parser("client", help="read and write the store")
    client.add_argument("--contact", type=_addresses, default=None,
                        help=f"contact points HOST:PORT,... (default: ${CONTACT_ENV}, else the nodes the "
                             f"scheduler at --api or ${API_ENV} lists)")
    client.add_argument("--api", default=None, help="the scheduler's HOST:PORT, to find the nodes")
    client.add_argument("--consistency", type=_consistency, default="QUORUM")
    ops = client.add_subparsers(dest="op", required=True, metavar="OP")
    put = ops.add_parser("put", help="write a value")
    put.add_argument("key")
    put.add_argument("value")
    get = ops.add_parser("get", help="read a value (exit 1 if there is none)")
    get.add_argument("key")
    delete = ops.add_parser("delete", help="delete a key")
    delete.add_argument("key")
    ops.add_parser("ring", help="nodes, states, load and ownership")
    repair = ops.add_parser("repair", help="anti-entropy repair of the ranges a node replicates")
    repair.add_argument("node", help="node name or address")
    decommission = ops.add_parser("decommission", help="stream a node's data away; it leaves the ring")
    decommission.add_argument("node", help="node name or address")


def run_node(args: argparse.Namespace) -> int:
    from corral.examples.cassandra.node import NodeConfig, NodeError
    from corral.examples.cassandra.server import NodeServer

    settings = _settings(args)
    sync = SyncMode(settings.pop("commitlog_sync"))
    config = NodeConfig(name=args.name, address=args.listen, seeds=args.seeds or [args.listen], cluster=args.cluster,
                        replication=args.replication, num_tokens=args.num_tokens, replace=args.replace, **settings)
    try:
        config.validate()
        server = NodeServer(config, os.path.abspath(args.data), sync)
    except (ValueError, NodeError, StorageError) as exc:
        raise UsageError(str(exc)) from None
    server.install_signal_handlers()
    print(f"node {args.name} ({server.node.host_id}) serving on {args.listen}, data in {args.data}", flush=True)
    return server.run()


def run_scheduler(args: argparse.Namespace) -> int:
    import signal
    import threading
    from pathlib import Path

    from corral.framework.statestore import StateStore

    from corral.examples.cassandra.api import build_api
    from corral.examples.cassandra.config import ConfigError, ServiceConfig
    from corral.examples.cassandra.service import CassandraService

    try:
        settings = _settings(args)
        config = ServiceConfig(name=args.name, role=args.role, principal=args.name, nodes=args.nodes,
                               replication=args.replication, num_tokens=args.num_tokens,
                               node_resources=args.node_resources, settings=settings,
                               permanent_failure_timeout=args.permanent_failure_timeout,
                               auto_replace=args.auto_replace, placement=args.placement).validate()
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    store = StateStore(Path(args.state_dir) / "state.sqlite")
    service = CassandraService(store, config)
    if service.config != config and store.framework_id():
        logging.getLogger(__name__).info("resuming with the stored configuration (%s); flags that differ are "
                                         "ignored: change it with config update or scale", service.config.config_id)
    api = build_api(service, args.api_host, args.api_port)
    api.start()
    service.start(args.master)
    print(f"cassandra scheduler: API on {api.address}, master {args.master}, state in {args.state_dir}", flush=True)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.is_set() and not service.finished.is_set():
        stop.wait(0.2)
    if service.finished.is_set():
        service.stop(failover=False)  # uninstalled: the framework goes
        store.clear()
        print("uninstalled", flush=True)
    else:
        service.stop(failover=True)  # the nodes keep running; a new scheduler takes over
    api.close()
    store.close()
    return 0


def _api_call(args: argparse.Namespace, method: str, path: str, body: Any = None) -> Any:
    import urllib.error
    import urllib.request

    address = args.api or os.environ.get(API_ENV)
    if not address:
        raise UsageError(f"no scheduler: give --api HOST:PORT or set ${API_ENV}")
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"http://{address}{path}", data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        try:
            message = json.loads(exc.read())["error"]
        except (ValueError, KeyError, TypeError):
            message = str(exc)
        raise ApiRefused(message) from None
    except (urllib.error.URLError, OSError) as exc:
        raise UsageError(f"cannot reach the scheduler at {address}: {getattr(exc, 'reason', exc)}") from None


class ApiRefused(Exception):
    """The scheduler answered with an error."""


def format_plan(plan: dict[str, Any]) -> str:
    lines = [f"{plan['name']} ({plan['strategy']} strategy) ({plan['status']})"]
    for phase in plan["phases"]:
        lines.append(f"└─ {phase['name']} ({phase['strategy']} strategy) ({phase['status']})")
        for step in phase["steps"]:
            message = f"  {step['message']}" if step["message"] else ""
            lines.append(f"   └─ {step['name']} ({step['status']}){message}")
    lines.extend(f"error: {e}" for e in plan.get("errors", []))
    return "\n".join(lines)


def run_operator(args: argparse.Namespace) -> int:
    import time

    command = args.command
    try:
        if command == "plan":
            if args.plan_op == "list":
                print("\n".join(_api_call(args, "GET", "/v1/plans")))
            elif args.plan_op == "status":
                plan = _api_call(args, "GET", f"/v1/plans/{args.plan}")
                print(json.dumps(plan, indent=1) if args.json else format_plan(plan))
            else:
                print(_api_call(args, "POST", f"/v1/plans/{args.plan}/{args.plan_op}")["message"])
        elif command == "pod":
            if args.pod_op == "list":
                print("\n".join(_api_call(args, "GET", "/v1/pod")))
            elif args.pod_op == "status":
                for node in _api_call(args, "GET", "/v1/pod/status"):
                    print(f"{node['name']:<8} {'UP' if node['up'] else 'DOWN':<5} {str(node['address']):<16} "
                          f"{str(node['task_state']):<13} pid {str(node['pid']):<7} agent {node['agent_id']}")
            elif args.pod_op == "info":
                print(json.dumps(_api_call(args, "GET", f"/v1/pod/{args.node}/info"), indent=1, sort_keys=True))
            else:
                reply = _api_call(args, "POST", f"/v1/pod/{args.node}/{args.pod_op}")
                print(f"{args.pod_op} of {reply['pod']} started")
        elif command == "config":
            if args.config_op == "show":
                print(json.dumps(_api_call(args, "GET", "/v1/config"), indent=1, sort_keys=True))
            else:
                changes = {}
                for change in args.changes:
                    key, sep, value = change.partition("=")
                    if not sep or not key:
                        raise UsageError(f"invalid change {change!r}: expected KEY=VALUE")
                    changes[key.strip()] = value.strip()
                print(_api_call(args, "PUT", "/v1/config", changes)["message"])
        elif command == "scale":
            try:
                count = int(args.nodes)
            except ValueError:
                raise UsageError(f"invalid node count {args.nodes!r}: not a whole number") from None
            print(_api_call(args, "POST", "/v1/scale", {"nodes": count})["message"])
        elif command == "endpoints":
            print("\n".join(_api_call(args, "GET", "/v1/endpoints")["address"]))
        elif command == "uninstall":
            print(_api_call(args, "POST", "/v1/uninstall")["message"], flush=True)
            deadline = time.monotonic() + args.timeout
            while time.monotonic() < deadline:
                try:
                    plan = _api_call(args, "GET", "/v1/plans/uninstall")
                except UsageError:
                    break  # the scheduler has exited: uninstalled
                if plan["status"] == "COMPLETE":
                    break
                time.sleep(0.5)
            else:
                print(f"uninstall not finished after {args.timeout:g}s", file=sys.stderr)
                return 1
            print("uninstalled")
    except ApiRefused as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def format_ring(info: dict[str, Any]) -> str:
    lines = [f"Cluster {info['cluster']}, replication {info['replication']} (as seen by {info['coordinator']})",
             "--  Name        Address               Load        Owns     Tokens  Host ID"]
    for n in info["nodes"]:
        lines.append(f"{n['state']:<3} {str(n['name']):<11} {n['address']:<21} {_size(n['load']):<11} "
                     f"{100 * n['owns']:6.1f}%  {len(n['tokens']):>6}  {n['host_id']}")
    return "\n".join(lines)


def _size(count: int) -> str:
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.1f} {unit}" if unit != "B" else f"{int(value)} B"
        value /= 1024
    return str(count)


def run_client(args: argparse.Namespace) -> int:
    contact = args.contact
    if not contact:
        env = os.environ.get(CONTACT_ENV, "")
        try:
            contact = _addresses(env) if env else None
        except argparse.ArgumentTypeError as exc:
            raise UsageError(f"${CONTACT_ENV}: {exc}") from None
    if not contact and (args.api or os.environ.get(API_ENV)):
        try:
            contact = _api_call(args, "GET", "/v1/endpoints")["address"]
        except ApiRefused as exc:
            raise UsageError(f"the scheduler did not list the nodes: {exc}") from None
    if not contact:
        raise UsageError(f"no contact points: give --contact HOST:PORT, set ${CONTACT_ENV}, or name the "
                         f"scheduler with --api HOST:PORT or ${API_ENV}")
    try:
        client = Client(contact, consistency=args.consistency)
    except NoHostAvailable as exc:
        raise UsageError(str(exc)) from None
    with client:
        try:
            if args.op == "put":
                client.put(args.key, args.value)
                print("OK")
            elif args.op == "get":
                value = client.get(args.key)
                if value is None:
                    print(f"(no value for {args.key!r})", file=sys.stderr)
                    return 1
                sys.stdout.write(value.decode(errors="backslashreplace") + "\n")
            elif args.op == "delete":
                client.delete(args.key)
                print("OK")
            elif args.op == "ring":
                print(format_ring(client.ring()))
            elif args.op in ("repair", "decommission"):
                if args.node not in client.node_names() and args.node not in [
                        n["address"] for n in client.ring()["nodes"]]:
                    raise UsageError(f"unknown node {args.node!r}: the ring has {', '.join(client.node_names())}")
                if args.op == "repair":
                    print(json.dumps(client.repair(args.node), sort_keys=True))
                else:
                    client.decommission(args.node)
                    print(f"{args.node} is decommissioning")
        except StoreError as exc:
            print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
            return 1
    return 0


def add_scheduler_parser(sub: Any) -> None:
    scheduler = sub.add_parser("scheduler", help="run the framework's scheduler")
    scheduler.add_argument("--master", required=True, help="the corral master's HOST:PORT")
    scheduler.add_argument("--nodes", type=_positive(int), default=3)
    scheduler.add_argument("--replication", type=_positive(int), default=3)
    scheduler.add_argument("--num-tokens", type=_positive(int), default=16)
    scheduler.add_argument("--node-resources", default="cpus:0.5;mem:256;disk:512",
                           help="each node's resources (reserved, with a persistent volume of all its disk)")
    scheduler.add_argument("--api-host", default="127.0.0.1")
    scheduler.add_argument("--api-port", type=int, default=8080)
    scheduler.add_argument("--state-dir", required=True, help="where the scheduler keeps its state (crash-safe)")
    scheduler.add_argument("--name", default="cassandra", help="the service (and framework) name")
    scheduler.add_argument("--role", default="cassandra")
    scheduler.add_argument("--permanent-failure-timeout", type=_positive(float), default=600.0,
                           help="seconds a node's agent may stay lost before the node is replaced elsewhere")
    scheduler.add_argument("--auto-replace", action=argparse.BooleanOptionalAction, default=True,
                           help="replace nodes whose agent stays lost past the timeout (default on)")
    scheduler.add_argument("--placement", default="[]", metavar="JSON",
                           help='constraints on where nodes go, beside one per agent, e.g. '
                                '\'[["zone", "UNLIKE", "z3"], ["rack", "GROUP_BY", "3"]]\'')
    add_setting_flags(scheduler, "--node-")


def add_operator_parsers(sub: Any) -> None:
    def with_api(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
        parser.add_argument("--api", default=None, help=f"the scheduler's HOST:PORT (default: ${API_ENV})")
        return parser

    plan = with_api(sub.add_parser("plan", help="show and steer the scheduler's plans"))
    plan_ops = plan.add_subparsers(dest="plan_op", required=True, metavar="OP")
    status = plan_ops.add_parser("status", help="a plan's phases and steps (default: deploy)")
    status.add_argument("plan", nargs="?", default="deploy")
    status.add_argument("--json", action="store_true")
    for op in ("interrupt", "continue"):
        plan_ops.add_parser(op, help=f"{op} a plan").add_argument("plan")
    plan_ops.add_parser("list", help="the plans")

    pod = with_api(sub.add_parser("pod", help="the nodes"))
    pod_ops = pod.add_subparsers(dest="pod_op", required=True, metavar="OP")
    pod_ops.add_parser("list", help="node names")
    pod_ops.add_parser("status", help="every node's task, agent, address and state")
    for op in ("info", "restart", "replace"):
        pod_ops.add_parser(op, help=f"{op} a node").add_argument("node")

    config = with_api(sub.add_parser("config", help="the service configuration"))
    config_ops = config.add_subparsers(dest="config_op", required=True, metavar="OP")
    config_ops.add_parser("show")
    update = config_ops.add_parser("update", help="change node settings (a rolling update): KEY=VALUE ...")
    update.add_argument("changes", nargs="+", metavar="KEY=VALUE")

    scale = with_api(sub.add_parser("scale", help="change the number of nodes"))
    scale.add_argument("nodes")
    with_api(sub.add_parser("endpoints", help="the nodes' client addresses"))
    uninstall = with_api(sub.add_parser("uninstall", help="kill the nodes, release everything, remove the framework"))
    uninstall.add_argument("--timeout", type=_positive(float), default=300.0)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m corral.examples.cassandra",
                                     description="A Cassandra-like store and the corral framework that runs it.")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_node_parser(sub)
    add_client_parser(sub)
    add_scheduler_parser(sub)
    add_operator_parsers(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=getattr(logging, args.log_level), stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    runners = {"node": run_node, "client": run_client, "scheduler": run_scheduler,
               **dict.fromkeys(("plan", "pod", "config", "scale", "endpoints", "uninstall"), run_operator)}
    try:
        return runners[args.command](args)
    except UsageError as exc:
        parser.exit(2, f"{parser.prog} {args.command}: error: {exc}\n")
    except OSError as exc:
        parser.exit(1, f"{parser.prog} {args.command}: error: {exc}\n")
    return 1
