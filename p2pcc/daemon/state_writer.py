"""Keeping the wrapper's state file current: rewritten when its content changes, and
at least every period.

The wrapper treats a state file older than `wrapper.state_max_age` as "daemon down" and
compiles locally, so the period must stay well below that age; the configuration check
enforces it.  Between those rewrites the file is written only when a hosts line or a
compiler record changed: the task wakes for ranking inputs (peers, our status, our
compilers), ranks, and compares.  How soon it looks depends on what changed: whether a
peer may get jobs at all, or our own status (`PROMPT`), within `min_gap` of the last
look (so a burst of datagrams costs one ranking); only peers' loads (`Change.LOAD`), at
most once per `load_gap`, which bounds the ranking a large pool's chatter costs.  Writes
are atomic (temp file + rename): a compile never reads half a file.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import trio

from p2pcc import statefile
from p2pcc.core.local_compilers import compiler_records, native_records
from p2pcc.core.node import LocalNode
from p2pcc.core.node_change import Change
from p2pcc.daemon.changes import ChangeBoard, Subscription
from p2pcc.safe_files import replace_file

log = logging.getLogger("p2pcc.state")

#: Least time between two looks at the ranking, so that a burst of datagrams (a pool
#: starting, a peer's pause heard by unicast and multicast) costs one ranking.
MIN_GAP = 0.1

#: Least time between the last look and one prompted only by peers' loads, jobs, power
#: or memory (`Change.LOAD`).  A pool of a thousand desks hears some twenty such
#: datagrams a second; following each within MIN_GAP would rank ten times a second.  A
#: peer sends its figures once per gossip interval (2 s by default) and its load is a
#: one-minute average, so a line up to one second behind them is no staler than what
#: gossip already delivers.
LOAD_GAP = 1.0

#: The changes the file follows within MIN_GAP: a peer joining, leaving, turning
#: suspect or dead, or changing materially (paused, slots, compilers, addresses, port);
#: a new policy or delivered factor; our own status or compilers.
PROMPT = Change.RANKING & ~Change.LOAD

#: What the state file says, but for the time it was written.
Content = tuple[
    dict[str, tuple[int, str]],
    dict[str, tuple[str, str, str]],
    dict[str, dict[str, tuple[str, ...]]],
]


def state_content(node: LocalNode, now: float) -> Content:
    """The hosts lines and compiler records the state file holds at `now`."""
    hosts = {fp: (line.jobs, line.hosts) for fp, line in node.hosts(now).items()}
    return hosts, compiler_records(node.compilers), native_records(node.compilers)


def render_state(content: Content, wall: float) -> str:
    """The state file's text for `content`, stamped with `wall`."""
    return statefile.render(wall, *content)


async def write_in_thread(path: Path, text: str) -> None:
    """Write the state file from a worker thread (a slow disk must not stall gossip)."""
    await trio.to_thread.run_sync(_write, path, text)


async def serve_state_file(
    node: LocalNode,
    board: ChangeBoard,
    path: Path,
    *,
    period: float,
    min_gap: float = MIN_GAP,
    load_gap: float = LOAD_GAP,
    write: Callable[[Path, str], Awaitable[None]] = write_in_thread,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Write the state file now, then when its content changes and every `period` s."""
    with board.subscribe(Change.RANKING) as changes:
        written = state_content(node, trio.current_time())
        await write(path, render_state(written, time.time()))
        written_at = looked_at = trio.current_time()
        task_status.started()
        try:
            while True:
                rewrite_at = written_at + period
                await _wait_for_look(changes, looked_at, rewrite_at, min_gap, load_gap)
                looked_at = trio.current_time()
                content = state_content(node, looked_at)
                if content == written and looked_at < written_at + period:
                    continue
                await write(path, render_state(content, time.time()))
                written, written_at = content, trio.current_time()
        finally:
            # A state file left behind would look fresh for up to state_max_age; removing
            # it sends compiles local at once when the daemon stops.
            path.unlink(missing_ok=True)


async def _wait_for_look(
    changes: Subscription, looked_at: float, rewrite_at: float, min_gap: float, load_gap: float
) -> None:
    """Wait until the next look is due: `min_gap` after the last look for a PROMPT
    change, `load_gap` after it when only loads moved, and at `rewrite_at` anyway."""
    deadline, wakers = rewrite_at, None
    while change := await changes.wait(deadline, wakers):
        if change & PROMPT:
            await trio.sleep_until(looked_at + min_gap)
            return
        # A load moved: look at the end of the gap, woken before only by what is prompt.
        deadline, wakers = min(deadline, looked_at + load_gap), PROMPT


def _write(path: Path, text: str) -> None:
    try:
        replace_file(path, text.encode())
    except OSError as error:
        log.warning("cannot write state file %s: %s", path, error)
