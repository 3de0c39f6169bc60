"""What the scheduler engine tells its driver: the user's callbacks to run
(`SchedulerEvent`), the state of its subscription, and `Abort`."""
from __future__ import annotations

import enum


class SchedulerEvent(enum.Enum):
    """Callbacks of `corral.Scheduler`; the value is the method name."""

    REGISTERED = "registered"
    REREGISTERED = "reregistered"
    DISCONNECTED = "disconnected"
    RESOURCE_OFFERS = "resource_offers"
    OFFER_RESCINDED = "offer_rescinded"
    STATUS_UPDATE = "status_update"
    FRAMEWORK_MESSAGE = "framework_message"
    AGENT_LOST = "agent_lost"
    EXECUTOR_LOST = "executor_lost"
    ERROR = "error"
    RECONCILIATION_STALLED = "reconciliation_stalled"


class SchedulerTimer(enum.Enum):
    """The scheduler engine's timers (`Engine.set_timer`)."""

    SUBSCRIBE = "subscribe"  # the next subscription attempt (engine)
    KILL = "kill"  # a kill's next retry (calls; subject: the task id)


class Subscription(enum.Enum):
    DISCONNECTED = "disconnected"
    SUBSCRIBING = "subscribing"
    SUBSCRIBED = "subscribed"
    FAILED = "failed"


class Abort:
    """The driver must abort (the master refused this scheduler for good)."""
