"""Measuring how long this machine's distcc jobs take on each peer (`core/turnaround.py`
says what is kept and why, `core/job_connections.py` how a job is recognized).

Every `POLL_PERIOD` while a job is followed, every `IDLE_POLL_PERIOD` otherwise, this task
asks the kernel for the network namespace's established TCP connections (a sock_diag
dump, `core/sock_diag.py` says why; /proc/net/tcp where the kernel refuses one: of the IP
versions the peers' addresses need, none while there is no peer to watch and nothing
followed: `EstablishedSockets`), hands them to the connection watch with the peers'
distccd endpoints, and
records each job that ended in the node's turnaround book; then it hands the node what
the book says each peer delivers (`core/verdicts.py`: with the jobs still running
counted as far as they got, a verdict changes only with new evidence about that peer
and stands a few minutes after it), which ranking reads.  The factors are coarse steps, so the
node re-ranks only when a peer's verdict really moves.  Jobs of ours still open on a
peer that the verdict put out of every line are taken back when they would end sooner
compiled here (`core/take_back.py`): their connections are aborted (`ss -K`, as for a
vanished peer, and only where the start-up self-test showed it works), so distcc
compiles those files at once, and they never count as turnarounds; nor do jobs on a
paused peer, which a pause may hand back the same way (`uncounted`).  An error is
logged once and the task goes on; a measurement is never worth the daemon.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence

import trio

from p2pcc.core import sock_diag
from p2pcc.core.addresses import unmapped
from p2pcc.core.job_connections import (
    IDLE_POLL_PERIOD,
    POLL_PERIOD,
    ConnectionKey,
    ConnectionWatch,
    Endpoint,
    job_targets,
)
from p2pcc.core.model import NodeState
from p2pcc.core.node import LocalNode
from p2pcc.core.peers import Liveness, Peer
from p2pcc.core.procfs import TCP_ESTABLISHED, TcpSocket, parse_proc_net_tcp
from p2pcc.core.take_back import jobs_to_take_back
from p2pcc.core.turnaround import Turnaround
from p2pcc.core.verdicts import Verdicts
from p2pcc.daemon.distccd.cutting import Aborted, abort_jobs

log = logging.getLogger("p2pcc.daemon.turnaround")


AbortJobs = Callable[[Sequence[ConnectionKey]], Awaitable[Aborted]]


async def serve_turnaround(
    node: LocalNode,
    *,
    sockets: Callable[[Collection[int]], list[TcpSocket]] | None = None,
    abort: AbortJobs = abort_jobs,
    period: float = POLL_PERIOD,
    idle_period: float = IDLE_POLL_PERIOD,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Follow our connections to peers' distccd for as long as the daemon runs; `sockets`
    gives the established connections of the IP versions it is given, `abort` aborts
    the jobs taken back from stragglers."""
    read = sockets or EstablishedSockets()
    watch, verdicts, targets = ConnectionWatch(), node.reports.verdicts, JobTargets()
    complained = False
    async with trio.open_nursery() as nursery:
        task_status.started()
        while True:
            try:
                taken = _poll(node, watch, verdicts, read, known=targets, now=trio.current_time())
            except Exception as error:  # measuring must never stop the daemon
                taken = []
                if not complained:
                    complained = True
                    log.warning("measuring job turnaround failed (going on): %r", error)
            if taken:
                nursery.start_soon(_take_back, node, abort, taken)
            await trio.sleep(period if watch.tracked else idle_period)


class JobTargets:
    """The peers' distccd endpoints (`job_targets`), worked out again only when who may
    be connected to changed (`LocalNode.members_version`, Change.MEMBERS): in a pool of
    a thousand, every poll would otherwise walk every peer's addresses."""

    def __init__(self) -> None:
        self.version = -1
        self.endpoints: dict[Endpoint, bytes] = {}

    def of(self, node: LocalNode, peers: Collection[Peer]) -> bool:
        """Bring `endpoints` up to date with `node` (its `peers`); whether they moved."""
        if node.members_version == self.version:
            return False
        self.version, self.endpoints = node.members_version, job_targets(peers)
        return True


def _poll(
    node: LocalNode,
    watch: ConnectionWatch,
    verdicts: Verdicts,
    sockets: Callable[[Collection[int]], list[TcpSocket]],
    *,
    known: JobTargets,
    now: float,
) -> list[ConnectionKey]:
    """One reading: jobs that ended go to the book, verdicts to the node; the jobs to
    take back from stragglers are returned, no longer counted.  While no job of ours
    runs or ran, a reading costs the socket dump and little else."""
    peers = node.peers()
    moved, targets = known.of(node, peers), known.endpoints
    tables = watch.tables(targets)
    if not tables:
        return []
    book = node.reports.turnaround
    found = sockets(tables)
    jobs = watch.tracked or any(_to_target(sock, targets) for sock in found)
    # A proof's compile (p2pcc.daemon.proofs) is no job of a build: it never counts.
    ignored = uncounted(peers) | node.reports.proofs.proving if jobs else ()
    finished = watch.poll(found, targets, now, ignored)
    for job in finished:
        book.observe(job.node_id, job.seconds, now)
    if moved:
        book.keep_only(peer.node_id for peer in peers)
    idle = not (jobs or book or node.delivered)
    if idle or not verdicts.due(now, bool(finished)):
        return []
    powers = {peer.node_id: peer.status.power for peer in peers}
    running = watch.running(now)
    figures = book.figures(now, running)
    before = dict(node.delivered)
    node.set_delivered(verdicts.update(figures, running, powers, now))
    delivered, open_jobs = node.delivered, watch.open_jobs(now)
    if delivered != before:
        _tell_verdicts(peers, figures, before, delivered)
    if node.reports.cutoff_problem is not None or not any(p in delivered for p in open_jobs):
        return []
    lines = node.hosts(now).values()
    in_lines = {entry.node_id for line in lines for entry in line.entries if entry.node_id}
    taken = jobs_to_take_back(open_jobs, figures, delivered, in_lines)
    for keys in taken.values():
        watch.disown(keys)
    verdicts.set_aside(taken, watch.running(now))
    return [key for keys in taken.values() for key in keys]


def _to_target(sock: TcpSocket, targets: Mapping[Endpoint, bytes]) -> bool:
    """Whether `sock` is one of our connections to a peer's distccd."""
    remote = sock.remote_address
    return remote is not None and (unmapped(remote), sock.remote_port) in targets


def uncounted(peers: Collection[Peer]) -> set[bytes]:
    """The peers whose jobs say nothing of their speed: those not heard lately (their
    jobs wait on the network), and paused ones (their jobs finish at nice 19, or are
    handed back: cut, they end early, and would count as fast)."""
    return {
        peer.node_id
        for peer in peers
        if peer.liveness is not Liveness.ALIVE or peer.status.state is NodeState.PAUSED
    }


def _tell_verdicts(
    peers: Collection[Peer],
    figures: Mapping[bytes, Turnaround],
    before: Mapping[bytes, float],
    after: Mapping[bytes, float],
) -> None:
    """Log each verdict that came, moved or went: why a peer left or rejoined the lines."""
    names = {peer.node_id: peer.status.name for peer in peers}
    for node_id in sorted(before.keys() | after.keys()):
        name = names.get(node_id, node_id.hex()[:12])
        if node_id not in after:
            log.info("turnaround: %s is no longer judged slow", name)
        elif before.get(node_id) != after[node_id]:
            figure = figures.get(node_id)
            told = "" if figure is None else f" ({_figures_text(figure)})"
            log.info(
                "turnaround: %s's jobs take longer than the others'%s: ranked at %.2f of "
                "its announced speed",
                name,
                told,
                after[node_id],
            )


def _figures_text(figure: Turnaround) -> str:
    relative = "?" if figure.relative is None else f"{figure.relative:.1f}x"
    typical = "?" if figure.typical is None else f"{figure.typical:.2f} s"
    return f"{relative} a typical job of {typical}, {figure.jobs} ended"


async def _take_back(node: LocalNode, abort: AbortJobs, connections: list[ConnectionKey]) -> None:
    result = await abort(connections)
    node.reports.count_taken_back(result.connections)
    where = ", ".join(sorted({f"{key[2]}:{key[3]}" for key in connections}))
    log.info(
        "took back %d of %d job(s) from straggler %s (measured slow, out of every line): "
        "they compile here now%s",
        result.connections,
        len(connections),
        where,
        f"; ss: {result.complaint}" if result.complaint else "",
    )


class EstablishedSockets:
    """Our namespace's established TCP connections of some IP versions: by a sock_diag
    dump, or from /proc/net/tcp{,6} once the kernel has refused a dump (no sock_diag in
    the kernel, a seccomp filter): said once, then the files for good."""

    def __init__(self) -> None:
        self.dumps = True

    def __call__(self, versions: Collection[int]) -> list[TcpSocket]:
        if self.dumps:
            try:
                return dump_established(versions)
            except (OSError, ValueError) as error:
                self.dumps = False
                log.info("no sock_diag dump (%s): reading /proc/net/tcp instead", error)
        return read_tcp_tables(versions)


#: Datagrams one dump may take before it is given up on (a dump of the connections a
#: namespace can hold takes a handful; the bound only keeps a broken answer finite).
_MAX_DUMP_DATAGRAMS = 1024
_RECEIVE_SIZE = 64 * 1024


def dump_established(versions: Collection[int]) -> list[TcpSocket]:
    """The established TCP connections of IP `versions`, from the kernel's sock_diag.

    The socket never blocks: the kernel queues a dump's first datagram while handling
    the request and each next one while the previous is received, so an empty queue is
    an error (OSError), never a wait in the event loop."""
    states = sock_diag.states_mask(TCP_ESTABLISHED)
    found: list[TcpSocket] = []
    with socket.socket(
        socket.AF_NETLINK, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC, sock_diag.NETLINK_SOCK_DIAG
    ) as link:
        link.setblocking(False)
        for version in sorted(versions):
            link.send(sock_diag.dump_request(version, states, sequence=version))
            for _ in range(_MAX_DUMP_DATAGRAMS):
                part = sock_diag.parse_dump(link.recv(_RECEIVE_SIZE))
                found += part.sockets
                if part.done:
                    break
            else:
                raise ValueError(f"sock_diag: no end after {_MAX_DUMP_DATAGRAMS} datagrams")
    return found


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
