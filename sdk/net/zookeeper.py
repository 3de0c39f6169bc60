"""What masters and their followers share about ZooKeeper: `zk://` URLs, the contender
znodes Mesos lays out (`PATH/json.info_NNNNNNNNNN`, ephemeral and sequential, each holding
its master's MasterInfo as JSON; the lowest sequence number leads), and the client
connection states.

A tool that finds a Mesos leader in ZooKeeper finds corral's the same way: the JSON
carries `id`, `hostname`, `version`, `pid`, and `address` with `hostname`, `ip` and `port`,
the port being the master's HTTP port, the one address users name. A contender znode
that holds no readable MasterInfo (garbage some tool left) is logged and skipped by
masters and followers alike: the lowest readable contender leads (`read_leader`).
"""
from __future__ import annotations

import enum
import json
import logging
import re
from dataclasses import dataclass
from typing import Any, Container, Iterable

log = logging.getLogger(__name__)

#: the prefix of a contender's znode; ZooKeeper appends a 10-digit sequence number
CONTENDER_PREFIX = "json.info_"
_CONTENDER = re.compile(re.escape(CONTENDER_PREFIX) + r"(\d{10})")
#: ZooKeeper's session timeout when a URL or flag does not say (Mesos' default)
DEFAULT_SESSION_TIMEOUT = 10.0


class ZooKeeperUrlError(ValueError):
    """A `zk://` URL that cannot be used, with the reason."""


class MasterInfoError(ValueError):
    """A contender znode whose content is not a master's JSON MasterInfo."""


class Session(enum.Enum):
    """The client's connection to the ensemble, as kazoo reports it. SUSPENDED: the
    connection dropped and the session may still live (pause, do not act); LOST: the
    session expired, so every ephemeral znode of ours (our candidacy) is gone."""

    CONNECTED = "connected"
    SUSPENDED = "suspended"
    LOST = "lost"


@dataclass(frozen=True, slots=True)
class ZooKeeperUrl:
    """`zk://HOST:PORT[,HOST:PORT...]/PATH`."""

    hosts: tuple[tuple[str, int], ...]
    path: str

    @property
    def connect_string(self) -> str:
        return ",".join(f"{host}:{port}" for host, port in self.hosts)

    def __str__(self) -> str:
        return f"zk://{self.connect_string}{self.path}"


def is_zk_url(text: str) -> bool:
    return text.strip().lower().startswith("zk://")


def parse_zk_url(text: str) -> ZooKeeperUrl:
    """Parse `zk://host:port[,host:port...]/path`; ZooKeeperUrlError names what is wrong."""
    raw = text.strip()
    if not is_zk_url(raw):
        raise ZooKeeperUrlError(f"invalid ZooKeeper URL {text!r}: it must start with zk://")
    rest = raw[len("zk://"):]
    hosts_part, slash, path = rest.partition("/")
    if not slash or not path.strip("/"):
        raise ZooKeeperUrlError(f"invalid ZooKeeper URL {text!r}: it names no path, e.g. zk://127.0.0.1:2181/corral")
    if "@" in hosts_part:
        raise ZooKeeperUrlError(f"invalid ZooKeeper URL {text!r}: credentials in the URL are not supported")
    hosts = []
    for item in hosts_part.split(","):
        host, sep, port = item.strip().rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ZooKeeperUrlError(f"invalid ZooKeeper URL {text!r}: {item.strip()!r} is not HOST:PORT")
        hosts.append((host, int(port)))
    clean = "/" + "/".join(part for part in path.split("/") if part)
    return ZooKeeperUrl(tuple(hosts), clean)


def contender_sequence(name: str) -> int | None:
    """The sequence number of a contender znode's name; None for any other child."""
    match = _CONTENDER.fullmatch(name)
    return int(match.group(1)) if match else None


def contenders_in_order(children: Iterable[str]) -> list[str]:
    """The contender znodes among a path's children, lowest sequence number first."""
    numbered = [(contender_sequence(name), name) for name in children]
    return [name for seq, name in sorted((seq, name) for seq, name in numbered if seq is not None)]


def leader_of(children: Iterable[str], unreadable: Container[str] = ()) -> str | None:
    """The leading contender among a path's children: the lowest sequence number, not
    counting those known to hold no readable MasterInfo (garbage left by some tool)."""
    return next((name for name in contenders_in_order(children) if name not in unreadable), None)


def read_leader(client: Any, path: str, children: Iterable[str], unreadable: set[str]) -> ContenderInfo | None:
    """The leading contender's MasterInfo, read with `client` (a started KazooClient)
    from `path`'s `children`: contenders whose znode holds garbage are logged, naming
    them, added to `unreadable` and skipped (the next one leads). None when no
    contender is left."""
    from kazoo.exceptions import NoNodeError

    unreadable.intersection_update(children)
    for name in contenders_in_order(children):
        if name in unreadable:
            continue
        where = f"{path}/{name}"
        try:
            data, _stat = client.get(where)
            return decode_master_info(data, where)
        except NoNodeError:
            continue  # it went away meanwhile (a watch will say so)
        except MasterInfoError as exc:
            log.error("%s: skipped, the next contender leads", exc)
            unreadable.add(name)
    return None


def encode_master_info(master_id: str, hostname: str, ip: str, port: int, version: str, transport: str = "") -> bytes:
    """A contender's content: Mesos' JSON MasterInfo (`port` is the HTTP port), and
    corral's own `transport`: where the master's transport listens while it leads (so
    followers send to a new leader at once: ZeroMQ holds what they send until it binds)."""
    doc: dict[str, Any] = {
        "id": master_id,
        "hostname": hostname,
        "ip": _ipv4_as_int(ip),
        "port": port,
        "pid": f"master@{ip}:{port}",
        "version": version,
        "address": {"hostname": hostname, "ip": ip, "port": port},
    }
    if transport:
        doc["transport"] = transport
    return json.dumps(doc, sort_keys=True).encode()


@dataclass(frozen=True, slots=True)
class ContenderInfo:
    """What followers need from a contender's JSON: who it is, its HTTP address, and
    (corral's masters say) its transport address ("" when the JSON has none)."""

    master_id: str
    hostname: str
    ip: str
    port: int
    transport: str = ""

    @property
    def http_address(self) -> str:
        return f"{self.ip}:{self.port}"


def decode_master_info(data: bytes, where: str) -> ContenderInfo:
    """Read a contender's JSON; MasterInfoError naming `where` and what is wrong."""
    try:
        doc: Any = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise MasterInfoError(f"{where} does not hold a JSON MasterInfo: {exc}") from None
    if not isinstance(doc, dict):
        raise MasterInfoError(f"{where} does not hold a JSON MasterInfo: a {type(doc).__name__}, not an object")
    address = doc.get("address")
    if not isinstance(address, dict):
        raise MasterInfoError(f"{where}: its MasterInfo has no 'address' object")
    ip, port = address.get("ip"), address.get("port")
    if not isinstance(ip, str) or not ip or isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise MasterInfoError(f"{where}: its MasterInfo address {address!r} has no usable ip and port")
    transport = doc.get("transport", "")
    if not isinstance(transport, str) or (transport and not transport.startswith("tcp://")):
        raise MasterInfoError(f"{where}: its MasterInfo transport {transport!r} is not a tcp:// address")
    return ContenderInfo(str(doc.get("id", "")), str(address.get("hostname") or doc.get("hostname") or ip), ip, port,
                         transport)


def _ipv4_as_int(ip: str) -> int:
    """Mesos' MasterInfo.ip: the IPv4 address as a number in network byte order read
    little-endian (0 when `ip` is not an IPv4 literal)."""
    parts = ip.split(".")
    if len(parts) != 4 or not all(p.isdigit() and int(p) < 256 for p in parts):
        return 0
    return int.from_bytes(bytes(int(p) for p in parts), "little")
