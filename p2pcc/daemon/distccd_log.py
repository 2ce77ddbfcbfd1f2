"""Follow distccd's log file and report each job it finished.

distccd 3.4 (`--log-file`, `--log-level info`) writes one `dcc_job_summary` line per
job; `core.metrics.parse_distccd_job_line` reads it.  The follower behaves like
`tail -F`: it waits for a missing file, follows a rotated one to its successor, starts
over after truncation, and skips lines too long to be distccd's.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import trio

from p2pcc.core.metrics import JobRecord, parse_distccd_job_line

log = logging.getLogger("p2pcc.daemon.distccd_log")

#: A line longer than this is not a distccd job line; it is dropped unread.
MAX_LOG_LINE = 64 * 1024
#: Bytes read per poll at most, so a flood of log lines cannot stall the event loop.
MAX_LOG_READ = 4 * 1024 * 1024


class LogFollower:
    """`tail -F` for one file: survives a missing file, rotation (a new file under the
    name) and truncation, and hands out complete lines only."""

    def __init__(self, path: Path, *, from_start: bool = False) -> None:
        self.path = path
        self._file: BinaryIO | None = None
        self._skip_existing = not from_start  # only for the file present at start
        self._partial = b""
        self._discarding = False  # inside an overlong line: drop until its newline

    def read_lines(self) -> list[str]:
        """Lines completed since the last call (decoded, invalid bytes replaced)."""
        try:
            lines = self._drain()
        finally:
            self._skip_existing = False  # a file that appears later is read from its start
        if self._rotated():
            self._close()
            lines += self._drain()
        return lines

    def close(self) -> None:
        """Release the open file, if any."""
        self._close()

    def _drain(self) -> list[str]:
        file = self._file or self._open()
        if file is None:
            return []
        if os.fstat(file.fileno()).st_size < file.tell():
            file.seek(0)  # truncated in place (copytruncate): start over
            self._partial, self._discarding = b"", False
        return self._split(file.read(MAX_LOG_READ))

    def _open(self) -> BinaryIO | None:
        try:
            file = open(self.path, "rb")  # noqa: SIM115 - kept open across polls
        except FileNotFoundError:
            return None
        if self._skip_existing:
            file.seek(0, os.SEEK_END)
        self._file = file
        return file

    def _rotated(self) -> bool:
        if self._file is None:
            return False
        try:
            current = os.stat(self.path)
        except OSError:
            return False  # renamed away and not yet recreated: keep reading the old one
        opened = os.fstat(self._file.fileno())
        return (current.st_dev, current.st_ino) != (opened.st_dev, opened.st_ino)

    def _close(self) -> None:
        if self._file is not None:
            self._file.close()
        self._file, self._partial, self._discarding = None, b"", False

    def _split(self, data: bytes) -> list[str]:
        *complete, rest = (self._partial + data).split(b"\n")
        lines = []
        for line in complete:
            if not self._discarding and len(line) <= MAX_LOG_LINE:
                lines.append(line.decode(errors="replace"))
            self._discarding = False
        if len(rest) > MAX_LOG_LINE:
            rest, self._discarding = b"", True
        self._partial = rest
        return lines


async def follow_distccd_log(
    path: Path,
    on_job: Callable[[JobRecord], None],
    *,
    poll_interval: float = 1.0,
    from_start: bool = False,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Report every job distccd logs to `path` (written after we started, unless
    `from_start`), polling every `poll_interval` seconds; other lines are ignored."""
    follower = LogFollower(path, from_start=from_start)
    last_error = ""
    try:
        task_status.started()
        while True:
            try:
                lines = follower.read_lines()
                last_error = ""
            except OSError as error:
                if str(error) != last_error:  # once per distinct problem, not every poll
                    log.warning("distccd log %s unreadable, retrying: %s", path, error)
                last_error = str(error)
                follower.close()
                lines = []
            for line in lines:
                record = parse_distccd_job_line(line)
                if record is not None:
                    on_job(record)
            await trio.sleep(poll_interval)
    finally:
        follower.close()
