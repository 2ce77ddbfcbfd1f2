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

import enum
import math
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Final

from p2pcc.core import limits
from p2pcc.core.errors import RejectedMessageError
from p2pcc.core.model import Message, MessageKind, NodeStatus


class Liveness(enum.Enum):
    """How recently a peer was heard; only ALIVE peers receive jobs."""

    ALIVE = "alive"
    SUSPECT = "suspect"  # silent long enough to stop sending it jobs
    DEAD = "dead"  # silent long enough to be considered gone; kept a while for `status`


class LivenessInput(enum.Enum):
    """What happened to a peer since the last transition."""

    HEARD = "heard"  # a message from it was accepted
    SILENT_SUSPECT = "silent-suspect"  # silence reached `suspect_after`
    SILENT_DEAD = "silent-dead"  # silence reached `dead_after`


_A, _S, _D = Liveness.ALIVE, Liveness.SUSPECT, Liveness.DEAD

#: The whole liveness state machine.  Silence only grows until the peer is heard, so a
#: DEAD peer seeing SILENT_SUSPECT (a late tick) stays DEAD rather than coming back.
TRANSITIONS: Final[Mapping[tuple[Liveness, LivenessInput], Liveness]] = MappingProxyType(
    {
        (_A, LivenessInput.HEARD): _A,
        (_S, LivenessInput.HEARD): _A,
        (_D, LivenessInput.HEARD): _A,
        (_A, LivenessInput.SILENT_SUSPECT): _S,
        (_S, LivenessInput.SILENT_SUSPECT): _S,
        (_D, LivenessInput.SILENT_SUSPECT): _D,
        (_A, LivenessInput.SILENT_DEAD): _D,
        (_S, LivenessInput.SILENT_DEAD): _D,
        (_D, LivenessInput.SILENT_DEAD): _D,
    }
)


@dataclass(frozen=True, slots=True)
class PeerTimings:
    """Seconds of silence after which a peer turns suspect, dead, and is forgotten.

    No defaults here: `p2pcc.config.policies.peer_timings` builds these from `[gossip]`.
    """

    suspect_after: float
    dead_after: float
    forget_after: float

    def __post_init__(self) -> None:
        values = (self.suspect_after, self.dead_after, self.forget_after)
        if not all(math.isfinite(value) for value in values):
            raise ValueError(f"peer timings must be finite numbers, got {values}")
        if not 0 < self.suspect_after < self.dead_after < self.forget_after:
            raise ValueError(
                "peer timings need 0 < suspect_after < dead_after < forget_after, got "
                f"{self.suspect_after}, {self.dead_after}, {self.forget_after}"
            )


def step(state: Liveness, event: LivenessInput) -> Liveness:
    """The liveness after `event` in `state`."""
    return TRANSITIONS[(state, event)]


def silence_input(last_heard: float, now: float, timings: PeerTimings) -> LivenessInput | None:
    """The silence input due at `now`, or None while the peer is within `suspect_after`."""
    # Deadlines are compared as `last_heard + x` (never `now - last_heard`) so that a
    # tick at exactly `next_deadline()` always fires, whatever the float rounding.
    if now >= last_heard + timings.dead_after:
        return LivenessInput.SILENT_DEAD
    if now >= last_heard + timings.suspect_after:
        return LivenessInput.SILENT_SUSPECT
    return None


def expected_liveness(last_heard: float, now: float, timings: PeerTimings) -> Liveness:
    """The liveness a peer last heard at `last_heard` must have after a tick at `now`."""
    event = silence_input(last_heard, now, timings)
    return Liveness.ALIVE if event is None else step(Liveness.ALIVE, event)


@dataclass(frozen=True, slots=True)
class Peer:
    """An immutable snapshot of one peer as the table knows it."""

    node_id: bytes
    status: NodeStatus
    liveness: Liveness
    last_heard: float
    first_heard: float
    order: tuple[int, int]  # (incarnation, sequence) of the last accepted message

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
        self.timings = timings
        self.max_peers = max_peers
        self.max_tombstones = max_tombstones
        self._peers: dict[bytes, Peer] = {}
        # Insertion order is age: the oldest tombstone is dropped first.
        self._tombstones: OrderedDict[bytes, tuple[int, int]] = OrderedDict()

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
        node_id = message.node_id
        if node_id == self.own_id:
            raise RejectedMessageError("own", "our own multicast echo")
        self._check_newer(message)
        if message.kind is MessageKind.LEAVE:
            return self._leave(message)
        if message.body is None:
            raise RejectedMessageError("malformed", f"STATE from {node_id.hex()} has no body")
        known = self._peers.get(node_id)
        if known is None:
            return self._join(message, message.body, now)
        return self._update(known, message, message.body, now)

    def next_deadline(self) -> float | None:
        """The earliest time at which `tick` will change something, or None if never."""
        timings = self.timings
        after = {
            Liveness.ALIVE: timings.suspect_after,
            Liveness.SUSPECT: timings.dead_after,
            Liveness.DEAD: timings.forget_after,
        }
        deadlines = [peer.last_heard + after[peer.liveness] for peer in self._peers.values()]
        return min(deadlines, default=None)

    def tick(self, now: float) -> list[PeerEvent]:
        """Apply every liveness change and forgetting due by `now`."""
        events: list[PeerEvent] = []
        for peer in list(self._peers.values()):
            event = silence_input(peer.last_heard, now, self.timings)
            if event is None:
                continue
            new = step(peer.liveness, event)
            if new is not peer.liveness:
                self._peers[peer.node_id] = replace(peer, liveness=new)
                events.append(LivenessChanged(peer.node_id, peer.liveness, new))
            if new is Liveness.DEAD and now >= peer.last_heard + self.timings.forget_after:
                self._forget(peer)
                events.append(PeerForgotten(peer.node_id, evicted=False))
        return events

    # --- internals ------------------------------------------------------------------

    def _check_newer(self, message: Message) -> None:
        """Refuse a message not strictly newer than what we hold or remember of its node."""
        known = self._peers.get(message.node_id)
        seen = known.order if known is not None else self._tombstones.get(message.node_id)
        if seen is not None and message.order <= seen:
            raise RejectedMessageError(
                "replay",
                f"{message.node_id.hex()} sent order {message.order}, already saw {seen}",
            )

    def _leave(self, message: Message) -> list[PeerEvent]:
        peer = self._peers.pop(message.node_id, None)
        # Remembered even for a node we never held, so its older packets stay refused.
        self._bury(message.node_id, message.order)
        return [] if peer is None else [PeerLeft(peer)]

    def _join(self, message: Message, status: NodeStatus, now: float) -> list[PeerEvent]:
        events: list[PeerEvent] = []
        if len(self._peers) >= self.max_peers:
            victim = self._eviction_victim(now)
            self._forget(victim)
            events.append(PeerForgotten(victim.node_id, evicted=True))
        self._tombstones.pop(message.node_id, None)
        peer = Peer(message.node_id, status, Liveness.ALIVE, now, now, message.order)
        self._peers[message.node_id] = peer
        events.append(PeerJoined(peer))
        return events

    def _update(
        self, known: Peer, message: Message, status: NodeStatus, now: float
    ) -> list[PeerEvent]:
        liveness = step(known.liveness, LivenessInput.HEARD)
        peer = replace(known, status=status, liveness=liveness, last_heard=now, order=message.order)
        self._peers[peer.node_id] = peer
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
