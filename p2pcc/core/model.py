"""The values that gossip carries: what a node says about itself.

These are plain immutable records shared by the wire codec (which turns them into
bytes), the peer table (which keeps the latest per node) and ranking (which reads
them).  They hold no behaviour beyond small derived properties.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

#: The gossip port a status that names none is heard at (the configuration's default).
DEFAULT_GOSSIP_PORT = 3634


class NodeState(enum.Enum):
    """What a node says it is doing; only ACTIVE nodes receive new jobs."""

    ACTIVE = "active"
    PAUSED = "paused"  # a person wants the machine back; running jobs finish
    LEAVING = "leaving"  # shutting down; drains, then sends a LEAVE message


class MessageKind(enum.IntEnum):
    """Message kinds on the wire.  New kinds need a minor version bump only."""

    STATE = 1  # a full NodeStatus; sent every interval and on any material change
    LEAVE = 2  # the sender is going away now; peers drop it at once
    # Protocol 1.1 (docs/wire-format.md "Pools beyond one link"): sent only to nodes
    # whose datagrams say 1.1, or to seeds.
    PROBE = 3  # "are you there?": answered by an ACK with the same nonce
    ACK = 4  # the answer to a PROBE
    NEWS = 5  # nothing but news entries (what the sender relays)
    SYNC = 6  # "send me your whole table": answered by COOKIE, or with a cookie by NEWS
    COOKIE = 7  # the answer to a SYNC without a valid cookie: ask again with this one


class EntryKind(enum.IntEnum):
    """What one news entry says about a node (its own word, relayed)."""

    STATE = 1  # the node's status at this order
    LEAVE = 2  # the node left at this order
    SUSPECT = 3  # a member found the node silent at this order; it must speak up


@dataclass(frozen=True, slots=True)
class CompilerOffer:
    """One compiler a node lets peers use.

    `fingerprint` (16 hex chars) identifies the exact binaries; `remote_name` is the name
    under which the offering node's distccd runs exactly those binaries; `loose_key`
    ("<triple>--<major>") exists only to talk to stock distcc's zeroconf mode.
    """

    fingerprint: str
    loose_key: str
    remote_name: str


@dataclass(frozen=True, slots=True)
class NodeStatus:
    """The body of a STATE message: everything a peer needs to decide whether to use us."""

    name: str
    addresses: tuple[str, ...]
    distccd_port: int
    cpus: int
    load: float  # 1-minute load average minus jobs we run for peers
    mem_available: int  # bytes
    slots: int  # slots offered to peers right now
    jobs: int  # compile jobs our distccd is running now
    power: float  # relative compile speed of one slot (1.0 = reference machine)
    state: NodeState = NodeState.ACTIVE
    pause_reason: str = ""
    pause_until: float | None = None  # sender's wall clock, Unix seconds
    compilers: tuple[CompilerOffer, ...] = field(default=())
    gossip_port: int = DEFAULT_GOSSIP_PORT  # where its gossip is heard by unicast

    @property
    def free_slots(self) -> int:
        """Slots not taken by jobs already running (never negative)."""
        return max(0, self.slots - self.jobs)

    def material_key(self) -> tuple[object, ...]:
        """What a client's host list depends on; load and jobs churn and are left out.

        Two statuses with different keys differ *materially*: peers must hear of it at
        once rather than at the next gossip interval.
        """
        return (
            self.state,
            self.slots,
            self.compilers,
            self.addresses,
            self.distccd_port,
            self.gossip_port,
        )

    def offers(self, fingerprint: str) -> CompilerOffer | None:
        """The offer of exactly this compiler, if the node has it."""
        for offer in self.compilers:
            if offer.fingerprint == fingerprint:
                return offer
        return None


@dataclass(frozen=True, slots=True)
class Message:
    """A decoded gossip message: who sent it, in which order, and what it says.

    `(incarnation, sequence)` orders a node's messages: incarnation bumps on every
    restart, sequence on every message within one incarnation.  `body` is a NodeStatus
    for STATE and None for LEAVE.
    """

    node_id: bytes  # 16 random bytes, persistent across restarts
    incarnation: int
    sequence: int
    sent_at: float  # sender's wall clock, Unix seconds (informational only)
    kind: MessageKind
    body: NodeStatus | None = None
    news: tuple[NewsEntry, ...] = ()  # other nodes' word, relayed (any kind may carry it)
    nonce: int | None = None  # PROBE and ACK; SYNC and COOKIE
    cookie: bytes = b""  # COOKIE, and a SYNC that returns it
    # A STATE sent by unicast because its sender does not hear the receiver's multicast:
    # the receiver must answer by unicast too (a 1.0 sender's every unicast means it).
    deaf: bool = False
    # 1.2, a STATE to a member that knows our compilers: their digest stands for them
    # (`body.compilers` is empty; core/shorthand.py resolves it against the table).
    compilers_digest: bytes = b""
    resend: bool = False  # 1.2, a STATE: "send me your whole status, I lack it"
    # How the datagram came, not what it says: left out of equality.
    minor: int = field(default=0, compare=False)  # the header's protocol minor version

    @property
    def order(self) -> tuple[int, int]:
        """The key that must strictly grow from one accepted message to the next."""
        return (self.incarnation, self.sequence)


@dataclass(frozen=True, slots=True)
class NewsEntry:
    """A node's STATE or LEAVE, or a suspicion about it, as relayed by another node.

    The order is the node's own: a relayed STATE is merged exactly like one heard from
    the node, so it can never replace anything newer.  A SUSPECT names the order that
    went silent; anything newer from the node refutes it.
    """

    kind: EntryKind
    node_id: bytes
    incarnation: int
    sequence: int
    minor: int = 0  # the node's protocol minor version, as the relayer knows it
    body: NodeStatus | None = None  # STATE only

    @property
    def order(self) -> tuple[int, int]:
        return (self.incarnation, self.sequence)
