"""This machine's distcc jobs on peers, from successive readings of its TCP socket table.

distcc holds one TCP connection to a peer's distccd per job, from sending the
preprocessed source to receiving the object, and closes it then.  So an ESTABLISHED
connection from this network namespace to a peer's announced address and distccd port
is one of our jobs there, and its lifetime is the job's turnaround.  Every
`POLL_PERIOD` (`IDLE_POLL_PERIOD` while nothing is followed) the daemon reads the
established connections of the IP versions `ConnectionWatch.tables` names and hands
them to `ConnectionWatch.poll`, which says which jobs ended since the last reading and
how long each ran, first seen to gone, on the daemon's clock.  Only the peers' address
families are read (distcc dials an IPv4 address over an IPv4 socket): the kernel walks
its whole connection hash for either (about 1.4 ms of CPU on the test machine however
few sockets there are), so an IPv4 pool pays half.

The error of one figure is up to one poll period either way (first seen up to a period
after the connect, gone seen up to a period after the close; on average the two
cancel): a job shorter than a period is seen by chance and then counts as one period.
A build's first jobs after a quiet spell are seen up to an idle period late.
That blurs fast jobs, but cannot hide a peer that is ten times slower than the others.

Connections already open at the first reading are never counted (their start is
unknown), nor those open while their peer was unreachable or paused (`poll`'s
`unreachable`: a paused peer's jobs finish at nice 19, or are handed back, cut short).
A connection is known by both ends and the socket's inode; it counts for the peer that
held its address and port when it was first seen.  An address and port two
live peers claim (a restart under a new id, a forgery in an unkeyed pool) belongs to
neither.  At most `limits.MAX_JOB_CONNECTIONS` connections are followed at once; more
(a flood) are left out, counted in `untracked`, and never grow memory.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass

from p2pcc.core import limits
from p2pcc.core.addresses import unmapped, unscoped_addresses
from p2pcc.core.peers import Liveness, Peer
from p2pcc.core.procfs import TCP_ESTABLISHED, IPAddress, TcpSocket

#: Seconds between readings of the socket table while a job is followed.  The bar is a
#: peer three times slower than the others, which half a second resolves on jobs of a
#: second or more; each reading walks the kernel's whole connection hash (about 2.5 ms of
#: CPU here), and four a second were a quarter of a building daemon's CPU in a profile
#: (docs/ranking.md, "Measured turnaround").
POLL_PERIOD = 0.5
#: Seconds between readings while none is: a build's first jobs are seen up to this late
#: (their figures that much short), and an idle daemon reads once a second, not four times.
IDLE_POLL_PERIOD = 1.0

Endpoint = tuple[IPAddress, int]
ConnectionKey = tuple[IPAddress, int, IPAddress, int, int]


@dataclass(frozen=True, slots=True)
class FinishedJob:
    """A connection of ours to a peer's distccd that closed: whose, and how long it was
    open."""

    node_id: bytes
    seconds: float


def job_targets(peers: Iterable[Peer]) -> dict[Endpoint, bytes]:
    """Each peer's distccd endpoints (announced address, distccd port) -> its node id,
    for the peers that are not dead; an endpoint two of them claim is left out."""
    owners: dict[Endpoint, set[bytes]] = {}
    for peer in peers:
        if peer.liveness is Liveness.DEAD or not 0 < peer.status.distccd_port < 65536:
            continue
        for address in unscoped_addresses(peer.status.addresses):
            owners.setdefault((address, peer.status.distccd_port), set()).add(peer.node_id)
    return {endpoint: next(iter(ids)) for endpoint, ids in owners.items() if len(ids) == 1}


class ConnectionWatch:
    """Follows our connections to peers' distccd across readings; see the module
    docstring."""

    def __init__(self, max_tracked: int = limits.MAX_JOB_CONNECTIONS) -> None:
        self._max_tracked = max_tracked
        #: key -> (node id, first seen); node id None: open at the first reading.
        self._open: dict[ConnectionKey, tuple[bytes | None, float]] = {}
        self._primed = False
        self.untracked = 0  # at the last reading: connections not followed (the cap)

    @property
    def tracked(self) -> int:
        """Connections followed now."""
        return len(self._open)

    def running(self, now: float) -> dict[bytes, list[float]]:
        """How long each peer's jobs still open have run so far, at `now` (a lower
        bound of their turnarounds: `TurnaroundBook.figures` counts them as such)."""
        return {node_id: [age for _, age in jobs] for node_id, jobs in self.open_jobs(now).items()}

    def open_jobs(self, now: float) -> dict[bytes, list[tuple[ConnectionKey, float]]]:
        """Each peer's jobs still open that will count, with how long each has run."""
        jobs: dict[bytes, list[tuple[ConnectionKey, float]]] = {}
        for key, (node_id, since) in self._open.items():
            if node_id is not None:
                jobs.setdefault(node_id, []).append((key, max(0.0, now - since)))
        return jobs

    def disown(self, keys: Iterable[ConnectionKey]) -> None:
        """Follow `keys` on but never count them: jobs taken back from a straggler end
        when we cut them, which says nothing of how long they would have taken."""
        for key in keys:
            if key in self._open:
                self._open[key] = (None, self._open[key][1])

    def tables(self, targets: dict[Endpoint, bytes]) -> frozenset[int]:
        """The IP versions whose socket table the next reading needs (4: /proc/net/tcp,
        6: /proc/net/tcp6): those of the targets, and of the connections followed."""
        versions = {address.version for address, _ in targets}
        return frozenset(versions | {key[2].version for key in self._open})

    def poll(
        self,
        sockets: Iterable[TcpSocket],
        targets: dict[Endpoint, bytes],
        now: float,
        unreachable: Collection[bytes] = (),
    ) -> list[FinishedJob]:
        """Take the socket table read at `now`; the jobs that ended since the last one.
        A connection followed stays open while it is ESTABLISHED, whatever became of its
        peer; `targets` only say which new ones to follow.  Connections to `unreachable`
        peers (not heard lately: a cut link, a frozen machine) are followed but never
        counted, now or when they end: such a job waits on the network, and its time
        says nothing of the peer's speed once it is back."""
        if unreachable:
            for key, (node_id, since) in self._open.items():
                if node_id in unreachable:
                    self._open[key] = (None, since)
        established = {
            (sock.address, sock.port, sock.remote_address, sock.remote_port, sock.inode)
            for sock in sockets
            if sock.state == TCP_ESTABLISHED and sock.remote_address is not None
        }
        finished = []
        for key in [key for key in self._open if key not in established]:
            node_id, since = self._open.pop(key)
            if node_id is not None:
                finished.append(FinishedJob(node_id, max(0.0, now - since)))
        self.untracked = 0
        for key in established:
            node_id = targets.get((unmapped(key[2]), key[3]))
            if node_id is None or key in self._open:
                continue
            if len(self._open) >= self._max_tracked:
                self.untracked += 1
                continue
            counted = self._primed and node_id not in unreachable
            self._open[key] = (node_id if counted else None, now)
        self._primed = True
        return finished
