"""The DRF order the allocator offers in: each role's and each framework's dominant share,
and the sorted entries of the role tree, kept sorted incrementally as allocations change
(a change of the cluster total marks every share stale, recomputed once by `_refresh`)."""
from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Callable

from corral.engines.master.allocator.model import (Quantities, _Agent, _Client, _Role, _add, _move, _quantities,
                                                   _subtract)
from corral.resources import Resources


class SorterMixin:
    """The allocator's DRF order (a part of `Allocator`)."""

    def _share(self, quantities: Quantities) -> float:
        """Dominant share of `quantities` over the cluster total."""
        share = 0.0
        for name, inverse in self._inverse:
            milli = quantities.get(name)
            if milli:
                part = milli * inverse
                if part > share:
                    share = part
        return share

    def _charge(
        self, client: _Client, quantities: Quantities,
        apply: Callable[[Quantities, Quantities], None],
    ) -> None:
        """Apply (`_add` or `_subtract`) `quantities` to the client and its role chain, and
        move their sort entries."""
        apply(client.alloc, quantities)
        role = client.role
        if client.entry is not None:
            entry = (self._share(client.alloc), client.framework.id, client)
            _move(role.clients, client.entry, entry)
            client.entry = entry
        apply(role.own, quantities)
        leaf = (self._share(role.own) / role.weight, role.name, role)
        _move(role.order, role.leaf, leaf)
        role.leaf = leaf
        for node in role.chain():
            apply(node.alloc, quantities)
            self._move_entry(node)

    def _release(self, client: _Client, quantities: Quantities) -> None:
        self._charge(client, quantities, _subtract)

    def _give_back(self, agent: _Agent, resources: Resources) -> None:
        agent.available = agent.available + resources
        _add(agent.free, _quantities(resources))

    def _reposition(self, node: _Role) -> None:
        """Recompute the entries of `node` (its own leaf, and itself in its parent)."""
        leaf = (self._share(node.own) / node.weight, node.name, node)
        _move(node.order, node.leaf, leaf)
        node.leaf = leaf
        self._move_entry(node)

    def _move_entry(self, node: _Role) -> None:
        """Recompute the entry of `node` (not the root) in its parent's order."""
        assert node.parent is not None
        entry = (self._share(node.alloc) / node.weight, node.name, node)
        _move(node.parent.order, node.entry, entry)
        node.entry = entry

    def _refresh(self) -> None:
        """After the cluster total changed: recompute every share and re-sort, once."""
        if not self._stale:
            return
        self._inverse = tuple(
            (name, 1.0 / total) for name, total in sorted(self._totals.items()) if total > 0
        )
        for node in self._roles.values():
            node.leaf = (self._share(node.own) / node.weight, node.name, node)
            node.entry = (self._share(node.alloc) / node.weight, node.name, node)
            for client in node.members.values():
                if client.entry is not None:
                    client.entry = (self._share(client.alloc), client.framework.id, client)
        for node in [self._root, *self._roles.values()]:
            node.order = sorted(
                [child.entry for child in node.children.values()]
                + ([node.leaf] if node.parent is not None else [])
            )
            node.clients = sorted(c.entry for c in node.members.values() if c.entry is not None)
        self._stale = False

    def _list(self, client: _Client) -> None:
        """Make the client offerable."""
        if client.entry is None:
            client.entry = (self._share(client.alloc), client.framework.id, client)
            insort(client.role.clients, client.entry)
            for node in client.role.chain():
                node.offerable += 1
            self._root.offerable += 1

    def _unlist(self, client: _Client) -> None:
        if client.entry is not None:
            entries = client.role.clients
            del entries[bisect_left(entries, client.entry)]
            client.entry = None
            for node in client.role.chain():
                node.offerable -= 1
            self._root.offerable -= 1

    def _role(self, name: str) -> _Role:
        """The node of a (validated) role, created with its ancestors if needed."""
        node = self._roles.get(name)
        if node is not None:
            return node
        parent = self._root if "/" not in name else self._role(name.rsplit("/", 1)[0])
        node = _Role(name, parent)
        node.leaf = (0.0, name, node)
        node.order = [node.leaf]
        node.entry = (0.0, name, node)
        insort(parent.order, node.entry)
        parent.children[name] = node
        self._roles[name] = node
        return node

    def _prune(self, node: _Role) -> None:
        """Forget roles that no longer carry anything (no frameworks, sub-roles, weight,
        quota or allocation), from `node` up."""
        while (
            node.parent is not None and not node.members and not node.children
            and node.weight == 1.0 and node.quota is None and not node.alloc
        ):
            parent = node.parent
            del parent.children[node.name]
            del parent.order[bisect_left(parent.order, node.entry)]
            del self._roles[node.name]
            node = parent
