"""Our state to members beyond our link, a few at a time across each interval.

A member that does not hear our multicast (another subnet, filtered multicast) gets our
state by unicast once per state interval.  Sent all at once, that is one datagram per
such member in one burst: a thousand datagrams every fifty seconds from a node of a
large pool, which fill the socket's send queue and a router's, and arrive at the same
instant as every other member's bursts.  So each interval's *cycle* queues those
members in a fixed order (the ones the last cycle did not reach first), and every
`TURN_TICK` the next few get their copy: `ceil(members * tick / interval)` a tick, so a
cycle ends within the interval and each member hears us about once an interval, as its
silence timers expect.  The order is the node's own (a hash of its id and the member's
endpoint): were it everyone's, nodes that started together would copy to the same member
at the same tick, and the news aboard would reach the same few members over and over.

Each copy is encoded for its member alone, so it can also carry news (core/news.py):
news queued when a copy goes rides on it instead of on a NEWS datagram of its own, and
the next round of news goes to that many fewer members (core/pool_exchange.py).  In a
pool spread over subnets that saves most of the NEWS datagrams and their envelopes.

Only gossip members (1.1, core/audience.py) take turns: they also hear of our material
changes as news at once.  Seeds not yet known as members, nodes found by mDNS and 1.0
nodes get every state datagram as it is sent (core/gossip.py).
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Collection, Iterable
from itertools import islice

from p2pcc.core.gossip_types import Endpoint

#: Seconds between two turns, the pace of the news rounds (core/pool_exchange.py).
TURN_TICK = 0.1


class StateTurns:
    """The members still to get this cycle's copy of our state; see the module docstring."""

    def __init__(self, now: float, salt: bytes = b"") -> None:
        """`salt`: the node's id, which orders its cycles."""
        self._salt = salt
        self._waiting: dict[Endpoint, None] = {}  # ordered: the next turns first
        self._per_tick = 1
        self._next_turn = math.inf
        self.next_cycle = now  # when the next cycle starts

    def __len__(self) -> int:
        return len(self._waiting)

    def start_cycle(self, members: Iterable[Endpoint], now: float, interval: float) -> None:
        """Queue `members` for this interval's copy; members the last cycle did not reach
        (a shorter interval, a member added late) go first, those no longer listed not at
        all."""
        listed = dict.fromkeys(sorted(members, key=self.place))
        late = [endpoint for endpoint in self._waiting if endpoint in listed]
        self._waiting = dict.fromkeys([*late, *listed])
        ticks = max(1, math.floor(interval / TURN_TICK))
        self._per_tick = max(1, math.ceil(len(self._waiting) / ticks))
        self._next_turn = now
        self.next_cycle = now + interval

    def place(self, endpoint: Endpoint) -> tuple[int, Endpoint]:
        """Where `endpoint` falls in this node's order (ties, unlikely, by endpoint)."""
        return zlib.crc32(f"{endpoint[0]} {endpoint[1]}".encode(), zlib.crc32(self._salt)), endpoint

    def next_due(self, any_members: bool) -> float:
        """When the next turn or (with `any_members`) the next cycle falls."""
        return min(self.next_turn(), self.next_cycle if any_members else math.inf)

    def next_turn(self) -> float:
        """When `take` next returns members (inf: none waits)."""
        return self._next_turn if self._waiting else math.inf

    def take(self, now: float, still_listed: Collection[Endpoint]) -> list[Endpoint]:
        """The members whose turn it is at `now` (none before `next_turn`), skipping any
        no longer in `still_listed` (dead or left since the cycle began)."""
        if not self._waiting or now < self._next_turn:
            return []
        self._next_turn = now + TURN_TICK
        turn = list(islice(self._waiting, self._per_tick))
        for endpoint in turn:
            del self._waiting[endpoint]
        return [endpoint for endpoint in turn if endpoint in still_listed]
