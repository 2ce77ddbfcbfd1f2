"""The gossip engine: what this node says, when it says it, and what it makes of replies.

Sans-I/O in the manner of aioquic's connection: the daemon hands in datagrams with
`receive(data, sender, transport, now)`, asks `datagrams_to_send(now, wall)` for what to
send, sleeps until `next_datagram` or `next_deadline()` and then calls
`handle_timer(now)`.  The engine never reads a clock; `now` is the shell's monotonic time,
`wall` the Unix time that goes on the wire for people to read.  Randomness (which
members a round of news goes to) comes from the `rng` the shell seeds, and the sync
cookies' `secret` from the shell too.

The state datagram: every `effective_interval()` — the configured interval, stretched
in a large pool so that a member receives at most `STATE_RATE` of them a second — and at
once (but never twice within `min_gap`) when our status changes materially.  It goes to
the multicast group and to the unicast audience (core/audience.py): seeds, members not on
our link, and the 1.0 fallbacks.  Silence thresholds stretch with the interval.

What must reach every member soon travels as news (protocol 1.1): our own joining and
material changes here, the rules for the others' word in core/relay.py, the probes,
news rounds and syncs in core/pool_exchange.py; the seeds are asked for their table
when we know no member beyond our link.  Bad datagrams are dropped and counted by
reason, each (sender, reason) logged once; a late copy of a word is not taken for a
replay (core/late_copies.py).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace

from p2pcc.core import limits, wire
from p2pcc.core.address_screening import AddressScreening
from p2pcc.core.addresses import AddressPool
from p2pcc.core.audience import LINK_HORIZON, Audience, endpoint_of
from p2pcc.core.auth import Keyring
from p2pcc.core.errors import RejectedMessageError, WireFormatError
from p2pcc.core.gossip_types import (
    QUIET_DROPS,
    Endpoint,
    GossipStatistics,
    LogOnce,
    Outgoing,
    Received,
    RefusedAddress,
    Transport,
    announced_by,
    no_refusal_listener,
)
from p2pcc.core.late_copies import LateCopies
from p2pcc.core.model import EntryKind, Message, MessageKind, NewsEntry, NodeStatus
from p2pcc.core.news import transmits
from p2pcc.core.peers import PeerEvent, PeerTable, PeerTimings, scaled_timings
from p2pcc.core.pool_exchange import NEWS_BUDGET, Pending, PoolExchange
from p2pcc.core.relay import Heard, Relay, news_key
from p2pcc.core.same_id import namesake
from p2pcc.core.shorthand import Shorthand
from p2pcc.core.speaker import Speaker
from p2pcc.core.state_turns import StateTurns

#: State datagrams a member receives per second at most, from all the others together:
#: a pool of n members stretches each one's interval to n / STATE_RATE seconds.  At 20
#: and ~250 bytes each, 5 KB/s, half the 10 KB/s a daemon may spend on gossip.
STATE_RATE = 20.0


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
        on_refused: Callable[[RefusedAddress], None] = no_refusal_listener,
        rng: random.Random | None = None,
        secret: bytes = b"",
    ) -> None:
        """`pool`: where peers may be dialled (None: no networks known); `on_refused`
        hears of each refused address once; `rng` and `secret` (the sync cookies' key):
        the shell passes random ones, tests may leave the deterministic defaults."""
        if len(node_id) != limits.NODE_ID_BYTES:
            raise ValueError(f"node id must be {limits.NODE_ID_BYTES} bytes, got {len(node_id)}")
        if not 0 < interval < timings.suspect_after:
            raise ValueError(f"interval {interval} must be > 0 and < suspect_after")
        self.node_id = node_id
        self.incarnation = incarnation
        self.speaker = Speaker(node_id, incarnation, keyring)  # its keyring is the pool's
        self.interval = interval
        self.min_gap = interval / 10
        self.table = PeerTable(node_id, timings)
        self._timings = timings
        self._rng = rng or random.Random(node_id)  # noqa: S311 - whom news goes to, not a secret
        self._secret = secret or self._rng.randbytes(32)
        self._exchange = PoolExchange(node_id, self._rng, self._secret, now)
        self.audience = Audience()
        self._relay = Relay(node_id, self.table, self.audience, self._exchange)
        self._ring_version = -1
        self._status = status
        self._turns = StateTurns(now, node_id)
        self._shorthand = Shorthand()
        self._late = LateCopies()  # tells a late copy of a word from a replay
        self._last_sent_key: tuple[object, ...] | None = None
        self._last_sent_at: float | None = None
        self._news_key: tuple[object, ...] | None = None
        self._refute = False
        self._next_send = now  # announce ourselves at once
        self._log_once = LogOnce(now)
        self._screening = AddressScreening(pool, on_refused, self._log_once)
        self._drops: Counter[str] = Counter()
        self._packets_in = self._bytes_in = 0

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

    def effective_interval(self) -> float:
        """Seconds between two state datagrams in a pool of this size."""
        return max(self.interval, (len(self.table) + 1) / STATE_RATE)

    @property
    def next_send(self) -> float:
        """When `poll_send` next returns a datagram."""
        return self._next_send

    @property
    def next_datagram(self) -> float:
        """When `datagrams_to_send` next returns anything."""
        has_targets = bool(self.audience.members)
        turns = self._turns.next_due(has_targets)
        return min(self._next_send, self._exchange.next_pending(has_targets), turns)

    def poll_send(self, now: float, wall: float) -> Outgoing | None:
        """The state datagram to send now, or None when nothing is due yet."""
        if now < self._next_send:
            return None
        deaf, answers = self._state_targets(now)
        data = self.speaker.word(self._status, wall, deaf=bool(deaf))
        members = self.audience.member_endpoints()  # they take turns (core/state_turns.py)
        for endpoint in answers:
            self._exchange.send(Pending(MessageKind.STATE, endpoint))
        self._last_sent_key = self._status.material_key()
        self._last_sent_at = now
        self._next_send = now + self.effective_interval()
        if news_key(self._status) != self._news_key or self._refute:
            self._news_key, self._refute = news_key(self._status), False
            self._exchange.news.add(self._own_entry(), transmits(len(self.table) + 1))
        if self.audience.seeds and set(deaf) <= set(self.audience.seeds):
            # Nobody beyond our link is known: the seeds are to tell us who is.
            self._exchange.request_sync(self._rng.choice(self.audience.seeds), now)
        return self.speaker.outgoing(data, tuple(to for to in deaf if to not in members))

    def datagrams_to_send(self, now: float, wall: float) -> list[Outgoing]:
        """Everything due at `now`: the state datagram and its turns, answers, probes,
        news, syncs."""
        state = self.poll_send(now, wall)
        out = [] if state is None else [state]
        out += self._state_turns(now, wall)
        pending = self._exchange.pending(now, self.audience.gossip_targets())
        speaker = self.speaker
        out.extend(
            speaker.outgoing(speaker.pending(p, self._status, wall), (p.to,), False)
            for p in pending
        )
        return out

    def _state_turns(self, now: float, wall: float) -> list[Outgoing]:
        """This turn's copies of our state to members beyond our link, news aboard."""
        members = self.audience.member_endpoints()
        if now >= self._turns.next_cycle:
            deaf, _ = self._state_targets(now)
            listed = [to for to in deaf if to in members]
            self._turns.start_cycle(listed, now, self.effective_interval())
        room = NEWS_BUDGET - wire.entry_size(self._own_entry())
        short = self.audience.reads_shorthand
        return [
            self.speaker.copy(self._status, wall, to, self._exchange.piggyback(room), short(to))
            for to in self._turns.take(now, members)
        ]

    def renamed(self, node_id: bytes, now: float) -> GossipEngine:
        """A fresh engine for this node under `node_id` (a cloned machine's new id): the
        same incarnation, key, status, timings, address rule and seeds, the replay
        memory kept; peers are heard anew."""
        engine = GossipEngine(
            node_id=node_id,
            incarnation=self.incarnation,
            keyring=self.speaker.keyring,
            status=self._status,
            interval=self.interval,
            timings=self._timings,
            now=now,
            pool=self._screening.pool,
            on_refused=self._screening.on_refused,
            rng=self._rng,
            secret=self._secret,
        )
        engine.table.remember(self.table.seen_orders())
        engine.set_seeds(self.audience.seeds, now)
        return engine

    def leave(self, now: float, wall: float) -> Outgoing:
        """The goodbye datagram: peers drop us at once instead of waiting for silence."""
        data = self.speaker.word(None, wall)
        return self.speaker.outgoing(data, self.unicast_targets(now))

    def _own_entry(self) -> NewsEntry:
        order = (self.incarnation, self.speaker.sequence)
        return NewsEntry(EntryKind.STATE, self.node_id, *order, wire.MINOR_VERSION, self._status)

    # --- what we hear -------------------------------------------------------------

    def receive(self, data: bytes, sender: Endpoint, transport: Transport, now: float) -> Received:
        """Decode and merge one datagram from `sender`; never raises for bad input."""
        self._packets_in += 1
        self._bytes_in += len(data)
        try:
            message = wire.decode(data, self.speaker.keyring)
        except WireFormatError as error:
            return self._drop(sender, error.reason, str(error), now)
        if message.node_id == self.node_id:
            return self._own(message, sender, now)
        if message.kind in (MessageKind.STATE, MessageKind.LEAVE):
            received = self._receive_word(message, sender, transport, now)
        else:
            received = self._receive_exchange(message, sender, now)
        if message.news:
            events = self._relay.merge_news(message, sender, self._screening.screen, now)
            self._retime()
            received = replace(received, events=received.events + tuple(events))
        if self._relay.refute_due:  # suspected, or back from a cut: say something newer
            self._relay.refute_due, self._refute = False, True
            self._next_send = now
        return received

    def _own(self, message: Message, sender: Endpoint, now: float) -> Received:
        """A datagram carrying our id: our own echo, or another node's (same-id)."""
        other = namesake(message, sender[0], self._status)
        if other is None:
            return self._drop(sender, "own", "", now)
        self._send_soon(now)  # it hears our id at once, so both of us learn it is shared
        return replace(self._drop(sender, "same-id", "", now), namesake=other)

    def _receive_word(
        self, message: Message, sender: Endpoint, transport: Transport, now: float
    ) -> Received:
        """A node's own STATE or LEAVE."""
        message = self._screening.message(message, sender[0], now)
        direct = announced_by(sender[0], message.body)
        known = self.table.get(message.node_id)
        # A request is a new order of the asker's: a replay of one is not answered.
        fresh = known is None or message.order > known.order
        asker = endpoint_of(message.body) if message.resend and message.body else None
        if asker is not None and direct and fresh:  # it lacks our compilers (shorthand.py)
            self._exchange.answer_with_state(asker, now)
        if known is not None and known.order == message.order:
            # The same datagram by multicast and by unicast: the unicast copy still tells
            # us the sender is unicasting to us, so it must hear from us the same way.
            self.audience.heard(message, sender, transport, now)
            return self._drop(sender, "duplicate", "", now)
        if (resolved := self._shorthand.resolve(message, known)) is None:
            endpoint = endpoint_of(message.body) if message.body else None
            if endpoint is not None and self._shorthand.may_ask(message.node_id, now):
                self._exchange.send(Pending(MessageKind.STATE, endpoint, resend=True))
            return self._drop(sender, "compilers-unknown", "", now)
        message = resolved
        try:
            events = self.table.apply(message, now)
        except RejectedMessageError as error:
            reason = self._late.judge(message.node_id, message.order, error.reason, now)
            return self._drop(sender, reason, str(error), now)
        held = None if known is None else known.order
        self._late.accepted(message.node_id, held, message.order, now)
        self.audience.heard(message, sender, transport, now)
        heard = Heard.MULTICAST if transport is Transport.MULTICAST else Heard.UNICAST
        self._relay.after_word(events, message.order, heard if direct else Heard.RELAYED, now)
        self._retime()
        return Received(events=tuple(events))

    def adopt(self, entries: Iterable[NewsEntry], via: str, now: float) -> list[PeerEvent]:
        """Merge members' entries we were handed out of band (remembered across a
        restart, or a simulated pool's start), as a sync's: screened, not passed on."""
        events = self._relay.merge(entries, Heard.TRANSFER, via, self._screening.screen, now)
        self._retime()
        return events

    def _receive_exchange(self, message: Message, sender: Endpoint, now: float) -> Received:
        """A PROBE, ACK, SYNC or COOKIE (a NEWS is all entries, which `receive` merges)."""
        if message.kind is MessageKind.NEWS:
            return Received()
        events, dropped = self._relay.exchange(message, sender, self._own_entry(), now)
        if dropped is not None:
            return self._drop(sender, dropped, "", now)
        return Received(events=tuple(events))

    def _drop(self, sender: Endpoint, reason: str, detail: str, now: float) -> Received:
        self._drops[reason] += 1
        log = reason not in QUIET_DROPS and self._log_once.first((sender[0], reason), now)
        return Received(dropped=reason, detail=detail, log=log)

    # --- whom we tell -------------------------------------------------------------

    def discovered(self, node_id: bytes, addresses: Sequence[str], port: int, now: float) -> None:
        """A p2pcc node announced by mDNS at `addresses` with its gossip `port`: unicast
        goes to the first address the pool's rule accepts (none: the node is not dialled)."""
        if node_id == self.node_id:
            return
        accepted = self._screening.screen(addresses, node_id, "mDNS", now)
        self.audience.discovered(node_id, (accepted[0], port) if accepted else None)

    def set_seeds(self, seeds: Sequence[Endpoint], now: float) -> None:
        """Where to reach the pool beyond our link (`gossip.seeds`, resolved by the
        shell): each hears our state by unicast, and a new one is asked for its table."""
        for seed in self.audience.set_seeds(seeds):
            self._exchange.request_sync(seed, now, urgent=True)
            self._send_soon(now)

    def undiscovered(self, node_id: bytes) -> None:
        """mDNS says the node's service is gone."""
        self.audience.undiscovered(node_id)

    def unicast_targets(self, now: float) -> tuple[Endpoint, ...]:
        """Endpoints that get our state datagrams by unicast as well as by multicast."""
        deaf, answers = self._state_targets(now)
        return tuple(sorted(deaf + answers))

    def _state_targets(self, now: float) -> tuple[tuple[Endpoint, ...], tuple[Endpoint, ...]]:
        link_horizon = LINK_HORIZON * self.effective_interval()
        silent = self.table.timings.suspect_after
        return self.audience.state_targets(self.table.peers(), now, link_horizon, silent)

    def _endpoint_of(self, node_id: bytes) -> Endpoint | None:
        peer = self.table.get(node_id)
        return None if peer is None else endpoint_of(peer.status)

    def _retime(self) -> None:  # silences stretch with the pool (the factor is rounded)
        timings = scaled_timings(self._timings, self.effective_interval() / self.interval)
        if self.table.timings != timings:
            self.table.timings = timings

    # --- timers -------------------------------------------------------------------

    def next_deadline(self) -> float:
        """When `handle_timer` next has something to do: a peer's silence or a probe."""
        table_deadline = self.table.next_deadline()
        probe = self._exchange.next_probe(bool(self._relay.dead))
        return probe if table_deadline is None else min(probe, table_deadline)

    def handle_timer(self, now: float) -> list[PeerEvent]:
        """Apply liveness changes due by `now`, probe, and suspect the silent."""
        self.audience.expire(now, self.table.timings.suspect_after)
        events = self.table.tick(now)
        self._relay.members_changed(events)  # the gossip members, then the silences
        self._retime()
        members = self.audience.members
        if self.audience.version != self._ring_version:
            self._ring_version = self.audience.version
            self._exchange.prober.set_members(members, now)
        silent = self._exchange.probe_round(now, self._endpoint_of, sorted(self._relay.dead))
        events += self._relay.suspect_silent(silent, now)
        return events

    def statistics(self, now: float) -> GossipStatistics:
        """Counters for `status`: packets and bytes each way, drops and refused addresses
        by reason."""
        return GossipStatistics(
            packets_in=self._packets_in,
            packets_out=self.speaker.packets_out,
            bytes_in=self._bytes_in,
            bytes_out=self.speaker.bytes_out,
            drops=dict(sorted(self._drops.items())),
            unicast_targets=len(self.unicast_targets(now)),
            refused_addresses=dict(sorted(self._screening.refused.items())),
            authenticated=bool(self.speaker.keyring),
            state_interval=self.effective_interval(),
            news_queued=len(self._exchange.news),
            watched=len(self._exchange.prober.watched),
            syncs_served=self._exchange.transfers.active,
        )
