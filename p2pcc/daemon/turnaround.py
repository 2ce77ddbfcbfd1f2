"""Measuring how long this machine's distcc jobs take on each peer (`core/turnaround.py`
says what is kept and why, `core/job_connections.py` how a job is recognized).

Every `POLL_PERIOD` this task reads the network namespace's TCP socket table (one read of
/proc/net/tcp or /proc/net/tcp6 or both, as the peers' addresses need; none while there
is no peer to watch and nothing followed), hands it to the connection watch with the
peers' distccd endpoints, and
records each job that ended in the node's turnaround book.  It only measures: ranking
does not read the book yet (issue 13).  An error is logged once and the task goes on; a
measurement is never worth the daemon.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection

import trio

from p2pcc.core.job_connections import POLL_PERIOD, ConnectionWatch, job_targets
from p2pcc.core.node import LocalNode
from p2pcc.core.procfs import TcpSocket
from p2pcc.daemon.distccd.system import tcp_sockets

log = logging.getLogger("p2pcc.daemon.turnaround")


async def serve_turnaround(
    node: LocalNode,
    *,
    sockets: Callable[[Collection[int]], list[TcpSocket]] = tcp_sockets,
    period: float = POLL_PERIOD,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Follow our connections to peers' distccd for as long as the daemon runs; `sockets`
    reads the socket tables of the IP versions it is given."""
    watch = ConnectionWatch()
    complained = False
    task_status.started()
    while True:
        try:
            _poll(node, watch, sockets, trio.current_time())
        except Exception as error:  # measuring must never stop the daemon
            if not complained:
                complained = True
                log.warning("measuring job turnaround failed (going on): %r", error)
        await trio.sleep(period)


def _poll(
    node: LocalNode,
    watch: ConnectionWatch,
    sockets: Callable[[Collection[int]], list[TcpSocket]],
    now: float,
) -> None:
    peers = node.peers()
    targets = job_targets(peers)
    tables = watch.tables(targets)
    if not tables:
        return
    book = node.reports.turnaround
    for job in watch.poll(sockets(tables), targets, now):
        book.observe(job.node_id, job.seconds, now)
    book.keep_only(peer.node_id for peer in peers)
