"""What masters and their followers share about ZooKeeper: `zk://` URLs, the contender
znodes Mesos lays out (`PATH/json.info_NNNNNNNNNN`, ephemeral and sequential, each holding
its master's MasterInfo as JSON; the lowest sequence number leads), and the client
connection states.

A tool that finds a Mesos leader in ZooKeeper finds corral's the same way: the JSON
carries `id`, `hostname`, `version`, `pid`, and `address` with `hostname`, `ip` and `port`,
the port being the master's HTTP port, the one address users name. A contender znode
that holds no readable MasterInfo (garbage some tool left) is logged and skipped by
masters and followers alike: the lowest readable contender leads (`read_leader`).

Authentication, Mesos' way: `zk://USER:PASSWORD@HOST:PORT/PATH` makes every client of
that URL (masters, agents, drivers, the CLI) authenticate with ZooKeeper's digest scheme
(`kazoo_client`), and the znodes corral creates get ACLs: the election path and the
contenders `READABLE_ACL` (everyone reads, only USER writes: tools and followers find
the leader), the registry `PRIVATE_ACL` (only USER reads or writes: it holds what the
masters know of agents and frameworks, which Mesos keeps on its masters' disks, not
readable by anyone else either). Credentials never show: a URL prints as
`zk://USER:****@...`, and `mask_credentials` masks them in any text (flags, errors).
"""
from __future__ import annotations

import enum
import json
import logging
import re
from dataclasses import dataclass, field
from typing import Any, Container, Iterable

log = logging.getLogger(__name__)

#: the prefix of a contender's znode; ZooKeeper appends a 10-digit sequence number
CONTENDER_PREFIX = "json.info_"
_CONTENDER = re.compile(re.escape(CONTENDER_PREFIX) + r"(\d{10})")
#: ZooKeeper's session timeout when a URL or flag does not say (Mesos' default)
DEFAULT_SESSION_TIMEOUT = 10.0
#: what stands for a password wherever a URL is shown
MASK = "****"
_CREDENTIALS = re.compile(r"(zk://[^:/@,\s]*):\S*@", re.IGNORECASE)


class Acl(enum.Enum):
    """Who may do what with a znode corral creates, when its URL has credentials
    (without, every znode is open, as ZooKeeper's default)."""

    READABLE = "readable"  # everyone reads, the credentials' user does everything
    PRIVATE = "private"  # the credentials' user only


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
    """`zk://[USER:PASSWORD@]HOST:PORT[,HOST:PORT...]/PATH`. Shown (str, repr) with
    the password masked."""

    hosts: tuple[tuple[str, int], ...]
    path: str
    user: str = ""
    password: str = field(default="", repr=False)

    @property
    def connect_string(self) -> str:
        return ",".join(f"{host}:{port}" for host, port in self.hosts)

    def __str__(self) -> str:
        credentials = f"{self.user}:{MASK}@" if self.user else ""
        return f"zk://{credentials}{self.connect_string}{self.path}"

    def auth_data(self) -> list[tuple[str, str]]:
        """kazoo's `auth_data`: the digest credentials ([] without)."""
        return [("digest", f"{self.user}:{self.password}")] if self.user else []

    def acl(self, kind: Acl) -> list[Any]:
        """The ACL of a znode of `kind` created through this URL (open without credentials)."""
        from kazoo.security import OPEN_ACL_UNSAFE, make_acl, make_digest_acl

        if not self.user:
            return list(OPEN_ACL_UNSAFE)
        mine = make_digest_acl(self.user, self.password, all=True)
        if kind is Acl.PRIVATE:
            return [mine]
        return [mine, make_acl("world", "anyone", read=True)]


def mask_credentials(text: str) -> str:
    """`text` with the password of every zk://USER:PASSWORD@ in it masked."""
    return _CREDENTIALS.sub(rf"\1:{MASK}@", text)


def kazoo_client(url: ZooKeeperUrl, timeout: float, **options: Any) -> Any:
    """A KazooClient for `url`: authenticated with its credentials, and creating its
    znodes `Acl.READABLE` unless told otherwise (`options`: kazoo's own, e.g. retries)."""
    from kazoo.client import KazooClient

    return KazooClient(hosts=url.connect_string, timeout=timeout, auth_data=url.auth_data() or None,
                       default_acl=url.acl(Acl.READABLE), **options)


def is_zk_url(text: str) -> bool:
    return text.strip().lower().startswith("zk://")


def parse_zk_url(text: str) -> ZooKeeperUrl:
    """Parse `zk://[user:password@]host:port[,host:port...]/path`; ZooKeeperUrlError
    names what is wrong (the password masked)."""
    raw = text.strip()
    shown = repr(mask_credentials(text))
    if not is_zk_url(raw):
        raise ZooKeeperUrlError(f"invalid ZooKeeper URL {shown}: it must start with zk://")
    rest = raw[len("zk://"):]
    authority, slash, path = rest.partition("/")
    if not slash or not path.strip("/"):
        raise ZooKeeperUrlError(f"invalid ZooKeeper URL {shown}: it names no path, e.g. zk://127.0.0.1:2181/corral")
    credentials, at, hosts_part = authority.rpartition("@")
    user, colon, password = credentials.partition(":")
    if not at and "@" in rest:
        raise ZooKeeperUrlError(f"invalid ZooKeeper URL {shown}: a password cannot contain '/'")
    if at and (not user or not colon or not password):
        raise ZooKeeperUrlError(f"invalid ZooKeeper URL {shown}: credentials must be USER:PASSWORD@, "
                                "both non-empty")
    hosts = []
    for item in hosts_part.split(","):
        host, sep, port = item.strip().rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ZooKeeperUrlError(f"invalid ZooKeeper URL {shown}: {item.strip()!r} is not HOST:PORT")
        hosts.append((host, int(port)))
    clean = "/" + "/".join(part for part in path.split("/") if part)
    return ZooKeeperUrl(tuple(hosts), clean, user, password)


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


def encode_master_info(master_id: str, hostname: str, ip: str, port: int, version: str, transport: str = "",
                       https: bool = False) -> bytes:
    """A contender's content: Mesos' JSON MasterInfo (`port` is the HTTP port), and
    corral's own `transport`: where the master's transport listens while it leads (so
    followers send to a new leader at once: ZeroMQ holds what they send until it binds)
    and `scheme` ("https" when its HTTP port serves TLS; absent: http)."""
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
    if https:
        doc["scheme"] = "https"
    return json.dumps(doc, sort_keys=True).encode()


@dataclass(frozen=True, slots=True)
class ContenderInfo:
    """What followers need from a contender's JSON: who it is, its HTTP address, and
    (corral's masters say) its transport address ("" when the JSON has none) and whether
    its HTTP port serves TLS."""

    master_id: str
    hostname: str
    ip: str
    port: int
    transport: str = ""
    https: bool = False

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
    scheme = doc.get("scheme", "http")
    if scheme not in ("http", "https"):
        raise MasterInfoError(f"{where}: its MasterInfo scheme {scheme!r} is neither http nor https")
    return ContenderInfo(str(doc.get("id", "")), str(address.get("hostname") or doc.get("hostname") or ip), ip, port,
                         transport, scheme == "https")


def _ipv4_as_int(ip: str) -> int:
    """Mesos' MasterInfo.ip: the IPv4 address as a number in network byte order read
    little-endian (0 when `ip` is not an IPv4 literal)."""
    parts = ip.split(".")
    if len(parts) != 4 or not all(p.isdigit() and int(p) < 256 for p in parts):
        return 0
    return int.from_bytes(bytes(int(p) for p in parts), "little")
