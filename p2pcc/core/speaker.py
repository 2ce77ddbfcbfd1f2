"""What a node says, stamped with who it is and in which order, and counted.

Every datagram the gossip engine (core/gossip.py) sends carries the node's id, its
incarnation and a sequence number, and is signed with the pool's key; peers keep the
newest order they heard from each node, so a replay or a reordered copy never overrides
newer word.  A state datagram, an answer with our state or a LEAVE is a new order.  The
turn copies of the state datagram (core/state_turns.py) say it again at the *same*
order, with the same status: every member then holds the same order of us, which is
what a suspicion names (a SUSPECT at an order some members had passed would be ignored
by them).  Answers are few, and must pass a table that remembers our orders across its
restart (a greeting at an order it holds would be refused).  The exchange kinds
(PROBE, ACK, NEWS, SYNC, COOKIE) carry the last order too, since they say nothing new
about the node itself.
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
        self.said: NodeStatus | None = None  # the status at our current order
        self.packets_out = 0
        self.bytes_out = 0

    def word(
        self, body: NodeStatus | None, wall: float, *, deaf: bool = False, resend: bool = False
    ) -> bytes:
        """Our state (`body`), or a LEAVE (None), at a new order; `resend`: asking the
        receiver for its whole state (core/shorthand.py)."""
        self.sequence += 1
        self.said = body
        kind = MessageKind.LEAVE if body is None else MessageKind.STATE
        message = Message(self.node_id, self.incarnation, self.sequence, wall, kind, body)
        return wire.encode(replace(message, deaf=deaf, resend=resend), self.keyring)

    def again(
        self, status: NodeStatus, wall: float, news: tuple[NewsEntry, ...], short: bool
    ) -> bytes:
        """Our state datagram again for one member (deaf), at the current order with what
        it said (`status` when nothing was said yet: then at a new order); `short`: the
        compilers as their digest (core/shorthand.py)."""
        if self.said is None:
            self.sequence += 1
            self.said = status
        body, digest = self.said, b""
        if short:
            body, digest = replace(body, compilers=()), compilers_digest(body.compilers)
        message = Message(
            self.node_id, self.incarnation, self.sequence, wall, MessageKind.STATE, body, news,
            deaf=True, compilers_digest=digest,
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
        data = self.again(status, wall, news, short)
        return self.outgoing(data, (to,), False)

    def pending(self, pending: Pending, status: NodeStatus, wall: float) -> bytes:
        """What the pool exchange asked for: our `status` at a new order for a STATE,
        else its kind."""
        if pending.kind is MessageKind.STATE:
            return self.word(status, wall, resend=pending.resend)
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
