"""Whom a node's datagrams go to besides its link's multicast group.

The state datagram goes to the multicast group, and by unicast to:

- every *seed* (`gossip.seeds`, resolved by the shell) but those we hear on our link: how
  a node first reaches a pool beyond its link;
- every member not heard by multicast lately (`LINK_HORIZON` state intervals): it lives
  on another link, or multicast between us is filtered, so only unicast reaches it;
- a node found by mDNS that we do not hear yet;
- a node that lately reached us by unicast from an address it announces because it does
  not hear our multicast (its STATE says `deaf`; a 1.0 node's every unicast means it).
  A copy bounced by anyone else must not turn our unicast towards the bouncer.  Only the
  first three make us say `deaf` ourselves: were our answers to a deaf node deaf too,
  two nodes that once unicast each other (before either heard the other's multicast)
  would go on doing so for ever.

News rounds and probes go only to *gossip members*: alive or suspect members that speak
1.1 and announce an address that passed the pool's rule.  That set is kept up to date
one peer at a time (`update`), since it is read ten times a second.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from p2pcc.core import limits
from p2pcc.core.gossip_types import Endpoint, Transport, announced_by
from p2pcc.core.model import Message, NodeStatus
from p2pcc.core.peers import Liveness, Peer
from p2pcc.core.shorthand import SHORTHAND_MINOR

#: State intervals within which a member heard by multicast counts as on our link.
LINK_HORIZON = 3

#: The protocol minor version from which a node takes news, probes and syncs.
POOL_MINOR = 1


def endpoint_of(status: NodeStatus) -> Endpoint | None:
    """Where a node's gossip is heard by unicast: its first address, its gossip port."""
    return (status.addresses[0], status.gossip_port) if status.addresses else None


class Audience:
    """The unicast destinations of one node; see the module docstring."""

    def __init__(self) -> None:
        self.seeds: tuple[Endpoint, ...] = ()
        self._discovered: dict[bytes, Endpoint] = {}
        self._unicast_from: dict[bytes, tuple[Endpoint, float]] = {}
        self._on_link: dict[bytes, float] = {}
        self._members: dict[bytes, Endpoint] = {}
        self._member_list: list[Endpoint] | None = None
        self._member_set: frozenset[Endpoint] | None = None
        self._shorthand: set[Endpoint] = set()  # members that read short STATEs
        self.version = 0  # grows whenever the gossip members change
        self._next_expiry = -math.inf

    # --- what we learn --------------------------------------------------------------

    def set_seeds(self, seeds: Sequence[Endpoint]) -> tuple[Endpoint, ...]:
        """Adopt `seeds` (deduplicated, capped); the ones not known before."""
        seeds = tuple(dict.fromkeys(seeds))[: limits.MAX_SEEDS]
        new = tuple(seed for seed in seeds if seed not in self.seeds)
        self.seeds = seeds
        return new

    def discovered(self, node_id: bytes, endpoint: Endpoint | None) -> None:
        """mDNS announced the node at `endpoint` (None: at no usable address)."""
        if endpoint is None:
            self._discovered.pop(node_id, None)
        elif node_id in self._discovered or len(self._discovered) < limits.MAX_PEERS:
            self._discovered[node_id] = endpoint

    def undiscovered(self, node_id: bytes) -> None:
        self._discovered.pop(node_id, None)

    def heard(self, message: Message, sender: Endpoint, transport: Transport, now: float) -> None:
        """A node's own STATE or LEAVE came from `sender`."""
        node_id, status = message.node_id, message.body
        if status is None:
            for memory in (self._unicast_from, self._discovered, self._on_link):
                memory.pop(node_id, None)
        elif announced_by(sender[0], status):
            if transport is Transport.MULTICAST:
                self._on_link[node_id] = now
            elif message.deaf or message.minor < POOL_MINOR:
                self._unicast_from[node_id] = (sender, now)

    def update(self, peer: Peer | None, node_id: bytes) -> None:
        """Re-judge whether `node_id` (now `peer`, None when gone) is a gossip member."""
        endpoint = None
        if peer is not None and peer.liveness is not Liveness.DEAD and peer.minor >= POOL_MINOR:
            endpoint = endpoint_of(peer.status)
        if peer is None:
            self._on_link.pop(node_id, None)
            self._unicast_from.pop(node_id, None)
        short = endpoint is not None and peer is not None and peer.minor >= SHORTHAND_MINOR
        known = self._members.get(node_id)
        if known is not None and (known != endpoint or not short):
            self._shorthand.discard(known)
        if short and endpoint is not None:
            self._shorthand.add(endpoint)
        if known == endpoint:
            return
        if endpoint is None:
            del self._members[node_id]
        else:
            self._members[node_id] = endpoint
        self._member_list = self._member_set = None
        self.version += 1

    def expire(self, now: float, unicast_horizon: float) -> None:
        """Forget unicast sources silent for `unicast_horizon` seconds (looked at once a
        second at most: what is due is filtered out when read anyway)."""
        if now < self._next_expiry:
            return
        self._next_expiry = now + 1.0
        for node_id, (_, heard_at) in list(self._unicast_from.items()):
            if now >= heard_at + unicast_horizon:
                del self._unicast_from[node_id]

    # --- whom we tell ---------------------------------------------------------------

    @property
    def members(self) -> dict[bytes, Endpoint]:
        """Gossip members by node id (read-only use)."""
        return self._members

    def gossip_targets(self) -> list[Endpoint]:
        """Where news rounds may go."""
        if self._member_list is None:
            self._member_list = sorted(self.member_endpoints())
        return self._member_list

    def any_beyond_link(self) -> bool:
        """Whether any gossip member was never heard by our link's multicast."""
        return any(node_id not in self._on_link for node_id in self._members)

    def beyond_link(self) -> dict[bytes, Endpoint]:
        """The gossip members never heard by our link's multicast, by node id."""
        return {
            node_id: ep for node_id, ep in self._members.items() if node_id not in self._on_link
        }

    def reads_shorthand(self, endpoint: Endpoint) -> bool:
        """Whether the member at `endpoint` takes short STATEs (core/shorthand.py)."""
        return endpoint in self._shorthand

    def member_endpoints(self) -> frozenset[Endpoint]:
        """The gossip members' endpoints (read several times a second: kept)."""
        if self._member_set is None:
            self._member_set = frozenset(self._members.values())
        return self._member_set

    def state_targets(
        self, peers: Iterable[Peer], now: float, link_horizon: float, unicast_horizon: float
    ) -> tuple[tuple[Endpoint, ...], tuple[Endpoint, ...]]:
        """Endpoints that get our state datagram by unicast as well as by multicast: those
        we do not hear (our datagram says `deaf`), and the deaf nodes' others."""
        targets: set[Endpoint] = set()
        linked: set[Endpoint] = set()  # members heard by multicast: no unicast needed
        for peer in peers:
            endpoint = endpoint_of(peer.status)
            if peer.liveness is Liveness.DEAD or endpoint is None:
                continue
            heard = self._on_link.get(peer.node_id)
            if heard is None or now >= heard + link_horizon:
                targets.add(endpoint)
            else:
                linked.add(endpoint)
        targets.update(seed for seed in self.seeds if seed not in linked)
        for node_id, endpoint in self._discovered.items():
            heard = self._on_link.get(node_id)
            if heard is None or now >= heard + link_horizon:
                targets.add(endpoint)
        answers = {
            endpoint
            for endpoint, heard_at in self._unicast_from.values()
            if now < heard_at + unicast_horizon and endpoint not in targets
        }
        return tuple(sorted(targets)), tuple(sorted(answers))
