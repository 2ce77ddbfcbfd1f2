"""The peer table: the latest word from every node we hear, and whether it is still alive.

`apply(message, now)` merges one decoded gossip message: a node's messages must arrive
in strictly growing `(incarnation, sequence)` order, anything else is a replay and is
refused, as is our own multicast echo.  A LEAVE drops the peer at once.  Liveness is an
explicit state machine (`TRANSITIONS`) driven by `tick(now)`: ALIVE -> SUSPECT -> DEAD
on silence, back to ALIVE when heard; dead peers are forgotten later.  Departed ids keep
their last order in a bounded tombstone set so old captured packets cannot resurrect
them; `seen_orders()` and `remember()` carry that memory across a daemon restart.
Timers are sans-I/O: `next_deadline()` says when `tick` next has work to do.
The table never holds more than `max_peers` peers and never evicts a live one.
"""

from __future__ import annotations

import heapq
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, replace

from p2pcc.core import limits
from p2pcc.core.errors import RejectedMessageError
from p2pcc.core.liveness import (
    SILENCE_WINDOW,
    SUSPICION_TIMEOUT,
    TRANSITIONS,
    Liveness,
    LivenessInput,
    PeerTimings,
    expected_liveness,
    scaled_timings,
    silence_input,
    step,
)
from p2pcc.core.model import EntryKind, Message, MessageKind, NewsEntry, NodeStatus

__all__ = [  # the liveness machine is re-exported: callers know it as part of the table
    "TRANSITIONS",
    "Liveness",
    "LivenessChanged",
    "LivenessInput",
    "Peer",
    "PeerEvent",
    "PeerForgotten",
    "PeerJoined",
    "PeerLeft",
    "PeerTable",
    "PeerTimings",
    "PeerUpdated",
    "expected_liveness",
    "scaled_timings",
    "silence_input",
    "step",
]


@dataclass(frozen=True, slots=True)
class Peer:
    """An immutable snapshot of one peer as the table knows it."""

    node_id: bytes
    status: NodeStatus
    liveness: Liveness
    last_heard: float
    first_heard: float
    order: tuple[int, int]  # (incarnation, sequence) of the last accepted message
    minor: int = 0  # the protocol minor version it speaks, as far as we know
    suspected_until: float | None = None  # a suspicion's deadline: dead then, unless heard

    def summary(self, now: float) -> dict[str, object]:
        """Plain JSON-friendly values for the `status` command and the state file."""
        status = self.status
        return {
            "node_id": self.node_id.hex(),
            "name": status.name,
            "addresses": list(status.addresses),
            "liveness": self.liveness.value,
            "silent_for": max(0.0, now - self.last_heard),
            "known_for": max(0.0, now - self.first_heard),
            "incarnation": self.order[0],
            "sequence": self.order[1],
            "state": status.state.value,
            "pause_reason": status.pause_reason,
            "pause_until": status.pause_until,
            "cpus": status.cpus,
            "load": status.load,
            "slots": status.slots,
            "jobs": status.jobs,
            "free_slots": status.free_slots,
            "power": status.power,
            "compilers": [offer.fingerprint for offer in status.compilers],
        }


@dataclass(frozen=True, slots=True)
class PeerJoined:
    """A node we did not know (or had forgotten) was heard."""

    peer: Peer


@dataclass(frozen=True, slots=True)
class PeerUpdated:
    """A known peer sent a newer state; `previous` is the status it replaces."""

    peer: Peer
    previous: NodeStatus

    @property
    def changed(self) -> bool:
        """Whether the peer says anything new (ranking reads every field)."""
        return self.peer.status != self.previous


@dataclass(frozen=True, slots=True)
class LivenessChanged:
    """A peer moved between ALIVE, SUSPECT and DEAD."""

    node_id: bytes
    old: Liveness
    new: Liveness


@dataclass(frozen=True, slots=True)
class PeerLeft:
    """A peer said goodbye; `peer` is its last snapshot."""

    peer: Peer


@dataclass(frozen=True, slots=True)
class PeerForgotten:
    """A peer was dropped: dead for `forget_after`, or `evicted` to make room."""

    node_id: bytes
    evicted: bool


PeerEvent = PeerJoined | PeerUpdated | LivenessChanged | PeerLeft | PeerForgotten


class PeerTable:
    """Every peer heard lately, keyed by node id, bounded by `max_peers`."""

    def __init__(
        self,
        own_id: bytes,
        timings: PeerTimings,
        max_peers: int = limits.MAX_PEERS,
        max_tombstones: int = limits.MAX_TOMBSTONES,
    ) -> None:
        if max_peers < 1 or max_tombstones < 1:
            raise ValueError(f"table caps must be >= 1, got {max_peers}, {max_tombstones}")
        self.own_id = own_id
        self._timings = timings
        self.max_peers = max_peers
        self.max_tombstones = max_tombstones
        self._peers: dict[bytes, Peer] = {}
        # Insertion order is age: the oldest tombstone is dropped first.
        self._tombstones: OrderedDict[bytes, tuple[int, int]] = OrderedDict()
        # (deadline, node id) of every peer's next silence step, stale ones left in
        # until they come up: `next_deadline` and `tick` cost log(n), not n, per call.
        self._deadlines: list[tuple[float, bytes]] = []

    @property
    def timings(self) -> PeerTimings:
        return self._timings

    @timings.setter
    def timings(self, timings: PeerTimings) -> None:
        """New thresholds (a pool grown or shrunk): every deadline moves."""
        self._timings = timings
        self._deadlines = [(self._deadline(peer), node_id) for node_id, peer in self._peers.items()]
        heapq.heapify(self._deadlines)

    def __len__(self) -> int:
        return len(self._peers)

    def __contains__(self, node_id: object) -> bool:
        return node_id in self._peers

    def peers(self) -> tuple[Peer, ...]:
        """Every peer, in the order they joined."""
        return tuple(self._peers.values())

    def get(self, node_id: bytes) -> Peer | None:
        """The peer with this id, if the table holds it."""
        return self._peers.get(node_id)

    def seen_orders(self) -> dict[bytes, tuple[int, int]]:
        """The newest order seen from every node held or remembered, oldest memory first.

        What a restarting daemon must keep: without it, a recording of a departed
        node's datagrams would be taken as new until that node is heard again.
        """
        orders = dict(self._tombstones)
        orders.update((node_id, peer.order) for node_id, peer in self._peers.items())
        return orders

    def remember(self, orders: Mapping[bytes, tuple[int, int]]) -> None:
        """Refuse, as replays, messages not newer than `orders` (kept from an earlier
        run); a node held now already has a newer order and is left alone."""
        for node_id, order in orders.items():
            if node_id != self.own_id and node_id not in self._peers:
                self._bury(node_id, order)

    def apply(self, message: Message, now: float) -> list[PeerEvent]:
        """Merge one message heard at `now`; raises RejectedMessageError if it is refused."""
        if message.kind is MessageKind.LEAVE:
            return self._merge(message.node_id, message.order, None, message.minor, now)
        if message.body is None:
            raise RejectedMessageError(
                "malformed", f"STATE from {message.node_id.hex()} has no body"
            )
        return self._merge(message.node_id, message.order, message.body, message.minor, now)

    def apply_entry(self, entry: NewsEntry, now: float) -> list[PeerEvent]:
        """Merge a relayed entry exactly as the node's own message; a SUSPECT of an order
        older than the one held is stale (RejectedMessageError "replay")."""
        if entry.kind is EntryKind.SUSPECT:
            return self.suspect(entry.node_id, entry.order, now)
        body = entry.body if entry.kind is EntryKind.STATE else None
        if entry.kind is EntryKind.STATE and body is None:
            raise RejectedMessageError("malformed", f"STATE entry of {entry.node_id.hex()}")
        return self._merge(entry.node_id, entry.order, body, entry.minor, now)

    def suspect(self, node_id: bytes, order: tuple[int, int], now: float) -> list[PeerEvent]:
        """A member found `node_id` silent at `order`: unless it was heard from since,
        it turns SUSPECT and dies `suspicion_timeout` later unless heard again.  We may
        hold a later order than the suspecter (the node's state reaches members beyond
        its link over a whole interval, core/state_turns.py): the suspicion stands if we
        too last heard the node before the silence it reports (`SILENCE_WINDOW`)."""
        peer = self._peers.get(node_id)
        if peer is None or (peer.order > order and now < peer.last_heard + SILENCE_WINDOW):
            raise RejectedMessageError("replay", f"{node_id.hex()} was heard after {order}")
        new = step(peer.liveness, LivenessInput.SUSPECTED)
        if peer.suspected_until is not None or new is not Liveness.SUSPECT:
            return []
        until = now + SUSPICION_TIMEOUT
        self._put(replace(peer, liveness=new, suspected_until=until))
        return [] if new is peer.liveness else [LivenessChanged(node_id, peer.liveness, new)]

    def heard(self, node_id: bytes, now: float) -> list[PeerEvent]:
        """`node_id` answered a probe of ours at `now`: alive, whatever was suspected."""
        peer = self._peers.get(node_id)
        if peer is None:
            return []
        new = step(peer.liveness, LivenessInput.HEARD)
        self._put(replace(peer, liveness=new, last_heard=now, suspected_until=None))
        return [] if new is peer.liveness else [LivenessChanged(node_id, peer.liveness, new)]

    def _merge(
        self,
        node_id: bytes,
        order: tuple[int, int],
        body: NodeStatus | None,
        minor: int,
        now: float,
    ) -> list[PeerEvent]:
        """Merge a node's word (`body` None: it left), checked to be newer."""
        if node_id == self.own_id:
            raise RejectedMessageError("own", "our own multicast echo")
        self._check_newer(node_id, order)
        if body is None:
            return self._leave(node_id, order)
        known = self._peers.get(node_id)
        if known is None:
            return self._join(node_id, order, body, minor, now)
        return self._update(known, order, body, minor, now)

    def next_deadline(self) -> float | None:
        """The earliest time at which `tick` will change something, or None if never."""
        while self._deadlines:
            deadline, node_id = self._deadlines[0]
            peer = self._peers.get(node_id)
            if peer is not None and self._deadline(peer) == deadline:
                return deadline
            heapq.heappop(self._deadlines)  # stale: the peer moved on or is gone
        return None

    def tick(self, now: float) -> list[PeerEvent]:
        """Apply every liveness change and forgetting due by `now`."""
        events: list[PeerEvent] = []
        while (deadline := self.next_deadline()) is not None and deadline <= now:
            _, node_id = heapq.heappop(self._deadlines)
            peer = self._peers[node_id]
            event = silence_input(peer.last_heard, now, self.timings)
            if peer.suspected_until is not None and now >= peer.suspected_until:
                event = LivenessInput.SILENT_DEAD  # the suspicion was never refuted
            new = peer.liveness if event is None else step(peer.liveness, event)
            if new is Liveness.DEAD and now >= peer.last_heard + self.timings.forget_after:
                if new is not peer.liveness:
                    events.append(LivenessChanged(node_id, peer.liveness, new))
                self._forget(peer)
                events.append(PeerForgotten(node_id, evicted=False))
                continue
            until = None if new is Liveness.DEAD else peer.suspected_until
            self._put(replace(peer, liveness=new, suspected_until=until))
            if new is not peer.liveness:
                events.append(LivenessChanged(node_id, peer.liveness, new))
        return events

    def _deadline(self, peer: Peer) -> float:
        """When `peer`'s silence next changes its liveness (or it is forgotten)."""
        timings = self._timings
        if peer.liveness is Liveness.ALIVE:
            return peer.last_heard + timings.suspect_after
        if peer.liveness is Liveness.DEAD:
            return peer.last_heard + timings.forget_after
        deadline = peer.last_heard + timings.dead_after
        return deadline if peer.suspected_until is None else min(deadline, peer.suspected_until)

    def _put(self, peer: Peer) -> None:
        """Hold `peer` (new or changed) and its next deadline."""
        self._peers[peer.node_id] = peer
        heapq.heappush(self._deadlines, (self._deadline(peer), peer.node_id))
        if len(self._deadlines) > 4 * len(self._peers) + 64:
            self.timings = self._timings  # drop the stale entries

    # --- internals ------------------------------------------------------------------

    def _check_newer(self, node_id: bytes, order: tuple[int, int]) -> None:
        """Refuse word not strictly newer than what we hold or remember of its node."""
        known = self._peers.get(node_id)
        seen = known.order if known is not None else self._tombstones.get(node_id)
        if seen is not None and order <= seen:
            raise RejectedMessageError(
                "replay", f"{node_id.hex()} sent order {order}, already saw {seen}"
            )

    def _leave(self, node_id: bytes, order: tuple[int, int]) -> list[PeerEvent]:
        peer = self._peers.pop(node_id, None)
        # Remembered even for a node we never held, so its older packets stay refused.
        self._bury(node_id, order)
        return [] if peer is None else [PeerLeft(peer)]

    def _join(
        self, node_id: bytes, order: tuple[int, int], status: NodeStatus, minor: int, now: float
    ) -> list[PeerEvent]:
        events: list[PeerEvent] = []
        if len(self._peers) >= self.max_peers:
            victim = self._eviction_victim(now)
            self._forget(victim)
            events.append(PeerForgotten(victim.node_id, evicted=True))
        self._tombstones.pop(node_id, None)
        peer = Peer(node_id, status, Liveness.ALIVE, now, now, order, minor)
        self._put(peer)
        events.append(PeerJoined(peer))
        return events

    def _update(
        self, known: Peer, order: tuple[int, int], status: NodeStatus, minor: int, now: float
    ) -> list[PeerEvent]:
        liveness = step(known.liveness, LivenessInput.HEARD)
        peer = replace(
            known,
            status=status,
            liveness=liveness,
            last_heard=now,
            order=order,
            minor=max(minor, known.minor),
            suspected_until=None,
        )
        self._put(peer)
        events: list[PeerEvent] = []
        if liveness is not known.liveness:
            events.append(LivenessChanged(peer.node_id, known.liveness, liveness))
        events.append(PeerUpdated(peer, known.status))
        return events

    def _eviction_victim(self, now: float) -> Peer:
        """The longest-silent peer, provided it is at least suspect at `now`."""
        # Judged from `now`, not the stored liveness, so a late tick cannot make the
        # table refuse a newcomer while a peer is in fact long silent.  The longest
        # silent peer is DEAD whenever any peer is, since dead_after > suspect_after.
        victim = min(self._peers.values(), key=lambda peer: peer.last_heard)
        if expected_liveness(victim.last_heard, now, self.timings) is Liveness.ALIVE:
            raise RejectedMessageError(
                "table-full", f"{self.max_peers} peers, all alive; not adding another"
            )
        return victim

    def _forget(self, peer: Peer) -> None:
        del self._peers[peer.node_id]
        self._bury(peer.node_id, peer.order)

    def _bury(self, node_id: bytes, order: tuple[int, int]) -> None:
        """Remember `order` as the newest seen from `node_id`, dropping the oldest if full."""
        previous = self._tombstones.pop(node_id, None)
        self._tombstones[node_id] = order if previous is None else max(previous, order)
        while len(self._tombstones) > self.max_tombstones:
            self._tombstones.popitem(last=False)
