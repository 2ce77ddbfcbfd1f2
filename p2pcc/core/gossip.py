"""The gossip engine: what this node says, when it says it, and what it makes of replies.

Sans-I/O in the manner of aioquic's connection: the daemon hands in datagrams with
`receive(data, sender, transport, now)`, asks `poll_send(now, wall)` for the datagram
to send, sleeps until `next_deadline()` and then calls `handle_timer(now)`.  The engine
never reads a clock; `now` is the shell's monotonic time, `wall` the Unix time that goes
on the wire for people to read.

When to speak: every `interval`, and at once (but never twice within `min_gap`) when our
status changes materially (state, slots, compilers, addresses, port) or a node we did not
know joins, so a newcomer has the whole table within one round trip.

Whom to tell besides the multicast group: a node found by mDNS that we do not hear,
and any node that has lately reached us by unicast from an address it announces (it
evidently cannot hear our multicast, or would not bother; a copy bounced by anyone
else must not turn our unicast towards the bouncer).  Both ends of a filtered path thus fall back to
unicast, and stay there while both are alive.

Bad datagrams are dropped and counted by reason; each (sender, reason) pair is reported
for logging once, with a bounded memory of which pairs were already reported
(`LogOnce`).  Every address a node announces, by mDNS or in gossip, passes the pool's
address rule (p2pcc.core.addresses) before anything uses it: a refused one is counted
by reason, handed to `on_refused` once per (address, reason), and left out, so a node
whose every address is refused is never dialled.
"""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from p2pcc.core import limits, wire
from p2pcc.core.addresses import AddressPool, screen_addresses
from p2pcc.core.auth import Keyring
from p2pcc.core.errors import RejectedMessageError, WireFormatError
from p2pcc.core.model import Message, MessageKind, NodeStatus
from p2pcc.core.peers import Liveness, PeerEvent, PeerJoined, PeerTable, PeerTimings
from p2pcc.core.same_id import Namesake, namesake

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
#: datagram under our id, which the node reports (`Received.namesake`) and acts on.
QUIET_DROPS = frozenset({"own", "duplicate", "same-id"})


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


def _announced(address: str, status: NodeStatus | None) -> bool:
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


def _no_refusal_listener(refused: RefusedAddress) -> None:
    """The default `on_refused`: nobody logs."""


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One datagram to send to the multicast group and to each unicast endpoint."""

    data: bytes
    unicast: tuple[Endpoint, ...]


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


class GossipEngine:
    """One node's side of the gossip protocol, driven entirely by its caller."""

    def __init__(
        self,
        *,
        node_id: bytes,
        incarnation: int,
        keyring: Keyring,
        status: NodeStatus,
        interval: float,
        timings: PeerTimings,
        now: float,
        pool: AddressPool | None = None,
        on_refused: Callable[[RefusedAddress], None] = _no_refusal_listener,
    ) -> None:
        """`pool`: where peers may be dialled (None: no networks known, see
        p2pcc.core.addresses); `on_refused` hears of each refused address once."""
        if len(node_id) != limits.NODE_ID_BYTES:
            raise ValueError(f"node id must be {limits.NODE_ID_BYTES} bytes, got {len(node_id)}")
        if not 0 < interval < timings.suspect_after:
            raise ValueError(f"interval {interval} must be > 0 and < suspect_after")
        self.node_id = node_id
        self.incarnation = incarnation
        self.keyring = keyring
        self.interval = interval
        self.min_gap = interval / 10
        self.table = PeerTable(node_id, timings)
        self._status = status
        self._sequence = 0
        self._last_sent_key: tuple[object, ...] | None = None
        self._last_sent_at: float | None = None
        self._next_send = now  # announce ourselves at once
        self._discovered: dict[bytes, Endpoint] = {}
        self._unicast_from: dict[bytes, tuple[Endpoint, float]] = {}
        self._seeds: tuple[Endpoint, ...] = ()
        self.pool = pool
        self.on_refused = on_refused
        self._log_once = LogOnce(now)
        self._drops: Counter[str] = Counter()
        self._refused: Counter[str] = Counter()
        self._packets_in = self._packets_out = self._bytes_in = self._bytes_out = 0

    # --- what we say --------------------------------------------------------------

    @property
    def status(self) -> NodeStatus:
        """Our own status as last set."""
        return self._status

    def set_status(self, status: NodeStatus, now: float) -> None:
        """Adopt a new own status; a material change makes a datagram due at once."""
        self._status = status
        if status.material_key() != self._last_sent_key:
            self._send_soon(now)

    def _send_soon(self, now: float) -> None:
        """Make a datagram due now, or `min_gap` after the last one if that is later."""
        earliest = now if self._last_sent_at is None else self._last_sent_at + self.min_gap
        self._next_send = min(self._next_send, max(now, earliest))

    @property
    def next_send(self) -> float:
        """When `poll_send` next returns a datagram."""
        return self._next_send

    def poll_send(self, now: float, wall: float) -> Outgoing | None:
        """The state datagram to send now, or None when nothing is due yet."""
        if now < self._next_send:
            return None
        data = self._encode(MessageKind.STATE, self._status, wall)
        self._last_sent_key = self._status.material_key()
        self._last_sent_at = now
        self._next_send = now + self.interval
        return self._outgoing(data, now)

    def renamed(self, node_id: bytes, now: float) -> GossipEngine:
        """A fresh engine for this node under `node_id` (a cloned machine's new id): the
        same incarnation, key, status, timings and address rule, the replay memory
        kept; peers are heard anew."""
        engine = GossipEngine(
            node_id=node_id,
            incarnation=self.incarnation,
            keyring=self.keyring,
            status=self._status,
            interval=self.interval,
            timings=self.table.timings,
            now=now,
            pool=self.pool,
            on_refused=self.on_refused,
        )
        engine.table.remember(self.table.seen_orders())
        engine.set_seeds(self._seeds, now)
        return engine

    def leave(self, now: float, wall: float) -> Outgoing:
        """The goodbye datagram: peers drop us at once instead of waiting for silence."""
        return self._outgoing(self._encode(MessageKind.LEAVE, None, wall), now)

    def _encode(self, kind: MessageKind, body: NodeStatus | None, wall: float) -> bytes:
        self._sequence += 1
        message = Message(self.node_id, self.incarnation, self._sequence, wall, kind, body)
        return wire.encode(message, self.keyring)

    def _outgoing(self, data: bytes, now: float) -> Outgoing:
        targets = self.unicast_targets(now)
        self._packets_out += 1 + len(targets)
        self._bytes_out += len(data) * (1 + len(targets))
        return Outgoing(data, targets)

    # --- what we hear -------------------------------------------------------------

    def receive(self, data: bytes, sender: Endpoint, transport: Transport, now: float) -> Received:
        """Decode and merge one datagram from `sender`; never raises for bad input."""
        self._packets_in += 1
        self._bytes_in += len(data)
        try:
            message = wire.decode(data, self.keyring)
        except WireFormatError as error:
            return self._drop(sender, error.reason, str(error), now)
        if message.node_id == self.node_id:
            return self._own(message, sender, now)
        message = self._screened(message, sender[0], now)
        known = self.table.get(message.node_id)
        if known is not None and known.order == message.order:
            # The same datagram by multicast and by unicast: the unicast copy still tells
            # us the sender is unicasting to us, so it must hear from us the same way.
            self._note_transport(message, sender, transport, now)
            return self._drop(sender, "duplicate", "", now)
        try:
            events = self.table.apply(message, now)
        except RejectedMessageError as error:
            return self._drop(sender, error.reason, str(error), now)
        self._note_transport(message, sender, transport, now)
        if any(isinstance(event, PeerJoined) for event in events):
            self._send_soon(now)  # a newcomer learns of us at once, not an interval later
        return Received(events=tuple(events))

    def _own(self, message: Message, sender: Endpoint, now: float) -> Received:
        """A datagram carrying our id: our own echo, or another node's (same-id)."""
        other = namesake(message, sender[0], self._status)
        if other is None:
            return self._drop(sender, "own", "", now)
        self._send_soon(now)  # it hears our id at once, so both of us learn it is shared
        return replace(self._drop(sender, "same-id", "", now), namesake=other)

    def _note_transport(
        self, message: Message, sender: Endpoint, transport: Transport, now: float
    ) -> None:
        if message.kind is MessageKind.LEAVE:
            self._unicast_from.pop(message.node_id, None)
            self._discovered.pop(message.node_id, None)
        elif transport is Transport.UNICAST and _announced(sender[0], message.body):
            self._unicast_from[message.node_id] = (sender, now)

    def _drop(self, sender: Endpoint, reason: str, detail: str, now: float) -> Received:
        self._drops[reason] += 1
        log = reason not in QUIET_DROPS and self._log_once.first((sender[0], reason), now)
        return Received(dropped=reason, detail=detail, log=log)

    def _screened(self, message: Message, via: str, now: float) -> Message:
        """`message` with only the addresses its node may be dialled at."""
        status = message.body
        if status is None:
            return message
        accepted = self._screen(status.addresses, message.node_id, via, now)
        if accepted == status.addresses:
            return message
        return replace(message, body=replace(status, addresses=accepted))

    def _screen(
        self, addresses: Sequence[str], node_id: bytes, via: str, now: float
    ) -> tuple[str, ...]:
        """The addresses that pass the pool's rule; the others counted and reported."""
        screened = screen_addresses(addresses, self.pool)
        for address, refusal in screened.refused:
            self._refused[refusal.value] += 1
            if self._log_once.first((address, refusal.value), now):
                self.on_refused(RefusedAddress(address, refusal.value, node_id, via))
        return screened.accepted

    # --- whom we tell -------------------------------------------------------------

    def discovered(self, node_id: bytes, addresses: Sequence[str], port: int, now: float) -> None:
        """A p2pcc node announced by mDNS at `addresses` with its gossip `port`: unicast
        goes to the first address the pool's rule accepts (none: the node is not dialled)."""
        if node_id == self.node_id:
            return
        accepted = self._screen(addresses, node_id, "mDNS", now)
        if not accepted:
            self._discovered.pop(node_id, None)
        elif node_id in self._discovered or len(self._discovered) < limits.MAX_PEERS:
            self._discovered[node_id] = (accepted[0], port)

    def set_seeds(self, seeds: Sequence[Endpoint], now: float) -> None:
        """Where to reach the pool beyond our link (`gossip.seeds`, resolved by the
        shell): each hears our state by unicast, the first time at once."""
        seeds = tuple(dict.fromkeys(seeds))[: limits.MAX_SEEDS]
        if set(seeds) - set(self._seeds):
            self._send_soon(now)
        self._seeds = seeds

    @property
    def seeds(self) -> tuple[Endpoint, ...]:
        return self._seeds

    def undiscovered(self, node_id: bytes) -> None:
        """mDNS says the node's service is gone."""
        self._discovered.pop(node_id, None)

    def unicast_targets(self, now: float) -> tuple[Endpoint, ...]:
        """Endpoints that get our datagrams by unicast as well as by multicast."""
        targets: set[Endpoint] = set(self._seeds)
        for node_id, endpoint in self._discovered.items():
            peer = self.table.get(node_id)
            if peer is None or peer.liveness is not Liveness.ALIVE:
                targets.add(endpoint)
        horizon = self.table.timings.suspect_after
        for endpoint, heard_at in self._unicast_from.values():
            if now < heard_at + horizon:
                targets.add(endpoint)
        return tuple(sorted(targets))

    # --- timers -------------------------------------------------------------------

    def next_deadline(self) -> float:
        """When `handle_timer` or `poll_send` next has something to do."""
        table_deadline = self.table.next_deadline()
        if table_deadline is None:
            return self._next_send
        return min(self._next_send, table_deadline)

    def handle_timer(self, now: float) -> list[PeerEvent]:
        """Apply liveness changes due by `now` and forget stale unicast sources."""
        horizon = self.table.timings.suspect_after
        for node_id, (_, heard_at) in list(self._unicast_from.items()):
            if now >= heard_at + horizon:
                del self._unicast_from[node_id]
        return self.table.tick(now)

    def statistics(self, now: float) -> GossipStatistics:
        """Counters for `status`: packets and bytes each way, drops and refused addresses
        by reason."""
        return GossipStatistics(
            packets_in=self._packets_in,
            packets_out=self._packets_out,
            bytes_in=self._bytes_in,
            bytes_out=self._bytes_out,
            drops=dict(sorted(self._drops.items())),
            unicast_targets=len(self.unicast_targets(now)),
            refused_addresses=dict(sorted(self._refused.items())),
            authenticated=bool(self.keyring),
        )
