"""Automatic pause while a person uses this desktop: the decision, without the looking.

The daemon looks at its activity sources every second or so and hands `decide` what it
saw (`busy`: keyboard/mouse input since the last look, or a session that is not idle),
the time, and the kind of pause in effect.  Rules:

* The desktop is *in use* while it was last seen busy less than `active_within` seconds
  ago.  In use and not paused: pause automatically.
* An automatic pause ends once the desktop has been idle for `resume_after` seconds
  (counted from the last time it was seen busy; the configuration keeps
  `resume_after >= active_within`, so a resume never meets a desktop still in use).
* A manual pause always wins: it is never lifted here, and it replaces an automatic one.
  When it ends, the rules above apply again.
* A resume by hand means "lend this machine now": no automatic pause follows until the
  desktop has been idle for `resume_after`, however busy it is meanwhile.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace


class PauseKind(enum.Enum):
    """The pause in effect on this node."""

    NONE = "none"
    MANUAL = "manual"  # `p2pcc pause`, possibly restored after a restart
    AUTOMATIC = "automatic"  # made by `decide`


class Action(enum.Enum):
    """What the daemon should do after one look."""

    NOTHING = "nothing"
    PAUSE = "pause"
    RESUME = "resume"


@dataclass(frozen=True, slots=True)
class IdlePolicy:
    """The two thresholds of `[idle]`, in seconds."""

    active_within: float
    resume_after: float

    def __post_init__(self) -> None:
        if not (0 < self.active_within <= self.resume_after):
            raise ValueError("expected 0 < active_within <= resume_after")


@dataclass(frozen=True, slots=True)
class IdleState:
    """What the policy remembers between looks."""

    last_busy: float | None = None  # when the desktop was last seen in use
    held_off: bool = False  # resumed by hand: no automatic pause until idle for resume_after

    def idle_for(self, now: float) -> float | None:
        """Seconds since the desktop was last seen busy; None if it never was."""
        return None if self.last_busy is None else now - self.last_busy


def decide(
    policy: IdlePolicy,
    state: IdleState,
    now: float,
    *,
    busy: bool,
    pause: PauseKind,
    resumed_by_hand: bool = False,
) -> tuple[IdleState, Action]:
    """The next state and action after a look at `now`; `resumed_by_hand` says a person
    ended a pause since the previous look."""
    if busy:
        state = replace(state, last_busy=now)
    if resumed_by_hand:
        state = replace(state, held_off=True)
    idle_for = state.idle_for(now)
    rested = idle_for is None or idle_for >= policy.resume_after
    if state.held_off and rested:
        state = replace(state, held_off=False)
    if pause is PauseKind.AUTOMATIC:
        return state, Action.RESUME if rested else Action.NOTHING
    in_use = idle_for is not None and idle_for < policy.active_within
    if pause is PauseKind.NONE and in_use and not state.held_off:
        return state, Action.PAUSE
    return state, Action.NOTHING
