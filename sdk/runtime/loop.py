"""Runs one engine for real: feeds it from a ZeroMQ transport and the clock, performs
its actions.

One I/O thread per process runs `Runtime.run()`. Other threads talk to the engine only
through `call_soon` (queued, then run on the I/O thread) or read it under `lock`
(HTTP snapshots). Frames whose body does not decode are counted and logged; a handler
that raises is counted and logged with its traceback; neither stops the loop.

A runtime may be given a gate (`acting`): a leading master's runs only while its
leadership says it may act. The gate is asked before each turn reads the transport and
again before the turn's actions are performed and before its messages leave; once it
says no, the turn's actions are dropped and the loop ends, and a `call` whose actions
were not all carried out raises `NotActing` (an operator's change is never reported
done when its registry write was dropped).
"""
from __future__ import annotations

import collections
import gc
import logging
import threading
import time
from typing import TYPE_CHECKING, Any, Callable

from google.protobuf.message import DecodeError

from corral._core.envelope import Dispatcher, Route
from corral.engines.base import Engine, Send
from corral.net.protocol import BODY_CLASS, PARSE, TYPE_NUMBER, MessageType, PeerEvent
from corral.net.transport import MAX_FRAME_SIZE, Transport
from corral.runtime.actions import Performer, Performers
from corral.runtime.clock import PROCESS_CLOCK, Clock

if TYPE_CHECKING:
    from corral.security.links import CurveLinks

log = logging.getLogger(__name__)


class NotActing(RuntimeError):
    """The runtime stopped acting (its gate closed, or it was stopped) before what a
    `call` asked for was carried out."""


class _Waiter:
    """A `call` waiting for its turn's actions to be carried out."""

    __slots__ = ("done", "performed")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.performed = False

#: longest the loop sleeps without looking at its command queue (a safety net only:
#: commands wake the loop)
MAX_WAIT = 1.0
#: commands run per loop iteration at most: a thread that queues calls faster than the
#: loop runs them (a user thread sending status updates in a tight loop) must not keep
#: the loop from sending what they caused and from reading its socket
COMMANDS_PER_ITERATION = 1024

#: the cyclic collector's first threshold in a process that runs a runtime: messages
#: allocate many short-lived objects, and at CPython's default (700) young collections
#: cost about a sixth of the status-update path, and at 50 000 still 5% (benches/README.md)
GC_YOUNG_THRESHOLD = 200_000


def tune_gc() -> None:
    """Raise the collector's first threshold to GC_YOUNG_THRESHOLD (never lower it)."""
    young, middle, old = gc.get_threshold()
    if young < GC_YOUNG_THRESHOLD:
        gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)


class Runtime:
    def __init__(
        self,
        engine_factory: Callable[[str], Engine],
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Clock = PROCESS_CLOCK,
        batch: bool = True,
        curve: CurveLinks | None = None,
        acting: Callable[[], bool] | None = None,
        advertise: str | None = None,
    ) -> None:
        """`clock` gives every `now` the engine sees and every deadline the loop waits
        for: monotonic, so that a wall-clock step neither fires nor stalls the engine's
        timers (`corral.runtime.clock`).

        `batch` (on by default): the engine collects the status path's updates and
        acks for one peer during one loop iteration in one message (`Engine.batch`), and
        the messages it sends to one peer during one iteration leave as one ZeroMQ frame
        (see `corral.net.transport`). Nothing waits for a batch to fill: each iteration
        sends what it produced. `batch=False` sends every update, ack and message in a
        frame of its own, as Mesos does. `advertise`: the host peers are told to send
        to, when it is not `host` (see `Transport`).

        `curve`: every link over CurveZMQ (see `corral.net.transport`); the engine then
        learns each message's sender from its connection, as `engine.principal` (the
        principal its key belongs to), and authorises by it (`corral.engines.base`).

        `acting` (None: always): whether the engine may act at all right now (see the
        module's docstring)."""
        self.clock = clock
        self._acting = acting
        self.lock = threading.RLock()
        self.undecodable = 0
        #: how each kind of action other than Send is carried out (`add_performers`: the
        #: daemon's or driver's own; see `corral.runtime.actions`)
        self._performers: dict[type, Performer] = {}
        #: run after each turn's other actions, before its messages leave (`add_commit`)
        self._commits: list[Callable[[], None]] = []
        self._commands: collections.deque[tuple[Callable[..., Any], tuple[Any, ...]]] = collections.deque()
        #: the loop may be blocked in `wait` (set before it looks at the commands) and no
        #: command has woken it yet: only then does a new command need to wake it
        self._waiting = False
        self._after_perform: list[_Waiter] = []
        self._stopping = threading.Event()
        self.stopped = threading.Event()
        self.dispatcher = Dispatcher(max_frame_size=MAX_FRAME_SIZE, on_error=self._dispatch_error)
        self.transport = Transport(host, port, self.dispatcher, on_peer=self._peer_event, batch=batch,
                                   advertise=advertise, curve=curve)
        self.address = self.transport.address
        #: the engine, built for this runtime's transport address
        self.engine = engine_factory(self.address)
        self.engine.batch = batch
        if curve is not None:
            self.dispatcher.authenticate(self.engine)
        for msg_type in self.engine.handled_types():
            self.dispatcher.register(int(msg_type), self._route(msg_type))
        self._thread: threading.Thread | None = None

    # -- inbound ------------------------------------------------------------------
    def _route(self, msg_type: MessageType) -> Any:
        """How the dispatcher delivers messages of `msg_type` to the engine (parsed,
        with the sender and the time; an undecodable body counted and logged)."""
        cls = BODY_CLASS[msg_type]

        def undecodable(sender: str, exc: Exception) -> None:
            self.undecodable += 1
            log.warning("undecodable %s body from %s: %s", cls.__name__, sender, exc)

        return Route(PARSE[msg_type], self.engine.handler(msg_type), self.clock, DecodeError, undecodable)

    def _peer_event(self, address: str, event: PeerEvent) -> None:
        """Called on the I/O thread (inside `wait`): hand the event to the engine."""
        with self.lock:
            self.engine.peer_event(address, event, self.clock())

    def _dispatch_error(self, kind: Any, detail: str, exc: BaseException | None) -> None:
        if exc is not None:
            log.error("handler failed (%s): %s", kind.name, detail, exc_info=exc)
        else:
            log.warning("dropped frame (%s): %s", kind.name, detail)

    # -- outbound -----------------------------------------------------------------
    def _perform(self) -> bool:
        """Carry out the engine's actions in order, except that the messages leave
        together once the others are done: serialised in turn, then handed to the
        transport back to back (one wake-up of ZeroMQ's I/O thread for several
        messages, instead of one per message while the next is being serialised), and
        with batching packed into one frame per peer. No action ever runs before one
        the engine emitted ahead of it (a journal write still precedes the ack it
        covers; a commit added by `add_commit` runs after the others, before the messages).
        False when the gate dropped them (see the module's docstring)."""
        performers = self._performers
        outgoing = []
        actions = self.engine.take_actions()
        if not self.acting():
            return False
        for action in actions:
            try:
                if type(action) is Send:
                    body = action.body
                    outgoing.append((action.to, TYPE_NUMBER[type(body)], body.SerializeToString()))
                else:
                    performers[type(action)](action)
            except Exception:
                log.exception("performing %s failed", type(action).__name__)
        for commit in self._commits:
            try:
                commit()
            except Exception:
                log.exception("committing the turn's writes failed")
        if self._acting is not None and not self.acting():
            return False  # a performer or a commit ended the leadership (a registry write failed)
        send = self.transport.send
        for to, type_number, data in outgoing:
            try:
                send(to, type_number, data)
            except Exception:
                log.exception("sending a %d message to %s failed", type_number, to)
        self.transport.flush()
        return True

    def acting(self) -> bool:
        """Whether the gate lets the engine act; once it does not, the loop ends."""
        if self._acting is None or self._acting():
            return True
        if not self._stopping.is_set():
            log.warning("no longer acting: what the engine wanted done is dropped and the loop ends")
            self._stopping.set()
        return False

    # -- other threads ------------------------------------------------------------
    def add_performers(self, performers: Performers) -> None:
        """Carry out each of these action types with its performer (on the I/O thread,
        in the order the engine emitted them). Send actions are the runtime's own."""
        if Send in performers:
            raise ValueError("Send actions are the runtime's own")
        self._performers.update(performers)

    def add_commit(self, commit: Callable[[], None]) -> None:
        """Call `commit` (on the I/O thread) once each turn's actions other than Send
        are performed and before its messages leave: a store that stages its writes
        (the master's registry in ZooKeeper) makes a whole turn's durable at once, and
        none of the turn's messages acknowledges what it did not keep."""
        self._commits.append(commit)

    def performs(self) -> frozenset[type]:
        """Every action type this runtime carries out, Send included."""
        return frozenset({Send, *self._performers})

    def call_soon(self, fn: Callable[..., Any], *args: Any) -> None:
        """Thread-safe: run fn(*args) on the I/O thread, then perform the engine's actions."""
        self._commands.append((fn, args))
        if self._waiting:  # (read after the append: see `run`)
            # one wake-up per wait: the commands that follow it, while the loop has not
            # yet run, find it cleared (a user thread calling in a loop would otherwise
            # send one per call until the I/O thread gets the GIL back)
            self._waiting = False
            self.transport.wake()

    def call(self, fn: Callable[..., Any], *args: Any, timeout: float = 10.0) -> Any:
        """Thread-safe: run fn(*args) on the I/O thread and return its result once the
        actions it caused have been performed (e.g. an operator request answered only
        after what it changed is in the registry). NotActing when the runtime stopped
        before they were."""
        waiter = _Waiter()
        outcome: list[Any] = []

        def run() -> None:
            try:
                outcome.append((True, fn(*args)))
            except Exception as exc:
                outcome.append((False, exc))
            self._after_perform.append(waiter)

        self.call_soon(run)
        name = getattr(fn, "__name__", fn)
        deadline = time.monotonic() + timeout
        while not waiter.done.wait(min(0.05, max(0.0, deadline - time.monotonic()))):
            if self.stopped.is_set() and not waiter.done.is_set():
                raise NotActing(f"the runtime stopped before it ran {name}")
            if time.monotonic() >= deadline:
                raise TimeoutError(f"the I/O thread did not run {name} within {timeout:g}s")
        if not waiter.performed:
            raise NotActing(f"the runtime stopped acting before what {name} caused was carried out")
        ok, value = outcome[0]
        if not ok:
            raise value
        return value

    def _run_commands(self) -> None:
        commands = self._commands
        for _ in range(min(len(commands), COMMANDS_PER_ITERATION)):
            fn, args = commands.popleft()
            try:
                fn(*args)
            except Exception:
                log.exception("command %s failed", getattr(fn, "__name__", fn))

    # -- the loop -------------------------------------------------------------------
    def run(self) -> None:
        """Run the loop on this thread until `stop()`."""
        tune_gc()
        try:
            with self.lock:
                self._release(self._perform())
            while not self._stopping.is_set():
                deadline = self.engine.next_deadline()
                now = self.clock()
                timeout = MAX_WAIT if deadline is None else min(MAX_WAIT, max(0.0, deadline - now))
                # set before the commands are looked at: a command appended after the
                # look sees it set and wakes us; one appended before is seen here
                self._waiting = True
                if self._commands:
                    timeout = 0.0
                readable = self.transport.wait(timeout)
                self._waiting = False
                if not self.acting():
                    break
                with self.lock:
                    if readable:
                        self.transport.drain()
                    self._run_commands()
                    self.engine.tick(self.clock())
                    self._release(self._perform())
        finally:
            self.transport.close()
            self._release(False)
            self.stopped.set()

    def _release(self, performed: bool) -> None:
        """Wake the calls waiting for this turn: `performed` says whether their actions
        were carried out."""
        while self._after_perform:
            waiter = self._after_perform.pop()
            waiter.performed = performed
            waiter.done.set()

    def start(self, name: str = "corral-io") -> None:
        """Run the loop on a new daemon thread."""
        self._thread = threading.Thread(target=self.run, name=name, daemon=True)
        self._thread.start()

    def on_io_thread(self) -> bool:
        return self._thread is threading.current_thread()

    def stop(self) -> None:
        self._stopping.set()
        self.transport.wake()

    def join(self, timeout: float | None = None) -> bool:
        return self.stopped.wait(timeout)

    def metrics(self) -> dict[str, int]:
        counters = dict(self.dispatcher.counters())
        counters["undecodable"] = self.undecodable
        transport = self.transport
        counters["sent"] = transport.counters.sent
        counters["send_dropped"] = transport.counters.dropped
        if transport.gate is not None:
            counters["curve_refused"] = transport.curve_refused
            counters["curve_failed"] = transport.counters.curve_failed
            counters["no_server_key"] = transport.counters.no_server_key
        return counters
