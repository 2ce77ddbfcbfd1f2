"""Listing this machine's processes from /proc (parsing is `p2pcc.core.procfs`)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from p2pcc.core.procfs import ProcessEntry, parse_proc_stat

log = logging.getLogger("p2pcc.processes")

PROC = Path("/proc")


def read_processes(proc_root: Path = PROC) -> list[ProcessEntry]:
    """Every process in `proc_root` whose stat file could be read and parsed."""
    entries = []
    for name in os.listdir(proc_root):
        if not name.isdigit():
            continue
        try:
            text = (proc_root / name / "stat").read_bytes().decode(errors="replace")
            entries.append(parse_proc_stat(text))
        except OSError:
            continue  # it exited between listdir and open: normal churn
        except ValueError as error:
            log.debug("unreadable stat of process %s: %s", name, error)
    return entries
