"""CPU seconds used by each test-bed workstation, from a cgroup v1 `cpuacct` group each.

The bed limits a workstation with the `cpu` controller (`Workstation.throttle`), which
on this machine is a hierarchy of its own without usage counters; `cpuacct` is another
hierarchy.  So each workstation gets a `cpuacct` group too, named like the bed's
cgroups (`p2t<pid>-<name>-acct`, found and removed by the next run if this one is
killed), every process of its network namespace is moved in (`adopt`, again before each
measurement: a restarted daemon or distccd lands there too), and a command started
later joins it through `wrap`.  Everything forked afterwards inherits the group, so a
distccd's compiles count for the workstation that serves them: the benchmarks' "pool
CPU busy" is the sum of these counters over capacity times window.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from tests.integration.netbed import PREFIX, Workstation, pid_alive

CGROUP_CPUACCT = Path("/sys/fs/cgroup/cpuacct")
_STALE = re.compile(rf"^{PREFIX}(\d+)-.*-acct$")


def available() -> bool:
    """Whether the cgroup v1 cpuacct controller is mounted where we look."""
    return (CGROUP_CPUACCT / "cpuacct.usage").exists()


def joined(group: Path, argv: Sequence[str]) -> list[str]:
    """`argv` run by a shell that first joins the cpuacct `group` (so it and everything
    it forks are counted there)."""
    return ["sh", "-c", 'echo $$ > "$0" && exec "$@"', str(group / "cgroup.procs"), *argv]


def remove_group(group: Path) -> None:
    """Kill what is left in `group`, then remove it (bounded: 50 tries)."""
    with contextlib.suppress(OSError):
        for pid in (group / "cgroup.procs").read_text().split():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)
    for _ in range(50):
        try:
            group.rmdir()
        except OSError:
            time.sleep(0.05)
        else:
            return


def remove_stale() -> None:
    """Remove the groups of earlier runs whose process is gone."""
    for group in CGROUP_CPUACCT.glob(f"{PREFIX}*-acct"):
        match = _STALE.match(group.name)
        if match and not pid_alive(int(match.group(1))):
            remove_group(group)


class CpuAccount:
    """A `cpuacct` group per workstation; a context manager that removes them."""

    def __init__(self, stations: Iterable[Workstation]) -> None:
        remove_stale()
        self._groups: dict[str, Path] = {}
        self._stations = list(stations)
        for ws in self._stations:
            group = CGROUP_CPUACCT / f"{PREFIX}{ws.bed.run_id}-{ws.name}-acct"
            group.mkdir(exist_ok=True)
            self._groups[ws.name] = group
        self.adopt()

    def adopt(self) -> None:
        """Move every process of each workstation's network namespace into its group."""
        for ws in self._stations:
            listed = subprocess.run(
                ["ip", "netns", "pids", ws.netns], capture_output=True, text=True, check=False
            )
            for pid in listed.stdout.split():
                with contextlib.suppress(OSError):  # it ended meanwhile
                    (self._groups[ws.name] / "cgroup.procs").write_text(pid)

    def seconds(self, ws: Workstation) -> float:
        """CPU seconds (user and system) the workstation's group has used so far."""
        return int((self._groups[ws.name] / "cpuacct.usage").read_text()) / 1e9

    def wrap(self, ws: Workstation, argv: Sequence[str]) -> list[str]:
        """`argv` run by a shell that first joins the workstation's group (so a command
        started through `ws.run`/`ws.start` after `adopt` is counted too)."""
        return joined(self._groups[ws.name], argv)

    def __enter__(self) -> CpuAccount:
        return self

    def __exit__(self, *exc_info: object) -> None:
        # What still runs (the bed closes after us and stops it gently) goes back to
        # the root group; a group can only be removed once empty.
        for group in self._groups.values():
            with contextlib.suppress(OSError):
                for pid in (group / "cgroup.procs").read_text().split():
                    with contextlib.suppress(OSError):
                        (CGROUP_CPUACCT / "cgroup.procs").write_text(pid)
            remove_group(group)
