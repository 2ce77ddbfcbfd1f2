"""Keeping a manual pause across daemon restarts, in a small file beside the node id.

The file (`pause` next to `node.id_file`) holds one JSON object: who paused, why, and
until when on the wall clock (null: until resumed).  It is written atomically (a
temporary file renamed over it) whenever the manual pause changes and deleted when it
ends, by `serve_pause_store`, which follows the node's changes.  At start-up
`load_pause` restores it unless it has expired meanwhile.  A file that cannot be read
as a pause is ignored with one log line and removed.  Automatic pauses are not kept:
after a restart the desktop is simply looked at again.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import trio

from p2pcc.core import limits
from p2pcc.core.node import LocalNode
from p2pcc.core.node_change import Change
from p2pcc.core.pause import Pause
from p2pcc.daemon.changes import ChangeBoard
from p2pcc.daemon.stores.kept_file import KeptFile, Worker, in_worker_thread
from p2pcc.safe_files import read_regular_file, replace_file

log = logging.getLogger("p2pcc.daemon.pause")

FILE_NAME = "pause"

#: Largest pause file read: the longest valid one is under 300 bytes.
MAX_FILE_BYTES = 4096

_FIELDS = {"reason", "by_uid", "until"}

#: Seconds between attempts to write a pause file that could not be written.
RETRY_INTERVAL = 5.0


@dataclass(frozen=True, slots=True)
class StoredPause:
    """A manual pause as kept on disk: `until` on the wall clock, None until resumed."""

    reason: str
    by_uid: int
    until: float | None

    def remaining(self, wall: float) -> float | None:
        """Seconds left at wall time `wall` (<= 0: expired), None when untimed."""
        return None if self.until is None else self.until - wall


def pause_file(id_file: Path) -> Path:
    """Where the pause of the node whose id lives in `id_file` is kept."""
    return id_file.with_name(FILE_NAME)


def stored_form(pause: Pause | None) -> StoredPause | None:
    """What of the node's pause is kept: a manual one; an automatic one is not."""
    if pause is None or pause.automatic:
        return None
    return StoredPause(pause.reason, pause.by_uid, pause.until_wall)


def encode_pause(pause: StoredPause) -> bytes:
    """The file's content for `pause`."""
    document = {"reason": pause.reason, "by_uid": pause.by_uid, "until": pause.until}
    return json.dumps(document, sort_keys=True).encode() + b"\n"


def decode_pause(data: bytes) -> StoredPause:
    """The pause in a file's content; ValueError saying what is wrong with it."""
    if len(data) > MAX_FILE_BYTES:
        raise ValueError(f"larger than {MAX_FILE_BYTES} bytes")
    try:
        document = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"not JSON ({error})") from None
    if not isinstance(document, dict) or set(document) != _FIELDS:
        raise ValueError(f"expected an object with exactly {', '.join(sorted(_FIELDS))}")
    reason, by_uid, until = document["reason"], document["by_uid"], document["until"]
    if not isinstance(reason, str) or len(reason.encode()) > limits.MAX_PAUSE_REASON:
        raise ValueError(f"reason is not a string of at most {limits.MAX_PAUSE_REASON} bytes")
    if isinstance(by_uid, bool) or not isinstance(by_uid, int) or not 0 <= by_uid < 2**32:
        raise ValueError("by_uid is not a uid")
    if until is not None and (
        isinstance(until, bool) or not isinstance(until, int | float) or not math.isfinite(until)
    ):
        raise ValueError("until is neither null nor a finite number")
    return StoredPause(reason, by_uid, None if until is None else float(until))


def load_pause(path: Path, wall: float) -> StoredPause | None:
    """The pause to restore at wall time `wall`: None when there is no file, or it has
    expired, or it is corrupt (both removed, with one log line)."""
    data = read_regular_file(str(path), MAX_FILE_BYTES + 1)
    if data is None:
        if os.path.lexists(path):
            log.warning(
                "cannot read the kept pause %s (not a regular file); not restoring it", path
            )
        return None
    try:
        pause = decode_pause(data)
    except ValueError as error:
        log.warning("ignoring and removing the corrupt pause file %s: %s", path, error)
        _forget(path)
        return None
    remaining = pause.remaining(wall)
    if remaining is not None and remaining <= 0:
        log.info("the pause kept in %s expired while the daemon was stopped", path)
        _forget(path)
        return None
    return pause


def restore_pause(node: LocalNode, path: Path, now: float, wall: float) -> StoredPause | None:
    """Pause `node` as kept in `path`, if a pause is kept there and has not expired."""
    kept = load_pause(path, wall)
    if kept is not None:
        node.pause_for(kept.remaining(wall), kept.reason, kept.by_uid, now, wall)
        log.info(
            "restored the pause by uid %d (%s) until %s",
            kept.by_uid,
            kept.reason or "no reason given",
            "resumed" if kept.until is None else f"{kept.remaining(wall):.0f} s from now",
        )
    return kept


def save_pause(path: Path, pause: StoredPause | None) -> None:
    """Write `pause` atomically, or remove the file for None; OSError if that fails."""
    if pause is None:
        _remove(path)
        return
    # Durable: a pause the user asked for must survive a power cut as it was set.
    replace_file(path, encode_pause(pause), durable=True)


def _remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def _forget(path: Path) -> None:
    # Nothing restores a file that is left behind, and the next save replaces it.
    with contextlib.suppress(OSError):
        path.unlink()


async def serve_pause_store(
    path: Path,
    current: Callable[[], StoredPause | None],
    board: ChangeBoard,
    *,
    on_disk: StoredPause | None = None,
    save: Callable[[Path, StoredPause | None], None] = save_pause,
    worker: Worker = in_worker_thread,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Keep `path` equal to `current()` (the node's manual pause), rewriting it after
    each change of the pause (changes made meanwhile cost one write); `on_disk` is what
    the file holds at start.  `save` runs through `worker`.  A failed write is logged
    once and tried again every `RETRY_INTERVAL` until it succeeds."""
    kept = KeptFile(path, "the pause", save, on_disk, log, worker=worker)
    with board.subscribe(Change.PAUSE) as pause_changes:
        task_status.started()
        while True:
            await kept.keep(current())
            retry = trio.current_time() + RETRY_INTERVAL if kept.failing else math.inf
            await pause_changes.wait(retry)
