"""While this node is paused, the jobs its distccd runs for peers are handed back or
lowered (`core/hand_back.py` says which, and how often a pass comes).

Handing back is a pass of two steps, in this order:

1. Cut every established connection our distccd accepted (`ss -K`, as for a vanished
   peer: `cutting.abort_served`).  Each client sees "connection aborted" and compiles
   its file locally at once (distcc's fallback).  First, so that no client is told its
   job failed: a distccd worker whose compiler is killed sends the failure back on a
   connection that is still open.
2. SIGKILL every process of distccd's session that is not distccd (compiler drivers,
   `cc1`, `as`): the owner has the CPU back.  distccd itself is never killed (its
   supervisor would restart it and log a crash); each worker whose job died finds its
   connection gone and takes the next one.

A pass that found jobs logs one INFO line and counts them in the status document
(`counters.jobs_handed_back`).  Lowering is `renice.py`'s: the jobs finish at nice 19.
Where connections cannot be cut (the start-up self-test, `vanished.cutoff_problem`),
a hand-back pause lowers instead, and says so once.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import trio

from p2pcc.core.hand_back import (
    Treatment,
    job_processes,
    jobs_handed_back,
    next_pass,
    treatment,
)
from p2pcc.core.node import LocalNode
from p2pcc.core.node_change import Change
from p2pcc.core.pause import Pause
from p2pcc.core.procfs import ProcessEntry, connections_served, session_members
from p2pcc.daemon.changes import ChangeBoard, Subscription
from p2pcc.daemon.distccd.cutting import Aborted, abort_served
from p2pcc.daemon.distccd.processes import read_processes
from p2pcc.daemon.distccd.renice import lower_session_jobs
from p2pcc.daemon.distccd.system import tcp_sockets

log = logging.getLogger("p2pcc.daemon.paused")

_ANY = ipaddress.IPv4Address(0)  # the unspecified address: any


@dataclass(frozen=True, slots=True)
class HandedBack:
    """What one pass did: jobs handed back, connections cut, processes killed, and what
    `ss` complained of ("" when nothing)."""

    jobs: int
    connections: int
    processes: int
    complaint: str = ""


def served(port: int) -> int:
    """Connections our distccd on `port` holds now (a job each)."""
    return connections_served(tcp_sockets(), _ANY, port)


def kill_job(pid: int) -> bool:
    """SIGKILL `pid`; False when it had ended.  PermissionError when we may not."""
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return False
    return True


async def hand_back(
    session: int,
    port: int,
    *,
    abort: Callable[[int], Awaitable[Aborted]] = abort_served,
    connections: Callable[[int], int] = served,
    processes: Callable[[], list[ProcessEntry]] = read_processes,
    kill: Callable[[int], bool] = kill_job,
) -> HandedBack:
    """One hand-back pass on distccd's `session` listening on `port`: cut its
    connections (only when it holds any: `ss` is a process to start), then kill its
    jobs — unless `ss` complained: a job killed with its connection open is a remote
    failure to its client, so those are left to the next pass, which lowers them."""
    aborted = await abort(port) if connections(port) else Aborted(0)
    if aborted.complaint:
        return HandedBack(aborted.connections, aborted.connections, 0, aborted.complaint)
    members = session_members(processes(), session)
    killed = sum(1 for entry in job_processes(members) if kill(entry.pid))
    jobs = jobs_handed_back(aborted.connections, members)
    return HandedBack(jobs, aborted.connections, killed, aborted.complaint)


HandBack = Callable[[int, int], Awaitable[HandedBack]]


async def serve_paused_jobs(
    node: LocalNode,
    distccd_pid: Callable[[], int | None],
    board: ChangeBoard,
    *,
    lower: Callable[[int], int] = lower_session_jobs,
    give_back: HandBack = hand_back,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """While the node is paused, a pass at once and then as `core/hand_back.py` says.

    `distccd_pid` gives the managed distccd's pid, which is its session id (None while
    none runs); `lower` does one lowering pass, `give_back` one hand-back pass.
    """
    with board.subscribe(Change.PAUSE) as pause_changes:
        task_status.started()
        await _Passes(node, distccd_pid, lower, give_back).run(pause_changes)


class _Passes:
    def __init__(
        self,
        node: LocalNode,
        distccd_pid: Callable[[], int | None],
        lower: Callable[[int], int],
        give_back: HandBack,
    ) -> None:
        self.node = node
        self.distccd_pid = distccd_pid
        self.lower = lower
        self.give_back = give_back
        self.pause: Pause | None = None  # the pause the passes are for
        self.since = 0.0  # when it began, as this task saw it
        self.told: set[str] = set()  # complaints logged already

    async def run(self, pause_changes: Subscription) -> None:
        while True:
            now, pause = trio.current_time(), self.node.pause
            if pause is None:
                await pause_changes.wait()
                continue
            if pause is not self.pause:
                self.pause, self.since = pause, now
            chosen = treatment(pause, self.node.reports.cutoff_problem)
            if chosen is Treatment.LOWER and pause.hand_back:
                self.cannot_hand_back(self.node.reports.cutoff_problem or "")
            session = self.distccd_pid()
            if session is not None:
                await self.one_pass(chosen, session)
            await pause_changes.wait(now + next_pass(chosen, now - self.since))

    async def one_pass(self, chosen: Treatment, session: int) -> None:
        try:
            if chosen is Treatment.HAND_BACK:
                await self.hand_back(session)
            else:
                lowered = self.lower(session)
                if lowered:
                    log.info("paused: %d running job thread(s) lowered to nice 19", lowered)
        except PermissionError as error:
            doing = "stop" if chosen is Treatment.HAND_BACK else "lower the priority of"
            self.once(f"cannot {doing} distccd's jobs: {error}")
        except Exception as error:  # a pass is never worth the daemon: the next one tries
            self.once(f"a pass over distccd's jobs failed (going on): {error!r}")

    async def hand_back(self, session: int) -> None:
        done = await self.give_back(session, self.node.status.distccd_port)
        if done.jobs:
            self.node.reports.count_handed_back(done.jobs)
            log.info(
                "paused: handed back %d job(s) of peers (%d connection(s) cut, %d "
                "process(es) stopped): their clients compile them now",
                done.jobs,
                done.connections,
                done.processes,
            )
        if done.complaint:
            # As for a vanished peer: what `ss` cannot do now, it will not do next time.
            self.node.reports.set_cutoff_problem(done.complaint)
            self.cannot_hand_back(done.complaint)

    def cannot_hand_back(self, why: str) -> None:
        self.once(
            f"cannot hand back peers' jobs ({why}): they finish at nice 19 instead; the "
            "daemon needs CAP_NET_ADMIN and a kernel with CONFIG_INET_DIAG_DESTROY "
            "(docs/faults.md)"
        )

    def once(self, message: str) -> None:
        """Log a warning the first time it comes up."""
        if message not in self.told:
            self.told.add(message)
            log.warning("%s", message)
