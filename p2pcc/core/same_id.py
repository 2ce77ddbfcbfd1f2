"""Another node gossiping under our node id, and which of the two takes a new one.

Two workstations cloned from one disk image (or VM template) share the node id kept in
it.  Each takes the other's datagrams for the echo of its own multicast, and their
peers hear one node whose datagrams keep being refused as replays: the two never see
each other, and nothing says why.

A datagram carrying our id is our own when it came from one of our addresses or
announces one of them: the echo of our multicast, or a copy of a datagram of ours that
someone bounced back (a recording of ours, replayed from anywhere, still announces our
addresses).  Any other datagram carrying our id comes from another node, `Namesake`:
in a keyed pool only a key holder can make one.

Both nodes hear each other, and from the same two datagrams they must reach opposite
decisions: the node whose (incarnation, addresses) is lower takes a new random id
(`takes_new_id`).  Lower, because peers hold the id at the higher node's order and
refuse the lower one's datagrams as replays: the lower one is the node that must become
someone else, and the higher one goes on undisturbed.  A tie cannot happen, since the
two announce different addresses.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from p2pcc.core.model import Message, NodeStatus
from p2pcc.core.peers import Liveness, Peer


@dataclass(frozen=True, slots=True)
class Namesake:
    """Another node sending datagrams under our node id."""

    address: str  # where its datagram came from
    incarnation: int
    addresses: tuple[str, ...]  # the addresses it announces


def _hosts(addresses: Iterable[str]) -> set[str]:
    """`addresses` without IPv6 scopes (a scope names the receiver's interface)."""
    return {address.partition("%")[0] for address in addresses}


def namesake(message: Message, sender: str, own: NodeStatus) -> Namesake | None:
    """The other node behind `message`, which carries our node id and came from
    `sender`; None when the datagram is our own (or a LEAVE, which announces nothing)."""
    body = message.body
    if body is None:
        return None
    ours = _hosts(own.addresses)
    if sender.partition("%")[0] in ours or not ours.isdisjoint(_hosts(body.addresses)):
        return None
    return Namesake(sender, message.incarnation, body.addresses)


def _rank(incarnation: int, addresses: Iterable[str]) -> tuple[int, tuple[str, ...]]:
    return incarnation, tuple(sorted(_hosts(addresses)))


def takes_new_id(incarnation: int, addresses: Sequence[str], other: Namesake) -> bool:
    """Whether we, at `incarnation` and announcing `addresses`, are the one of the two
    that takes a new id; `other` decides the opposite from our datagram."""
    return _rank(incarnation, addresses) < _rank(other.incarnation, other.addresses)


@dataclass(frozen=True, slots=True)
class SharedId:
    """The last node found using our id: who, since when, and which of us renews."""

    node_id: bytes  # the id both used
    namesake: Namesake
    found_at: float  # monotonic
    new_id_here: bool  # this node is the one that takes a new id

    def healed(self, peers: Iterable[Peer]) -> bool:
        """Whether the other machine is an alive peer now: one of us has a new id (our
        own id never enters the table)."""
        host = self.namesake.address.partition("%")[0]
        return any(
            peer.liveness is Liveness.ALIVE and host in _hosts(peer.status.addresses)
            for peer in peers
        )

    def document(self, peers: Iterable[Peer], now: float, wall: float) -> dict[str, Any]:
        """`node.duplicate_id` in the status document (docs/status-json.md)."""
        return {
            "address": self.namesake.address,
            "since": wall - (now - self.found_at),
            "shared_id": self.node_id.hex(),
            "new_id_here": self.new_id_here,
            "healed": self.healed(peers),
        }
