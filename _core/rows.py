"""The layout of the status path's rows: the named position of each field.

Updates and acks travel as rows, plain tuples (cheap to build, and what the codec reads
and writes straight from wire bytes: `decoding`, `encoding`); everything that reads a
field names its position from here. Compiled modules take C copies of these numbers
(declared in their `.pxd`), so a named read costs what a literal index does.

An update row (ExecutorStatusUpdate, StatusUpdateMessage, Updates):
(framework_id, executor_id, task_id, state, uuid, status, health, latest_state).
`uuid` is b"" on the master's own (unacknowledged) updates; `status` the serialised
TaskStatus; `health` 0 not reported, 1 healthy, 2 unhealthy; `latest_state` the newest
state the sender knows for the task (its own state where nothing is newer).

An ack row: (id, task_id, uuid), the id an agent id in an Acknowledge and a framework id
in a StatusUpdateAck; an ExecutorStatusUpdateAck's rows are (task_id, uuid).

A task of a Reconcile call: (task_id, agent_id), agent_id "" when unknown.
"""

FRAMEWORK_ID = 0
EXECUTOR_ID = 1
TASK_ID = 2
STATE = 3
UUID = 4
STATUS = 5
HEALTH = 6
LATEST_STATE = 7
#: fields in an update row
UPDATE_ROW_WIDTH = 8

#: an Acknowledge's or a StatusUpdateAck's row: the agent (or framework) id, task id, uuid
ACK_ID = 0
ACK_TASK_ID = 1
ACK_UUID = 2
ACK_ROW_WIDTH = 3

#: an ExecutorStatusUpdateAck's row: task id, uuid
EXECUTOR_ACK_TASK_ID = 0
EXECUTOR_ACK_UUID = 1
EXECUTOR_ACK_ROW_WIDTH = 2

#: a task of a Reconcile call
RECONCILE_TASK_ID = 0
RECONCILE_AGENT_ID = 1
