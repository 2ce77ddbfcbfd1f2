"""Who took this node out of the pool, why, and until when.

A pause is either manual (`p2pcc pause`, possibly restored after a restart) or
automatic (the desktop is in use, docs/idle.md).  A manual pause replaces any pause in
effect; an automatic one never replaces a pause.  A timed pause carries its end on both
clocks: the monotonic one decides when it expires, the wall one is what peers and
people read.  A pause that hands back (`p2pcc pause --now`, and the automatic pause
unless `idle.hand_back = false`) stops the jobs running here for peers, so their
clients compile them (`core/hand_back.py`); any other lets them finish at nice 19.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

from p2pcc.core import limits
from p2pcc.core.idle import PauseKind
from p2pcc.core.model import NodeState, NodeStatus

#: The reason peers are shown for a pause the daemon made because the desktop is in use.
AUTO_PAUSE_REASON = "desktop in use"


@dataclass(frozen=True, slots=True)
class Pause:
    """A pause in effect: `until` on the monotonic clock, `until_wall` on the wall's
    (both None: until resumed); `automatic` when the desktop being in use made it;
    `hand_back` when the jobs running here for peers are to be stopped, not finished."""

    reason: str
    by_uid: int
    until: float | None
    until_wall: float | None
    automatic: bool = False
    hand_back: bool = False

    @classmethod
    def manual(
        cls,
        seconds: float | None,
        reason: str,
        uid: int,
        now: float,
        wall: float,
        *,
        hand_back: bool = False,
    ) -> Pause:
        """A pause asked for by a person, for `seconds` from `now` or until resumed."""
        if seconds is not None and not (math.isfinite(seconds) and seconds > 0):
            raise ValueError(f"pause duration must be a positive number of seconds, got {seconds}")
        return cls(
            reason=reason[: limits.MAX_PAUSE_REASON],
            by_uid=uid,
            until=None if seconds is None else now + seconds,
            until_wall=None if seconds is None else wall + seconds,
            hand_back=hand_back,
        )

    @classmethod
    def automatic_for(cls, uid: int, *, hand_back: bool = True) -> Pause:
        """The pause made because the desktop is in use: untimed, ended by `auto_resume`."""
        return cls(AUTO_PAUSE_REASON, uid, None, None, automatic=True, hand_back=hand_back)

    @property
    def kind(self) -> PauseKind:
        return PauseKind.AUTOMATIC if self.automatic else PauseKind.MANUAL

    def expired(self, now: float) -> bool:
        """Whether a timed pause has run out by `now`."""
        return self.until is not None and now >= self.until

    def as_document(self) -> dict[str, Any]:
        """The `pause` object of the status document and of the control socket's answers."""
        return {
            "reason": self.reason,
            "by_uid": self.by_uid,
            "until": self.until_wall,
            "automatic": self.automatic,
            "hand_back": self.hand_back,
        }


def advertised_status(measured: NodeStatus, pause: Pause | None, serving: bool) -> NodeStatus:
    """What we tell peers, derived from what we measured: no slots while leaving, a
    pause's state and reason while paused, no slots while distccd is not serving."""
    if measured.state is NodeState.LEAVING:
        return replace(measured, slots=0)
    if pause is not None:
        return replace(
            measured,
            state=NodeState.PAUSED,
            pause_reason=pause.reason,
            pause_until=pause.until_wall,
        )
    return measured if serving else replace(measured, slots=0)
