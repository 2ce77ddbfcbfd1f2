"""Who this node checks on, and when a silent member becomes a suspicion.

In a large pool a node's own state goes out only every few tens of seconds (the state
rate is bounded, core/gossip.py), so silence can no longer tell a crashed machine
within seconds.  Instead every node watches a few members directly: the pool's members
(and this node) sorted by node id form a ring, and each node probes the
`PROBE_WATCHERS` members that follow it, each once per `PROBE_INTERVAL`.  A probe is a
small PROBE datagram answered by an ACK with the same nonce; one unanswered within
`PROBE_TIMEOUT` is sent again, and a member that answers none of `PROBE_ATTEMPTS` in a
row is *silent*: the caller suspects it and spreads the suspicion as news.  Every member
is thus watched by `PROBE_WATCHERS` others whatever the pool's size, at a constant cost
per node, and a crash is found within PROBE_INTERVAL + PROBE_ATTEMPTS * PROBE_TIMEOUT.
Like SWIM's probes, but on a ring: each member is checked at a known rate, not by luck.

The attempts make a false suspicion rare: with 10 % of datagrams lost a probe round-trip
fails 19 % of the time, and eight in a row 1.7e-6 of the time — about once every three
minutes across a thousand nodes, each refuted within a second by the suspected node.

Members whose partition was cut off are dead to us and off the ring; one of them, at
random, is probed every `DEAD_PROBE_INTERVAL`, so a healed cut is found (`acked` says
whether an answer came from such a member).  Once one answers, the others are probed
every `HEALING_PROBE_INTERVAL` for `HEALING_SPAN` seconds after the last answer: each
answer brings its member back at once, where waiting for word through the few members
already back took half a minute with a tenth of the datagrams lost.
"""

from __future__ import annotations

import bisect
import enum
import math
import random
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

#: Members each node probes: its successors on the ring.  Two, so a crash is still found
#: when one of its watchers crashed at the same time.
PROBE_WATCHERS = 2

#: Seconds between two probe rounds of one watched member.
PROBE_INTERVAL = 1.0

#: Seconds to wait for an ACK before sending the probe again.  A LAN answers in well
#: under a millisecond; a busy daemon in a few; a VPN in tens.
PROBE_TIMEOUT = 0.25

#: Unanswered probes in a row that make a member silent (see the module docstring).
PROBE_ATTEMPTS = 8

#: Seconds between two probes of a random dead member (finding a healed partition).
DEAD_PROBE_INTERVAL = 5.0

#: Seconds between two probes of dead members while a healed cut is found, and for how
#: long after the last dead member answered.
HEALING_PROBE_INTERVAL = 0.25
HEALING_SPAN = 5.0

#: Probes remembered after their round, so an ACK that comes after its round ended (a
#: busy peer answering two attempts, the second after the first closed the round) is
#: known for a late answer, not taken for a stranger's.  A few seconds of probing.
REMEMBERED_PROBES = 64


class Answer(enum.Enum):
    """What an ACK was to this node's probing."""

    ROUND = "round"  # it answered a watched member's current round
    HEALED = "healed"  # it answered the probe of a member we hold dead: a healed cut
    LATE = "late"  # it answered a probe of ours whose round is over: nothing to do
    UNKNOWN = "unknown"  # it answers no probe of ours


@dataclass(frozen=True, slots=True)
class Probe:
    """A PROBE to send now."""

    node_id: bytes
    nonce: int


@dataclass(slots=True)
class _Round:
    """The probing of one watched member."""

    next_round: float  # when the next round starts (when idle)
    attempts: int = 0  # probes sent in the current round; 0 when idle
    nonce: int | None = None  # the outstanding probe's nonce
    deadline: float = 0.0  # when the outstanding probe counts as unanswered
    nonces: list[int] = field(default_factory=list)  # every attempt's in this round

    def end(self, next_round: float) -> None:
        self.attempts, self.nonce, self.next_round = 0, None, next_round
        self.nonces.clear()


class Prober:
    """The probe schedule of one node: pure, driven by `poll(now)` and `acked`."""

    def __init__(self, own_id: bytes, rng: random.Random, now: float) -> None:
        self._own_id = own_id
        self._rng = rng
        self._nonce = rng.getrandbits(48)
        self._rounds: dict[bytes, _Round] = {}
        self._dead_probe: tuple[bytes, int] | None = None
        self._next_dead_probe = now + DEAD_PROBE_INTERVAL
        self._healing_until = -math.inf
        self._recent: deque[tuple[bytes, int]] = deque(maxlen=REMEMBERED_PROBES)

    @property
    def watched(self) -> tuple[bytes, ...]:
        """The members this node probes now."""
        return tuple(self._rounds)

    def set_members(self, members: Iterable[bytes], now: float) -> None:
        """The members that can be probed (alive or suspect, speaking 1.1, with an
        address): the watched ones are the ring's next `PROBE_WATCHERS` after us."""
        watched = successors(self._own_id, members, PROBE_WATCHERS)
        rounds = {}
        for index, node_id in enumerate(watched):
            # A newly watched member is first probed within one interval, staggered.
            start = now + PROBE_INTERVAL * (index + 1) / (len(watched) + 1)
            rounds[node_id] = self._rounds.get(node_id) or _Round(next_round=start)
        self._rounds = rounds

    def poll(self, now: float) -> tuple[list[Probe], list[bytes]]:
        """The probes due at `now`, and the members found silent (their round over)."""
        probes: list[Probe] = []
        silent: list[bytes] = []
        for node_id, state in self._rounds.items():
            if state.nonce is not None and now >= state.deadline:
                if state.attempts >= PROBE_ATTEMPTS:
                    silent.append(node_id)
                    state.end(now + PROBE_INTERVAL)
                    continue
                probes.append(self._send(node_id, state, now))
            elif state.nonce is None and now >= state.next_round:
                probes.append(self._send(node_id, state, now))
        return probes, silent

    def dead_probe(self, dead: Sequence[bytes], now: float) -> Probe | None:
        """A probe of one random dead member, if one is due."""
        if now < self._next_dead_probe:
            return None
        healing = now < self._healing_until
        self._next_dead_probe = now + (HEALING_PROBE_INTERVAL if healing else DEAD_PROBE_INTERVAL)
        if not dead:
            return None
        node_id = self._rng.choice(sorted(dead))
        self._nonce += 1
        self._dead_probe = (node_id, self._nonce)
        self._recent.append(self._dead_probe)
        return Probe(node_id, self._nonce)

    def acked(self, node_id: bytes, nonce: int, now: float) -> Answer:
        """An ACK from `node_id` with `nonce`.  An answer to any attempt of the current
        round ends it: a peer busy for longer than PROBE_TIMEOUT (a daemon starting
        up, a loaded machine) answers late but is there all the same."""
        state = self._rounds.get(node_id)
        if state is not None and state.nonce is not None and nonce in state.nonces:
            state.end(now + PROBE_INTERVAL)
            return Answer.ROUND
        if self._dead_probe == (node_id, nonce):
            self._dead_probe = None
            self._healing_until = now + HEALING_SPAN
            self._next_dead_probe = min(self._next_dead_probe, now + HEALING_PROBE_INTERVAL)
            return Answer.HEALED
        return Answer.LATE if (node_id, nonce) in self._recent else Answer.UNKNOWN

    def next_deadline(self, any_dead: bool) -> float:
        """When `poll` (or `dead_probe`, if `any_dead`) next has something to do."""
        deadlines = [
            state.next_round if state.nonce is None else state.deadline
            for state in self._rounds.values()
        ]
        if any_dead:
            deadlines.append(self._next_dead_probe)
        return min(deadlines, default=math.inf)

    def _send(self, node_id: bytes, state: _Round, now: float) -> Probe:
        self._nonce += 1
        state.attempts += 1
        state.nonce = self._nonce
        state.nonces.append(self._nonce)
        state.deadline = now + PROBE_TIMEOUT
        self._recent.append((node_id, self._nonce))
        return Probe(node_id, self._nonce)


def successors(own_id: bytes, members: Iterable[bytes], count: int) -> tuple[bytes, ...]:
    """The `count` members after `own_id` on the ring of node ids (fewer if the pool is
    smaller), in ring order."""
    ring = sorted(set(members) - {own_id})
    if not ring:
        return ()
    start = bisect.bisect_right(ring, own_id)
    return tuple(ring[(start + step) % len(ring)] for step in range(min(count, len(ring))))
