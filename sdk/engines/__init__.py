"""corral's engines: sans-I/O state machines, one package each (`master`, `agent`,
`scheduler`, `executor`), and what they share: `base` (Engine: handler and timer tables,
the action outbox, Send), `status` (update rows, batches, ack trackers), `backoff` (the
one retry policy), `common` (task-state facts and status builders)."""
