"""Measuring how long this machine's distcc jobs take on each peer (`core/turnaround.py`
says what is kept and why, `core/job_connections.py` how a job is recognized).

Every `POLL_PERIOD` this task reads the network namespace's TCP socket table (one read of
/proc/net/tcp or /proc/net/tcp6 or both, as the peers' addresses need; none while there
is no peer to watch and nothing followed: `read_tcp_tables`), hands it to the connection
watch with the peers' distccd endpoints, and
records each job that ended in the node's turnaround book; then it hands the node what
the book says each peer delivers (`delivered_factors`, with the jobs still running
counted as far as they got; a verdict changes only with new evidence about that peer:
`Verdicts`), which ranking reads.  The factors are coarse steps, so the
node re-ranks only when a peer's verdict really moves.  An error is logged once and the
task goes on; a measurement is never worth the daemon.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Collection

import trio

from p2pcc.core.job_connections import POLL_PERIOD, ConnectionWatch, job_targets
from p2pcc.core.node import LocalNode
from p2pcc.core.procfs import TcpSocket, parse_proc_net_tcp
from p2pcc.core.turnaround import Verdicts

log = logging.getLogger("p2pcc.daemon.turnaround")


async def serve_turnaround(
    node: LocalNode,
    *,
    sockets: Callable[[Collection[int]], list[TcpSocket]] | None = None,
    period: float = POLL_PERIOD,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Follow our connections to peers' distccd for as long as the daemon runs; `sockets`
    reads the socket tables of the IP versions it is given."""
    read = sockets or read_tcp_tables
    watch, verdicts = ConnectionWatch(), Verdicts()
    complained = False
    task_status.started()
    while True:
        try:
            _poll(node, watch, verdicts, read, trio.current_time())
        except Exception as error:  # measuring must never stop the daemon
            if not complained:
                complained = True
                log.warning("measuring job turnaround failed (going on): %r", error)
        await trio.sleep(period)


def _poll(
    node: LocalNode,
    watch: ConnectionWatch,
    verdicts: Verdicts,
    sockets: Callable[[Collection[int]], list[TcpSocket]],
    now: float,
) -> None:
    peers = node.peers()
    targets = job_targets(peers)
    tables = watch.tables(targets)
    if not tables:
        return
    book = node.reports.turnaround
    finished = watch.poll(sockets(tables), targets, now)
    for job in finished:
        book.observe(job.node_id, job.seconds, now)
    book.keep_only(peer.node_id for peer in peers)
    if verdicts.due(now, bool(finished)):
        powers = {peer.node_id: peer.status.power for peer in peers}
        running = watch.running(now)
        figures = book.figures(now, running)
        node.set_delivered(verdicts.update(figures, running, powers, now))


#: The socket tables by IP version.
TABLES = {4: "/proc/net/tcp", 6: "/proc/net/tcp6"}

#: Bytes asked of each read(2); a chunk shorter than `_LAST_CHUNK` is the table's end.
_READ_SIZE = 256 * 1024
_LAST_CHUNK = 2048


def read_tcp_tables(versions: Collection[int]) -> list[TcpSocket]:
    """The TCP sockets of this network namespace of IP `versions`, each table read once.

    Each read of a table walks the kernel's whole connection hash (about 2 ms of CPU on
    the test machine, however few sockets), and reading to end of file takes one read
    more than the lines need.  The kernel fills each read from a buffer of at least a
    page and returns less than half a page only at the table's end (seq_file), so a
    chunk that short is taken as the end: a table of a dozen sockets costs one walk.
    """
    sockets = []
    for version in sorted(versions):
        with contextlib.suppress(OSError):  # tcp6 is missing when IPv6 is disabled
            sockets += parse_proc_net_tcp(_read_table(TABLES[version]))
    return sockets


def _read_table(path: str) -> str:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks = []
        while True:
            chunk = os.read(fd, _READ_SIZE)
            chunks.append(chunk)
            if len(chunk) < _LAST_CHUNK:
                return b"".join(chunks).decode("ascii", errors="replace")
    finally:
        os.close(fd)
