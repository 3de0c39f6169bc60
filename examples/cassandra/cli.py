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
    node.add_argument("--gossip-interval", type=_positive(float), default=1.0)
    node.add_argument("--ring-delay", type=_positive(float), default=5.0)
    node.add_argument("--phi-threshold", type=_positive(float), default=8.0)
    node.add_argument("--write-timeout", type=_positive(float), default=2.0)
    node.add_argument("--read-timeout", type=_positive(float), default=2.0)
    node.add_argument("--hinted-handoff", action=argparse.BooleanOptionalAction, default=True)
    node.add_argument("--commitlog-sync", choices=[m.value for m in SyncMode], default=SyncMode.BATCH.value,
                      help="batch: fdatasync before acknowledging (default); periodic: at memtable flushes")


def add_client_parser(sub: Any) -> None:
    client = sub.add_parser("client", help="read and write the store")
    client.add_argument("--contact", type=_addresses, default=None,
                        help=f"contact points HOST:PORT,... (default: ${CONTACT_ENV})")
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

    config = NodeConfig(name=args.name, address=args.listen, seeds=args.seeds or [args.listen], cluster=args.cluster,
                        replication=args.replication, num_tokens=args.num_tokens, replace=args.replace,
                        gossip_interval=args.gossip_interval, ring_delay=args.ring_delay,
                        phi_threshold=args.phi_threshold, write_timeout=args.write_timeout,
                        read_timeout=args.read_timeout, hinted_handoff=args.hinted_handoff)
    try:
        config.validate()
        server = NodeServer(config, os.path.abspath(args.data), SyncMode(args.commitlog_sync))
    except (ValueError, NodeError, StorageError) as exc:
        raise UsageError(str(exc)) from None
    server.install_signal_handlers()
    print(f"node {args.name} ({server.node.host_id}) serving on {args.listen}, data in {args.data}", flush=True)
    return server.run()


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
    if not contact:
        raise UsageError(f"no contact points: give --contact HOST:PORT or set ${CONTACT_ENV}")
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m corral.examples.cassandra",
                                     description="A Cassandra-like store and the corral framework that runs it.")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_node_parser(sub)
    add_client_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=getattr(logging, args.log_level), stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    runners = {"node": run_node, "client": run_client}
    try:
        return runners[args.command](args)
    except UsageError as exc:
        parser.exit(2, f"{parser.prog} {args.command}: error: {exc}\n")
    except OSError as exc:
        parser.exit(1, f"{parser.prog} {args.command}: error: {exc}\n")
    return 1
