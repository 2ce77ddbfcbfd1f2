"""Own builds' processes: which ones count, and what is left for the owner."""

from __future__ import annotations

import pytest

from p2pcc.core.build_load import descendants, is_build_tool, owner_load, pool_processes
from p2pcc.core.procfs import ProcessEntry


@pytest.mark.parametrize(
    ("comm", "builds"),
    [
        ("cc1", True),
        ("cc1plus", True),
        ("lto1", True),
        ("as", True),
        ("collect2", True),
        ("ld.gold", True),
        ("clang", True),
        ("clang++", True),
        ("clang-14", True),
        ("clang++-16.0", True),
        ("gcc", True),  # a driver, or a p2pcc link (it runs under the compiler's name)
        ("g++-12", True),
        ("cc", True),
        ("c++", True),
        ("x86_64-linux-gn", True),  # x86_64-linux-gnu-gcc-12 as the kernel keeps it
        ("aarch64-linux-g", True),
        ("distcc", True),
        ("make", True),
        ("ninja", True),
        ("clangd", False),  # an IDE's language server is the owner's
        ("gccgo-helper", False),
        ("cc1-wrapper", False),
        ("x86_64-linux", False),
        ("firefox", False),
        ("python3", False),  # a test run
        ("code", False),
    ],
)
def test_build_tools_are_known_by_name(comm: str, builds: bool) -> None:
    assert is_build_tool(comm) is builds


def process(pid: int, comm: str, ppid: int = 1, state: str = "R") -> ProcessEntry:
    return ProcessEntry(pid=pid, comm=comm, state=state, ppid=ppid)


def test_pool_processes_leave_out_served_jobs_and_sleepers() -> None:
    processes = [
        process(100, "distccd", state="S"),
        process(101, "distccd", ppid=100),  # a pre-forked worker, receiving a job
        process(102, "gcc", ppid=101),
        process(103, "cc1", ppid=102),  # a served job: in the served load already
        process(200, "make", state="S"),
        process(201, "gcc", ppid=200, state="S"),
        process(202, "cc1", ppid=201),  # our build's compile
        process(203, "as", ppid=201, state="D"),
        process(204, "cc1plus", ppid=200, state="S"),  # waiting: not in the load average
        process(205, "cc1", ppid=200, state="Z"),
        process(300, "code", state="R"),  # the owner's editor
    ]
    assert [entry.pid for entry in pool_processes(processes, [100])] == [101, 202, 203]
    assert [entry.pid for entry in pool_processes(processes, [])] == [102, 103, 202, 203]


def test_descendants_survive_a_cycle() -> None:
    cyclic = [process(1, "a", ppid=2), process(2, "b", ppid=1), process(3, "c", ppid=2)]
    assert descendants(cyclic, [1]) == {1, 2, 3}


@pytest.mark.parametrize(
    ("foreign", "build", "owner"), [(3.0, 1.0, 2.0), (1.0, 2.5, 0.0), (2.0, -1.0, 2.0)]
)
def test_the_owner_load_is_what_builds_leave(foreign: float, build: float, owner: float) -> None:
    assert owner_load(foreign, build) == owner
