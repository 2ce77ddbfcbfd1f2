"""Handing a newcomer the whole pool: SYNC, its cookie, and a paced transfer.

A node that joins through a seed, or finds a member it had given up on, asks that member
for its table (SYNC).  The answer is large — a status per member, up to a few hundred
kilobytes for a thousand desks — and a SYNC is one small datagram whose source address
anyone can forge, so it is answered in two steps, as QUIC answers an unproven address:
a SYNC without a valid cookie gets only a small COOKIE back; the table goes only to a
requester that returns that cookie, which proves it receives at the address it claims.
A cookie is an HMAC, under this node's own secret, of the requester's address and port
and the current `COOKIE_PERIOD`; the one of the period before is still accepted.

The table goes out as NEWS datagrams carrying the request's nonce, `SYNC_DATAGRAMS`
every `SYNC_TICK`, to at most `MAX_TRANSFERS` requesters at once and to each at most
once per `SYNC_GAP`; what is beyond those bounds is not answered (the requester asks
again later).  Entries received in a transfer are merged but not passed on as news: a
transfer is one node catching up, not news for the pool.
"""

from __future__ import annotations

import hashlib
import hmac
import math
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

from p2pcc.core import limits
from p2pcc.core.model import NewsEntry

Endpoint = tuple[str, int]

#: Seconds a cookie stays valid (one period, and the one after it).
COOKIE_PERIOD = 60.0

#: Datagrams of one transfer sent per tick, and the tick: 100 datagrams a second, about
#: 140 KB/s, so a thousand members arrive in about two seconds.
SYNC_DATAGRAMS = 10
SYNC_TICK = 0.1

#: Transfers served at once, and seconds before one requester is served again.
MAX_TRANSFERS = 4
SYNC_GAP = 30.0

#: Requesters remembered for SYNC_GAP (least recently served forgotten first).
MAX_REMEMBERED_REQUESTERS = 1024


def cookie(secret: bytes, requester: Endpoint, now: float, periods_ago: int = 0) -> bytes:
    """The cookie `requester` must return, as of `now` (or `periods_ago` periods back)."""
    period = math.floor(now / COOKIE_PERIOD) - periods_ago
    text = f"{requester[0]}|{requester[1]}|{period}".encode()
    return hmac.new(secret, text, hashlib.sha256).digest()[: limits.COOKIE_BYTES]


def cookie_valid(secret: bytes, requester: Endpoint, returned: bytes, now: float) -> bool:
    """Whether `returned` is the cookie of this or the previous period."""
    return any(hmac.compare_digest(returned, cookie(secret, requester, now, ago)) for ago in (0, 1))


@dataclass(slots=True)
class _Transfer:
    requester: Endpoint
    nonce: int
    batches: list[tuple[NewsEntry, ...]]  # one per datagram, still to send
    next_tick: float


@dataclass(frozen=True, slots=True)
class SyncDatagram:
    """One NEWS datagram of a transfer."""

    requester: Endpoint
    nonce: int
    entries: tuple[NewsEntry, ...]


class SyncServer:
    """The transfers this node serves."""

    def __init__(self) -> None:
        self._transfers: list[_Transfer] = []
        self._served: OrderedDict[Endpoint, float] = OrderedDict()

    @property
    def active(self) -> int:
        return len(self._transfers)

    def start(
        self,
        requester: Endpoint,
        nonce: int,
        batches: Sequence[tuple[NewsEntry, ...]],
        now: float,
    ) -> bool:
        """Serve `batches` (the table, packed a datagram each) to `requester`, unless
        the bounds forbid it now; whether it will be served."""
        served = self._served.get(requester)
        if served is not None and now < served + SYNC_GAP:
            return False
        if len(self._transfers) >= MAX_TRANSFERS:
            return False
        self._served[requester] = now
        self._served.move_to_end(requester)
        while len(self._served) > MAX_REMEMBERED_REQUESTERS:
            self._served.popitem(last=False)
        self._transfers.append(_Transfer(requester, nonce, list(batches), now))
        return True

    def poll(self, now: float) -> list[SyncDatagram]:
        """The transfer datagrams due at `now`."""
        out: list[SyncDatagram] = []
        for transfer in self._transfers:
            if now < transfer.next_tick:
                continue
            out.extend(
                SyncDatagram(transfer.requester, transfer.nonce, entries)
                for entries in transfer.batches[:SYNC_DATAGRAMS]
            )
            del transfer.batches[:SYNC_DATAGRAMS]
            transfer.next_tick = now + SYNC_TICK
        self._transfers = [transfer for transfer in self._transfers if transfer.batches]
        return out

    def next_deadline(self) -> float:
        return min((transfer.next_tick for transfer in self._transfers), default=math.inf)
