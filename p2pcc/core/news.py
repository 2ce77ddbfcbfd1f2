"""News to spread: what a node relays about others, and how many more times.

A pool beyond one link cannot rely on everyone hearing everyone's multicast, and a pool
of hundreds cannot have everyone tell everyone directly.  So what must reach every member
soon — a node joining, pausing or resuming, changing its compilers or addresses, leaving,
or found silent — travels as *news*: each node that learns it passes it on a few times
to members picked at random (core/gossip.py), the way memberlist and Serf spread
membership changes (an "infection-style" broadcast).  A member hears each piece about
`transmits(n)` times in all whatever the pool's size, which is what keeps the cost per
machine flat; it reaches everyone in about log(n) rounds.

The queue holds at most one entry per node, the newest word about it: a newer order
replaces an older one, and at the same order a suspicion outranks the state it doubts
and a departure outranks both.  Entries that were sent fewer times go first, so fresh
news is never stuck behind old news.  The queue is bounded (`MAX_QUEUED`); when full,
the entry closest to done is dropped — the periodic state a node sends, and the sync a
newcomer asks for, still carry what it said.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from p2pcc.core import limits
from p2pcc.core.model import EntryKind, NewsEntry

#: How many times a node passes on one piece of news, per decade of pool size:
#: `NEWS_MULTIPLIER * ceil(log10(n + 1))` (memberlist's retransmit rule, with its LAN
#: multiplier of 4 lowered to 3: our rounds are twice as frequent).
NEWS_MULTIPLIER = 3

#: Times a node passes on news it heard by multicast from the node itself, in a pool
#: of one link: everyone heard the same datagram, so this only covers loss.
LINK_NEWS_TRANSMITS = 2

#: Entries the queue holds.  One per node, so a pool of this many changing at once is
#: the most that spreads by news; past it the oldest news goes by the periodic state.
MAX_QUEUED = 256

_KIND_RANK = {EntryKind.STATE: 0, EntryKind.SUSPECT: 1, EntryKind.LEAVE: 2}


def transmits(members: int) -> int:
    """How many times news is passed on in a pool of `members` nodes."""
    return NEWS_MULTIPLIER * max(1, math.ceil(math.log10(members + 1)))


def newer(entry: NewsEntry, than: NewsEntry) -> bool:
    """Whether `entry` is later word about its node than `than`."""
    return (entry.order, _KIND_RANK[entry.kind]) > (than.order, _KIND_RANK[than.kind])


@dataclass(slots=True)
class _Queued:
    entry: NewsEntry
    left: int  # transmits still to do
    size: int  # encoded bytes


class NewsQueue:
    """The news this node still has to pass on, one entry per node."""

    def __init__(self, size_of: Callable[[NewsEntry], int], cap: int = MAX_QUEUED) -> None:
        """`size_of` gives an entry's encoded size (the wire's `entry_size`)."""
        self._size_of = size_of
        self._cap = cap
        self._queued: dict[bytes, _Queued] = {}

    def __len__(self) -> int:
        return len(self._queued)

    def __bool__(self) -> bool:
        return bool(self._queued)

    def add(self, entry: NewsEntry, times: int) -> bool:
        """Pass `entry` on `times` times, unless later word about its node is queued;
        whether it was queued."""
        if times <= 0:
            return False
        queued = self._queued.get(entry.node_id)
        if queued is not None and not newer(entry, queued.entry):
            return False
        if queued is None and len(self._queued) >= self._cap:
            self._drop_most_spread()
        self._queued[entry.node_id] = _Queued(entry, times, self._size_of(entry))
        return True

    def discard(self, node_id: bytes) -> None:
        """Forget what is queued about `node_id` (it left, or was forgotten)."""
        self._queued.pop(node_id, None)

    def take(self, budget: int) -> tuple[NewsEntry, ...]:
        """Entries for one datagram, at most `budget` encoded bytes, least-sent first;
        each counts one transmit."""
        chosen: list[NewsEntry] = []
        for node_id, queued in sorted(self._queued.items(), key=lambda item: -item[1].left):
            if len(chosen) == limits.MAX_NEWS:
                break
            if queued.size > budget:
                continue
            budget -= queued.size
            chosen.append(queued.entry)
            queued.left -= 1
            if queued.left <= 0:
                del self._queued[node_id]
        return tuple(chosen)

    def _drop_most_spread(self) -> None:
        node_id = min(self._queued, key=lambda key: self._queued[key].left)
        del self._queued[node_id]
