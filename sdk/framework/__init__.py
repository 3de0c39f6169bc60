"""What a framework author needs beyond the scheduler API, for stateful services above all
(the pieces dcos-commons gives its services):

- `corral.framework.plans`: plans, phases and steps with serial or parallel strategies,
  interruptible by the operator;
- `corral.framework.reservations`: RESERVE / CREATE / UNRESERVE / DESTROY operations, and
  `OfferView` to find a role's reservations and persistent volumes in an offer;
- `corral.framework.statestore`: crash-safe JSON state in SQLite (framework id, what was
  reserved where, plan progress and operator overrides);
- `corral.framework.apiserver`: the scheduler's HTTP API, routed by method and path pattern.
"""
