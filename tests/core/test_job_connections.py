"""Our jobs on peers from successive socket tables: which connections count, for whom, and
how long; what is never counted; the cap on what is followed."""

from __future__ import annotations

from dataclasses import replace
from ipaddress import ip_address as ip

import pytest

from p2pcc.core.job_connections import ConnectionWatch, FinishedJob, job_targets
from p2pcc.core.peers import Liveness
from p2pcc.core.procfs import TCP_ESTABLISHED, TCP_LISTEN, TcpSocket
from tests.core.roomy_peers import node, peer

HERE = ip("10.0.0.1")
TIME_WAIT = 0x06


def job(
    local_port: int, to: int = 2, port: int = 3632, inode: int = 100, **fields: object
) -> TcpSocket:
    """A connection of ours from `local_port` to peer `to`'s distccd."""
    sock = TcpSocket(HERE, local_port, TCP_ESTABLISHED, inode, ip(f"10.0.0.{to}"), port)
    return replace(sock, **fields)  # type: ignore[arg-type]


TARGETS = job_targets([peer(2), peer(3)])


def run(tables: list[list[TcpSocket]], period: float = 0.25) -> list[FinishedJob]:
    """Poll `tables` one period apart from 0.0 (the first reading primes the watch)."""
    watch = ConnectionWatch()
    finished = []
    for index, table in enumerate(tables):
        finished += watch.poll(table, TARGETS, index * period)
    return finished


@pytest.mark.parametrize(
    ("tables", "expected"),
    [
        # Open at the first reading: its start is unknown, never counted.
        ([[job(40000)], []], []),
        # Seen at 0.25, 0.5, 0.75, gone at 1.0: 0.75 s, for peer 2.
        ([[], [job(40000)], [job(40000)], [job(40000)], []], [FinishedJob(node(2), 0.75)]),
        # Two jobs at once on two peers, ending apart.
        (
            [[], [job(40000), job(40001, to=3, inode=101)], [job(40001, to=3, inode=101)], []],
            [FinishedJob(node(2), 0.25), FinishedJob(node(3), 0.5)],
        ),
        # The same ends with another inode: a new connection (the old one ended).
        ([[], [job(40000)], [job(40000, inode=200)], []], [FinishedJob(node(2), 0.25)] * 2),
        # Leaving ESTABLISHED (FIN_WAIT, TIME_WAIT) is the end.
        ([[], [job(40000)], [job(40000, state=TIME_WAIT, inode=0)]], [FinishedJob(node(2), 0.25)]),
        # Not ours to a peer's distccd: another port, an unknown address, a listener,
        # a peer's job on our distccd (its ephemeral port is no distccd port).
        (
            [
                [],
                [
                    job(40000, port=22),
                    job(40001, to=9),
                    replace(job(3632), state=TCP_LISTEN, remote_address=None),
                    replace(job(3632), remote_port=51000),
                ],
                [],
            ],
            [],
        ),
        # An IPv4 peer seen through a dual-stack socket.
        (
            [
                [],
                [job(40000, address=ip("::ffff:10.0.0.1"), remote_address=ip("::ffff:10.0.0.2"))],
                [],
            ],
            [FinishedJob(node(2), 0.25)],
        ),
    ],
)
def test_jobs_from_successive_tables(
    tables: list[list[TcpSocket]], expected: list[FinishedJob]
) -> None:
    assert run(tables) == expected


def test_targets_are_live_peers_distccd_endpoints_and_shared_ones_belong_to_nobody() -> None:
    peers = [
        peer(2, distccd_port=4000),
        peer(3, Liveness.SUSPECT),
        peer(4, Liveness.DEAD),
        peer(5, addresses=("10.0.0.5", "fe80::1", "not-an-address")),
        peer(6, addresses=("10.0.0.7",)),
        peer(7),  # claims 10.0.0.7:3632 too: neither gets it
        peer(8, distccd_port=0),
        # Link-local, scoped to our link: the kernel shows its connections unscoped.
        peer(9, addresses=("fe80::9%eth0", "::ffff:10.0.0.9")),
    ]
    assert job_targets(peers) == {
        (ip("10.0.0.2"), 4000): node(2),
        (ip("10.0.0.3"), 3632): node(3),
        (ip("10.0.0.5"), 3632): node(5),
        (ip("fe80::1"), 3632): node(5),
        (ip("fe80::9"), 3632): node(9),
        (ip("10.0.0.9"), 3632): node(9),
    }


def test_a_flood_is_capped_and_counted_and_the_followed_ones_still_count() -> None:
    watch = ConnectionWatch(max_tracked=3)
    watch.poll([], TARGETS, 0.0)
    flood = [job(40000 + i, inode=1000 + i) for i in range(10)]
    assert watch.poll(flood, TARGETS, 1.0) == []
    assert (watch.tracked, watch.untracked) == (3, 7)
    assert watch.poll([], TARGETS, 2.0) == [FinishedJob(node(2), 1.0)] * 3
    assert (watch.tracked, watch.untracked) == (0, 0)


def test_a_followed_job_runs_on_while_its_peer_leaves_the_targets() -> None:
    watch = ConnectionWatch()
    watch.poll([], TARGETS, 0.0)
    watch.poll([job(40000)], TARGETS, 1.0)
    assert watch.poll([job(40000)], {}, 2.0) == []  # peer 2 died: the job goes on
    assert watch.poll([], {}, 3.0) == [FinishedJob(node(2), 2.0)]


def test_only_the_tables_of_the_targets_and_the_followed_connections_are_read() -> None:
    watch = ConnectionWatch()
    assert watch.tables({}) == frozenset()
    assert watch.tables(TARGETS) == {4}
    six = job_targets([peer(2, addresses=("2001:db8::2",))])
    assert watch.tables(six) == {6}
    watch.poll([], TARGETS, 0.0)
    mapped = job(40000, address=ip("::ffff:10.0.0.1"), remote_address=ip("::ffff:10.0.0.2"))
    watch.poll([mapped], TARGETS, 1.0)
    # Seen in tcp6 (a dual-stack socket): tcp6 is read while it is open.
    assert watch.tables({}) == {6}


def test_running_jobs_and_how_long_they_have_run() -> None:
    watch = ConnectionWatch()
    watch.poll([job(39999)], TARGETS, 0.0)  # open before we looked: age unknown, left out
    watch.poll([job(39999), job(40000), job(40001, to=3, inode=101)], TARGETS, 1.0)
    watch.poll([job(39999), job(40000), job(40001, to=3, inode=101)], TARGETS, 2.0)
    watch.poll([job(40000), job(40001, to=3, inode=101), job(40002, inode=102)], TARGETS, 3.0)
    assert watch.running(3.5) == {node(2): [2.5, 0.5], node(3): [2.5]}
    watch.poll([], TARGETS, 4.0)
    assert watch.running(4.0) == {}


def test_a_job_that_outlives_its_peers_reachability_is_never_counted() -> None:
    # Peer 2 goes silent (a cut link) at 0.5 with job 40000 open, and is back at 1.0;
    # the job ends at 1.5 after the link's stall.  Job 40001 starts while 2 is unreachable.
    # Job 40002 on peer 3 runs beside them and counts.
    watch = ConnectionWatch()
    other = job(40002, to=3, inode=102)
    readings = [
        ([], ()),
        ([job(40000), other], ()),
        ([job(40000), other], (node(2),)),
        ([job(40000), job(40001, inode=101), other], (node(2),)),
        ([job(40000), job(40001, inode=101), other], ()),
        ([job(40000), job(40001, inode=101)], ()),
        ([], ()),
    ]
    finished = []
    for index, (table, unreachable) in enumerate(readings):
        now = index * 0.25
        finished += watch.poll(table, TARGETS, now, unreachable)
        if index == 4:
            assert watch.running(now) == {node(3): [0.75]}  # nothing of peer 2's
    assert finished == [FinishedJob(node(3), 1.0)]
    assert watch.tracked == 0


def test_open_jobs_by_peer_and_disowned_ones_never_count() -> None:
    watch = ConnectionWatch()
    watch.poll([], TARGETS, 0.0)
    first, second, other = job(40000), job(40001, inode=101), job(40002, to=3, inode=102)
    watch.poll([first, second, other], TARGETS, 1.0)
    jobs = watch.open_jobs(2.0)
    assert {peer: sorted((key[1], age) for key, age in keys) for peer, keys in jobs.items()} == {
        node(2): [(40000, 1.0), (40001, 1.0)],
        node(3): [(40002, 1.0)],
    }
    taken = [key for key, _ in jobs[node(2)] if key[1] == 40001]
    watch.disown(taken)
    watch.disown(taken)  # twice, or a key no longer open: nothing more happens
    assert watch.running(2.0) == {node(2): [1.0], node(3): [1.0]}
    assert watch.tracked == 3  # still followed, to see it go
    assert watch.poll([first], TARGETS, 3.0) == [FinishedJob(node(3), 2.0)]
    assert watch.poll([], TARGETS, 4.0) == [FinishedJob(node(2), 3.0)]
    watch.disown(taken)
    assert watch.tracked == 0
