"""Listing this machine's processes from /proc (parsing is `p2pcc.core.procfs`)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from p2pcc.core.procfs import ProcessEntry, parse_proc_stat

log = logging.getLogger("p2pcc.processes")

PROC = Path("/proc")
#: A stat line is a few hundred bytes (a 15-character name and 52 numbers).
_STAT_READ_SIZE = 4096


def read_processes(proc_root: Path = PROC) -> list[ProcessEntry]:
    """Every process in `proc_root` whose stat file could be read and parsed.

    The metrics task calls this every refresh on every process of the machine, so it
    stays on plain `os` calls: through pathlib the same scan cost 2.4 times the CPU
    (10.7 against 4.4 ms for 141 processes on the test machine), and a build runs
    hundreds."""
    root = os.fspath(proc_root)
    entries = []
    for name in os.listdir(root):
        if not name.isdigit():
            continue
        try:
            fd = os.open(f"{root}/{name}/stat", os.O_RDONLY | os.O_CLOEXEC)
            try:
                data = os.read(fd, _STAT_READ_SIZE)
            finally:
                os.close(fd)
            entries.append(parse_proc_stat(data.decode(errors="replace")))
        except OSError:
            continue  # it exited between listdir and open: normal churn
        except ValueError as error:
            log.debug("unreadable stat of process %s: %s", name, error)
    return entries
