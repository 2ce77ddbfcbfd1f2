"""While paused, the jobs in distccd's session run at nice 19; distccd itself is left alone."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from p2pcc.core.node_change import Change
from p2pcc.core.procfs import ProcessEntry
from p2pcc.daemon.changes import ChangeBoard
from p2pcc.daemon.distccd.processes import read_processes
from p2pcc.daemon.distccd.renice import (
    LOWEST_PRIORITY,
    lower_priority,
    lower_session_jobs,
    serve_renice_while_paused,
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


THREADED = "import threading, time; threading.Thread(target=time.sleep, args=(60,)).start(); "
THREADED += "time.sleep(60)"


@pytest.fixture
def fake_distccd_session(tmp_path: Path) -> Iterator[int]:
    """A session like distccd's: a process named distccd beside a compile job with two
    threads, under a shell leader; yields the session id."""
    distccd = tmp_path / "distccd"
    shutil.copy("/bin/sleep", distccd)
    script = f'"{distccd}" 60 & "{sys.executable}" -c "{THREADED}" & wait'
    leader = subprocess.Popen(["sh", "-c", script], start_new_session=True)
    try:
        deadline = time.monotonic() + 10
        while _threads_of(leader.pid) < 4:  # sh, distccd, python's two threads
            assert time.monotonic() < deadline, "the fake session did not start"
        yield leader.pid
    finally:
        os.killpg(leader.pid, signal.SIGKILL)
        leader.wait()


def _threads_of(session: int) -> int:
    members = [e for e in read_processes() if e.session == session and e.comm != "sh"]
    return 1 + sum(len(os.listdir(f"/proc/{e.pid}/task")) for e in members) if members else 0


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


async def test_lowering_runs_at_once_and_every_interval_while_paused(
    autojump_clock: trio.abc.Clock,
) -> None:
    board = ChangeBoard()
    paused = [False]
    pid: list[int | None] = [None]
    calls: list[tuple[float, int]] = []

    def lower(session: int) -> int:
        calls.append((trio.current_time(), session))
        return 1

    async with trio.open_nursery() as nursery:
        await nursery.start(
            lambda task_status: serve_renice_while_paused(
                lambda: paused[0],
                lambda: pid[0],
                board,
                lower=lower,
                interval=2.0,
                task_status=task_status,
            )
        )
        await trio.sleep_until(10.0)
        paused[0] = True
        board.notify(Change.PAUSE)
        await trio.sleep_until(13.0)  # paused, but no distccd runs
        pid[0] = 4242
        await trio.sleep_until(17.5)
        paused[0] = False
        board.notify(Change.PAUSE)
        await trio.sleep_until(30.0)
        nursery.cancel_scope.cancel()
    assert calls == [(14.0, 4242), (16.0, 4242)]


async def test_a_refused_renice_is_logged_once(
    autojump_clock: trio.abc.Clock, caplog: pytest.LogCaptureFixture
) -> None:
    def refuse(session: int) -> int:
        raise PermissionError(1, "Operation not permitted")

    with caplog.at_level(logging.INFO, logger="p2pcc"):
        async with trio.open_nursery() as nursery:
            await nursery.start(
                lambda task_status: serve_renice_while_paused(
                    lambda: True,
                    lambda: 99,
                    ChangeBoard(),
                    lower=refuse,
                    task_status=task_status,
                )
            )
            await trio.sleep(30)
            nursery.cancel_scope.cancel()
    assert [r.message for r in caplog.records] == [
        "cannot lower the priority of distccd's jobs: [Errno 1] Operation not permitted"
    ]
