"""What a node makes of the others' word: news to pass on, newcomers to greet, syncs to
ask for, and members to suspect (protocol 1.1).

The gossip engine (core/gossip.py) merges a node's own STATE or LEAVE and hands the
resulting table events here with how the word reached it (`Heard`); relayed entries,
probes, acks, syncs and cookies come here directly.  The rules:

- *News*: a node joining, coming back from DEAD, changing materially (`news_key`:
  state, compilers, addresses, ports — load and slots wait for its next state datagram),
  leaving, or suspected is queued to pass on: `transmits(n)` times, or
  `LINK_NEWS_TRANSMITS` when its own multicast told the whole link and no member is
  known beyond it (were there some, they could only hear it from the link's few
  copies: in a pool of two subnets one in two hundred missed a pause), or not at all
  when it came in a sync we asked for.
- *Greeting*: a node new to us heard by its own multicast gets our state by unicast at
  once (it knows nothing of us); one heard by its own unicast is asked for a sync (it
  lives beyond our link, and may know members we lack).  A PROBE from a node we do not
  know, or had given up, is also a reason to sync with it: a healed cut — and, like an
  ACK from a member we had given up, to say something new about ourselves at once: the
  other side holds us dead at our last order, and only a newer one brings us back.
- *Suspicion*: a watched member that answered no probe (core/probing.py) is suspected
  at the order we hold, and the suspicion passed on; a suspicion about us is refuted by
  saying something newer at once (`refute_due`).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import replace

from p2pcc.core.audience import POOL_MINOR, Audience, endpoint_of
from p2pcc.core.errors import RejectedMessageError
from p2pcc.core.gossip_types import Endpoint
from p2pcc.core.model import EntryKind, Message, MessageKind, NewsEntry, NodeStatus
from p2pcc.core.news import LINK_NEWS_TRANSMITS, transmits
from p2pcc.core.peers import (
    Liveness,
    LivenessChanged,
    PeerEvent,
    PeerJoined,
    PeerLeft,
    PeerTable,
    PeerUpdated,
)
from p2pcc.core.pool_exchange import Pending, PoolExchange
from p2pcc.core.probing import Answer

Screen = Callable[[Sequence[str], bytes, str, float], tuple[str, ...]]


class Heard(enum.Enum):
    """How a node's word reached us, which decides what we do with it."""

    MULTICAST = "multicast"  # its own datagram, by multicast: its link heard it too
    UNICAST = "unicast"  # its own datagram, by unicast
    RELAYED = "relayed"  # news from another member
    TRANSFER = "transfer"  # a sync we asked for: catching up, not news


def news_key(status: NodeStatus) -> tuple[object, ...]:
    """What of a status is news for the whole pool at once."""
    return (
        status.state,
        status.compilers,
        status.addresses,
        status.distccd_port,
        status.gossip_port,
    )


def node_of(event: PeerEvent) -> bytes:
    """The node a table event is about."""
    if isinstance(event, PeerJoined | PeerUpdated | PeerLeft):
        return event.peer.node_id
    return event.node_id


class Relay:
    """One node's rules for the others' word; see the module docstring."""

    def __init__(
        self, own_id: bytes, table: PeerTable, audience: Audience, exchange: PoolExchange
    ) -> None:
        self._own_id = own_id
        self._table = table
        self._audience = audience
        self._exchange = exchange
        self.dead: set[bytes] = set()  # members dead but not yet forgotten
        self.refute_due = False  # a suspicion about us, or a healed cut, was heard

    # --- word merged by the engine ------------------------------------------------

    def after_word(
        self,
        events: Sequence[PeerEvent],
        order: tuple[int, int],
        heard: Heard,
        now: float,
        suspicion: bool = False,
    ) -> None:
        """Pass on what is news, greet newcomers heard first-hand."""
        self.members_changed(events)
        if heard is Heard.TRANSFER:
            return  # catching up: nothing to pass on, nobody to greet
        times = transmits(len(self._table) + 1)
        if heard is Heard.MULTICAST and not self._audience.any_beyond_link():
            times = LINK_NEWS_TRANSMITS
        news = self._exchange.news
        fresh: list[bytes] = []
        for event in events:
            if isinstance(event, PeerJoined) or (
                isinstance(event, LivenessChanged) and event.old is Liveness.DEAD
            ):
                fresh.append(node_of(event))
            elif isinstance(event, PeerUpdated):
                if news_key(event.peer.status) != news_key(event.previous):
                    news.add(self.entry_of(event.peer.node_id), times)
            elif isinstance(event, LivenessChanged) and suspicion:
                news.add(NewsEntry(EntryKind.SUSPECT, event.node_id, *order), times)
            elif isinstance(event, PeerLeft):
                news.add(NewsEntry(EntryKind.LEAVE, event.peer.node_id, *order), times)
        for node_id in dict.fromkeys(fresh):
            news.add(self.entry_of(node_id), times)
            self._greet(node_id, heard, now)

    def _greet(self, node_id: bytes, heard: Heard, now: float) -> None:
        peer = self._table.get(node_id)
        endpoint = endpoint_of(peer.status) if peer is not None else None
        if peer is None or endpoint is None:
            return
        if heard is Heard.MULTICAST:
            self._exchange.answer_with_state(endpoint, now)
        elif heard is Heard.UNICAST and peer.minor >= POOL_MINOR:
            self._exchange.request_sync(endpoint, now)

    def members_changed(self, events: Iterable[PeerEvent]) -> None:
        """Keep the gossip members and the dead current, one event at a time."""
        for event in events:
            node_id = node_of(event)
            peer = self._table.get(node_id)
            self._audience.update(peer, node_id)
            if peer is not None and peer.liveness is Liveness.DEAD:
                self.dead.add(node_id)
            else:
                self.dead.discard(node_id)

    # --- what only 1.1 nodes send ---------------------------------------------------

    def merge_news(
        self, message: Message, sender: Endpoint, screen: Screen, now: float
    ) -> list[PeerEvent]:
        """Merge relayed entries (addresses screened); stale ones are skipped quietly,
        since news repeats itself."""
        transfer = self._exchange.is_transfer(message, sender)
        heard = Heard.TRANSFER if transfer else Heard.RELAYED
        return self.merge(message.news, heard, sender[0], screen, now)

    def merge(
        self, entries: Iterable[NewsEntry], heard: Heard, via: str, screen: Screen, now: float
    ) -> list[PeerEvent]:
        """Merge `entries` that came `heard` from `via` (addresses screened)."""
        events: list[PeerEvent] = []
        for entry in entries:
            if entry.node_id == self._own_id:
                self.refute_due |= entry.kind is EntryKind.SUSPECT
                continue
            merged = entry
            if entry.body is not None:
                addresses = screen(entry.body.addresses, entry.node_id, via, now)
                if addresses != entry.body.addresses:
                    merged = replace(entry, body=replace(entry.body, addresses=addresses))
            try:
                applied = self._table.apply_entry(merged, now)
            except RejectedMessageError:
                continue
            suspicion, order = entry.kind is EntryKind.SUSPECT, entry.order
            if suspicion and (held := self._table.get(entry.node_id)) is not None:
                order = max(order, held.order)  # passed on at the order we hold
            self.after_word(applied, order, heard, now, suspicion=suspicion)
            events += applied
        return events

    def exchange(
        self, message: Message, sender: Endpoint, own_entry: NewsEntry, now: float
    ) -> tuple[list[PeerEvent], str | None]:
        """A PROBE, ACK, SYNC or COOKIE: the table events, or why it is dropped."""
        exchange, events = self._exchange, list[PeerEvent]()
        nonce = message.nonce
        if nonce is None:  # the codec requires one on these kinds
            return events, "malformed"
        if message.kind is MessageKind.PROBE:
            exchange.send(Pending(MessageKind.ACK, sender, nonce))
            known = self._table.get(message.node_id)
            if known is None or known.liveness is Liveness.DEAD:
                exchange.request_sync(sender, now)  # back from a cut: catch up with it
                self.refute_due = True  # and say something new: its side has us dead
        elif message.kind is MessageKind.ACK:
            answer = exchange.prober.acked(message.node_id, nonce, now)
            if answer is Answer.UNKNOWN:
                return events, "unexpected-ack"
            if answer is Answer.LATE:
                return events, "late-ack"
            events = self._table.heard(message.node_id, now)
            self.members_changed(events)
            if answer is Answer.HEALED:  # a member we had given up answered: the cut healed
                exchange.request_sync(sender, now)
                self.refute_due = True  # its side has us dead, at an order it holds
        elif message.kind is MessageKind.SYNC:
            exchange.sync_asked(message, sender, self._sync_entries(own_entry), now)
        elif message.kind is MessageKind.COOKIE and not exchange.cookie_received(
            message, sender, now
        ):
            return events, "unexpected-cookie"
        return events, None

    def suspect_silent(self, silent: Iterable[bytes], now: float) -> list[PeerEvent]:
        """Suspect the watched members that answered no probe, and pass it on."""
        events: list[PeerEvent] = []
        for node_id in silent:
            peer = self._table.get(node_id)
            if peer is None:
                continue
            suspected = self._table.suspect(node_id, peer.order, now)
            self.members_changed(suspected)
            if suspected:
                entry = NewsEntry(EntryKind.SUSPECT, node_id, *peer.order)
                self._exchange.news.add(entry, transmits(len(self._table) + 1))
            events += suspected
        return events

    # --- entries ----------------------------------------------------------------------

    def entry_of(self, node_id: bytes) -> NewsEntry:
        """The STATE entry of a member we hold."""
        peer = self._table.get(node_id)
        if peer is None:
            raise KeyError(node_id.hex())
        return NewsEntry(EntryKind.STATE, node_id, *peer.order, peer.minor, peer.status)

    def _sync_entries(self, own_entry: NewsEntry) -> Iterator[NewsEntry]:
        """What a sync hands over: our own state and every member not dead."""
        yield own_entry
        for peer in self._table.peers():
            if peer.liveness is not Liveness.DEAD:
                yield NewsEntry(EntryKind.STATE, peer.node_id, *peer.order, peer.minor, peer.status)
