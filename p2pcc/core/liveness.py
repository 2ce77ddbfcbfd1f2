"""A peer's liveness: an explicit state machine over what we heard and did not hear.

ALIVE -> SUSPECT -> DEAD on silence (thresholds in `PeerTimings`) or when another member
found the peer silent (SUSPECTED, core/probing.py); back to ALIVE when heard.  The whole
machine is the `TRANSITIONS` table; the peer table (core/peers.py) drives it.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final


class Liveness(enum.Enum):
    """How recently a peer was heard; only ALIVE peers receive jobs."""

    ALIVE = "alive"
    SUSPECT = "suspect"  # silent long enough to stop sending it jobs
    DEAD = "dead"  # silent long enough to be considered gone; kept a while for `status`


class LivenessInput(enum.Enum):
    """What happened to a peer since the last transition."""

    HEARD = "heard"  # a message from it was accepted, or it answered our probe
    SUSPECTED = "suspected"  # a member found it silent (a SUSPECT entry, or our probes)
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
        (_A, LivenessInput.SUSPECTED): _S,
        (_S, LivenessInput.SUSPECTED): _S,
        (_D, LivenessInput.SUSPECTED): _D,
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


#: Seconds a member suspected by another (core/probing.py) has to prove it is alive: it
#: hears of the suspicion and its answer spreads back within about two seconds in a pool
#: of a thousand (core/news.py), so five leave room for loss.
SUSPICION_TIMEOUT = 5.0

#: Seconds of silence a suspicion reports at least: a watcher suspects when all the
#: attempts of a probe round went unanswered (core/probing.py: 8 * 0.25).  A member that
#: heard the node longer ago than that takes a suspicion of an older order as its own.
SILENCE_WINDOW = 2.0


def scaled_timings(timings: PeerTimings, factor: float) -> PeerTimings:
    """`timings` with the silences stretched by `factor` (a pool whose members speak
    less often, core/gossip.py), forgetting no sooner than configured.  The factor is
    rounded up to a quarter octave, so the table re-times its silences (a step costing
    the pool's size) only when the pool grew or shrank by a fifth, not with each member."""
    factor = 1.0 if factor <= 1.0 else 2 ** (math.ceil(math.log2(factor) * 4) / 4)
    suspect_after, dead_after = timings.suspect_after * factor, timings.dead_after * factor
    forget_after = max(timings.forget_after, 2 * dead_after)
    return PeerTimings(suspect_after, dead_after, forget_after)


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
