"""A lowering pass: the jobs in distccd's session run at nice 19; distccd itself is left
alone (when the passes come: test_paused.py)."""

from __future__ import annotations

import os
import subprocess

from p2pcc.core.procfs import ProcessEntry
from p2pcc.daemon.distccd.processes import read_processes
from p2pcc.daemon.distccd.renice import (
    LOWEST_PRIORITY,
    lower_priority,
    lower_session_jobs,
    session_jobs,
)


def entry(pid: int, comm: str, session: int, state: str = "S") -> ProcessEntry:
    return ProcessEntry(pid=pid, comm=comm, state=state, ppid=1, session=session)


def test_the_jobs_are_the_live_processes_of_the_session_not_named_distccd() -> None:
    processes = [
        entry(100, "distccd", 100),
        entry(101, "distccd", 100),
        entry(150, "cc1", 100),
        entry(140, "gcc", 100),
        entry(160, "as", 100, state="Z"),
        entry(200, "cc1", 200),  # another session: somebody's own build
    ]
    assert session_jobs(processes, 100) == [140, 150]


def _nice_by_comm(session: int) -> dict[str, set[int]]:
    nice: dict[str, set[int]] = {}
    for process in read_processes():
        if process.session == session:
            for tid in os.listdir(f"/proc/{process.pid}/task"):
                nice.setdefault(process.comm, set()).add(os.getpriority(os.PRIO_PROCESS, int(tid)))
    return nice


def test_a_real_session_is_lowered_except_distccd(fake_distccd_session: int) -> None:
    session = fake_distccd_session
    assert _nice_by_comm(session)["distccd"] == {os.getpriority(os.PRIO_PROCESS, 0)}
    lowered = lower_session_jobs(session)
    assert lowered == 3  # sh, and both threads of the python job
    nice = _nice_by_comm(session)
    assert nice.pop("distccd") == {os.getpriority(os.PRIO_PROCESS, 0)}
    assert len(nice) == 2  # sh and the python job
    assert all(values == {LOWEST_PRIORITY} for values in nice.values())
    assert lower_session_jobs(session) == 0  # already as low as it goes


def test_a_process_that_is_gone_is_skipped() -> None:
    gone = subprocess.run(["sh", "-c", "echo $$"], capture_output=True, text=True, check=True)
    assert lower_priority([int(gone.stdout)]) == 0
