"""The gossip engine's vocabulary: what goes in and out, and the log-once memory.

Kept apart from the engine (core/gossip.py) so the shell and the tests can name these
without the engine's machinery.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from p2pcc.core.model import NodeStatus
from p2pcc.core.peers import PeerEvent
from p2pcc.core.same_id import Namesake

Endpoint = tuple[str, int]

#: Distinct (sender, reason) pairs remembered for log-once.  A flood from many forged
#: source addresses is still counted; it just stops producing new log lines.
MAX_LOGGED_DROPS = 1024

#: Seconds after which the log-once memory starts afresh, so a flood that filled it
#: cannot silence, for the daemon's whole life, the one line that would tell an
#: administrator about a peer with the wrong key.  Bounds the log to MAX_LOGGED_DROPS
#: drop lines per period.
LOGGED_DROPS_PERIOD = 3600.0

#: Drops that are normal operation, not worth a log line: our own multicast echo, and
#: the same datagram arriving both by multicast and by unicast; and another node's
#: datagram under our id, which the node reports (`Received.namesake`) and acts on; and
#: a busy member's answer to a probe whose round an earlier answer had already ended.
QUIET_DROPS = frozenset(
    {"own", "duplicate", "reordered", "same-id", "compilers-unknown", "late-ack"}
)


class LogOnce:
    """Which (subject, reason) pairs deserve a log line: each once, at most `cap` pairs
    remembered, the memory starting afresh every `period` seconds."""

    def __init__(
        self, now: float, cap: int = MAX_LOGGED_DROPS, period: float = LOGGED_DROPS_PERIOD
    ) -> None:
        self._cap = cap
        self._period = period
        self._seen: set[tuple[str, str]] = set()
        self._since = now

    def first(self, key: tuple[str, str], now: float) -> bool:
        """Whether `key` is worth a line at `now`; it is not again within the period."""
        if now >= self._since + self._period:
            self._seen.clear()
            self._since = now
        if key in self._seen or len(self._seen) >= self._cap:
            return False
        self._seen.add(key)
        return True


def announced_by(address: str, status: NodeStatus | None) -> bool:
    """Whether `address` is one the node itself announces in `status`.

    Anyone on the link can capture a genuine datagram and bounce it to us by unicast;
    only the node's own addresses may turn our unicast fallback towards them, or the
    bouncer would receive our gossip in the node's stead.
    """
    host = address.partition("%")[0]  # an IPv6 scope names our interface, not theirs
    addresses = status.addresses if status is not None else ()
    return any(announced.partition("%")[0] == host for announced in addresses)


class Transport(enum.Enum):
    """How a datagram reached us."""

    MULTICAST = "multicast"
    UNICAST = "unicast"


@dataclass(frozen=True, slots=True)
class Received:
    """The outcome of one datagram: table events, or why it was dropped."""

    events: tuple[PeerEvent, ...] = ()
    dropped: str | None = None  # reason token, None when accepted
    detail: str = ""
    log: bool = False  # first drop for this (sender, reason): worth one log line
    namesake: Namesake | None = None  # another node sending under our id (core/same_id.py)


@dataclass(frozen=True, slots=True)
class RefusedAddress:
    """An address a node announced that it will not be dialled at, the first time this
    (address, reason) is refused: worth one log line."""

    address: str
    reason: str  # a p2pcc.core.addresses.Refusal value
    node_id: bytes
    via: str  # "mDNS", or the address the gossip datagram came from


def no_refusal_listener(refused: RefusedAddress) -> None:
    """The default `on_refused`: nobody logs."""


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One datagram to send to the multicast group and to each unicast endpoint."""

    data: bytes
    unicast: tuple[Endpoint, ...]
    multicast: bool = True  # also to the group (the state datagram, a LEAVE)


@dataclass(frozen=True, slots=True)
class GossipStatistics:
    """A snapshot of the engine's counters for `status`."""

    packets_in: int
    packets_out: int
    bytes_in: int
    bytes_out: int
    drops: dict[str, int] = field(default_factory=dict)
    unicast_targets: int = 0
    refused_addresses: dict[str, int] = field(default_factory=dict)
    authenticated: bool = False  # a keyed pool (every datagram carries a MAC)
    state_interval: float = 0.0  # seconds between our state datagrams, as stretched
    news_queued: int = 0  # pieces of news still to pass on
    watched: int = 0  # members we probe
    syncs_served: int = 0  # table transfers going out now
