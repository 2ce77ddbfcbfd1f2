"""What a node says to single members beyond its periodic state: probes and their
answers, news, and the table it hands a newcomer (protocol 1.1).

The gossip engine (core/gossip.py) decides what its state datagram says and whom it goes
to; this object holds the rest of a node's conversation with the pool: the news queue
(core/news.py) and the rounds that pass it on, the probes of the members this node
watches (core/probing.py), the sync transfers it serves (core/sync.py) and the syncs it
asked for.  It decides, the engine encodes: what it wants sent comes out of `pending` as
`Pending` records, which the engine turns into datagrams stamped with its identity.

News goes out every `NEWS_TICK` while any is queued, to `NEWS_FANOUT` members picked at
random among those that speak 1.1, one datagram each; as many fewer as copies of our
state to members beyond our link carried news since the last round (`piggyback`,
core/state_turns.py), which go to members just as well.  With three a round a piece of
news reaches a thousand members in about eight rounds (0.8 s) when nobody on the way
shares a link, and at once on the origin's link, which hears its multicast.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from p2pcc.core import limits, wire
from p2pcc.core.model import Message, MessageKind, NewsEntry
from p2pcc.core.news import NewsQueue
from p2pcc.core.probing import Prober
from p2pcc.core.rate_limit import TokenBuckets
from p2pcc.core.sync import SyncServer, cookie, cookie_valid

Endpoint = tuple[str, int]

#: Seconds between two rounds of news, and the members each round goes to.
NEWS_TICK = 0.1
NEWS_FANOUT = 3

#: Bytes of news one datagram carries: the datagram's cap less the envelope around it
#: (header, id, counters, time, kind, MAC: about 100 bytes).
NEWS_BUDGET = limits.MAX_DATAGRAM - 128

#: Seconds an unanswered SYNC stays outstanding, and the least time between two syncs
#: this node asks for (a transfer costs its server; one is enough to catch up).
SYNC_WAIT = 10.0
SYNC_REQUEST_GAP = 30.0

#: Our state sent by unicast to members that greet us directly for the first time (a
#: newcomer, a member back from a cut): at most this many at once, then per second.  In
#: an unkeyed pool anyone can make up newcomers, and each answer is a datagram.
ANSWER_BURST = 64
ANSWER_RATE = 20.0


@dataclass(frozen=True, slots=True)
class Pending:
    """A datagram this node wants sent to one endpoint: its kind and what it carries
    (a STATE carries the node's status, which the engine adds)."""

    kind: MessageKind
    to: Endpoint
    nonce: int | None = None
    cookie: bytes = b""
    news: tuple[NewsEntry, ...] = ()
    resend: bool = False  # a STATE asking for the receiver's whole one (core/shorthand.py)


@dataclass(slots=True)
class _Request:
    nonce: int
    at: float


def pack(entries: Iterable[NewsEntry], budget: int = NEWS_BUDGET) -> list[tuple[NewsEntry, ...]]:
    """`entries` in datagram-sized batches, in order."""
    batches: list[tuple[NewsEntry, ...]] = []
    batch: list[NewsEntry] = []
    room = budget
    for entry in entries:
        size = wire.entry_size(entry)
        if batch and (size > room or len(batch) == limits.MAX_NEWS):
            batches.append(tuple(batch))
            batch, room = [], budget
        batch.append(entry)
        room -= size
    if batch:
        batches.append(tuple(batch))
    return batches


class PoolExchange:
    """One node's probes, news rounds and syncs; see the module docstring."""

    def __init__(self, own_id: bytes, rng: random.Random, secret: bytes, now: float) -> None:
        self.news = NewsQueue(wire.entry_size)
        self.prober = Prober(own_id, rng, now)
        self.transfers = SyncServer()
        self._rng = rng
        self._secret = secret
        self._outbox: list[Pending] = []
        self._requests: dict[Endpoint, _Request] = {}
        self._last_request = -math.inf
        self._next_round = now
        self._piggybacked = 0  # datagrams that carried news since the last round
        self._answers = TokenBuckets(ANSWER_BURST, ANSWER_RATE, max_keys=1)

    # --- what goes out --------------------------------------------------------------

    def pending(self, now: float, gossip_targets: Sequence[Endpoint]) -> list[Pending]:
        """Everything due at `now`: answers, probes, a round of news, transfer datagrams."""
        out, self._outbox = self._outbox, []
        if not self.news:
            self._piggybacked = 0
        elif gossip_targets and now >= self._next_round:
            self._next_round = now + NEWS_TICK
            count = max(0, min(NEWS_FANOUT - self._piggybacked, len(gossip_targets)))
            self._piggybacked = 0
            for target in self._rng.sample(list(gossip_targets), count):
                entries = self.news.take(NEWS_BUDGET)
                if entries:
                    out.append(Pending(MessageKind.NEWS, target, news=entries))
        for datagram in self.transfers.poll(now):
            out.append(
                Pending(MessageKind.NEWS, datagram.requester, datagram.nonce, b"", datagram.entries)
            )
        return out

    def next_pending(self, has_targets: bool) -> float:
        """When `pending` next has something to send (-inf: at once)."""
        if self._outbox:
            return -math.inf
        deadline = self.transfers.next_deadline()
        if self.news and has_targets:
            deadline = min(deadline, self._next_round)
        return deadline

    def piggyback(self, room: int) -> tuple[NewsEntry, ...]:
        """News for a datagram going to a member anyway, in `room` bytes: it counts as
        one of the next round's."""
        entries = self.news.take(room) if self.news else ()
        self._piggybacked += bool(entries)
        return entries

    def send(self, pending: Pending) -> None:
        """Queue `pending` for the next `pending` call."""
        self._outbox.append(pending)

    def answer_with_state(self, to: Endpoint, now: float) -> bool:
        """Send our state to `to` unless answers are spent; whether it will go (once
        for all the reasons to answer it at the same time)."""
        answer = Pending(MessageKind.STATE, to)
        if answer in self._outbox:
            return True
        if not self._answers.take(0, now):
            return False
        self.send(answer)
        return True

    # --- syncs we ask for -----------------------------------------------------------

    def request_sync(self, to: Endpoint, now: float, *, urgent: bool = False) -> bool:
        """Ask `to` for its table, unless we asked anyone within SYNC_REQUEST_GAP (an
        `urgent` request, for a seed, only waits for an answer to the same endpoint)."""
        self._expire_requests(now)
        if to in self._requests or (not urgent and now < self._last_request + SYNC_REQUEST_GAP):
            return False
        nonce = self._rng.getrandbits(48)
        self._requests[to] = _Request(nonce, now)
        self._last_request = now
        self.send(Pending(MessageKind.SYNC, to, nonce))
        return True

    def cookie_received(self, message: Message, sender: Endpoint, now: float) -> bool:
        """A COOKIE for a SYNC of ours: ask again with it.  Whether it answered one."""
        request = self._requests.get(sender)
        if request is None or message.nonce != request.nonce or not message.cookie:
            return False
        self.send(Pending(MessageKind.SYNC, sender, request.nonce, message.cookie))
        return True

    def is_transfer(self, message: Message, sender: Endpoint) -> bool:
        """Whether NEWS `message` answers a SYNC of ours (its entries are not news)."""
        request = self._requests.get(sender)
        return request is not None and message.nonce == request.nonce

    def _expire_requests(self, now: float) -> None:
        for endpoint, request in list(self._requests.items()):
            if now >= request.at + SYNC_WAIT:
                del self._requests[endpoint]

    # --- syncs we serve -------------------------------------------------------------

    def sync_asked(
        self, message: Message, sender: Endpoint, entries: Iterable[NewsEntry], now: float
    ) -> bool:
        """A SYNC from `sender`: a cookie first, the table (`entries`) to one that returns
        it.  Whether a transfer began."""
        if message.nonce is None:  # the codec requires one on a SYNC
            return False
        if not message.cookie or not cookie_valid(self._secret, sender, message.cookie, now):
            fresh = cookie(self._secret, sender, now)
            self.send(Pending(MessageKind.COOKIE, sender, message.nonce, fresh))
            return False
        return self.transfers.start(sender, message.nonce, pack(entries), now)

    # --- probes ---------------------------------------------------------------------

    def probe_round(
        self, now: float, endpoint_of: Callable[[bytes], Endpoint | None], dead: Sequence[bytes]
    ) -> list[bytes]:
        """Send the probes due at `now` (to where `endpoint_of` says each member is);
        the watched members found silent."""
        probes, silent = self.prober.poll(now)
        dead_probe = self.prober.dead_probe(dead, now)
        for probe in [*probes, *([dead_probe] if dead_probe else [])]:
            endpoint = endpoint_of(probe.node_id)
            if endpoint is not None:
                self.send(Pending(MessageKind.PROBE, endpoint, probe.nonce))
        return silent

    def next_probe(self, any_dead: bool) -> float:
        return self.prober.next_deadline(any_dead)
