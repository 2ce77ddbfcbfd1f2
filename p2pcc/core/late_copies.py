"""Telling a late copy of a node's word from a replay.

The peer table keeps only each node's newest `(incarnation, sequence)` and refuses
anything not newer as a replay, which the daemon logs as a warning.  But a STATE or
LEAVE often reaches us twice: by multicast, and by unicast when its sender counts us in
its unicast audience; and the daemon reads the two sockets in two tasks.  So the unicast
copy of a node's next datagram can be handled before the multicast copy of the one
before it, which then looks older than what we hold (seen in CI: `sent order (…, 4),
already saw (…, 5)` from a peer starting up, a second apart).  A datagram sent
only by multicast can be overtaken the same way by a later one sent both ways.

A late copy is still dropped: the newer word supersedes it.  It is only told apart,
so that a warning about replays means one.  `LateCopies` remembers, for `WINDOW`
seconds, each order the table accepted from a node and the orders it skipped to get
there; a datagram whose order is one of those, arriving within the window, is a
`duplicate` (a copy of the word we took) or `reordered` (one we were past before it
came).  A recording replayed later than that is a `replay`, as before, and a daemon
restarted since remembers no copies at all.
"""

from __future__ import annotations

from collections import deque

#: Seconds after a word is accepted (or passed over) during which an older copy of it is
#: taken for a late copy.  The two copies of a datagram leave the sender together and
#: are handled milliseconds apart; a second covers a daemon busy starting up.  Captured
#: datagrams replayed later than this are refused as replays, and counted so.
WINDOW = 1.0

#: Transitions remembered at most.  A member hears some 20 states a second
#: (`gossip.STATE_RATE`), so a second's worth fits many times over; a flood of
#: made-up nodes in an unkeyed pool only shortens the memory, it cannot grow it.
CAPACITY = 256

Order = tuple[int, int]


class LateCopies:
    """The words accepted in the last `window` seconds, and the orders they passed."""

    def __init__(self, window: float = WINDOW, capacity: int = CAPACITY) -> None:
        self._window = window
        # (node id, order held before, order accepted, when): orders in (before, accepted]
        # were accepted or passed over at that time.  Appended in time order.
        self._passed: deque[tuple[bytes, Order, Order, float]] = deque(maxlen=capacity)

    def accepted(self, node_id: bytes, held: Order | None, order: Order, now: float) -> None:
        """The table took `order` from `node_id`, holding `held` until then (None: a node
        it did not hold, whose earlier datagrams are not counted as passed over: nothing
        tells them from a recording)."""
        self._forget(now)
        before = (order[0], order[1] - 1) if held is None else held
        self._passed.append((node_id, before, order, now))

    def judge(self, node_id: bytes, order: Order, refusal: str, now: float) -> str:
        """The drop reason for a word of `node_id`'s at `order` the table refused for
        `refusal`: `duplicate` or `reordered` when that is a `replay` of a late copy."""
        return (refusal == "replay" and self.late_reason(node_id, order, now)) or refusal

    def late_reason(self, node_id: bytes, order: Order, now: float) -> str | None:
        """`duplicate` or `reordered` for a late copy of a word of `node_id`'s at
        `order`; None when it is no such thing."""
        self._forget(now)
        for passed_by, before, accepted, _ in reversed(self._passed):
            if passed_by == node_id and before < order <= accepted:
                return "duplicate" if order == accepted else "reordered"
        return None

    def _forget(self, now: float) -> None:
        passed = self._passed
        while passed and passed[0][3] < now - self._window:
            passed.popleft()
