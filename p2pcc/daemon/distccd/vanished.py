"""Cutting distcc loose from a peer that vanished with our jobs (`core/vanished.py` says
which peers and why).

For each newly DEAD peer with which this machine holds distcc connections, this task
tries a TCP connection to its distccd.  If one of its addresses answers, the machine
is there and its jobs may still finish: nothing is done.  If none answers within
`PROBE_TIMEOUT`, it asks the kernel (through `ss -K`, iproute2's interface to
SOCK_DESTROY) to abort this network namespace's established
connections with that machine's distccd port (our jobs there) and with our own
distccd port (its jobs here).  Each distcc client waiting on one of ours sees
"connection aborted" and compiles locally at once, instead of after
`DISTCC_IO_TIMEOUT`; each distccd worker waiting on one of its jobs is freed, instead
of holding a slot until distccd's own timeout.

Aborting another process's socket needs CAP_NET_ADMIN (the system unit keeps it; a
user daemon lacks it) and a kernel built with CONFIG_INET_DIAG_DESTROY.  The task finds
out at start by aborting a loopback connection of its own (`cutoff_problem`), says so
once if it cannot, and puts the reason in `status` for `p2pcc doctor`; builds then
wait for distcc's own timeout, as without p2pcc.
"""

from __future__ import annotations

import logging
import socket
import struct
from collections.abc import Awaitable, Callable, Sequence

import trio

from p2pcc.core.node import LocalNode
from p2pcc.core.node_change import Change
from p2pcc.core.procfs import TcpSocket
from p2pcc.core.vanished import VanishCheck, VanishWatch, connections_held
from p2pcc.daemon.changes import ChangeBoard
from p2pcc.daemon.distccd.cutting import Aborted, abort_connections
from p2pcc.daemon.distccd.system import tcp_sockets

log = logging.getLogger("p2pcc.daemon.vanished")

#: Seconds a dead peer's distccd has to accept a connection before it counts as gone.
#: A machine on the link answers in milliseconds; ARP for one that is off gives up
#: after about 3 s.
PROBE_TIMEOUT = 3.0

#: Seconds the start-up self-test waits for its own aborted connection to say so; an
#: aborted socket says so at once.
SELF_TEST_WAIT = 0.5

Probe = Callable[[Sequence[str], int, float], Awaitable[bool]]
Abort = Callable[[Sequence[str], int, int], Awaitable[Aborted]]


async def serve_vanished_peers(
    node: LocalNode,
    board: ChangeBoard,
    *,
    probe: Probe | None = None,
    abort: Abort | None = None,
    sockets: Callable[[], list[TcpSocket]] = tcp_sockets,
    probe_timeout: float = PROBE_TIMEOUT,
    self_test: Callable[[Abort], Awaitable[str | None]] | None = None,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Check every peer that dies, for as long as the daemon runs.  `sockets` reads the
    socket table, `probe` tries a distccd, `abort` aborts connections; `self_test` (by
    default `cutoff_problem`) says at start whether `abort` can work here."""
    watch = VanishWatch()
    cutter = _Cutter(node, probe or distccd_answers, abort or abort_connections, probe_timeout)
    with board.subscribe(Change.LIVENESS) as deaths:
        task_status.started()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(cutter.self_test, self_test or cutoff_problem)
            while True:
                due = watch.due(node.peers())
                if due:
                    # One read of the socket table for every peer that died since the
                    # last wake-up: only those with jobs at stake are probed.
                    table = sockets()
                    own_port = node.status.distccd_port
                    for check in due:
                        if connections_held(table, check, own_port):
                            nursery.start_soon(cutter.check, check)
                await deaths.wait()


class _Cutter:
    def __init__(self, node: LocalNode, probe: Probe, abort: Abort, probe_timeout: float) -> None:
        self.node = node
        self.probe = probe
        self.abort = abort
        self.probe_timeout = probe_timeout
        self.complained = False

    async def check(self, check: VanishCheck) -> None:
        where = ", ".join(f"{address}:{check.port}" for address in check.addresses)
        if await self.probe(check.addresses, check.port, self.probe_timeout):
            log.info(
                "peer %s is silent but its distccd (%s) answers: leaving its jobs",
                check.name,
                where,
            )
            return
        own_port = self.node.status.distccd_port
        result = await self.abort(check.addresses, check.port, own_port)
        self.node.reports.count_aborted(result.connections)
        if result.connections:
            silent = trio.current_time() - check.silent_since
            log.warning(
                "peer %s vanished (silent %.0f s, distccd %s unreachable): aborted %d "
                "distcc connection(s) with it; our jobs there now compile here",
                check.name,
                silent,
                where,
                result.connections,
            )
        if result.complaint:
            self.node.reports.set_cutoff_problem(result.complaint)
            self.complain(result.complaint)

    async def self_test(self, test: Callable[[Abort], Awaitable[str | None]]) -> None:
        problem = await test(self.abort)
        self.node.reports.set_cutoff_problem(problem)
        if problem is not None:
            self.complain(problem)

    def complain(self, problem: str) -> None:
        if not self.complained:
            self.complained = True
            log.warning(
                "cannot abort connections to vanished peers (%s): builds wait out "
                "DISTCC_IO_TIMEOUT instead; the daemon needs CAP_NET_ADMIN and a kernel "
                "with CONFIG_INET_DIAG_DESTROY (docs/faults.md)",
                problem,
            )


async def cutoff_problem(abort: Abort) -> str | None:
    """None if `abort` can abort a connection of this process on loopback; else why not."""
    try:
        with trio.socket.socket() as server, trio.socket.socket() as client:
            await server.bind(("127.0.0.1", 0))
            server.listen(1)
            port = server.getsockname()[1]
            await client.connect(("127.0.0.1", port))
            result = await abort(["127.0.0.1"], port, 0)  # own port 0: the client end only
            if result.complaint:
                return result.complaint
            try:
                with trio.move_on_after(SELF_TEST_WAIT):
                    await client.recv(1)
            except ConnectionAbortedError:
                return None
    except OSError as error:  # no loopback (lo down): untested, so say so
        return f"the self-test failed: {error.strerror or error}"
    return "the kernel aborted no connection"


async def distccd_answers(addresses: Sequence[str], port: int, timeout: float) -> bool:
    """Whether a TCP connection to `port` on any of `addresses` opens within `timeout`."""
    answered = False

    async def attempt(address: str) -> None:
        nonlocal answered
        try:
            stream = await trio.open_tcp_stream(address, port)
        except OSError:
            return
        answered = True
        # Reset, not closed: distccd then drops the connection before it reads a
        # request, instead of logging a failed job for it.
        stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        await stream.aclose()
        nursery.cancel_scope.cancel()

    with trio.move_on_after(timeout):
        async with trio.open_nursery() as nursery:
            for address in addresses:
                nursery.start_soon(attempt, address)
    return answered
