"""What a pause does to the jobs distccd runs for peers, and when the next pass comes."""

from __future__ import annotations

import pytest

from p2pcc.core.hand_back import (
    FAST_INTERVAL,
    FAST_PERIOD,
    SLOW_INTERVAL,
    Treatment,
    job_processes,
    jobs_handed_back,
    next_pass,
    treatment,
)
from p2pcc.core.pause import Pause
from p2pcc.core.procfs import ProcessEntry

PLAIN = Pause.manual(None, "", 0, 0.0, 0.0)
NOW = Pause.manual(None, "", 0, 0.0, 0.0, hand_back=True)
AUTOMATIC = Pause.automatic_for(1000)
KEPT_AT_NICE_19 = Pause.automatic_for(1000, hand_back=False)


@pytest.mark.parametrize(
    ("pause", "problem", "expected"),
    [
        (None, None, Treatment.NONE),
        (None, "not checked yet", Treatment.NONE),
        (PLAIN, None, Treatment.LOWER),
        (NOW, None, Treatment.HAND_BACK),
        (AUTOMATIC, None, Treatment.HAND_BACK),
        (KEPT_AT_NICE_19, None, Treatment.LOWER),
        # Killing a job whose connection cannot be cut only makes it a remote failure.
        (NOW, "not checked yet", Treatment.LOWER),
        (AUTOMATIC, "ss (iproute2) is not installed", Treatment.LOWER),
    ],
)
def test_the_treatment_of_each_pause(
    pause: Pause | None, problem: str | None, expected: Treatment
) -> None:
    assert treatment(pause, problem) is expected


def test_the_automatic_pause_hands_back_by_default() -> None:
    assert AUTOMATIC.hand_back
    assert not PLAIN.hand_back


def test_hand_back_passes_come_quickly_for_the_first_seconds_then_slowly() -> None:
    assert next_pass(Treatment.HAND_BACK, 0.0) == FAST_INTERVAL
    assert next_pass(Treatment.HAND_BACK, FAST_PERIOD - FAST_INTERVAL) == FAST_INTERVAL
    assert next_pass(Treatment.HAND_BACK, FAST_PERIOD) == SLOW_INTERVAL
    # Fast intervals summed in floating point may fall just short of the period: that
    # pass is the first slow one all the same.
    assert next_pass(Treatment.HAND_BACK, FAST_PERIOD - 1e-9) == SLOW_INTERVAL
    assert next_pass(Treatment.LOWER, 0.0) == SLOW_INTERVAL
    assert FAST_INTERVAL <= 0.25  # a late job still goes well within the second


def entry(pid: int, comm: str, ppid: int) -> ProcessEntry:
    return ProcessEntry(pid=pid, comm=comm, state="S", ppid=ppid, session=100)


SESSION = [
    entry(100, "distccd", 1),
    entry(101, "distccd", 100),
    entry(102, "distccd", 100),
    entry(250, "cc1", 200),
    entry(200, "x86_64-linux-gn", 101),
    entry(300, "sh", 102),  # a job through the job guard's shell
    entry(301, "x86_64-linux-gn", 300),
]


def test_the_jobs_are_every_process_but_distccd_by_pid() -> None:
    assert [e.pid for e in job_processes(SESSION)] == [200, 250, 300, 301]
    assert job_processes([e for e in SESSION if e.comm == "distccd"]) == []


@pytest.mark.parametrize(
    ("connections", "members", "jobs"),
    [
        (0, SESSION, 2),  # two children of distccd workers: two jobs
        (3, SESSION, 3),  # one more still receiving its source
        (1, SESSION[:3], 1),  # a connection, no process yet
        (0, [], 0),
        (0, [entry(250, "cc1", 200)], 0),  # an orphan without its driver: not a job
    ],
)
def test_jobs_handed_back_count_connections_or_drivers(
    connections: int, members: list[ProcessEntry], jobs: int
) -> None:
    assert jobs_handed_back(connections, members) == jobs
