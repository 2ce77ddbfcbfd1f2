"""The control socket's view of the node: the clock readings and permission checks the
node itself stays free of, and result documents shaped as docs/control.md says."""

from __future__ import annotations

import logging
import time
from typing import Any

import trio

from p2pcc.core.control_protocol import PermissionDeniedError, may_resume
from p2pcc.core.idle import PauseKind
from p2pcc.core.node import LocalNode

log = logging.getLogger("p2pcc.daemon")


class NodeControl:
    """The control socket's view of the node: reads the clocks the node must not."""

    def __init__(self, node: LocalNode) -> None:
        self.node = node

    def status(self) -> dict[str, Any]:
        return self.node.snapshot(trio.current_time(), time.time())

    def pause(self, seconds: float | None, reason: str, uid: int) -> dict[str, Any]:
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
        if pause is not None and not may_resume(uid, pause.by_uid):
            raise PermissionDeniedError(
                f"paused by uid {pause.by_uid}: only that user or root may resume"
            )
        was_paused = self.node.resume(trio.current_time())
        log.info("resumed by uid %d", uid)
        return {"state": "active", "was_paused": was_paused}

    def hosts(self, fingerprint: str) -> dict[str, Any]:
        line = self.node.hosts_for(fingerprint, trio.current_time())
        return {"hosts": line.hosts, "jobs": line.jobs}

    def _pause_doc(self) -> dict[str, Any] | None:
        pause = self.node.pause
        return None if pause is None else pause.as_document()
