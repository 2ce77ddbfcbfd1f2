"""A load average of its own for each test-bed workstation.

Bed workstations share one kernel, and `/proc/loadavg` shows the whole machine in every
namespace: one build loads "all of them" at once, so a daemon cannot tell its own
owner's work from its neighbour's, and several clients building at once all see the same
number.  A real office has one load average per machine.  `OwnLoad` gives each
workstation one: it keeps each workstation's processes in a cgroup of its own (a CPU
share for a slow machine, or no limit), counts once a second the runnable and
uninterruptible tasks of that cgroup (what the kernel counts for its load average),
damps them as the kernel does (1, 5 and 15 minutes: `load = load * e^(-1/T) +
n * (1 - e^(-1/T))` per second), and writes the figures into a file bind-mounted over
`/proc/loadavg` in the workstation's mount namespace, which is the file the daemon
reads.  The thread stops, and the mounts go with the bed, when the context ends.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.integration.netbed import Workstation
from tests.integration.sampling import PeriodicSampler

#: Seconds between two counts, as the kernel's own load average (it counts every 5 s).
TICK = 1.0

#: The kernel's three averaging periods, in seconds.
PERIODS = (60.0, 300.0, 900.0)


def runnable_tasks(cgroup: Path) -> int:
    """Tasks of `cgroup` that the kernel's load average counts: running or runnable (R)
    and in uninterruptible sleep (D).  A task that ends while it is read is skipped."""
    count = 0
    for tid in (cgroup / "tasks").read_text().split():
        try:
            stat = Path(f"/proc/{tid}/stat").read_text()
        except OSError:
            continue
        state = stat.rpartition(")")[2].split()[:1]
        count += state in (["R"], ["D"])
    return count


def damped(loads: tuple[float, ...], tasks: int, seconds: float) -> tuple[float, ...]:
    """The three load averages `seconds` after `loads`, with `tasks` counted meanwhile."""
    decays = [math.exp(-seconds / period) for period in PERIODS]
    pairs = zip(loads, decays, strict=True)
    return tuple(load * decay + tasks * (1 - decay) for load, decay in pairs)


#: Every version of the file has this length, so rewriting it in place never shows a
#: reader a short or mixed file (a bind mount follows the inode: no rename over it).
LINE_BYTES = 64


def loadavg_text(loads: tuple[float, ...], tasks: int) -> str:
    """`/proc/loadavg`'s format (three averages, runnable/total, last pid: unknown, 1),
    padded with spaces to LINE_BYTES."""
    line = f"{loads[0]:.2f} {loads[1]:.2f} {loads[2]:.2f} {tasks}/{max(tasks, 1)} 1"
    return line.ljust(LINE_BYTES - 1) + "\n"


class OwnLoad(PeriodicSampler):
    """The thread that keeps every given workstation's load average; see the module."""

    def __init__(self, stations: Iterable[Workstation], scratch: Path) -> None:
        super().__init__(TICK)
        self._files: list[tuple[Workstation, Path]] = []
        self._loads: dict[str, tuple[float, ...]] = {}  # by workstation name
        for ws in stations:
            if ws.cgroup is None:
                ws.throttle(None)  # a cgroup of its own without a limit
            ws.adopt_processes()  # what already runs there counts too
            fake = scratch / f"loadavg-{ws.name}"
            fake.write_text(loadavg_text((0.0, 0.0, 0.0), 0))
            fake.chmod(0o644)
            ws.run(["mount", "--bind", str(fake), "/proc/loadavg"])
            self._files.append((ws, fake))
            self._loads[ws.name] = (0.0, 0.0, 0.0)

    def load(self, ws: Workstation) -> float:
        """`ws`'s 1-minute load average as its daemon sees it now."""
        return self._loads[ws.name][0]

    def sample(self) -> None:
        for ws, fake in self._files:
            assert ws.cgroup is not None
            try:
                tasks = runnable_tasks(ws.cgroup)
            except OSError:  # the bed is being torn down
                continue
            loads = self._loads[ws.name] = damped(self._loads[ws.name], tasks, TICK)
            fd = os.open(fake, os.O_WRONLY)
            try:
                os.pwrite(fd, loadavg_text(loads, tasks).encode(), 0)
            finally:
                os.close(fd)


@contextmanager
def own_load(stations: Iterable[Workstation], scratch: Path) -> Iterator[OwnLoad]:
    """Give each of `stations` a load average of its own for the duration of the block."""
    with OwnLoad(stations, scratch) as keeper:
        yield keeper
