"""The turnaround task on a virtual clock: socket tables in, the node's book filled; the
table unread without peers, read once a second while no job is followed; an error logged
once, and the task going on.  The two readers (sock_diag dumps, /proc/net/tcp) on real
loopback connections."""

from __future__ import annotations

import contextlib
import ipaddress
import itertools
import logging
import socket
from collections.abc import Callable, Collection, Sequence
from functools import partial

import pytest
import trio

from p2pcc.core.job_connections import ConnectionKey
from p2pcc.core.node import LocalNode
from p2pcc.core.procfs import TCP_ESTABLISHED, TcpSocket
from p2pcc.daemon import turnaround
from p2pcc.daemon.distccd.cutting import Aborted
from p2pcc.daemon.turnaround import (
    EstablishedSockets,
    dump_established,
    read_tcp_tables,
    serve_turnaround,
)
from tests.core.local_nodes import FP, WALL, gossip, make_node

BETA = bytes([2]) * 16


def job_with_beta(local_port: int = 40000) -> TcpSocket:
    """An established connection of ours to beta's distccd."""
    here, beta = ipaddress.ip_address("10.0.0.1"), ipaddress.ip_address("10.0.0.2")
    return TcpSocket(here, local_port, TCP_ESTABLISHED, local_port, beta, 3632)


def alpha_hearing_beta() -> LocalNode:
    alpha, beta = make_node(1), make_node(2)
    beta.set_serving(True, 0.0)
    gossip(beta, alpha, 0.0)
    assert [peer.node_id for peer in alpha.peers()] == [BETA]
    return alpha


class Table:
    """A socket table scripted on the virtual clock: `jobs` maps a local port to the
    (start, end) its connection is open; counts the readings."""

    def __init__(self, jobs: dict[int, tuple[float, float]]) -> None:
        self.jobs = jobs
        self.readings = 0
        self.times: list[float] = []

    def __call__(self, versions: Collection[int]) -> list[TcpSocket]:
        assert set(versions) == {4}  # beta has an IPv4 address only
        self.readings += 1
        now = trio.current_time()
        self.times.append(now)
        return [
            job_with_beta(port) for port, (start, end) in self.jobs.items() if start <= now < end
        ]


async def run_for(
    node: LocalNode, sockets: Callable[[Collection[int]], list[TcpSocket]], seconds: float
) -> None:
    async with trio.open_nursery() as nursery:
        await nursery.start(
            lambda task_status: serve_turnaround(node, sockets=sockets, task_status=task_status)
        )
        await trio.sleep(seconds)
        nursery.cancel_scope.cancel()


async def test_each_job_on_a_peer_lands_in_the_book_with_its_lifetime(
    autojump_clock: trio.abc.Clock,
) -> None:
    alpha = alpha_hearing_beta()
    start = trio.current_time()
    table = Table({40000: (start + 1.0, start + 3.0), 40001: (start + 2.0, start + 2.5)})
    await run_for(alpha, table, 5.0)
    figure = alpha.reports.turnaround.figure(BETA, trio.current_time())
    # Polled every 0.5 s on the virtual clock: first seen and gone exactly at the edges.
    assert (figure.jobs, figure.median, figure.relative) == (2, 1.25, None)
    peer = alpha.snapshot(trio.current_time(), WALL)["peers"][0]
    assert peer["turnaround"] == {"jobs": 2, "median": 1.25, "mean": 1.25, "relative": None}


async def test_a_job_cut_short_by_a_peers_pause_is_never_counted(
    autojump_clock: trio.abc.Clock,
) -> None:
    alpha, beta = make_node(1), make_node(2)
    beta.set_serving(True, 0.0)
    gossip(beta, alpha, 0.0)
    # Two jobs on beta: one ends before its pause, one is handed back (cut) by it.
    table = Table({40000: (0.2, 1.2), 40001: (0.2, 2.6)})
    async with trio.open_nursery() as nursery:
        await nursery.start(
            lambda task_status: serve_turnaround(alpha, sockets=table, task_status=task_status)
        )
        await trio.sleep_until(2.5)
        beta.pause_for(None, "", uid=0, now=2.5, wall=WALL, hand_back=True)
        gossip(beta, alpha, 2.5)  # the pause is gossiped before the cut
        await trio.sleep_until(4.0)
        nursery.cancel_scope.cancel()
    figure = alpha.reports.turnaround.figure(BETA, trio.current_time())
    assert figure.jobs == 1  # the first, seen at the idle reading of 1.0 s, gone at 1.5 s
    assert figure.median == 0.5


async def test_without_peers_the_table_is_not_read(autojump_clock: trio.abc.Clock) -> None:
    alpha = make_node(1)
    table = Table({40000: (0.0, 1e9)})
    await run_for(alpha, table, 5.0)
    assert table.readings == 0


async def test_a_peer_the_table_forgot_leaves_the_book(autojump_clock: trio.abc.Clock) -> None:
    alpha = alpha_hearing_beta()
    alpha.reports.turnaround.observe(bytes([9]) * 16, 1.0, trio.current_time())
    start = trio.current_time()
    await run_for(alpha, Table({40000: (start + 1.0, start + 2.0)}), 3.0)
    assert alpha.reports.turnaround.peers() == 1
    assert alpha.reports.turnaround.figure(BETA, trio.current_time()).jobs == 1


async def test_an_error_is_logged_once_and_measuring_goes_on(
    autojump_clock: trio.abc.Clock, caplog: pytest.LogCaptureFixture
) -> None:
    alpha = alpha_hearing_beta()
    calls = 0

    def broken(versions: Collection[int]) -> list[TcpSocket]:
        nonlocal calls
        calls += 1
        raise ValueError("not a socket table")

    with caplog.at_level(logging.WARNING, logger="p2pcc.daemon.turnaround"):
        await run_for(alpha, broken, 8.0)
    assert calls >= 8
    assert [record.getMessage() for record in caplog.records] == [
        "measuring job turnaround failed (going on): ValueError('not a socket table')"
    ]


async def test_while_no_job_is_followed_the_table_is_read_once_a_second(
    autojump_clock: trio.abc.Clock,
) -> None:
    alpha = alpha_hearing_beta()
    start = trio.current_time()
    table = Table({40000: (start + 10.0, start + 15.0)})
    await run_for(alpha, table, 19.5)
    gaps = [round(b - a, 6) for a, b in itertools.pairwise(table.times)]
    # Idle pace until the reading at 10 s finds the job, two a second while it is
    # followed, idle again from the reading at 15 s that finds it gone.
    assert gaps == [1.0] * 10 + [0.5] * 10 + [1.0] * 4
    figure = alpha.reports.turnaround.figure(BETA, trio.current_time())
    assert (figure.jobs, figure.median) == (1, 5.0)


def loopback_pairs(
    stack: contextlib.ExitStack, host: str, pairs: int
) -> tuple[int, set[int], socket.socket]:
    """`pairs` established loopback connections to a server on `host`: its port, the
    clients' ports, and the server (to make TIME_WAIT sockets with)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    server = stack.enter_context(socket.create_server((host, 0), family=family))
    port = server.getsockname()[1]
    clients = set()
    for _ in range(pairs):
        client = stack.enter_context(socket.create_connection((host, port)))
        stack.enter_context(server.accept()[0])
        clients.add(client.getsockname()[1])
    return port, clients, server


@pytest.mark.parametrize(
    ("reader", "host", "version"),
    [
        (read_tcp_tables, "127.0.0.1", 4),
        (dump_established, "127.0.0.1", 4),
        (dump_established, "::1", 6),
        (read_tcp_tables, "::1", 6),
    ],
)
@pytest.mark.parametrize("pairs", [1, 60])
def test_both_readers_find_every_established_connection(
    reader: Callable[[Collection[int]], list[TcpSocket]], host: str, version: int, pairs: int
) -> None:
    # 60 loopback pairs make the table many pages long and the dump several datagrams.
    with contextlib.ExitStack() as stack:
        port, clients, server = loopback_pairs(stack, host, pairs)
        for _ in range(5):  # closed first by the client: TIME_WAIT on the client's side
            with socket.create_connection((host, port)), server.accept()[0]:
                pass
        table = reader({version})
    found = {(sock.port, sock.remote_port) for sock in table if sock.state == TCP_ESTABLISHED}
    # Others may open and close sockets on this machine meanwhile: ours are all there.
    assert {(port, c) for c in clients} | {(c, port) for c in clients} <= found
    assert all(sock.address.version == version for sock in table)
    assert all(sock.inode > 0 for sock in table if sock.port in clients)
    if reader is dump_established:
        assert {sock.state for sock in table} == {TCP_ESTABLISHED}  # no TIME_WAIT, no LISTEN


def test_the_dump_and_the_file_agree_on_each_connection() -> None:
    with contextlib.ExitStack() as stack:
        port, clients, _ = loopback_pairs(stack, "127.0.0.1", 3)
        dumped, listed = dump_established({4}), read_tcp_tables({4})
    ours = {port, *clients}
    assert {s for s in dumped if s.port in ours} == {
        s for s in listed if s.port in ours and s.state == TCP_ESTABLISHED
    }


def test_a_kernel_that_refuses_dumps_is_read_through_the_file_from_then_on(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    attempts = 0

    def refused(versions: Collection[int]) -> list[TcpSocket]:
        nonlocal attempts
        attempts += 1
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(turnaround, "dump_established", refused)
    reader = EstablishedSockets()
    with contextlib.ExitStack() as stack, caplog.at_level(logging.INFO, "p2pcc.daemon.turnaround"):
        port, clients, _ = loopback_pairs(stack, "127.0.0.1", 1)
        first, second = reader({4}), reader({4})
    for table in (first, second):
        assert {(s.port, s.remote_port) for s in table} >= {(port, c) for c in clients}
    assert attempts == 1
    assert not reader.dumps
    assert [r.getMessage() for r in caplog.records] == [
        "no sock_diag dump ([Errno 13] Permission denied): reading /proc/net/tcp instead"
    ]


async def test_a_peer_measured_ten_times_slower_leaves_the_hosts_line(
    autojump_clock: trio.abc.Clock,
) -> None:
    alpha, beta, gamma = make_node(1), make_node(2), make_node(3)
    here = ipaddress.ip_address("10.0.0.1")
    start = trio.current_time()
    # One job after another on beta, 1 s each; two at a time on gamma, 10 s each; from
    # 1.5 s, after the task's first reading with peers (at 1 s: idle pace) saw none open.
    jobs = [(2, 40000 + n, start + 1.5 + n, start + 2.5 + n) for n in range(60)]
    jobs += [
        (3, 41000 + n, start + 1.5 + 10 * (n // 2), start + 11.5 + 10 * (n // 2)) for n in range(6)
    ]

    def table(versions: Collection[int]) -> list[TcpSocket]:
        now = trio.current_time()
        return [
            TcpSocket(here, port, TCP_ESTABLISHED, port, ipaddress.ip_address(f"10.0.0.{n}"), 3632)
            for n, port, begin, end in jobs
            if begin <= now < end
        ]

    async def peers_speaking() -> None:
        for peer in (beta, gamma):
            peer.set_serving(True, trio.current_time())
        while True:
            for peer in (beta, gamma):
                gossip(peer, alpha, trio.current_time())
            await trio.sleep(1.0)

    def listed() -> set[str]:
        line = alpha.hosts(trio.current_time())[FP].hosts
        return {word.split(":")[0] for word in line.split() if ":" in word}

    async with trio.open_nursery() as nursery:
        nursery.start_soon(peers_speaking)
        await nursery.start(
            lambda task_status: serve_turnaround(alpha, sockets=table, task_status=task_status)
        )
        await trio.sleep_until(start + 11.0)
        assert listed() == {"10.0.0.2", "10.0.0.3"}  # nothing known about gamma yet
        # At 22.5 s gamma has four finished jobs and two running for a second: five figures or
        # more, ten times beta's; it delivers a tenth of what it announces.
        await trio.sleep_until(start + 22.5)
        assert listed() == {"10.0.0.2"}
        figure = alpha.reports.turnaround.figure(gamma.node_id, trio.current_time())
        assert figure.jobs == 4
        nursery.cancel_scope.cancel()


GAMMA = bytes([3]) * 16


class Pool:
    """Alpha's jobs on beta (a straggler: 10 s a job) and gamma (1 s), scripted on the
    virtual clock as `Table` is, by (peer index, local port) -> (start, end); the
    `abort` it offers ends the connections it is given, as `ss -K` would."""

    def __init__(self, jobs: dict[tuple[int, int], tuple[float, float]]) -> None:
        self.jobs = jobs
        self.aborted: list[list[int]] = []

    def __call__(self, versions: Collection[int]) -> list[TcpSocket]:
        now, here = trio.current_time(), ipaddress.ip_address("10.0.0.1")
        return [
            TcpSocket(here, port, TCP_ESTABLISHED, port, ipaddress.ip_address(f"10.0.0.{i}"), 3632)
            for (i, port), (start, end) in self.jobs.items()
            if start <= now < end
        ]

    async def abort(self, connections: Sequence[ConnectionKey]) -> Aborted:
        self.aborted.append(sorted(key[1] for key in connections))
        now = trio.current_time()
        for key in connections:
            peer = int(str(key[2]).rsplit(".", 1)[1])
            start, end = self.jobs[(peer, key[1])]
            self.jobs[(peer, key[1])] = (start, min(end, now))
        return Aborted(len(connections))


def straggler_pool() -> Pool:
    """Gamma: two streams of 1-s jobs from t=1.  Beta: three 10-s jobs from t=1, then
    two more from t=11 that would run 20 s."""
    jobs = {(3, 41000 + i): (1.0 + i, 2.0 + i) for i in range(40)}
    jobs |= {(3, 42000 + i): (1.0 + i, 2.0 + i) for i in range(40)}
    jobs |= {(2, 40000 + i): (1.0, 11.0) for i in range(3)}
    jobs |= {(2, 40003 + i): (11.0, 31.0) for i in range(2)}
    return Pool(jobs)


async def run_pool(alpha: LocalNode, pool: Pool, seconds: float) -> None:
    beta, gamma = make_node(2), make_node(3)
    for peer in (beta, gamma):
        peer.set_serving(True, 0.0)

    async def keep_heard() -> None:
        while True:
            for peer in (beta, gamma):
                gossip(peer, alpha, trio.current_time())
            await trio.sleep(0.5)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(keep_heard)
        await trio.sleep(0.1)
        await nursery.start(
            partial(serve_turnaround, alpha, sockets=pool, abort=pool.abort, period=0.5)
        )
        await trio.sleep(seconds)
        nursery.cancel_scope.cancel()


async def test_jobs_on_a_straggler_out_of_the_line_are_taken_back_and_not_counted(
    autojump_clock: trio.abc.Clock, caplog: pytest.LogCaptureFixture
) -> None:
    alpha, pool = make_node(1), straggler_pool()
    alpha.reports.set_cutoff_problem(None)  # the start-up self-test passed
    with caplog.at_level(logging.INFO, logger="p2pcc.daemon.turnaround"):
        await run_pool(alpha, pool, 40.0)
    assert [record.getMessage() for record in caplog.records] == [
        "turnaround: ws2's jobs take longer than the others' (6.0x a typical job of 1.00 s, "
        "3 ended): ranked at 0.15 of its announced speed",
        "took back 2 of 2 job(s) from straggler 10.0.0.2:3632 (measured slow, out of every "
        "line): they compile here now",
    ]
    # At 11 s beta's three jobs end at 10 s each against gamma's 1 s (relative 6 by the
    # means): out of every line, and its two jobs just started (age 0, against a
    # horizon of (6 - 1) x 1 s) are aborted at once, never to count as turnarounds.
    assert pool.aborted == [[40003, 40004]]
    assert alpha.reports.taken_back == 2
    assert alpha.snapshot(trio.current_time(), WALL)["counters"]["jobs_taken_back"] == 2
    assert alpha.reports.turnaround.figure(BETA, 12.0).jobs == 3
    assert BETA in alpha.delivered
    line = alpha.hosts_for(FP, trio.current_time())
    assert BETA not in {entry.node_id for entry in line.entries}


async def test_without_a_working_cut_the_straggler_keeps_its_jobs(
    autojump_clock: trio.abc.Clock,
) -> None:
    alpha, pool = make_node(1), straggler_pool()
    assert alpha.reports.cutoff_problem is not None  # not checked yet: never cut blind
    await run_pool(alpha, pool, 40.0)
    assert pool.aborted == []
    assert BETA in alpha.delivered
    assert alpha.reports.turnaround.figure(BETA, 32.0).jobs == 5  # both ran to their end


def test_the_peers_endpoints_are_worked_out_again_only_when_membership_moves() -> None:
    alpha = alpha_hearing_beta()
    known = turnaround.JobTargets()
    assert known.of(alpha, alpha.peers())
    assert list(known.endpoints.values()) == [BETA]
    assert not known.of(alpha, alpha.peers())  # nothing moved: kept
    gamma = make_node(3)
    gamma.set_serving(True, 0.0)
    gossip(gamma, alpha, 0.5)  # a peer joins
    assert known.of(alpha, alpha.peers())
    assert sorted(known.endpoints.values()) == [BETA, bytes([3]) * 16]
