"""A session like distccd's, with real processes, for the passes of a paused node."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from p2pcc.daemon.distccd.processes import read_processes

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
        while threads_of(leader.pid) < 4:  # sh, distccd, python's two threads
            assert time.monotonic() < deadline, "the fake session did not start"
        yield leader.pid
    finally:
        os.killpg(leader.pid, signal.SIGKILL)
        leader.wait()


def threads_of(session: int) -> int:
    members = [e for e in read_processes() if e.session == session and e.comm != "sh"]
    return 1 + sum(len(os.listdir(f"/proc/{e.pid}/task")) for e in members) if members else 0
