"""A GNU make jobserver whose size follows the pool: the decisions, with no I/O.

GNU make runs a job only while it holds a token: one implicit token of its own, and one
byte read from the jobserver for each job beyond it, written back when the job ends.
Whoever holds the jobserver can therefore change a running build's parallelism: write
bytes to let it run more jobs, read bytes (as make hands them back) to let it run
fewer.  `p2pcc build` holds one for make and sizes it every poll by the pool's slots for
the build's compiler, so a peer that joins, resumes or frees slots during a two-hour
build gets jobs, and one that pauses or leaves stops getting new ones.

make learns where the jobserver is from MAKEFLAGS (`--jobserver-auth`): a pipe whose
two descriptors it inherits (make 4.3 and later understand this form), or the path of
a named pipe (`fifo:PATH`, which make 4.4 made its default: nothing to inherit, so a
rule that closes descriptors cannot lose it).  A `-j` on make's command line wins over
any jobserver (make says "-jN forced in submake: resetting jobserver mode"), so the
user's explicit choice stays theirs; `p2pcc build` does not even set one up then.

This module says which style a make understands, what MAKEFLAGS carries, and how many
tokens to add or take back; `p2pcc/cli/build_runner.py` does the reading and writing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

#: The most jobs a live jobserver allows: beyond any pool's slots (`limits.MAX_SLOTS`
#: per peer), small enough that a wild state file cannot make us write megabytes.
MAX_JOBS = 4096

#: The byte a token is; make 4.3 and 4.4 write '+' and read any byte.
TOKEN = b"+"


class Style(Enum):
    """How make finds the jobserver."""

    PIPE = "pipe"  # inherited descriptors: --jobserver-auth=R,W (make >= 4.0)
    FIFO = "fifo"  # a named pipe: --jobserver-auth=fifo:PATH (make >= 4.4)


_GNU_MAKE = re.compile(r"^GNU Make (\d+)\.(\d+)", re.MULTILINE)


def make_style(version_text: str) -> Style | None:
    """The jobserver style the make whose `--version` printed `version_text` takes, or
    None when it is no GNU make of 4.0 or later (BSD make, remake's own text, an old
    make): that build keeps a fixed -j."""
    found = _GNU_MAKE.search(version_text)
    if found is None:
        return None
    version = (int(found.group(1)), int(found.group(2)))
    if version >= (4, 4):
        return Style.FIFO
    return Style.PIPE if version >= (4, 0) else None


def jobserver_makeflags(makeflags: str, auth: str) -> str:
    """MAKEFLAGS for a make that is to use the jobserver `auth` (`R,W` or `fifo:PATH`):
    the user's own flags kept, with `-j` (no number: as many as the jobserver allows)
    and the jobserver's place added."""
    return f"{makeflags} -j --jobserver-auth={auth}".strip()


def pipe_auth(read_fd: int, write_fd: int) -> str:
    return f"{read_fd},{write_fd}"


def fifo_auth(path: str) -> str:
    return f"fifo:{path}"


def target_tokens(jobs: int) -> int:
    """Tokens the jobserver should hold for `jobs` jobs at once: one fewer, since make
    has an implicit token of its own; never more than `MAX_JOBS` allows."""
    return max(0, min(jobs, MAX_JOBS) - 1)


@dataclass
class Tokens:
    """The tokens this jobserver has put into circulation (`issued`: written and not
    taken back, whether in the pipe or held by a running job), and the aim."""

    issued: int = 0
    target: int = 0

    def aim(self, jobs: int) -> None:
        """The pool now takes `jobs` jobs at once."""
        self.target = target_tokens(jobs)

    def to_write(self) -> int:
        """Tokens to write now to reach the aim (0 when there are enough)."""
        return max(0, self.target - self.issued)

    def to_take_back(self) -> int:
        """Tokens to read back as make returns them, to come down to the aim."""
        return max(0, self.issued - self.target)

    def wrote(self, count: int) -> None:
        self.issued += count

    def took_back(self, count: int) -> None:
        self.issued -= min(count, self.issued)
