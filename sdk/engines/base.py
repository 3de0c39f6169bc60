"""What every sans-I/O engine shares: message handler tables, timers, the action outbox.

An engine is a pure state machine. Runtimes (and the simulator) feed it decoded
messages with `handle(sender, body, now)` and the passage of time with `tick(now)`,
then collect what it wants done with `take_actions()`. Engines never touch sockets,
processes, files or the clock. A method marked `@on(message type)` handles that
message; one marked `@on_timer(kind)` runs when a timer of that kind (a member of the
engine's timer enum, set with `set_timer`) fires.

The status path's updates and acks are rows (`send_row`): each row leaves in a message
of its own, or, with `batch` on, in one message per kind and peer for the turn (until
`take_actions`); see `corral.engines.status`.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, Callable, Hashable

from google.protobuf.message import Message

from corral._core.timers import TimerQueue
from corral.engines._callback import Callback  # noqa: F401  (an action, with Send below: the engines import both from here)
from corral.engines.status import Batch
from corral.net.protocol import MessageType, PeerEvent, message_type

Handler = Callable[[Any, str, Any, float], None]
#: what happens when a timer fires: fn(engine, subject, now)
TimerHandler = Callable[[Any, Hashable, float], None]


def on(msg_type: MessageType) -> Callable[[Handler], Handler]:
    """Mark an engine method as the handler of one message type."""

    def mark(fn: Handler) -> Handler:
        fn.__corral_handles__ = msg_type  # type: ignore[attr-defined]
        return fn

    return mark


def on_timer(kind: enum.Enum) -> Callable[[TimerHandler], TimerHandler]:
    """Mark an engine method as what happens when a timer of `kind` (a member of the
    engine's timer enum) fires: fn(self, subject, now), `subject` what the timer was set
    for (a framework id, a task id, ...; None for the engine's own timers)."""

    def mark(fn: TimerHandler) -> TimerHandler:
        fn.__corral_fires__ = kind  # type: ignore[attr-defined]
        return fn

    return mark


@dataclass(slots=True)
class Send:
    """Send `body` to the transport address `to` (at-most-once)."""

    to: str
    body: Message

    @property
    def type(self) -> MessageType:
        return message_type(self.body)




class MasterLost:
    """The connection to the master is gone (or it stopped answering): find the leading
    master and `connect` again."""


#: most rows one batched message carries
BATCH_MAX_ROWS = 256


def earliest(*deadlines: float | None) -> float | None:
    """The earliest of `deadlines` (None: no deadline), None when there is none."""
    known = [d for d in deadlines if d is not None]
    return min(known) if known else None


class Engine:
    """Base of the master, agent, scheduler and executor engines."""

    _handlers: dict[MessageType, Handler]
    _timer_handlers: dict[enum.Enum, TimerHandler]
    #: every type of action the engine emits (`take_actions`): what a runtime, daemon or
    #: the simulator must carry out for it (tests/engines/test_engine_actions.py checks
    #: it against the engine's code)
    ACTIONS: frozenset[type] = frozenset()
    #: collect the status path's rows for one peer and turn in one message (`send_row`);
    #: runtimes set it from their `batch` flag
    batch: bool
    #: who sent the message being handled, as its connection proved it (the principal
    #: of the CurveZMQ key it connected with; set by the runtime's dispatcher before a
    #: frame's messages are handled); None when links are not authenticated. Handlers
    #: authorise by it, never by the sender address a message's header claims.
    principal: str | None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        table: dict[MessageType, Handler] = {}
        timers: dict[enum.Enum, TimerHandler] = {}
        for klass in reversed(cls.__mro__):
            for value in vars(klass).values():
                handles = getattr(value, "__corral_handles__", None)
                if handles is not None:
                    table[handles] = value
                fires = getattr(value, "__corral_fires__", None)
                if fires is not None:
                    timers[fires] = value
        cls._handlers = table
        cls._timer_handlers = timers

    def __init__(self) -> None:
        # (instance attributes: handlers on the status path read them per message)
        self.batch = False
        self.principal = None
        self._actions: list[Any] = []
        self._timers = TimerQueue()
        #: (timer kind, subject) -> the timer queue's handle
        self._timer_handles: dict[tuple[enum.Enum, Hashable], int] = {}
        #: batches among this turn's actions, and (batching) the one open towards each peer
        self._batches = 0
        self._open: dict[str, Batch] = {}

    # -- feeding the engine -------------------------------------------------
    @classmethod
    def handled_types(cls) -> list[MessageType]:
        return list(cls._handlers)

    def handle(self, sender: str, body: Message, now: float) -> None:
        """Process one decoded message from `sender`."""
        self._handlers[message_type(body)](self, sender, body, now)

    def handler(self, msg_type: MessageType) -> Callable[[str, Any, float], None]:
        """`handle` for messages known to be of `msg_type`, without looking the type up
        on every message (the runtimes' dispatch already did)."""
        return self._handlers[msg_type].__get__(self)

    def tick(self, now: float) -> None:
        """Fire every timer that is due."""
        for key in self._timers.pop_due(now):
            self._timer_handles.pop(key, None)
            kind, subject = key
            handler = self._timer_handlers.get(kind)
            if handler is None:
                raise NotImplementedError(f"{type(self).__name__} set a timer it does not handle: {kind!r}")
            handler(self, subject, now)

    def peer_event(self, address: str, event: PeerEvent, now: float) -> None:
        """The connection towards `address` dropped or came back (default: ignored)."""

    def next_deadline(self) -> float | None:
        return self._timers.next_deadline()

    def take_actions(self) -> list[Any]:
        actions, self._actions = self._actions, []
        if self._batches:
            self._batches = 0
            self._open.clear()
            actions = [Send(a.to, a.message()) if type(a) is Batch else a for a in actions]
        return actions

    # -- helpers for subclasses -----------------------------------------------
    def send(self, to: str | None, body: Message) -> None:
        if to:
            self._actions.append(Send(to, body))
            if self._open:
                self._open.pop(to, None)  # later rows must not overtake this message

    def send_row(self, to: str, kind: tuple[Any, ...], row: tuple[Any, ...]) -> None:
        """Send a row of the status path (see `Batch`) to `to`: in a message of its own;
        with `batch`, in the message of this kind that collects the turn's rows for `to`
        (a new one once another message went to `to`, or at BATCH_MAX_ROWS)."""
        if not self.batch:
            self._actions.append(Send(to, kind[0](*kind[1:], [row])))
            return
        slot = self._open.get(to)
        if slot is None or slot.kind != kind or len(slot.rows) >= BATCH_MAX_ROWS:
            slot = Batch(to, kind)
            self._actions.append(slot)
            self._batches += 1
            self._open[to] = slot
        slot.rows.append(row)

    def send_rows(self, to: str, kind: tuple[Any, ...], rows: list[tuple[Any, ...]]) -> None:
        """`send_row` for each of `rows`, in order, in one call (a handler's rows for one
        peer). `rows` becomes the engine's: the caller must not change it afterwards."""
        if not self.batch:
            make, fields, append = kind[0], kind[1:], self._actions.append
            for row in rows:
                append(Send(to, make(*fields, [row])))
            return
        start = 0
        slot = self._open.get(to)
        if slot is not None and slot.kind == kind:
            start = BATCH_MAX_ROWS - len(slot.rows)
            slot.rows.extend(rows[:start] if start < len(rows) else rows)
        while start < len(rows):
            slot = Batch(to, kind)
            slot.rows = rows if start == 0 and len(rows) <= BATCH_MAX_ROWS else rows[start:start + BATCH_MAX_ROWS]
            self._actions.append(slot)
            self._batches += 1
            self._open[to] = slot
            start += BATCH_MAX_ROWS

    def emit(self, action: Any) -> None:
        self._actions.append(action)

    def set_timer(self, kind: enum.Enum, deadline: float, subject: Hashable = None) -> None:
        """(Re)arm the timer of `kind` for `subject`: one timer per kind and subject."""
        key = (kind, subject)
        self.cancel_timer(kind, subject)
        self._timer_handles[key] = self._timers.schedule(deadline, key)

    def cancel_timer(self, kind: enum.Enum, subject: Hashable = None) -> None:
        handle = self._timer_handles.pop((kind, subject), None)
        if handle is not None:
            self._timers.cancel(handle)

    def has_timer(self, kind: enum.Enum, subject: Hashable = None) -> bool:
        return (kind, subject) in self._timer_handles
