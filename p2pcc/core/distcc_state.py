"""distcc's monitor files: what each running distcc client says it is doing.

Every distcc client writes `$DISTCC_DIR/state/binstate_<pid>` (what `distccmon-text`
reads) whenever it enters a phase, and removes it when it exits.  The file holds one
`struct dcc_task_state` of distcc 3.4 (`src/state.h`) in the machine's native layout,
rewritten whole (open with O_TRUNC, one write) each time:

    size_t struct_size; unsigned long magic; unsigned long cpid;
    char file[128]; char host[128]; int slot; enum dcc_phase curr_phase;
    struct dcc_task_state *next;      /* undefined in the file */

296 bytes on x86_64 (file at 24, host at 152, slot at 280, phase at 284), checked against
distcc's header with gcc and against files written by Debian's distcc 3.4.

What a reader must know about distcc 3.4, from its source and from real files:

- STARTUP and BLOCKED are never written (both notes are compiled out or commented out
  in `compile.c` and `where.c`): a client waiting for a slot has no file yet.
- A local compile writes COMPILE once, host "localhost", with the source's basename.
- A remote one keeps two records and writes whichever it touches: the local one (file
  "", host "localhost", the local preprocessing slot) for CPP, the remote one (file,
  host, remote slot) for CONNECT, SEND, COMPILE and RECEIVE.  Its file says CPP, host
  "localhost", no file name, while it waits for the preprocessor (a tiny file's first
  30-50 ms here).
- The host is the name of the DISTCC_HOSTS entry without its port or options
  ("127.0.0.1" for "127.0.0.1:3632/4"): two distccd on one address look alike.
- distcc creates the file with O_TRUNC before writing it: a reader sees it empty now
  and then (a 2 ms poller saw most remote compiles' files empty once).

The files live in a directory other processes may write, so nothing in one is trusted:
`parse_state` takes any bytes and returns a record or raises ValueError, nothing else.
Names are decoded as UTF-8 with replacement and control characters shown as "?".
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

#: `DCC_STATE_MAGIC`, "DIH\\0".
MAGIC = 0x44494800

#: The struct in the native layout: size_t, two unsigned longs, two names, two ints, a
#: pointer.  `@` aligns as the C compiler does, so the size is that of the C struct.
_LAYOUT = struct.Struct("@NLL128s128siiP")

#: Bytes of one state file: `sizeof(struct dcc_task_state)` (296 on x86_64).
STATE_SIZE = _LAYOUT.size

#: The prefix of a state file's name; the pid follows in decimal.
STATE_PREFIX = "binstate_"

#: Highest pid Linux hands out (PID_MAX_LIMIT, 2**22).
MAX_PID = 4 * 1024 * 1024

#: Highest slot number: distcc tries slots 0..9999 of each host (`where.c`).
MAX_SLOT = 9999


class Phase(enum.IntEnum):
    """`enum dcc_phase`, in distcc's order."""

    STARTUP = 0
    BLOCKED = 1
    CONNECT = 2
    CPP = 3
    SEND = 4
    COMPILE = 5
    RECEIVE = 6
    DONE = 7

    @property
    def label(self) -> str:
        """The name `distccmon-text` shows (`dcc_get_phase_name`)."""
        return _LABELS[self]


_LABELS = {
    Phase.STARTUP: "Startup",
    Phase.BLOCKED: "Blocked",
    Phase.CONNECT: "Connect",
    Phase.CPP: "Preprocess",
    Phase.SEND: "Send",
    Phase.COMPILE: "Compile",
    Phase.RECEIVE: "Receive",
    Phase.DONE: "Done",
}


@dataclass(frozen=True, slots=True)
class TaskState:
    """One validated state file: a client's pid, source basename, host, slot and phase."""

    pid: int
    file: str  # "" while a remote compile preprocesses (see the module's docstring)
    host: str  # a DISTCC_HOSTS entry's host name (no port), "localhost" here, or ""
    slot: int
    phase: Phase


def parse_state(data: bytes) -> TaskState:
    """The record in a state file's bytes; ValueError saying what is wrong if none."""
    if len(data) != STATE_SIZE:
        raise ValueError(f"a distcc state file has {STATE_SIZE} bytes, not {len(data)}")
    size, magic, pid, file, host, slot, phase, _next = _LAYOUT.unpack(data)
    if magic != MAGIC:
        raise ValueError(f"wrong magic {magic:#x}: not a distcc 3.4 state file")
    if size != STATE_SIZE:
        raise ValueError(f"struct_size {size} is not {STATE_SIZE}: another distcc version?")
    if not 0 < pid <= MAX_PID:
        raise ValueError(f"pid {pid} is out of range")
    if not 0 <= slot <= MAX_SLOT:
        raise ValueError(f"slot {slot} is out of range")
    if not 0 <= phase <= Phase.DONE:
        raise ValueError(f"unknown phase {phase}")
    return TaskState(pid, _name(file), _name(host), slot, Phase(phase))


def _name(raw: bytes) -> str:
    # distcc's reader forces the last byte to NUL; a name ends at its first NUL.
    text = raw[: len(raw) - 1].partition(b"\0")[0].decode("utf-8", "replace")
    return "".join("?" if ord(c) < 0x20 or ord(c) == 0x7F else c for c in text)


def pid_of_name(name: str) -> int | None:
    """The pid in a state file's name `binstate_<pid>`; None for any other name."""
    if not name.startswith(STATE_PREFIX):
        return None
    digits = name.removeprefix(STATE_PREFIX)
    if not (0 < len(digits) <= 7 and digits.isascii() and digits.isdigit()) or digits[0] == "0":
        return None
    return int(digits) if int(digits) <= MAX_PID else None


#: Suffixes of the sources distcc distributes (`dcc_is_source` in `filename.c`).
SOURCE_SUFFIXES = frozenset(
    ("c", "cc", "cpp", "cxx", "cp", "c++", "C", "i", "ii", "m", "mm", "mi", "mii", "M", "s", "S")
)


def source_of_cmdline(raw: bytes) -> str:
    """The basename of the last source file in a `/proc/<pid>/cmdline`, or "": the name
    of a remote compile whose state file shows none yet."""
    for arg in reversed(raw.split(b"\0")):
        stem, dot, suffix = arg.rpartition(b".")
        if (
            dot
            and stem
            and not arg.startswith(b"-")
            and suffix.decode("ascii", "replace") in (SOURCE_SUFFIXES)
        ):
            return _name(arg.rpartition(b"/")[2][:127] + b"\0")
    return ""
