"""The master's operator event stream, `GET /events`: server-sent events (the browser's
EventSource reads them, and so does `curl -N`), like Mesos' operator SUBSCRIBE.

Each event is `event: NAME` and `data: JSON`:
- SUBSCRIBED `{"state": <the /state document>}`, first, taken together with the
  subscription, so that the events after it are exactly what changed since;
- TASK_ADDED `{"tasks": [<task>, ...]}` (tasks launched, or learned from an agent);
- TASK_UPDATED `{"tasks": [{"framework_id", "id", "state", "healthy"}, ...]}`: the
  latest state of each task that had updates since the last event (several updates of
  one task in that time are one entry; `GET /task` has its whole history);
- AGENT_ADDED / AGENT_UPDATED `{"agent": <agent>}`, AGENT_REMOVED `{"agent_id": ID}`;
- FRAMEWORK_ADDED / FRAMEWORK_UPDATED / FRAMEWORK_REMOVED `{"framework": <framework
  without its tasks>}`;
- HEARTBEAT `{"now": T, "counters": {...}, "task_counters": {...}}` every
  REFRESH_INTERVAL, which is also when agents and frameworks whose numbers (resources
  used and offered, offers, connection, counters) changed are sent as *_UPDATED.

The engine appends its events to `engine.operator_events` while anyone subscribes
(None otherwise: nothing is produced); a pump on the HTTP server's loop takes them
every FLUSH_INTERVAL under the runtime lock, turns them into views, and writes them to
every subscriber. A subscriber that falls MAX_BACKLOG events behind is disconnected
(its EventSource reconnects and starts again from a new SUBSCRIBED).
"""
from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any, Callable

import orjson
from aiohttp import web

from corral.engines.master import MasterEngine
from corral.engines.master_operator import (
    STATE_NAMES, OperatorEvent, agent_view, framework_view, state_view, task_counters, task_view,
)

log = logging.getLogger(__name__)

#: seconds between two takes of the engine's events
FLUSH_INTERVAL = 0.2
#: seconds between two refreshes of the agents' and frameworks' numbers (and heartbeats)
REFRESH_INTERVAL = 1.0
#: events a subscriber may have unsent before it is disconnected
MAX_BACKLOG = 1000

_HEALTH = {1: True, 2: False}


def sse(name: str, data: Any) -> bytes:
    """One server-sent event."""
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


class _Subscriber:
    __slots__ = ("queue", "dropped")

    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.dropped = False


class EventStream:
    """Serves `/events` for the master engine run by `lock`'s runtime; `extras` adds the
    daemon's own fields (its address, its clock) to the SUBSCRIBED state."""

    def __init__(self, engine: MasterEngine, lock: threading.RLock, state: Callable[[], dict[str, Any]],
                 clock: Callable[[], float] = time.time) -> None:
        self.engine = engine
        self.lock = lock
        self._state = state
        self._clock = clock
        #: guarded by `lock` (the runtime's): events taken under it go to these
        self._subscribers: set[_Subscriber] = set()
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
        subscriber = _Subscriber()
        first = await loop.run_in_executor(None, self._subscribe, subscriber)
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
            with self.lock:
                self._subscribers.discard(subscriber)
        return response

    def _subscribe(self, subscriber: _Subscriber) -> bytes:
        """Under the lock: the SUBSCRIBED event, and the subscriber joins (so it gets
        every event taken from now on)."""
        with self.lock:
            if self.engine.operator_events is None:
                self.engine.operator_events = []
            state = self._state()
            self._subscribers.add(subscriber)
        return sse("SUBSCRIBED", {"state": state})

    # -- the pump ------------------------------------------------------------------------
    async def _run_pump(self, closing: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        while not closing.is_set():
            try:
                await asyncio.wait_for(closing.wait(), FLUSH_INTERVAL)
            except asyncio.TimeoutError:
                pass
            chunks, subscribers = await loop.run_in_executor(None, self.take)
            for subscriber in subscribers:
                if subscriber.dropped:
                    continue
                if subscriber.queue.qsize() + len(chunks) > MAX_BACKLOG:
                    subscriber.dropped = True
                    subscriber.queue.put_nowait(None)
                    log.warning("an event stream subscriber fell %d events behind: disconnected", MAX_BACKLOG)
                    continue
                for chunk in chunks:
                    subscriber.queue.put_nowait(chunk)
            if not subscribers:
                return

    def take(self) -> tuple[list[bytes], list[_Subscriber]]:
        """The events since the last take, as server-sent events, and who gets them. With
        nobody subscribed the engine stops producing events."""
        with self.lock:
            subscribers = list(self._subscribers)
            if not subscribers:
                self.engine.operator_events = None
                self._agents.clear()
                self._frameworks.clear()
                return [], []
            events = self.engine.operator_events or []
            self.engine.operator_events = []
            chunks = self._events(events)
            now = self._clock()
            if now >= self._next_refresh:
                self._next_refresh = now + REFRESH_INTERVAL
                chunks.extend(self._refresh(now))
        return chunks, subscribers

    def _events(self, events: list[tuple[OperatorEvent, Any]]) -> list[bytes]:
        """`events` (under the lock) as server-sent events: tasks added and updated
        collected into one event each, a task added and updated in one take sent as
        added only, with its latest state."""
        added: dict[tuple[str, str], Any] = {}
        updated: dict[tuple[str, str], Any] = {}
        chunks: list[bytes] = []
        for kind, subject in events:
            if kind is OperatorEvent.TASK_UPDATED:
                for row in subject:
                    updated[(row[0], row[2])] = row
            elif kind is OperatorEvent.TASK_ADDED:
                added[(subject.framework_id, subject.id)] = subject
            elif kind is OperatorEvent.AGENT_ADDED:
                view = agent_view(subject)
                self._agents[subject.id] = view
                chunks.append(sse(kind.value, {"agent": view}))
            elif kind is OperatorEvent.AGENT_REMOVED:
                self._agents.pop(subject.id, None)
                chunks.append(sse(kind.value, {"agent_id": subject.id}))
            else:  # FRAMEWORK_ADDED, FRAMEWORK_REMOVED
                view = framework_view(self.engine, subject, tasks=False)
                self._frameworks[subject.id] = view
                chunks.append(sse(kind.value, {"framework": view}))
        if added:
            chunks.append(sse(OperatorEvent.TASK_ADDED.value, {"tasks": [task_view(t) for t in added.values()]}))
        tasks = [{"framework_id": row[0], "id": row[2], "state": STATE_NAMES[row[7]], "healthy": _HEALTH.get(row[6])}
                 for key, row in updated.items() if key not in added]
        if tasks:
            chunks.append(sse(OperatorEvent.TASK_UPDATED.value, {"tasks": tasks}))
        return chunks

    def _refresh(self, now: float) -> list[bytes]:
        """AGENT_UPDATED and FRAMEWORK_UPDATED for those whose view changed, and a
        HEARTBEAT (under the lock)."""
        engine = self.engine
        chunks = []
        for agent in engine.agents.values():
            view = agent_view(agent)
            if self._agents.get(agent.id) != view:
                self._agents[agent.id] = view
                chunks.append(sse("AGENT_UPDATED", {"agent": view}))
        for fw in engine.frameworks.values():
            view = framework_view(engine, fw, tasks=False)
            if self._frameworks.get(fw.id) != view:
                self._frameworks[fw.id] = view
                chunks.append(sse("FRAMEWORK_UPDATED", {"framework": view}))
        chunks.append(sse("HEARTBEAT", {"now": now, "counters": dict(engine.counters),
                                        "task_counters": task_counters(engine)}))
        return chunks
