"""While this node is paused and lets the jobs distccd runs for peers finish, they
finish at the lowest CPU priority, so the person at this desk gets most of the machine.

distccd runs in a session of its own (see `supervisor.py`); every live process of that
session not named distccd is a compile job (a compiler driver, `cc1`, `as`, ...).
Each thread of each such process is set to nice 19 with `setpriority`.  `paused.py`
repeats the pass while the pause lasts (a job accepted in the moment before peers
heard of the pause escapes a single pass).  Priorities are not raised again on
resume: the lowered jobs are the ones already running, and they finish soon.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from pathlib import Path

from p2pcc.core.hand_back import job_processes
from p2pcc.core.procfs import ProcessEntry, session_members
from p2pcc.daemon.distccd.processes import read_processes

#: The nice value jobs of a paused node finish at: the lowest CPU priority.
LOWEST_PRIORITY = 19

PROC = Path("/proc")


def session_jobs(processes: Iterable[ProcessEntry], session: int) -> list[int]:
    """Pids of the compile jobs in distccd's session: its live processes not named distccd."""
    return [entry.pid for entry in job_processes(session_members(processes, session))]


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
