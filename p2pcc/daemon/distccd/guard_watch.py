"""Reading the job guard's refusals and distccd's job summaries as they are appended.

Both files are in distccd's directory, written by distccd's user: each is read through
`safe_files.open_regular` (no link followed, no FIFO or device read), at most
`READ_CAP` bytes per look, only whole lines, in a worker thread bounded in time; a
file replaced or truncated (a new distccd rotates its log) is read from its start.
`p2pcc.core.guard_refusals` joins and counts what is read; this task logs each
(client, reason) once.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import trio

from p2pcc.core.guard_refusals import GuardRefusals, parse_report, parse_summaries
from p2pcc.safe_files import open_regular

log = logging.getLogger("p2pcc.daemon.distccd")

#: Bytes read from one file per look, at most; a longer line is skipped.
READ_CAP = 65536
#: Seconds between looks, and the most one look may take.
INTERVAL = 2.0
FILE_TIMEOUT = 5.0


@dataclass
class Tail:
    """Where reading a file that is only appended to stopped."""

    path: Path
    inode: int | None = None
    offset: int = 0

    def read_lines(self) -> str:
        """The whole lines appended since the last call ("" if none, or no such file)."""
        fd = open_regular(str(self.path))
        if fd is None:
            return ""
        try:
            info = os.fstat(fd)
            if info.st_ino != self.inode or info.st_size < self.offset:
                self.inode, self.offset = info.st_ino, 0
            data = os.pread(fd, min(READ_CAP, info.st_size - self.offset), self.offset)
        except OSError:
            return ""
        finally:
            os.close(fd)
        whole = data[: data.rfind(b"\n") + 1]
        if not whole and len(data) == READ_CAP:
            self.offset += len(data)  # one line longer than the cap: skip it
            return ""
        self.offset += len(whole)
        return whole.decode(errors="replace")


async def serve_guard_refusals(
    report_file: Path,
    log_file: Path,
    refusals: GuardRefusals,
    *,
    interval: float = INTERVAL,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Count and log the guard's refusals until cancelled."""
    report, summaries = Tail(report_file), Tail(log_file)
    task_status.started()
    while True:
        with trio.move_on_after(FILE_TIMEOUT):
            # The report first: its line is written before distccd logs the summary.
            lines = await trio.to_thread.run_sync(report.read_lines, abandon_on_cancel=True)
            logged = await trio.to_thread.run_sync(summaries.read_lines, abandon_on_cancel=True)
            for refusal in refusals.add(parse_report(lines), parse_summaries(logged)):
                if refusal.first:
                    log.warning(
                        "refused a job from %s: %s (logged once per client and reason; "
                        "`p2pcc status` counts them)",
                        refusal.client,
                        refusal.reason,
                    )
        await trio.sleep(interval)
