"""Who speaks for whom: each framework and agent is bound to the principal that
registered it (`Engine.principal`, proven by the transport), and a message that names a
registered peer's address but comes over another principal's connection is a forgery:
dropped, counted (`forged_senders`) and logged, never answered (the answer would go to
the peer whose address was forged). The principal at each address is also what the
daemon needs to reach it (`principal_at`: its CurveZMQ key is that principal's)."""
from __future__ import annotations

import logging
from typing import Any

from corral.engines.master.records import AgentState

log = logging.getLogger(__name__)

#: addresses remembered for registrations that were refused (their answer must reach
#: them) beyond the registered peers: the oldest are forgotten first
MAX_UNREGISTERED_PEERS = 4096


class PeersMixin:
    """The master engine's principal bindings (a part of `MasterEngine`)."""

    def _speaks_for(self, record: Any, sender: str) -> bool:
        """Whether this message's principal is the one `record` (a framework or an
        agent found by `sender`'s address) was registered by; a forgery is counted."""
        if record.principal == self.principal:
            return True
        self.counters["forged_senders"] += 1
        log.warning("dropped a message naming %s (registered by %r) from principal %r", sender, record.principal,
                    self.principal)
        return False

    def _claim(self, address: str) -> bool:
        """Whether this message's principal may register from `address`: not while a
        connected framework or a registered agent of another principal is there (a
        forgery: counted, and dropped by the caller). When it may, the address is bound
        to it, so that the answer (an acceptance or a refusal) reaches that principal's
        process only."""
        principal = self.principal
        principals = self.authorizer.principals_at
        holder = principals.get(address)
        if principal is None or holder == principal:
            return True
        if holder is not None and self._registered_at(address, holder):
            self.counters["forged_senders"] += 1
            log.warning("dropped a registration from principal %r naming %s, where principal %r is registered",
                        principal, address, holder)
            return False
        principals.pop(address, None)
        principals[address] = principal
        if len(principals) > MAX_UNREGISTERED_PEERS + len(self.agents) + len(self.frameworks):
            del principals[next(iter(principals))]
        return True

    def _registered_at(self, address: str, principal: str) -> bool:
        """Whether a connected framework or a registered agent of `principal` is at `address`."""
        agent = self.agents.get(self.agents_by_transport.get(address, ""))
        if agent is not None and agent.principal == principal and agent.state is AgentState.REGISTERED:
            return True
        return any(f.transport == address and f.connected and f.principal == principal
                   for f in self.frameworks.values())

    def principal_at(self, address: str) -> str | None:
        """The principal whose process listens at `address`, as registrations proved
        (None: unknown, or links not authenticated)."""
        return self.authorizer.principals_at.get(address)
