"""The control socket's view of the node: the clock readings and permission checks the
node itself stays free of, and result documents shaped as docs/control.md says.

A pause may be replaced or ended only by root or by the user who made it
(`may_replace_pause`, `may_resume`); anyone else is told who paused and until when.  A
pause or resume that changes nothing (the same user's same endless pause again, a
resume while not paused) is not carried out: nothing is logged, written or gossiped.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import trio

from p2pcc.core.control_protocol import foreign_pause_error, may_replace_pause, may_resume
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

    def pause(self, seconds: float | None, reason: str, uid: int) -> dict[str, Any]:
        current = self.node.pause
        if current is not None and not may_replace_pause(uid, current.by_uid):
            raise foreign_pause_error(current.as_document(), "replace or shorten")
        if _same_endless_pause(current, seconds, reason, uid):
            return {"state": "paused", "pause": self._pause_doc()}
        replaced = self.node.pause_kind() is PauseKind.AUTOMATIC
        self.node.pause_for(seconds, reason, uid, trio.current_time(), time.time())
        log.info(
            "paused by uid %d for %s: %s%s",
            uid,
            f"{seconds:g} s" if seconds else "ever",
            reason,
            " (replaces the automatic pause)" if replaced else "",
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

    def _pause_doc(self) -> dict[str, Any] | None:
        pause = self.node.pause
        return None if pause is None else pause.as_document()


def _same_endless_pause(
    current: Pause | None, seconds: float | None, reason: str, uid: int
) -> bool:
    """Whether pausing would put in place the very pause in effect (a timed one always
    moves its end)."""
    return (
        current is not None
        and not current.automatic
        and current.until is None
        and seconds is None
        and (current.reason, current.by_uid) == (reason, uid)
    )
