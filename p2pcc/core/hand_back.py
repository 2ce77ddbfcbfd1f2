"""What becomes of the jobs distccd runs for peers while this node is paused.

A pause stops peers sending new jobs (they hear of it within a second); the jobs already
running here are either *lowered* (they finish at nice 19: fine for a one-second C file)
or *handed back*: their connections are cut, so each client compiles its file locally
at once (distcc's fallback), and their processes are killed, so the owner has the CPU
back within a second (`daemon/distccd/paused.py` does both).  Rules:

* A pause that asks for it hands back (`p2pcc pause --now`, the automatic pause unless
  `idle.hand_back = false`); any other lowers.
* Handing back needs connections to be cut (CAP_NET_ADMIN, a kernel with
  CONFIG_INET_DIAG_DESTROY; the start-up self-test says whether they can be).  Killing a
  job whose client still waits on its connection would only turn it into a remote
  failure, so where they cannot be cut the jobs are lowered instead.
* A job accepted in the moment before peers heard of the pause escapes a single pass.
  So passes repeat while the pause lasts: every `FAST_INTERVAL` for `FAST_PERIOD` after
  a hand-back pause began (such a job arrives within a second or two: the client chose
  this node before the pause, then preprocessed), every `SLOW_INTERVAL` after that and
  for lowering (a straggler may wait so long; a pass reads every process's stat file).

One job is one connection: distcc holds one per job from sending the source to
receiving the object.  A job still receiving its source has no process yet, and one
whose connection went (cut by a previous pass) has no connection: `jobs_handed_back`
counts the larger of the connections cut and the compiler drivers killed.
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Iterable

from p2pcc.core.metrics import DISTCCD_COMM
from p2pcc.core.pause import Pause
from p2pcc.core.procfs import ProcessEntry

#: Seconds between hand-back passes just after the pause: how late a job accepted before
#: peers heard of the pause may run here.
FAST_INTERVAL = 0.2

#: Seconds after a hand-back pause during which passes come every `FAST_INTERVAL`:
#: peers hear of a pause within a second, and a job they chose us for before that
#: connects once its source is preprocessed.
FAST_PERIOD = 5.0

#: Seconds between passes otherwise.
SLOW_INTERVAL = 2.0


class Treatment(enum.Enum):
    """What a pass does to the jobs running for peers."""

    NONE = "none"  # not paused: leave them
    LOWER = "lower"  # finish at nice 19
    HAND_BACK = "hand back"  # cut their connections, kill their processes


def treatment(pause: Pause | None, cutoff_problem: str | None) -> Treatment:
    """The treatment under `pause` (None: not paused), where cutting connections fails
    for `cutoff_problem` (None: it works)."""
    if pause is None:
        return Treatment.NONE
    if pause.hand_back and cutoff_problem is None:
        return Treatment.HAND_BACK
    return Treatment.LOWER


def next_pass(chosen: Treatment, paused_for: float) -> float:
    """Seconds until the next pass, `paused_for` seconds after the pause began.  (Half an
    interval of slack: `paused_for` sums intervals in floating point, and 4.9999 is the
    pass at 5.)"""
    if chosen is Treatment.HAND_BACK and paused_for + FAST_INTERVAL / 2 < FAST_PERIOD:
        return FAST_INTERVAL
    return SLOW_INTERVAL


def job_processes(members: Iterable[ProcessEntry]) -> list[ProcessEntry]:
    """The compile jobs' processes among the live `members` of distccd's session: those
    not named distccd (compiler drivers, cc1, as, ...), by pid.  distccd itself is never
    one: killed, its supervisor would restart it and log a crash."""
    return sorted((e for e in members if e.comm != DISTCCD_COMM), key=lambda e: e.pid)


def jobs_handed_back(connections: int, members: Collection[ProcessEntry]) -> int:
    """How many jobs a pass handed back: the larger of the `connections` it cut and the
    jobs it found running among the live `members` of distccd's session (a process a
    distccd process started, one per job: the compiler driver)."""
    distccd = {e.pid for e in members if e.comm == DISTCCD_COMM}
    drivers = sum(1 for e in members if e.comm != DISTCCD_COMM and e.ppid in distccd)
    return max(connections, drivers)
