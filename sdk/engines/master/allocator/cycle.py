"""One allocation cycle: agent by agent, reserved resources first (to the roles holding
the reservations, in DRF order), then unreserved ones, each offer shrunk to the quota
headroom of its role and ancestors, skipping frameworks whose decline filters hold."""
from __future__ import annotations

from collections.abc import Iterator

from corral.engines.master.allocator.model import (Allocation, Quantities, _Agent, _Client, _MILLI, _Offers, _Role,
                                                   _add, _is_within, _quantities, _subtract)
from corral.resources import Resources


class CycleMixin:
    """The allocator's allocation cycle (a part of `Allocator`)."""

    def allocate(self, now: float) -> list[Allocation]:
        """One allocation cycle: hand out what is available, one offer per (framework,
        agent, role), and mark it allocated."""
        self._refresh()
        offers: _Offers = {}
        if not self._root.offerable:
            return []
        for agent in self._agents.values():
            if not agent.active or not self._allocatable(agent.free):
                continue
            if agent.reservation_roles:
                self._allocate_reserved(agent, now, offers)
                self._allocate_unreserved(agent, now, offers)
            else:
                self._allocate_plain(agent, now, offers)
        return [
            Allocation(client.framework.id, agent_id, client.role.name, resources)
            for (client, agent_id), resources in offers.items()
        ]

    def _allocate_plain(self, agent: _Agent, now: float, offers: _Offers) -> None:
        """An agent with unreserved resources only. The fast path: the first eligible
        framework of the first role in DRF order takes everything, unless a quota shrinks
        the offer, in which case the next roles get the rest."""
        served: set[_Role] = set()
        while self._allocatable(agent.free):
            for role in self._walk(self._root, served):
                served.add(role)
                offer, quantities = self._fit(role, agent.available, agent.free)
                if offer is not None and self._offer(role, agent, offer, quantities, now, offers):
                    break
            else:
                return

    def _allocate_unreserved(self, agent: _Agent, now: float, offers: _Offers) -> None:
        served: set[_Role] = set()
        while True:
            unreserved = agent.available.unreserved()
            quantities = _quantities(unreserved)
            if not self._allocatable(quantities):
                return
            for role in self._walk(self._root, served):
                served.add(role)
                offer, fitted = self._fit(role, unreserved, quantities)
                if offer is not None and self._offer(role, agent, offer, fitted, now, offers):
                    break
            else:
                return

    def _allocate_reserved(self, agent: _Agent, now: float, offers: _Offers) -> None:
        served: set[_Role] = set()
        while True:
            for role in self._walk(self._root, served, agent.reservation_roles):
                served.add(role)
                usable = agent.available.filter_role(role.name)
                reserved = usable.reserved()
                quantities = _quantities(reserved)
                # as in Mesos, what must be allocatable is all the role may use here, so a
                # reservation of disk alone (a volume) is still offered
                if not quantities or not self._allocatable(_quantities(usable)):
                    continue
                offer, fitted = self._fit(role, reserved, quantities, require_allocatable=False)
                if offer is not None and self._offer(role, agent, offer, fitted, now, offers):
                    break
            else:
                return

    def _walk(
        self, node: _Role, served: set[_Role], reservations: frozenset[str] = frozenset()
    ) -> Iterator[_Role]:
        """Roles with offerable frameworks under `node`, in DRF order, skipping `served`;
        with `reservations`, only roles within one of them (and the paths leading there)."""
        for _, name, child in node.order:
            if child is node:
                if node.clients and node not in served and (
                    not reservations or any(_is_within(name, held) for held in reservations)
                ):
                    yield node
            elif child.offerable and (
                not reservations
                or any(_is_within(name, held) or _is_within(held, name) for held in reservations)
            ):
                yield from self._walk(child, served, reservations)

    def _fit(
        self, role: _Role, resources: Resources, quantities: Quantities, require_allocatable: bool = True
    ) -> tuple[Resources | None, Quantities]:
        """`resources` shrunk to the quota headroom of `role` and its ancestors, and its
        quantities; (None, {}) when what is left is not allocatable, or when the role is
        at its limit of a resource `resources` has (an offer stripped of it, e.g. memory
        without cpus, would serve nobody and split the agent)."""
        caps: dict[str, int] = {}
        for node in role.chain():
            for name, limit in node.limits.items():
                headroom = limit - node.alloc.get(name, 0)
                if quantities.get(name, 0) > headroom:
                    if headroom <= 0:
                        return None, {}
                    if headroom < caps.get(name, headroom + 1):
                        caps[name] = headroom
        if caps:
            resources = resources.cap_scalars({name: cap / _MILLI for name, cap in caps.items()})
            quantities = _quantities(resources)
        if not quantities or (require_allocatable and not self._allocatable(quantities)):
            return None, {}
        return resources, quantities

    def _offer(
        self, role: _Role, agent: _Agent, resources: Resources, quantities: Quantities,
        now: float, offers: _Offers,
    ) -> bool:
        """Allocate `resources` of `agent` to the first framework of `role` that does not
        filter them; False when every framework there does."""
        agent_id = agent.id
        for _, _, client in role.clients:
            refusal = client.filters.get(agent_id)
            if refusal is not None:
                if now < refusal.expiry:
                    if refusal.refused.contains(resources):
                        continue
                else:
                    del client.filters[agent_id]
                    del agent.filtered[client]
            self._take(client, agent, resources, quantities)
            key = (client, agent_id)
            earlier = offers.get(key)
            offers[key] = resources if earlier is None else earlier + resources
            return True
        return False

    def _take(self, client: _Client, agent: _Agent, resources: Resources, quantities: Quantities) -> None:
        held = client.held.get(agent.id)
        if held is None:
            client.held[agent.id] = resources
            agent.holders[client] = None
        else:
            client.held[agent.id] = held + resources
        if resources is agent.available:
            agent.available = Resources()
            agent.free = {}
        else:
            agent.available = agent.available - resources
            _subtract(agent.free, quantities)
        self._charge(client, quantities, _add)

    def _allocatable(self, quantities: Quantities) -> bool:
        for minimum in self._minimums:
            for name, milli in minimum.items():
                if quantities.get(name, 0) < milli:
                    break
            else:
                return True
        return False
