"""Compiles of this machine's own builds: pool work, not its owner's load.

A workstation that builds something runs compilers of its own (local compiles, and the
preprocessing distcc does on the client).  They raise its load average like an IDE or a
test run would, and before this module existed they made the daemon withdraw its slots
as if the desktop's owner were busy: three developers building at once then served each
other nothing, and the pool lost three quarters of its machines exactly when it was
busiest.  But the compiles of a build are pool work wherever they run; a job a peer
sends competes with them as an equal, and the ranking sees that through the load a
node announces (which still includes them) rather than through slots withdrawn.

So the *owner's* load, which alone decides slots, is the load average less the jobs
distccd serves (`metrics.ServedLoad`) and less the compiler processes counted here,
each averaged the way the kernel averages load.  What an owner runs besides compiles
(an IDE, a browser, a test run) still takes slots away, as before.  A compiler process
is recognized by its command name: the compilers proper that gcc's driver runs
(`cc1`, `cc1plus`, …, the assembler) and clang, which compiles in its own process.
`clangd` (an IDE's language server) is not one of them.  Only runnable ones count (R,
or D waiting on the disk), as in the load average; served jobs' compilers are left out
(they are in the served load already).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from p2pcc.core.procfs import ProcessEntry

#: What gcc's driver runs to compile, by command name (the kernel keeps 15 characters).
GCC_COMPILER_NAMES = frozenset(
    {"cc1", "cc1plus", "cc1obj", "cc1objplus", "f951", "lto1", "gnat1", "d21", "go1", "as"}
)

#: clang, clang++, clang-14, clang++-16: clang compiles in the driver's own process.
_CLANG = re.compile(r"clang(\+\+)?(-\d+(\.\d+)*)?")

#: States the load average counts: running or runnable, and uninterruptible sleep.
LOAD_STATES = frozenset({"R", "D"})


def is_compiler(comm: str) -> bool:
    """Whether a process of this command name compiles (see the module docstring)."""
    return comm in GCC_COMPILER_NAMES or _CLANG.fullmatch(comm) is not None


def build_compiles(
    processes: Iterable[ProcessEntry], distccd_pids: Iterable[int]
) -> list[ProcessEntry]:
    """The runnable compiler processes that are not distccd's (served jobs run under
    `distccd_pids`, at any depth), by pid."""
    processes = list(processes)
    served = descendants(processes, distccd_pids)
    found = [
        entry
        for entry in processes
        if entry.state in LOAD_STATES and entry.pid not in served and is_compiler(entry.comm)
    ]
    return sorted(found, key=lambda entry: entry.pid)


def descendants(processes: Iterable[ProcessEntry], roots: Iterable[int]) -> set[int]:
    """The pids of `roots` and of every process below them (a corrupt snapshot with a
    cycle cannot loop: each pid is visited once)."""
    children: dict[int, list[int]] = {}
    for entry in processes:
        children.setdefault(entry.ppid, []).append(entry.pid)
    found: set[int] = set()
    pending = list(roots)
    while pending:
        pid = pending.pop()
        if pid not in found:
            found.add(pid)
            pending += children.get(pid, ())
    return found


def owner_load(foreign_load: float, build_load: float) -> float:
    """The owner's load: what is not served jobs (`foreign_load`) less own builds'
    compiles (`build_load`), never negative."""
    return max(0.0, foreign_load - max(0.0, build_load))
