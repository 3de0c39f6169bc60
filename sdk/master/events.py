"""The master's operator event stream, `GET /events`: server-sent events (the browser's
EventSource reads them, and so does `curl -N`), like Mesos' operator SUBSCRIBE.

Each event is `event: NAME` and `data: JSON`:
- SUBSCRIBED `{"state": <the /state document>}`, first, taken together with the
  subscription, so that the events after it are exactly what changed since;
- TASK_ADDED `{"tasks": [<task>, ...]}`, one per framework (tasks launched, or learned
  from an agent);
- TASK_UPDATED `{"framework_id": ID, "tasks": [[task id, state, healthy], ...]}`, one
  per framework: the latest state of each of its tasks that had updates since the last
  event (several updates of one task in that time are one entry; `GET /task` has its
  whole history; healthy is null when not reported; a late update of a task the master
  no longer knows may be among them: subscribers ignore tasks they do not know);
- AGENT_ADDED / AGENT_UPDATED `{"agent": <agent>}`, AGENT_REMOVED `{"agent_id": ID}`;
- FRAMEWORK_ADDED / FRAMEWORK_UPDATED / FRAMEWORK_REMOVED `{"framework": <framework
  without its tasks>}`;
- HEARTBEAT `{"now": T, "counters": {...}, "task_counters": {...}}` every
  REFRESH_INTERVAL, which is also when agents and frameworks whose numbers (resources
  used and offered, offers, connection, counters) changed are sent as *_UPDATED.

The engine records its events in `engine.operator_events` while anyone subscribes
(None otherwise: nothing is produced); a pump on the HTTP server's loop takes them
every FLUSH_INTERVAL under the runtime lock, turns them into views, and writes them to
every subscriber. A subscriber that falls MAX_BACKLOG events behind is disconnected
(its EventSource reconnects and starts again from a new SUBSCRIBED).

Each subscriber sees what its principal (the request's, on a master with HTTP
credentials) may: SUBSCRIBED is its /state, and the events of a framework (its
FRAMEWORK_* events) and of its tasks (TASK_*) go only to the principals the ACLs let
view that framework (view_frameworks), and its tasks (view_tasks too), by the
framework's user; agents and heartbeats go to everyone.
"""
from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import dataclass
from typing import Any, Callable

import orjson
from aiohttp import web

from corral.engines.master import MasterEngine
from corral.engines.master.operator import OperatorEvent, OperatorEvents
from corral.engines.master.snapshot import STATE_NAMES, agent_view, framework_record, framework_view, task_counters, \
    task_view
from corral.net.http import REQUEST_PRINCIPAL
from corral.runtime.clock import PROCESS_CLOCK, Clock
from corral.security.acls import Acls, Action

log = logging.getLogger(__name__)

#: seconds between two takes of the engine's events (the longer, the more updates of one
#: task become one entry: issue 24 wants a new task shown within 2 s)
FLUSH_INTERVAL = 0.5
#: seconds between two refreshes of the agents' and frameworks' numbers (and heartbeats)
REFRESH_INTERVAL = 1.0
#: events a subscriber may have unsent before it is disconnected
MAX_BACKLOG = 1000
#: tasks read from the engine per hold of the runtime lock
TAKE_SLICE = 1000


def sse(name: str, data: Any) -> bytes:
    """One server-sent event."""
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


@dataclass(frozen=True, slots=True)
class Audience:
    """Who may receive an event: the principals the ACLs let do each of `actions` to
    `user` (no actions: everyone)."""

    actions: tuple[Action, ...] = ()
    user: str | None = None

    def admits(self, acls: Acls, principal: str | None) -> bool:
        return all(acls.authorized(action, principal, self.user) for action in self.actions)


EVERYONE = Audience()


def framework_viewers(user: str | None) -> Audience:
    return Audience((Action.VIEW_FRAMEWORKS,), user)


def task_viewers(user: str | None) -> Audience:
    return Audience((Action.VIEW_FRAMEWORKS, Action.VIEW_TASKS), user)


#: an event's name, its data, and who may receive it
Payload = tuple[str, Any, Audience]


class Subscriber:
    """One subscription, by `principal` (None: unauthenticated): the events for it (None:
    it was dropped) wait in `queue`, which the HTTP server's loop reads."""

    __slots__ = ("queue", "dropped", "principal")

    def __init__(self, principal: str | None = None) -> None:
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.dropped = False
        self.principal = principal


class EventStream:
    """Serves `/events` for the master engine run by `lock`'s runtime; `state` makes the
    SUBSCRIBED event's state (the daemon's /state)."""

    def __init__(self, engine: MasterEngine, lock: threading.RLock, state: Callable[[], dict[str, Any]],
                 clock: Clock = PROCESS_CLOCK) -> None:
        self.engine = engine
        self.lock = lock
        self._state = state
        self._clock = clock
        #: guarded by `lock` (the runtime's): events taken under it go to these
        self._subscribers: set[Subscriber] = set()
        self._pump: asyncio.Task[None] | None = None
        self._agents: dict[str, dict[str, Any]] = {}
        self._frameworks: dict[str, dict[str, Any]] = {}
        self._next_refresh = 0.0

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    # -- the route -------------------------------------------------------------------
    async def serve(self, request: web.Request, closing: asyncio.Event) -> web.StreamResponse:
        loop = asyncio.get_running_loop()
        subscriber = Subscriber(request.get("principal"))
        first = await loop.run_in_executor(None, self.subscribe, subscriber)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                                               "Access-Control-Allow-Origin": "*", "X-Accel-Buffering": "no"})
        try:
            await response.prepare(request)
            await response.write(first)
            if self._pump is None or self._pump.done():
                self._pump = loop.create_task(self._run_pump(closing))
            closed = loop.create_task(closing.wait())
            try:
                while True:
                    get = loop.create_task(subscriber.queue.get())
                    done, _ = await asyncio.wait({get, closed}, return_when=asyncio.FIRST_COMPLETED)
                    if get not in done:
                        get.cancel()
                        break
                    chunk = get.result()
                    if chunk is None:
                        break
                    await response.write(chunk)
            finally:
                closed.cancel()
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self.unsubscribe(subscriber)
        return response

    def subscribe(self, subscriber: Subscriber) -> bytes:
        """The SUBSCRIBED event (the state its principal may see), made under the lock
        as the subscriber joins (so that it gets every event taken from then on)."""
        token = REQUEST_PRINCIPAL.set(subscriber.principal)
        try:
            with self.lock:
                if self.engine.operator_events is None:
                    self.engine.operator_events = OperatorEvents()
                state = self._state()
                self._subscribers.add(subscriber)
        finally:
            REQUEST_PRINCIPAL.reset(token)
        return sse("SUBSCRIBED", {"state": state})

    def unsubscribe(self, subscriber: Subscriber) -> None:
        with self.lock:
            self._subscribers.discard(subscriber)

    # -- the pump ------------------------------------------------------------------------
    async def _run_pump(self, closing: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        while not closing.is_set():
            try:
                await asyncio.wait_for(closing.wait(), FLUSH_INTERVAL)
            except asyncio.TimeoutError:
                pass
            by_principal, subscribers = await loop.run_in_executor(None, self.take)
            for subscriber in subscribers:
                if subscriber.dropped:
                    continue
                chunks = by_principal[subscriber.principal]
                if subscriber.queue.qsize() + len(chunks) > MAX_BACKLOG:
                    subscriber.dropped = True
                    subscriber.queue.put_nowait(None)
                    log.warning("an event stream subscriber fell %d events behind: disconnected", MAX_BACKLOG)
                    continue
                for chunk in chunks:
                    subscriber.queue.put_nowait(chunk)
            if not subscribers:
                return

    def take(self) -> tuple[dict[str | None, list[bytes]], list[Subscriber]]:
        """The events since the last take, as server-sent events for each subscriber's
        principal (those it may receive), and the subscribers. With nobody subscribed
        the engine stops producing events. The engine is read under the lock in slices
        of at most TAKE_SLICE tasks (the I/O thread goes on between them: a take may
        have 10 000 tasks); events are encoded outside it, each once."""
        with self.lock:
            subscribers = list(self._subscribers)
            if not subscribers:
                self.engine.operator_events = None
                self._agents.clear()
                self._frameworks.clear()
                return {}, []
            events = self.engine.operator_events or OperatorEvents()
            self.engine.operator_events = OperatorEvents()
            payloads, added = self._logged(events)
            now = self._clock()
            if now >= self._next_refresh:
                self._next_refresh = now + REFRESH_INTERVAL
                payloads.extend(self._refresh(now))
        by_framework: dict[str, list[Any]] = {}
        for (fid, _), task in added.items():
            by_framework.setdefault(fid, []).append(task)
        for fid, tasks in by_framework.items():
            views: list[dict[str, Any]] = []
            for start in range(0, len(tasks), TAKE_SLICE):
                with self.lock:
                    views.extend(task_view(t) for t in tasks[start:start + TAKE_SLICE])
            payloads.append((OperatorEvent.TASK_ADDED.value, {"tasks": views}, task_viewers(self._user(fid))))
        updated: dict[str, list[Any]] = {}
        users: dict[str, str | None] = {}
        ids = list(events.updated)
        for start in range(0, len(ids), TAKE_SLICE):
            with self.lock:
                for fid, (user, entries) in self._updated(set(ids[start:start + TAKE_SLICE]), added).items():
                    updated.setdefault(fid, []).extend(entries)
                    users[fid] = user
        for fid, entries in updated.items():
            payloads.append((OperatorEvent.TASK_UPDATED.value, {"framework_id": fid, "tasks": entries},
                             task_viewers(users[fid])))
        return self._addressed(payloads, subscribers), subscribers

    def _user(self, framework_id: str) -> str | None:
        with self.lock:
            fw = framework_record(self.engine, framework_id)
            return fw.info.user if fw is not None else None

    def _addressed(self, payloads: list[Payload], subscribers: list[Subscriber]) -> dict[str | None, list[bytes]]:
        """The events each subscriber's principal may receive (each encoded once)."""
        chunks = [(sse(name, data), audience) for name, data, audience in payloads]
        acls = self.engine.authorizer.acls
        if acls.permissive and not acls.rules:
            everything = [chunk for chunk, _ in chunks]
            return {s.principal: everything for s in subscribers}
        return {principal: [chunk for chunk, audience in chunks if audience.admits(acls, principal)]
                for principal in {s.principal for s in subscribers}}

    def _logged(self, events: OperatorEvents) -> tuple[list[Payload], dict[tuple[str, str], Any]]:
        """(Under the lock) the events of agents and frameworks, and the tasks added by
        (framework id, task id)."""
        added: dict[tuple[str, str], Any] = {}
        payloads: list[Payload] = []
        for kind, subject in events.log:
            if kind is OperatorEvent.TASK_ADDED:
                added[(subject.framework_id, subject.id)] = subject
            elif kind is OperatorEvent.AGENT_ADDED:
                view = agent_view(subject)
                self._agents[subject.id] = view
                payloads.append((kind.value, {"agent": view}, EVERYONE))
            elif kind is OperatorEvent.AGENT_REMOVED:
                self._agents.pop(subject.id, None)
                payloads.append((kind.value, {"agent_id": subject.id}, EVERYONE))
            else:  # FRAMEWORK_ADDED, FRAMEWORK_REMOVED
                view = framework_view(self.engine, subject, tasks=False)
                if kind is OperatorEvent.FRAMEWORK_ADDED:
                    self._frameworks[subject.id] = view
                else:
                    self._frameworks.pop(subject.id, None)
                payloads.append((kind.value, {"framework": view}, framework_viewers(subject.info.user)))
        return payloads, added

    def _updated(self, task_ids: set[str], added: dict[tuple[str, str], Any]) -> dict[str, tuple[str, list[Any]]]:
        """[task id, state, healthy] of each task of `task_ids` (under the lock), by
        framework (with the framework's user): the tasks of those ids of the active frameworks (active or completed
        tasks), and of the completed frameworks for ids no active one has; those in
        `added` are told there. (Set operations: a take may have 10 000 tasks.)"""
        out: dict[str, tuple[str, list[Any]]] = {}
        left = task_ids
        for frameworks in (self.engine.frameworks.values(), self.engine.completed_frameworks):
            found: set[str] = set()
            for fw in frameworks:
                if not left:
                    break
                tasks = fw.tasks
                hits = left & tasks.keys()
                entries = [(tid, STATE_NAMES[tasks[tid].state], tasks[tid].healthy) for tid in hits]
                if fw.completed and len(hits) < len(left):
                    done = {t.id: t for t in fw.completed}
                    more = (left - hits) & done.keys()
                    entries += [(tid, STATE_NAMES[done[tid].state], done[tid].healthy) for tid in more]
                    hits |= more
                found |= hits
                if added:
                    entries = [e for e in entries if (fw.id, e[0]) not in added]
                if entries:
                    out[fw.id] = (fw.info.user, entries)
            left = left - found
        return out

    def _refresh(self, now: float) -> list[Payload]:
        """AGENT_UPDATED and FRAMEWORK_UPDATED for those whose view changed, and a
        HEARTBEAT (under the lock)."""
        engine = self.engine
        payloads: list[Payload] = []
        for agent in engine.agents.values():
            view = agent_view(agent)
            if self._agents.get(agent.id) != view:
                self._agents[agent.id] = view
                payloads.append(("AGENT_UPDATED", {"agent": view}, EVERYONE))
        for fw in engine.frameworks.values():
            view = framework_view(engine, fw, tasks=False)
            if self._frameworks.get(fw.id) != view:
                self._frameworks[fw.id] = view
                payloads.append(("FRAMEWORK_UPDATED", {"framework": view}, framework_viewers(fw.info.user)))
        payloads.append(("HEARTBEAT", {"now": now, "counters": dict(engine.counters),
                                       "task_counters": task_counters(engine)}, EVERYONE))
        return payloads
