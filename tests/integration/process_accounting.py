"""Where a benchmark's CPU went, by command name: the kernel's BSD process accounting.

A build's CPU is spent in thousands of processes that live for milliseconds (drivers,
`cc1`, `as`, distcc, the wrapper's interpreter, the job guard's shell, bubblewrap), too
short for any sampler of /proc.  With accounting on (`acct(2)`), the kernel appends one
record per process as it exits, with its command name and CPU time; summing those by
name over a window says which kind of process cost what.  Accounting is machine-wide and
one file at a time, so only one `accounting` window may be open, and every exited
process of the machine is counted (a benchmark runs alone under its lock).  Long-lived
processes that have not exited (the daemons, distccd) are not in it.

Records are `struct acct_v3` (linux/acct.h, 64 bytes); times are `comp_t`, a 13-bit
mantissa with a 3-bit base-8 exponent, in clock ticks.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import struct
from collections.abc import Iterator
from pathlib import Path

#: ac_flag, ac_version, ac_tty, ac_exitcode, ac_uid, ac_gid, ac_pid, ac_ppid, ac_btime,
#: ac_etime, ac_utime, ac_stime, ac_mem, ac_io, ac_rw, ac_minflt, ac_majflt, ac_swaps,
#: ac_comm.
_RECORD = struct.Struct("=BBHIIIIIIfHHHHHHHH16s")
_VERSION_3 = 3


def _comp_t(value: int) -> int:
    """A `comp_t` as a plain number of ticks."""
    return (value & 0x1FFF) << (3 * (value >> 13))


def cpu_by_command(data: bytes) -> dict[str, float]:
    """CPU seconds (user + system) per command name in an accounting file's bytes."""
    ticks = os.sysconf("SC_CLK_TCK")
    totals: dict[str, float] = {}
    for offset in range(0, len(data) - _RECORD.size + 1, _RECORD.size):
        fields = _RECORD.unpack_from(data, offset)
        if fields[1] & 0x0F != _VERSION_3:
            continue
        name = fields[18].split(b"\0", 1)[0].decode(errors="replace")
        seconds = (_comp_t(fields[10]) + _comp_t(fields[11])) / ticks
        totals[name] = totals.get(name, 0.0) + seconds
    return totals


@contextlib.contextmanager
def accounting(path: Path) -> Iterator[dict[str, float]]:
    """Process accounting into `path` while the block runs; the dict it yields is
    filled, CPU seconds by command name, when the block ends."""
    libc = ctypes.CDLL(None, use_errno=True)
    path.write_bytes(b"")
    if libc.acct(os.fsencode(path)) != 0:
        raise OSError(ctypes.get_errno(), "acct(2) refused to start accounting", str(path))
    totals: dict[str, float] = {}
    try:
        yield totals
    finally:
        libc.acct(None)
        totals.update(cpu_by_command(path.read_bytes()))
