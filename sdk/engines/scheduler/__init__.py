"""The scheduler-driver engine: subscription (with failover), offers, status updates
with de-duplication and acknowledgements, built-in reconciliation, kill retries, and
the framework's calls, sans I/O (`SchedulerEngine`, composed in `engine`).

Every update with a uuid reaches the user's `status_update` once per uuid; a duplicate
(the agent retried because an ack was lost) is counted and acknowledged again but not
delivered. With implicit acknowledgements the runtime calls `acknowledge` after the
callback returns; with explicit ones the framework calls it.

After every (re)registration the engine runs a reconciliation round over the
framework's non-terminal tasks and holds offers back from the user until the first
round converges. `kill` is retried with backoff until the task reports a terminal
state. When the transport reports the master gone, the user is told (`disconnected`)
and the driver looks for the leader again (`MasterLost`).

Where each rule lives:
- `engine`: subscription, the master's events (offers, rescinds, errors, failures),
  driving reconciliation;
- `status`: how the driver delivers and de-duplicates an update and acknowledges it
  (the per-row loops are in `_status`, compiled);
- `reconcile`: the reconciliation algorithm (rounds, backoff, escalation, stuck tasks);
- `calls`: the framework's calls (accept, decline, kill with retries, ...);
- `events`: the user's callbacks (`SchedulerEvent`), the subscription's states, `Abort`.
"""
from corral.engines.scheduler.engine import SchedulerConfig, SchedulerEngine
from corral.engines.scheduler.events import Abort, SchedulerEvent, SchedulerTimer, Subscription
from corral.engines.scheduler.reconcile import Progress, ReconcileConfig

__all__ = [
    "Abort", "Progress", "ReconcileConfig", "SchedulerConfig", "SchedulerEngine", "SchedulerEvent", "SchedulerTimer",
    "Subscription",
]
