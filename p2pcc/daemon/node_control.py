"""The control socket's view of the node: the clock readings and permission checks the
node itself stays free of, and result documents shaped as docs/control.md says.

A pause may be replaced or ended only by root or by the user who made it
(`may_replace_pause`, `may_resume`); anyone else is told who paused and until when.  A
pause or resume that changes nothing (the same user's same endless pause again, a
resume while not paused) is not carried out: nothing is logged, written or gossiped.
Anyone local may have peers remeasured: it changes only how this machine's own builds
rank them, and the next jobs there judge them again; the peers named (or those a proof
left out of a line) are proven again as soon as this machine is idle.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import trio

from p2pcc.core.control_protocol import (
    BAD_ARGUMENT,
    ControlError,
    foreign_pause_error,
    may_replace_pause,
    may_resume,
)
from p2pcc.core.idle import PauseKind
from p2pcc.core.node import LocalNode
from p2pcc.core.pause import Pause

log = logging.getLogger("p2pcc.daemon")


class NodeControl:
    """The control socket's view of the node: reads the clocks the node must not."""

    def __init__(self, node: LocalNode) -> None:
        self.node = node

    def status(self) -> dict[str, Any]:
        return self.node.snapshot(trio.current_time(), time.time())

    def pause(
        self, seconds: float | None, reason: str, uid: int, *, hand_back: bool = False
    ) -> dict[str, Any]:
        current = self.node.pause
        if current is not None and not may_replace_pause(uid, current.by_uid):
            raise foreign_pause_error(current.as_document(), "replace or shorten")
        if _same_endless_pause(current, seconds, reason, uid, hand_back):
            return {"state": "paused", "pause": self._pause_doc()}
        replaced = self.node.pause_kind() is PauseKind.AUTOMATIC
        now, wall = trio.current_time(), time.time()
        self.node.pause_for(seconds, reason, uid, now, wall, hand_back=hand_back)
        log.info(
            "paused by uid %d for %s: %s%s%s",
            uid,
            f"{seconds:g} s" if seconds else "ever",
            reason,
            " (replaces the automatic pause)" if replaced else "",
            "; handing back peers' jobs" if hand_back else "",
        )
        return {"state": "paused", "pause": self._pause_doc()}

    def resume(self, uid: int) -> dict[str, Any]:
        pause = self.node.pause
        if pause is None:  # nothing to end: nothing to log, write or gossip
            return {"state": "active", "was_paused": False}
        if not may_resume(uid, pause.by_uid):
            raise foreign_pause_error(pause.as_document(), "resume")
        self.node.resume(trio.current_time())
        log.info("resumed by uid %d", uid)
        return {"state": "active", "was_paused": True}

    def hosts(self, fingerprint: str) -> dict[str, Any]:
        line = self.node.hosts_for(fingerprint, trio.current_time())
        return {"hosts": line.hosts, "jobs": line.jobs}

    def remeasure(self, names: tuple[str, ...], uid: int) -> dict[str, Any]:
        """Forget the turnarounds and verdicts of the peers `names` (all when empty)."""
        known = {peer.node_id: peer.status.name for peer in self.node.peers()}
        unknown = sorted(set(names) - set(known.values()))
        if unknown:
            listed = ", ".join(sorted(set(known.values()))[:20]) or "none"
            raise ControlError(BAD_ARGUMENT, f"no peer named {unknown[0]!r} (peers: {listed})")
        chosen = {node_id for node_id, name in known.items() if not names or name in names}
        slow = sorted(known[node_id] for node_id in chosen if node_id in self.node.delivered)
        self.node.reports.forget_measurements(chosen if names else None)
        delivered = self.node.delivered.items()
        self.node.set_delivered({n: f for n, f in delivered if names and n not in chosen})
        asked = self.node.reports.proofs.ask(chosen if names else None)
        proving = sorted({known[t.node_id] for t in asked if t.node_id in known})
        log.info(
            "remeasure by uid %d: forgot what our jobs measured of %s%s%s",
            uid,
            ", ".join(names) if names else "every peer",
            f" (judged slow: {', '.join(slow)})" if slow else "",
            f"; proving again: {', '.join(proving)}" if proving else "",
        )
        forgotten = sorted({known[node_id] for node_id in chosen})
        return {"forgotten": forgotten, "judged_slow": slow, "proving": proving}

    def _pause_doc(self) -> dict[str, Any] | None:
        pause = self.node.pause
        return None if pause is None else pause.as_document()


def _same_endless_pause(
    current: Pause | None, seconds: float | None, reason: str, uid: int, hand_back: bool
) -> bool:
    """Whether pausing would put in place the very pause in effect (a timed one always
    moves its end)."""
    return (
        current is not None
        and not current.automatic
        and current.until is None
        and seconds is None
        and (current.reason, current.by_uid, current.hand_back) == (reason, uid, hand_back)
    )
