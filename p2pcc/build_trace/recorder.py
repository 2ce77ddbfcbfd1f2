"""`p2pcc build --trace`'s recorder: polls distcc's state files, feeds the trace model.

Every `period` seconds one worker thread lists `$DISTCC_DIR/state` and reads, for each
`binstate_<pid>` whose process descends from the build tool (`root_pid`), the process's
`/proc/<pid>/stat` (ancestry, start time) and the state file; the trio task then hands
the poll to `p2pcc.core.build_trace.BuildTrace` with the pool's slot count.  The thread
keeps a slow file system (a DISTCC_DIR in an NFS home) from stalling the build's loop.

DISTCC_DIR may be shared and its files written by others, so a file is read only when
its pid is one of ours, opened without following a link and non-blocking, taken only if
it is a regular file owned by us, and read up to one record (`read_state_file`); what
it holds is then parsed, never trusted.  At most `MAX_STATE_FILES` names are looked at
per poll.

The period (`DEFAULT_PERIOD`, 50 ms): distcc keeps a compile's file from the moment it
holds a slot until it exits.  Measured on the 2-core test machine with a 2 ms poller
(`make -j4` of 40 files, half remote over loopback): the smallest real C file (one
function, three libc headers) is visible 43-95 ms (median 69), so a 50 ms poll sees
39.8 of 40 of them (expected from the visible times), 100 ms 28 of 40; files of 40-120
functions are visible 127-709 ms, seen at any period up to 100 ms.  Cost: one poll is
~1 ms of CPU there (a trio wake-up ~0.5 ms, the thread hop ~0.5 ms, reading 1-16 files
0.1-0.3 ms): ~3 % of one core at 50 ms.  inotify would catch every file but wake us on
every phase of every compile; polling misses too little to need it.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio

from p2pcc.core import limits
from p2pcc.core.build_trace import BuildTrace, Observation
from p2pcc.core.distcc_state import STATE_SIZE, parse_state, pid_of_name, source_of_cmdline
from p2pcc.core.errors import P2pccError
from p2pcc.core.procfs import ProcessEntry, parse_proc_stat
from p2pcc.safe_files import open_regular, replace_file

log = logging.getLogger(__name__)

#: Seconds between two polls of the state directory (see the module's docstring).
DEFAULT_PERIOD = 0.05

#: State files looked at per poll (see `limits`).
MAX_STATE_FILES = limits.MAX_TRACE_STATE_FILES

#: Processes whose ancestry is remembered; the memory is cleared when it is full.
MAX_ANCESTRY_CACHE = 8192

#: Parents followed up from a distcc process before giving up on finding the root.
MAX_ANCESTRY_DEPTH = 256

_STAT_READ_SIZE = 4096
_CMDLINE_READ_SIZE = 64 * 1024


@dataclass
class Scan:
    """One poll's reading: compiles read, and pids of ours whose file was unreadable."""

    seen: list[Observation] = field(default_factory=list)
    present: list[int] = field(default_factory=list)


class TraceRecorder:
    """Records the compiles of the build under `root_pid` and the pool's slots."""

    def __init__(
        self,
        distcc_dir: Path,
        root_pid: int,
        slots: Callable[[], int | None],
        *,
        period: float = DEFAULT_PERIOD,
    ) -> None:
        self.distcc_dir = distcc_dir
        self.root_pid = root_pid
        self.period = period
        self._slots = slots
        self._state_dir = os.fspath(distcc_dir / "state")
        self._ancestry = Ancestry(root_pid)
        self._sources: dict[int, tuple[int, str]] = {}  # pid → (start ticks, source)
        self._ticks = os.sysconf("SC_CLK_TCK")
        self._boot_offset = 0.0  # trio clock minus CLOCK_BOOTTIME, set when run starts
        self._trace: BuildTrace | None = None
        self.polls = 0

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Poll every `period` until cancelled."""
        now = trio.current_time()
        self._boot_offset = now - time.clock_gettime(time.CLOCK_BOOTTIME)
        trace = self._trace = BuildTrace(now)
        task_status.started()
        deadline = now
        while True:
            scan = await trio.to_thread.run_sync(self.scan)
            now = trio.current_time()
            trace.poll(now, scan.seen, scan.present)
            trace.slots(now, self._slots())
            self.polls += 1
            deadline = max(deadline + self.period, now)
            await trio.sleep_until(deadline)

    def document(self, now: float) -> dict[str, Any]:
        """The trace so far as a Trace Event Format object; running compiles end at `now`."""
        trace = self._trace if self._trace is not None else BuildTrace(now)
        other = {"poll_period_s": self.period, "polls": self.polls}
        return trace.document(now, other)

    def scan(self) -> Scan:
        """Read the state directory once (blocking: run in a worker thread)."""
        scan = Scan()
        try:
            names = os.listdir(self._state_dir)
        except OSError:
            return scan  # no compile has written one yet
        for name in names[:MAX_STATE_FILES]:
            pid = pid_of_name(name)
            entry = self._ancestry.member(pid) if pid is not None else None
            if entry is None:
                continue
            data = read_state_file(f"{self._state_dir}/{name}", os.geteuid())
            try:
                state = parse_state(data if data is not None else b"")
            except ValueError:
                scan.present.append(entry.pid)  # being rewritten, or garbage: keep it
                continue
            if state.pid != entry.pid:
                continue  # a file named for one process, written for another
            started = entry.start_ticks / self._ticks + self._boot_offset
            file = state.file or self._source(entry)
            scan.seen.append(Observation(state.pid, file, state.host, state.phase, started))
        return scan

    def _source(self, entry: ProcessEntry) -> str:
        """The source on the command line of a compile whose state file names none."""
        cached = self._sources.get(entry.pid)
        if cached is not None and cached[0] == entry.start_ticks:
            return cached[1]
        source = source_of_cmdline(_read_proc(entry.pid, "cmdline", _CMDLINE_READ_SIZE) or b"")
        if len(self._sources) >= MAX_ANCESTRY_CACHE:
            self._sources.clear()
        self._sources[entry.pid] = (entry.start_ticks, source)
        return source


class Ancestry:
    """Which processes descend from `root`, by the ppid chain in /proc, remembered per
    process (pid and start time, so a reused pid is looked at anew)."""

    def __init__(self, root: int) -> None:
        self.root = root
        self._known: dict[tuple[int, int], bool] = {}

    def member(self, pid: int) -> ProcessEntry | None:
        """`pid`'s /proc entry if it descends from the root (or is it), else None."""
        entry = process_entry(pid)
        if entry is None:
            return None
        chain: list[tuple[int, int]] = []
        current: ProcessEntry | None = entry
        answer = False
        while current is not None and len(chain) < MAX_ANCESTRY_DEPTH:
            key = (current.pid, current.start_ticks)
            if key in self._known:
                answer = self._known[key]
                break
            chain.append(key)
            if current.pid == self.root:
                answer = True
                break
            if current.ppid <= 1:
                break
            current = process_entry(current.ppid)
        if len(self._known) + len(chain) > MAX_ANCESTRY_CACHE:
            self._known.clear()
        self._known.update(dict.fromkeys(chain, answer))
        return entry if answer else None


def process_entry(pid: int) -> ProcessEntry | None:
    """`/proc/<pid>/stat`, parsed; None if the process is gone or the line is odd."""
    data = _read_proc(pid, "stat", _STAT_READ_SIZE)
    try:
        return parse_proc_stat(data.decode(errors="replace")) if data else None
    except ValueError:
        return None


def _read_proc(pid: int, name: str, limit: int) -> bytes | None:
    try:
        fd = os.open(f"/proc/{pid}/{name}", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        return os.read(fd, limit)
    except OSError:
        return None
    finally:
        os.close(fd)


def read_state_file(path: str, uid: int) -> bytes | None:
    """At most one record and a byte of the regular file at `path` if `uid` owns it
    (opened without following a link, non-blocking); None otherwise."""
    fd = open_regular(path)
    if fd is None:
        return None
    try:
        if os.fstat(fd).st_uid != uid:
            return None
        return os.read(fd, STATE_SIZE + 1)
    except OSError:
        return None
    finally:
        os.close(fd)


def write_trace(path: Path, document: dict[str, Any]) -> None:
    """Write `document` as JSON to `path` atomically (a temporary file renamed over it);
    P2pccError saying what to do if that fails."""
    data = json.dumps(document, separators=(",", ":"), allow_nan=False).encode()
    try:
        replace_file(path, data)
    except OSError as error:
        reason = error.strerror or str(error)
        raise P2pccError(
            f"cannot write the build trace to {path}: {reason}; "
            "give --trace a file in a directory you can write"
        ) from error
    log.debug("wrote the build trace to %s (%d bytes)", path, len(data))


def recording(
    path: Path, distcc_dir: Path, slots: Callable[[], int | None]
) -> Callable[[int], Awaitable[None]]:
    """A side task for `build_runner.run_build`: records the build whose pid it is given
    until cancelled at the build's end, then writes the trace to `path` and says where.
    A trace that cannot be written is said once; the build's own status stands."""

    async def record(root_pid: int) -> None:
        recorder = TraceRecorder(distcc_dir, root_pid, slots)
        try:
            await recorder.run()
        finally:
            try:
                write_trace(path, recorder.document(trio.current_time()))
            except P2pccError as error:
                os.write(2, f"p2pcc: no trace written: {error}\n".encode(errors="replace"))
            else:
                note = f"p2pcc: the build's trace is in {path} (open it in ui.perfetto.dev)\n"
                os.write(2, note.encode(errors="replace"))

    return record
