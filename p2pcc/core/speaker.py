"""What a node says, stamped with who it is and in which order, and counted.

Every datagram the gossip engine (core/gossip.py) sends carries the node's id, its
incarnation and a sequence number, and is signed with the pool's key; peers keep the
newest order they heard from each node, so a replay or a reordered copy never overrides
newer word.  A STATE or LEAVE is a new order; the exchange kinds (PROBE, ACK, NEWS,
SYNC, COOKIE) repeat the last one, since they say nothing new about the node itself.
"""

from __future__ import annotations

from dataclasses import replace

from p2pcc.core import wire
from p2pcc.core.auth import Keyring
from p2pcc.core.gossip_types import Endpoint, Outgoing
from p2pcc.core.model import Message, MessageKind, NewsEntry, NodeStatus
from p2pcc.core.pool_exchange import Pending
from p2pcc.core.wire_status import compilers_digest


class Speaker:
    """One node's voice: encodes its messages and counts what goes out."""

    def __init__(self, node_id: bytes, incarnation: int, keyring: Keyring) -> None:
        self.node_id = node_id
        self.incarnation = incarnation
        self.keyring = keyring  # replaced when the pool's key is renewed
        self.sequence = 0
        self.packets_out = 0
        self.bytes_out = 0

    def word(
        self,
        kind: MessageKind,
        body: NodeStatus | None,
        wall: float,
        *,
        deaf: bool = False,
        news: tuple[NewsEntry, ...] = (),
        short: bool = False,
        resend: bool = False,
    ) -> bytes:
        """A STATE (`body`) or LEAVE (no body) at a new order; `short`: the compilers as
        their digest (core/shorthand.py); `resend`: asking for the receiver's state."""
        self.sequence += 1
        digest = b""
        if short and body is not None:
            body, digest = replace(body, compilers=()), compilers_digest(body.compilers)
        message = Message(
            self.node_id, self.incarnation, self.sequence, wall, kind, body, news,
            deaf=deaf, compilers_digest=digest, resend=resend,
        )  # fmt: skip
        return wire.encode(message, self.keyring)

    def copy(
        self,
        status: NodeStatus,
        wall: float,
        to: Endpoint,
        news: tuple[NewsEntry, ...],
        short: bool,
    ) -> Outgoing:
        """Our state for member `to` alone (a turn, core/state_turns.py): deaf, with
        `news` aboard, and `short` for a member that reads short STATEs."""
        data = self.word(MessageKind.STATE, status, wall, deaf=True, news=news, short=short)
        return self.outgoing(data, (to,), False)

    def pending(self, pending: Pending, status: NodeStatus, wall: float) -> bytes:
        """What the pool exchange asked for: our `status` for a STATE, else its kind."""
        if pending.kind is MessageKind.STATE:
            return self.word(MessageKind.STATE, status, wall, resend=pending.resend)
        message = Message(
            self.node_id,
            self.incarnation,
            self.sequence,
            wall,
            pending.kind,
            news=pending.news,
            nonce=pending.nonce,
            cookie=pending.cookie,
        )
        return wire.encode(message, self.keyring)

    def outgoing(
        self, data: bytes, targets: tuple[Endpoint, ...], multicast: bool = True
    ) -> Outgoing:
        """`data` to the group (unless not `multicast`) and to each of `targets`."""
        copies = len(targets) + multicast
        self.packets_out += copies
        self.bytes_out += len(data) * copies
        return Outgoing(data, targets, multicast)
