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
distccd serves (`metrics.ServedLoad`) and less the build processes counted here, each
averaged the way the kernel averages load.  What an owner runs besides builds (an IDE,
a browser, a test run) still takes slots away, as before.  A build process is known by
its command name (`is_build_tool`):

* the compilers proper that gcc's driver runs (`cc1`, `cc1plus`, …), clang (which
  compiles in the driver's own process), the assembler and the linkers;
* compiler drivers and the p2pcc links, which run under the compiler's name (`gcc`,
  `g++-12`, `cc`, `c++`; `x86_64-linux-gnu-gcc-12` as the kernel's 15 characters keep
  it, `x86_64-linux-gn`);
* distcc, ccache and the build tools that run them (`make`, `ninja`).

Counting drivers next to their `cc1` counts nothing twice: only runnable processes
count (R, or D waiting on the disk), as in the load average, and a driver waiting for
its `cc1` is asleep.  On a busy machine they all spend time runnable waiting for a CPU,
which the load average counts too; measured on the test bed, three builds at once left
a builder about one CPU of "owner" load with only the compilers proper counted.
`clangd` (an IDE's language server) is not a build tool.  Served jobs' processes are
left out (they are in the served load already), but distccd's own workers, receiving a
job or sending an object back, are pool work too, and so are the daemon's own threads
(the metrics task counts those: `p2pcc.daemon.metrics.sampler`).  On a machine held to a
CPU quota every task waits its turn runnable, so the machinery of the pool would
otherwise weigh as the owner's load.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from p2pcc.core.procfs import ProcessEntry

#: Build processes by exact command name: what gcc's driver runs (the compilers proper,
#: the assembler, the linkers), and the tools that run compilers.
BUILD_TOOL_NAMES = frozenset(
    {
        *("cc1", "cc1plus", "cc1obj", "cc1objplus", "f951", "lto1", "gnat1", "d21", "go1"),
        *("as", "ld", "ld.bfd", "ld.gold", "ld.lld", "collect2", "lto-wrapper", "ar"),
        *("distcc", "ccache", "make", "gmake", "ninja"),
    }
)

#: Compiler drivers (and p2pcc's links, which run under their names): gcc, g++, cc,
#: c++, cpp, clang, clang++, each maybe versioned (`gcc-12`, `clang++-16`) or with a
#: target prefix (`x86_64-linux-gnu-gcc-12`).
_DRIVER = re.compile(r"([\w.]+-)*(gcc|g\+\+|cc|c\+\+|cpp|clang|clang\+\+)(-\d+(\.\d+)*)?")

#: A GNU target-prefixed tool cut to the kernel's 15 characters: `x86_64-linux-gnu-gcc-12`,
#: `-g++`, `-as` and `-ld` all read `x86_64-linux-gn`.
_TRUNCATED_TARGET_TOOL = re.compile(r"[\w]+-linux-g(nu?)?")

#: The kernel keeps the first 15 characters of a command name.
COMM_LENGTH = 15

#: distccd's own processes (the listener and its pre-forked workers).
DISTCCD_COMM = "distccd"

#: States the load average counts: running or runnable, and uninterruptible sleep.
LOAD_STATES = frozenset({"R", "D"})


def is_build_tool(comm: str) -> bool:
    """Whether a process of this command name is part of a build (module docstring)."""
    if comm in BUILD_TOOL_NAMES or _DRIVER.fullmatch(comm) is not None:
        return True
    return len(comm) == COMM_LENGTH and _TRUNCATED_TARGET_TOOL.fullmatch(comm) is not None


def pool_processes(
    processes: Iterable[ProcessEntry], distccd_pids: Iterable[int]
) -> list[ProcessEntry]:
    """The runnable processes doing pool work besides served jobs, by pid: build tools
    outside distccd, and distccd's own processes (`distccd_pids` and the workers below
    them, receiving a job or sending its object back); served jobs' processes (below a
    worker) are in the served load already."""
    processes = list(processes)
    under_distccd = descendants(processes, distccd_pids)
    found = [
        entry
        for entry in processes
        if entry.state in LOAD_STATES
        and (
            entry.comm == DISTCCD_COMM if entry.pid in under_distccd else is_build_tool(entry.comm)
        )
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
