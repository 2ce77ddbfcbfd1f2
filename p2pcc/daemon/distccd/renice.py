"""While this node is paused, the jobs distccd still runs for peers finish at the lowest
CPU priority, so the person at this desk gets the machine back at once.

distccd runs in a session of its own (see `distccd.py`); every live process of that
session not named distccd is a compile job (a compiler driver, `cc1`, `as`, ...).
Each thread of each such process is set to nice 19 with `setpriority`.  A pause stops
peers sending new jobs, but one accepted in the moment before peers heard of it would
escape a single pass, so `serve_renice_while_paused` repeats the pass every
`RENICE_INTERVAL` seconds while the pause lasts.  Priorities are not raised again on
resume: the lowered jobs are the ones already running, and they finish soon.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterable
from pathlib import Path

import trio

from p2pcc.core.metrics import DISTCCD_COMM
from p2pcc.core.node_change import Change
from p2pcc.core.procfs import ProcessEntry, session_members
from p2pcc.daemon.changes import ChangeBoard, Subscription
from p2pcc.daemon.distccd.processes import read_processes

log = logging.getLogger("p2pcc.daemon.renice")

#: The nice value jobs of a paused node finish at: the lowest CPU priority.
LOWEST_PRIORITY = 19

#: Seconds between passes while paused: catches a job accepted just before peers heard
#: of the pause (they hear within a second).
RENICE_INTERVAL = 2.0

PROC = Path("/proc")


def session_jobs(processes: Iterable[ProcessEntry], session: int) -> list[int]:
    """Pids of the compile jobs in distccd's session: its live processes not named distccd."""
    return sorted(
        entry.pid for entry in session_members(processes, session) if entry.comm != DISTCCD_COMM
    )


def lower_priority(pids: Iterable[int], proc_root: Path = PROC) -> int:
    """Set every thread of each process to LOWEST_PRIORITY; how many threads were above it.

    A process that ends meanwhile is skipped; PermissionError when we may not renice it.
    """
    lowered = 0
    for pid in pids:
        for thread in _threads(pid, proc_root):
            with contextlib.suppress(ProcessLookupError):
                if os.getpriority(os.PRIO_PROCESS, thread) < LOWEST_PRIORITY:
                    os.setpriority(os.PRIO_PROCESS, thread, LOWEST_PRIORITY)
                    lowered += 1
    return lowered


def _threads(pid: int, proc_root: Path) -> list[int]:
    try:
        return [int(name) for name in os.listdir(proc_root / str(pid) / "task")]
    except OSError:
        return []  # it ended


def lower_session_jobs(session: int) -> int:
    """`lower_priority` for the jobs of distccd's `session`, as /proc shows them now."""
    return lower_priority(session_jobs(read_processes(), session))


async def serve_renice_while_paused(
    paused: Callable[[], bool],
    distccd_pid: Callable[[], int | None],
    board: ChangeBoard,
    *,
    lower: Callable[[int], int] = lower_session_jobs,
    interval: float = RENICE_INTERVAL,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """While `paused()`, lower distccd's jobs at once and then every `interval` seconds.

    `distccd_pid` gives the managed distccd's pid, which is its session id (None while
    none runs); `lower` does one pass and returns the threads it lowered.
    """
    with board.subscribe(Change.PAUSE) as pause_changes:
        task_status.started()
        await _lower_while_paused(paused, distccd_pid, pause_changes, lower, interval)


async def _lower_while_paused(
    paused: Callable[[], bool],
    distccd_pid: Callable[[], int | None],
    pause_changes: Subscription,
    lower: Callable[[int], int],
    interval: float,
) -> None:
    refused = False
    while True:
        session = distccd_pid()
        if not paused():
            await pause_changes.wait()
            continue
        if session is not None:
            try:
                lowered = lower(session)
            except PermissionError as error:
                if not refused:
                    log.warning("cannot lower the priority of distccd's jobs: %s", error)
                refused = True
            else:
                if lowered:
                    log.info("paused: %d running job thread(s) lowered to nice 19", lowered)
        await trio.sleep(interval)
