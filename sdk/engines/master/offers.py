"""The master engine's offers: each allocation cycle's offers, declines, rescinds, and
frameworks' revive and suppress calls (the DRF allocator itself is `allocator`)."""
from __future__ import annotations

import logging
from typing import Iterable

from corral.engines.base import on, on_timer
from corral.engines.master.records import Agent, Framework, MasterTimer, Offer
from corral.net.protocol import MessageType as T
from corral.protos import corral_pb2 as pb

log = logging.getLogger(__name__)


class OffersMixin:
    """The master engine's handling of offers (a part of `MasterEngine`)."""

    @on_timer(MasterTimer.ALLOCATE)
    def _allocation_cycle(self, _subject: None, now: float) -> None:
        self._allocate(now)
        self.set_timer(MasterTimer.ALLOCATE, now + self.config.allocation_interval)

    @on_timer(MasterTimer.OFFER_TIMEOUT)
    def _offer_timeout(self, offer_id: str, now: float) -> None:
        offer = self.offers.get(offer_id)
        if offer is not None:
            self._rescind(offer, now)

    def _allocate(self, now: float) -> None:
        """One allocation cycle of the hierarchical DRF allocator: each allocation becomes
        one offer (one agent, one role), sent to its framework in one Offers message.
        After a master restart, nothing is offered until most agents are back (or their
        time to come back is over)."""
        recovery = self._recovery
        if self.recovering and now < recovery.deadline:
            back = recovery.admitted - len(self.recovering)
            if back < self.config.recovered_agents_ratio * recovery.admitted:
                return
        batches: dict[str, list[pb.Offer]] = {}
        for allocation in self.allocator.allocate(now):
            fw = self.frameworks[allocation.framework_id]
            agent = self.agents[allocation.agent_id]
            offer = Offer(self._new_id("O"), fw.id, agent.id, allocation.resources, now, allocation.role)
            self.offers[offer.id] = offer
            fw.offers.add(offer.id)
            agent.offered = agent.offered + offer.resources
            if self.config.offer_timeout is not None:
                self.set_timer(MasterTimer.OFFER_TIMEOUT, now + self.config.offer_timeout, offer.id)
            batches.setdefault(fw.id, []).append(self._offer_proto(offer, agent, fw))
        for fid, offers in batches.items():
            log.debug("%d offer(s) to framework %s", len(offers), fid)
            self.counters["offers_sent"] += len(offers)
            self.send(self.frameworks[fid].transport, pb.Offers(offers=offers))

    def _offer_proto(self, offer: Offer, agent: Agent, fw: Framework) -> pb.Offer:
        proto = pb.Offer(
            id=pb.OfferID(value=offer.id),
            framework_id=pb.FrameworkID(value=fw.id),
            agent_id=pb.AgentID(value=agent.id),
            hostname=agent.info.hostname,
            resources=offer.resources.to_protos(),
            attributes=agent.info.attributes,
            allocation_role=offer.role,
        )
        return proto

    def _close_offer(self, offer: Offer) -> None:
        """The offer is gone; its resources stay allocated to the framework until the
        caller recovers them (declined, rescinded) or they become used (accepted)."""
        self.offers.pop(offer.id, None)
        self.cancel_timer(MasterTimer.OFFER_TIMEOUT, offer.id)
        fw = self.frameworks.get(offer.framework_id)
        if fw is not None:
            fw.offers.discard(offer.id)
        agent = self.agents.get(offer.agent_id)
        if agent is not None:
            agent.offered = agent.offered - offer.resources

    def _rescind(self, offer: Offer, now: float) -> None:
        self._close_offer(offer)
        self.allocator.recover(offer.framework_id, offer.agent_id, offer.resources, role=offer.role)
        self.counters["offers_rescinded"] += 1
        fw = self.frameworks.get(offer.framework_id)
        if fw is not None and fw.connected:
            self.send(fw.transport, pb.Rescind(offer_id=pb.OfferID(value=offer.id)))
        self._allocate_soon(now)

    def _rescind_offers_of(self, fw: Framework, now: float) -> None:
        for offer_id in list(fw.offers):
            self._rescind(self.offers[offer_id], now)

    def _rescind_offers_on(self, agent: Agent, now: float) -> None:
        for offer in [o for o in self.offers.values() if o.agent_id == agent.id]:
            self._rescind(offer, now)

    @on(T.DECLINE)
    def _decline(self, sender: str, msg: pb.Decline, now: float) -> None:
        fw = self._framework_from(sender, msg.framework_id.value)
        if fw is None:
            return
        for offer_id in msg.offer_ids:
            offer = self.offers.get(offer_id.value)
            if offer is None or offer.framework_id != fw.id:
                continue
            self._close_offer(offer)
            self.counters["offers_declined"] += 1
            self.allocator.recover(fw.id, offer.agent_id, offer.resources, refuse_seconds=msg.filters.refuse_seconds,
                                   now=now, role=offer.role)

    @on(T.REVIVE)
    def _revive(self, sender: str, msg: pb.Revive, now: float) -> None:
        fw = self._framework_from(sender, msg.framework_id.value)
        if fw is not None and self._subscribed_roles(fw, msg.roles):
            self.allocator.revive(fw.id, list(msg.roles) or None)
            self._allocate_soon(now)

    @on(T.SUPPRESS)
    def _suppress(self, sender: str, msg: pb.Suppress, now: float) -> None:
        fw = self._framework_from(sender, msg.framework_id.value)
        if fw is not None and self._subscribed_roles(fw, msg.roles):
            self.allocator.suppress(fw.id, list(msg.roles) or None)

    def _subscribed_roles(self, fw: Framework, roles: Iterable[str]) -> bool:
        """Whether `fw` is subscribed to every one of `roles` (a Revive or Suppress
        naming others is refused with an error, and changes nothing)."""
        others = sorted(set(roles) - set(fw.roles))
        if others:
            self.send(fw.transport, pb.Error(message=f"framework {fw.id} is not subscribed to role(s) {others}"))
        return not others
