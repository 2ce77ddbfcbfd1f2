"""Keeping the wrapper's state file current: rewritten on change and at least every period.

The wrapper treats a state file older than `wrapper.state_max_age` as "daemon down" and
compiles locally, so the period must stay well below that age; the configuration check
enforces it.  Writes are atomic (temp file + rename): a compile never reads half a file.
Changes that arrive in a burst are coalesced: at most one write per `min_gap`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import trio

from p2pcc import statefile
from p2pcc.daemon.node import Node
from p2pcc.safe_files import replace_file

log = logging.getLogger("p2pcc.state")


def render_state(node: Node, wall: float) -> str:
    """The state file's text for the node's current table."""
    hosts = {fp: (line.jobs, line.hosts) for fp, line in node.all_hosts().items()}
    return statefile.render(wall, hosts, node.compiler_records(), node.native_records())


async def write_in_thread(path: Path, text: str) -> None:
    """Write the state file from a worker thread (a slow disk must not stall gossip)."""
    await trio.to_thread.run_sync(_write, path, text)


async def serve_state_file(
    node: Node,
    path: Path,
    *,
    period: float,
    min_gap: float = 0.1,
    write: Callable[[Path, str], Awaitable[None]] = write_in_thread,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Write the state file now, then on every change and every `period` seconds."""
    await write(path, render_state(node, time.time()))
    task_status.started()
    try:
        while True:
            written_at = trio.current_time()
            await node.changed.wait_until(written_at + period)
            await trio.sleep_until(written_at + min_gap)
            await write(path, render_state(node, time.time()))
    finally:
        # A state file left behind would look fresh for up to state_max_age; removing it
        # sends compiles local at once when the daemon stops.
        path.unlink(missing_ok=True)


def _write(path: Path, text: str) -> None:
    try:
        replace_file(path, text.encode())
    except OSError as error:
        log.warning("cannot write state file %s: %s", path, error)
