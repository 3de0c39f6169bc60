"""The `Allocator`: its bookkeeping of agents, frameworks (in their roles), weights and
quotas, decline filters, suppression, recovery of what frameworks held, and its views;
the allocation cycle is `cycle`, the DRF order `sorter`."""
from __future__ import annotations

from collections.abc import Iterable

from corral.engines.master.allocator.cycle import CycleMixin
from corral.engines.master.allocator.model import (AllocatorConfig, AllocatorError, Quantities, _Agent, _Client,
                                                   _Filter, _Framework, _MILLI, _Role, _add, _quantities, _subtract,
                                                   _view, validate_role, validate_weight)
from corral.engines.master.allocator.sorter import SorterMixin
from corral.resources import Resources


class Allocator(CycleMixin, SorterMixin):
    """Hierarchical DRF allocator; see the package docstring."""

    def __init__(self, config: AllocatorConfig | None = None) -> None:
        self.config = config or AllocatorConfig()
        self._minimums: tuple[Quantities, ...] = tuple(
            {name: round(amount * _MILLI) for name, amount in alternative.items()}
            for alternative in self.config.min_allocatable
        )
        self._agents: dict[str, _Agent] = {}
        self._frameworks: dict[str, _Framework] = {}
        self._root = _Role("", None)
        self._roles: dict[str, _Role] = {}
        self._totals: Quantities = {}
        #: (name, 1 / cluster total) for every scalar the cluster has
        self._inverse: tuple[tuple[str, float], ...] = ()
        self._stale = False

    def add_agent(self, agent_id: str, total: Resources) -> None:
        if agent_id in self._agents:
            raise AllocatorError(f"agent {agent_id!r} is already added")
        quantities = _quantities(total)
        self._agents[agent_id] = _Agent(
            agent_id, total, quantities, total, dict(quantities), self._reservation_roles(total)
        )
        _add(self._totals, quantities)
        self._stale = True

    def remove_agent(self, agent_id: str) -> None:
        """Forget the agent: its allocations and the filters on it vanish with it."""
        agent = self._agent(agent_id)
        for client in agent.holders:
            held = client.held.pop(agent_id)
            self._release(client, _quantities(held))
        for client in agent.filtered:
            del client.filters[agent_id]
        del self._agents[agent_id]
        _subtract(self._totals, agent.quantities)
        self._stale = True

    def update_agent(self, agent_id: str, total: Resources) -> None:
        """Change the agent's total (e.g. after RESERVE / UNRESERVE / CREATE / DESTROY on
        resources nobody holds). What is allocated on it must still fit."""
        agent = self._agent(agent_id)
        allocated = Resources()
        for client in agent.holders:
            allocated = allocated + client.held[agent_id]
        if not total.contains(allocated):
            raise AllocatorError(
                f"new total {total} of agent {agent_id!r} lacks what is allocated on it: {allocated}"
            )
        self._set_total(agent, total, total - allocated)

    def activate_agent(self, agent_id: str) -> None:
        self._agent(agent_id).active = True

    def deactivate_agent(self, agent_id: str) -> None:
        """An unreachable agent: it stays in the cluster total but offers nothing."""
        self._agent(agent_id).active = False

    def update_allocation(
        self, framework_id: str, agent_id: str, consumed: Resources, converted: Resources,
        role: str | None = None,
    ) -> None:
        """An operation on allocated resources (RESERVE, UNRESERVE, CREATE, DESTROY applied
        to an offer): `consumed`, part of the framework's allocation on the agent, becomes
        `converted` there, and in the agent's total. The scalar quantities must not change."""
        agent = self._agent(agent_id)
        client = self._holder(framework_id, agent_id, consumed, role)
        if _quantities(consumed) != _quantities(converted):
            raise AllocatorError(f"converting {consumed} into {converted} changes quantities")
        client.held[agent_id] = client.held[agent_id] - consumed + converted
        self._set_total(agent, agent.total - consumed + converted, agent.available)

    def add_allocation(self, framework_id: str, agent_id: str, resources: Resources, role: str | None = None) -> None:
        """Resources already in use on the agent by the framework (tasks the master learns
        when an agent reregisters, e.g. after a master failover): mark them held, in `role`
        or the framework's first role by name."""
        agent = self._agent(agent_id)
        clients = self._clients(framework_id, None if role is None else [role])
        client = min(clients, key=lambda c: c.role.name)
        if not agent.available.contains(resources):
            raise AllocatorError(f"agent {agent_id!r} has not {resources} free to allocate (it has {agent.available})")
        self._take(client, agent, resources, _quantities(resources))

    def add_framework(self, framework_id: str, roles: Iterable[str], active: bool = True) -> None:
        if framework_id in self._frameworks:
            raise AllocatorError(f"framework {framework_id!r} is already added")
        names = list(dict.fromkeys(validate_role(role) for role in roles))
        if not names:
            raise AllocatorError(f"framework {framework_id!r} has no role")
        framework = _Framework(framework_id, {})
        framework.active = active
        self._frameworks[framework_id] = framework
        for name in names:
            role = self._role(name)
            client = _Client(framework, role)
            framework.clients[name] = client
            role.members[framework_id] = client
            if active:
                self._list(client)

    def remove_framework(self, framework_id: str) -> None:
        """Forget the framework; everything allocated to it returns to its agents."""
        framework = self._framework(framework_id)
        for client in framework.clients.values():
            for agent_id, held in client.held.items():
                agent = self._agents[agent_id]
                del agent.holders[client]
                self._give_back(agent, held)
            for agent_id in client.filters:
                del self._agents[agent_id].filtered[client]
            self._release(client, dict(client.alloc))
            self._unlist(client)
            del client.role.members[framework_id]
            self._prune(client.role)
        del self._frameworks[framework_id]

    def activate_framework(self, framework_id: str) -> None:
        framework = self._framework(framework_id)
        if not framework.active:
            framework.active = True
            for client in framework.clients.values():
                if not client.suppressed:
                    self._list(client)

    def deactivate_framework(self, framework_id: str) -> None:
        """A disconnected framework: it keeps its allocations but gets no offers."""
        framework = self._framework(framework_id)
        if framework.active:
            framework.active = False
            for client in framework.clients.values():
                self._unlist(client)

    def suppress(self, framework_id: str, roles: Iterable[str] | None = None) -> None:
        """No more offers to the framework in `roles` (None: all its roles) until revived."""
        for client in self._clients(framework_id, roles):
            if not client.suppressed:
                client.suppressed = True
                self._unlist(client)

    def revive(self, framework_id: str, roles: Iterable[str] | None = None) -> None:
        """Offers again in `roles` (None: all its roles), and the decline filters there go."""
        for client in self._clients(framework_id, roles):
            for agent_id in client.filters:
                del self._agents[agent_id].filtered[client]
            client.filters.clear()
            if client.suppressed:
                client.suppressed = False
                if client.framework.active:
                    self._list(client)

    def set_weight(self, role: str, weight: float) -> None:
        weight = validate_weight(role, weight)
        node = self._role(validate_role(role))
        node.weight = weight
        self._reposition(node)
        self._prune(node)

    def set_quota(self, role: str, quota: Resources | None) -> None:
        """Limit the role's allocation (its sub-roles' included) to `quota`'s scalars, by
        name over all reservations; None removes the limit."""
        node = self._role(validate_role(role))
        if quota is None:
            node.quota, node.limits = None, {}
            self._prune(node)
            return
        limits = _quantities(quota)
        if set(limits) != quota.names():
            raise AllocatorError(f"quota {quota} of role {role!r}: only scalars can be limited")
        node.quota, node.limits = quota, limits

    def recover(
        self, framework_id: str, agent_id: str, resources: Resources,
        refuse_seconds: float | None = None, now: float = 0.0, role: str | None = None,
    ) -> None:
        """Give back `resources` the framework holds on the agent (in `role`, or the first
        of its roles, by name, that holds them all). With `refuse_seconds` > 0, the agent's
        resources contained in `resources` are not offered to the framework in that role
        again before `now + refuse_seconds`. Resources of a removed agent or framework are
        already gone: recovering them does nothing."""
        if framework_id not in self._frameworks or agent_id not in self._agents or not resources:
            return
        client = self._holder(framework_id, agent_id, resources, role)
        agent = self._agents[agent_id]
        left = client.held[agent_id] - resources
        if left:
            client.held[agent_id] = left
        else:
            del client.held[agent_id]
            del agent.holders[client]
        self._give_back(agent, resources)
        self._release(client, _quantities(resources))
        if refuse_seconds is not None and refuse_seconds > 0:
            client.filters[agent_id] = _Filter(now + refuse_seconds, resources)
            agent.filtered[client] = None

    def allocated(self, framework_id: str, role: str | None = None) -> dict[str, Resources]:
        """What the framework holds (in `role`, or in all its roles), by agent id."""
        out: dict[str, Resources] = {}
        for client in self._clients(framework_id, None if role is None else [role]):
            for agent_id, held in client.held.items():
                out[agent_id] = out.get(agent_id, Resources()) + held
        return out

    def available(self, agent_id: str) -> Resources:
        """What the agent has that nobody holds."""
        return self._agent(agent_id).available

    def snapshot(self) -> dict[str, object]:
        """A JSON-able view for `/roles`: every known role, sorted by name, with its
        weight, quota, allocation (scalars, sub-roles included), dominant share (and share
        divided by weight) and subscribed frameworks."""
        self._refresh()
        roles = []
        for name in sorted(self._roles):
            node = self._roles[name]
            share = self._share(node.alloc)
            roles.append({
                "name": name,
                "weight": node.weight,
                "quota": None if node.quota is None else node.quota.to_dict(),
                "allocated": _view(node.alloc),
                "share": share,
                "weighted_share": share / node.weight,
                "frameworks": sorted(node.members),
            })
        return {"total": _view(self._totals), "roles": roles}

    def _set_total(self, agent: _Agent, total: Resources, available: Resources) -> None:
        quantities = _quantities(total)
        if quantities != agent.quantities:
            _subtract(self._totals, agent.quantities)
            _add(self._totals, quantities)
            self._stale = True
        agent.total, agent.quantities = total, quantities
        agent.available, agent.free = available, _quantities(available)
        agent.reservation_roles = self._reservation_roles(total)

    @staticmethod
    def _reservation_roles(total: Resources) -> frozenset[str]:
        reserved = total.reserved()
        if not reserved:
            return frozenset()
        return frozenset(
            proto.reservations[-1].role if proto.reservations else proto.role
            for proto in reserved.to_protos()
        )

    def _agent(self, agent_id: str) -> _Agent:
        agent = self._agents.get(agent_id)
        if agent is None:
            raise AllocatorError(f"unknown agent {agent_id!r}")
        return agent

    def _framework(self, framework_id: str) -> _Framework:
        framework = self._frameworks.get(framework_id)
        if framework is None:
            raise AllocatorError(f"unknown framework {framework_id!r}")
        return framework

    def _clients(self, framework_id: str, roles: Iterable[str] | None) -> list[_Client]:
        framework = self._framework(framework_id)
        if roles is None:
            return list(framework.clients.values())
        clients = []
        for role in roles:
            client = framework.clients.get(role)
            if client is None:
                raise AllocatorError(f"framework {framework_id!r} is not subscribed to role {role!r}")
            clients.append(client)
        return clients

    def _holder(self, framework_id: str, agent_id: str, resources: Resources, role: str | None) -> _Client:
        """The client of the framework holding `resources` on the agent."""
        candidates = self._clients(framework_id, None if role is None else [role])
        for client in sorted(candidates, key=lambda c: c.role.name):
            held = client.held.get(agent_id)
            if held is not None and held.contains(resources):
                return client
        raise AllocatorError(
            f"framework {framework_id!r} does not hold {resources} on agent {agent_id!r}"
            + ("" if role is None else f" in role {role!r}")
        )
