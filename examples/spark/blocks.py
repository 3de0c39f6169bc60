"""Shuffle blocks between executors: each executor's `BlockServer` streams blocks of
its map output files to reducers (sendfile, straight from the file), and a reducer's
`BlockClient` decodes them frame by frame as they arrive, over connections it keeps
per peer and thread.

A request is one frame (4-byte length, pickled (token, shuffle id, reduce id, map ids));
the answer is, per map id, a header (status, length) and that many bytes of frames. A
request with the wrong token closes the connection."""
from __future__ import annotations

import enum
import hmac
import logging
import pickle
import socket
import struct
import threading
from typing import Any, Iterator

from corral.examples.spark import serde
from corral.examples.spark.shuffle import FetchFailed, ShuffleStore
from corral.examples.spark.wire import LENGTH

log = logging.getLogger(__name__)

BLOCK_HEADER = struct.Struct("<BQ")
#: seconds a reducer waits on a silent peer before it reports a fetch failure
FETCH_TIMEOUT = 60.0


class BlockStatus(enum.IntEnum):
    OK = 0
    MISSING = 1


class BlockServer:
    """Serves `store`'s blocks on `host` (an ephemeral port): one thread per connection."""

    def __init__(self, store: ShuffleStore, token: str, host: str) -> None:
        self.store = store
        self._token = token.encode()
        self._listener = socket.create_server((host, 0))
        self.address = f"{host}:{self._listener.getsockname()[1]}"
        self._closed = False

    def start(self) -> None:
        threading.Thread(target=self._accept, name="block-server", daemon=True).start()

    def close(self) -> None:
        self._closed = True
        self._listener.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(sock,), name="block-conn", daemon=True).start()

    def _serve(self, sock: socket.socket) -> None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        reader = sock.makefile("rb")
        try:
            while True:
                header = reader.read(LENGTH.size)
                if len(header) < LENGTH.size:
                    return
                request = reader.read(LENGTH.unpack(header)[0])
                token, shuffle_id, reduce_id, map_ids = pickle.loads(request)
                if not hmac.compare_digest(token, self._token):
                    log.warning("block request with a wrong token: connection closed")
                    return
                for map_id in map_ids:
                    self._send_block(sock, shuffle_id, map_id, reduce_id)
        except (OSError, ValueError, pickle.UnpicklingError) as exc:
            log.debug("block connection ended: %s", exc)
        finally:
            reader.close()
            sock.close()

    def _send_block(self, sock: socket.socket, shuffle_id: int, map_id: int, reduce_id: int) -> None:
        output = self.store.get(shuffle_id, map_id)
        if output is None:
            sock.sendall(BLOCK_HEADER.pack(BlockStatus.MISSING, 0))
            return
        start, length = output.block(reduce_id)
        try:
            f = open(output.path, "rb")
        except FileNotFoundError:
            sock.sendall(BLOCK_HEADER.pack(BlockStatus.MISSING, 0))
            return
        with f:
            sock.sendall(BLOCK_HEADER.pack(BlockStatus.OK, length))
            if length:
                sock.sendfile(f, start, length)


class BlockClient:
    """Reads blocks from other executors' servers (and this executor's own store directly)."""

    def __init__(self, token: str, own_executor_id: str, own_store: ShuffleStore) -> None:
        self._token = token.encode()
        self._own = own_executor_id
        self._store = own_store
        self._local = threading.local()

    def batches(self, executor_id: str, address: str, shuffle_id: int, reduce_id: int, map_ids: list[int],
                counter: Any) -> Iterator[list[Any]]:
        """The record batches of blocks (shuffle_id, map_id, reduce_id) held by
        `executor_id`; adds the bytes read to `counter.shuffle_read_bytes`; FetchFailed
        when one cannot be read."""
        if executor_id == self._own:
            for map_id in map_ids:
                try:
                    yield from self._store.read_local(shuffle_id, map_id, reduce_id, counter)
                except (KeyError, OSError, EOFError) as exc:
                    raise FetchFailed(shuffle_id, map_id, executor_id, f"{type(exc).__name__}: {exc}") from exc
            return
        yield from self._remote(executor_id, address, shuffle_id, reduce_id, map_ids, counter)

    def _remote(self, executor_id: str, address: str, shuffle_id: int, reduce_id: int, map_ids: list[int],
                counter: Any) -> Iterator[list[Any]]:
        map_id = map_ids[0]
        done = False
        try:
            sock, reader = self._connection(address)
            request = pickle.dumps((self._token, shuffle_id, reduce_id, map_ids), 5)
            sock.sendall(LENGTH.pack(len(request)) + request)
            for map_id in map_ids:
                header = reader.read(BLOCK_HEADER.size)
                if len(header) < BLOCK_HEADER.size:
                    raise EOFError("the connection closed")
                status, length = BLOCK_HEADER.unpack(header)
                if status != BlockStatus.OK:
                    raise FetchFailed(shuffle_id, map_id, executor_id, "the executor no longer has this output")
                counter.shuffle_read_bytes += length
                yield from serde.read_frames(reader, length)
            done = True
        except (OSError, EOFError, ValueError) as exc:
            raise FetchFailed(shuffle_id, map_id, executor_id, f"{type(exc).__name__}: {exc}") from exc
        finally:
            if not done:  # an unread answer may be left on it
                self._drop(address)

    def _connection(self, address: str) -> tuple[socket.socket, Any]:
        pool = self._pool()
        conn = pool.get(address)
        if conn is None:
            host, _, port = address.rpartition(":")
            sock = socket.create_connection((host, int(port)), timeout=FETCH_TIMEOUT)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = pool[address] = (sock, sock.makefile("rb", buffering=1 << 16))
        return conn

    def _pool(self) -> dict[str, tuple[socket.socket, Any]]:
        pool = getattr(self._local, "pool", None)
        if pool is None:
            pool = self._local.pool = {}
        return pool

    def _drop(self, address: str) -> None:
        conn = self._pool().pop(address, None)
        if conn is not None:
            conn[1].close()
            conn[0].close()
