"""Reading `/proc/<pid>/stat`: one parser for every part of the daemon that looks at processes.

The metrics count and time the jobs distccd runs for peers; the distccd supervisor finds
every process of distccd's session to stop it.  Both read the same line, so it is parsed
here once.  The command name sits in parentheses and may itself hold spaces and
parentheses, so it ends at the *last* ")".
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ProcessEntry:
    """The fields of `/proc/<pid>/stat` p2pcc uses; CPU and start time in clock ticks."""

    pid: int
    comm: str
    state: str  # "R", "S", "D", "Z" (zombie: dead, not yet reaped), ...
    ppid: int
    cpu_ticks: int = 0  # utime + stime + cutime + cstime: itself and its reaped children
    start_ticks: int = 0  # since boot
    pgrp: int = 0
    session: int = 0


def parse_proc_stat(text: str) -> ProcessEntry:
    """One `/proc/<pid>/stat` line; ValueError if it is not one."""
    open_paren, close_paren = text.find("("), text.rfind(")")
    if open_paren < 1 or close_paren < open_paren:
        raise ValueError(f"not a /proc/PID/stat line: no (comm) in {text[:80]!r}")
    rest = text[close_paren + 1 :].split()
    if len(rest) < 20:  # fields 3..22 of proc(5)
        raise ValueError(f"not a /proc/PID/stat line: too short: {text[:80]!r}")
    utime, stime, cutime, cstime = (int(value) for value in rest[11:15])
    return ProcessEntry(
        pid=int(text[:open_paren]),
        comm=text[open_paren + 1 : close_paren],
        state=rest[0],
        ppid=int(rest[1]),
        cpu_ticks=utime + stime + max(0, cutime) + max(0, cstime),
        start_ticks=int(rest[19]),
        pgrp=int(rest[2]),
        session=int(rest[3]),
    )


def session_members(processes: Iterable[ProcessEntry], session: int) -> list[ProcessEntry]:
    """The live (not zombie) processes of a session."""
    return [entry for entry in processes if entry.session == session and entry.state != "Z"]
