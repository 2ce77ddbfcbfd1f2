"""The state file is written at start, when its content changes, at least every period,
and removed at exit."""

from __future__ import annotations

from dataclasses import replace
from functools import partial
from pathlib import Path

import trio
import trio.testing

from p2pcc import statefile
from p2pcc.core.gossip_types import Transport
from p2pcc.core.metrics import GIB, LocalMetrics
from p2pcc.core.node import LocalNode
from p2pcc.daemon.changes import ChangeBoard
from p2pcc.daemon.state_writer import serve_state_file
from tests.core.local_nodes import FP, WALL, gossip, make_node

IDLE = LocalMetrics(
    cpus=2, load_raw=0.0, served_load=0.0, foreign_load=0.0, mem_available=8 * GIB, jobs=0, slots=2
)


class Recorder:
    """A `write` for the state writer that keeps (virtual time, text) of each call."""

    def __init__(self) -> None:
        self.writes: list[tuple[float, str]] = []

    async def __call__(self, path: Path, text: str) -> None:
        self.writes.append((trio.current_time(), text))

    def times(self) -> list[float]:
        return [round(t, 3) for t, _ in self.writes]


def served_node(board: ChangeBoard) -> tuple[LocalNode, LocalNode]:
    """Our node, and a peer it can hear."""
    node, peer = make_node(1, board.notify), make_node(2)
    peer.set_serving(True, 0.0)
    return node, peer


async def test_writes_at_start_when_the_content_changes_and_every_period(
    autojump_clock: trio.testing.MockClock,
) -> None:
    board = ChangeBoard()
    node, peer = served_node(board)
    other = make_node(3)
    other.set_serving(True, 0.0)
    other.set_measurements(IDLE, 0.0)  # two slots
    record = Recorder()
    async with trio.open_nursery() as nursery:
        await nursery.start(
            partial(serve_state_file, node, board, Path("unused"), period=3.0, write=record)
        )
        await trio.sleep(10.0)
        gossip(peer, node, trio.current_time())  # a new peer in the line at t=10
        await trio.sleep(0.05)
        gossip(other, node, trio.current_time())  # a burst: waits for min_gap
        await trio.sleep(3.5)
        nursery.cancel_scope.cancel()
    # Every 3 s; at once on a change; the burst's second change waits for min_gap
    # (0.1 s); then the period runs from the last write.
    assert record.times() == [0.0, 3.0, 6.0, 9.0, 10.0, 10.1, 13.1]
    lines = [statefile.parse(text) for _, text in record.writes]
    assert lines[0] is not None
    assert lines[0][1] == {FP: (4, "localhost/4")}
    assert lines[-1] is not None
    assert lines[-1][1][FP][0] == 4 + 4 + 2


async def test_a_change_that_leaves_every_line_as_it_was_writes_nothing(
    autojump_clock: trio.testing.MockClock,
) -> None:
    board = ChangeBoard()
    node, peer = served_node(board)
    gossip(peer, node, 0.0)
    record = Recorder()
    async with trio.open_nursery() as nursery:
        await nursery.start(
            partial(serve_state_file, node, board, Path("unused"), period=3.0, write=record)
        )
        for step in range(1, 20):  # a load that wanders, but never enough to reorder
            await trio.sleep(0.1)
            peer.set_measurements(replace(IDLE, slots=4, foreign_load=step / 100), 0.0)
            peer.datagram_to_send(0.0, 0.0)  # keep the sender's schedule out of the way
            gossip(peer, node, trio.current_time())
        await trio.sleep(1.0)
        nursery.cancel_scope.cancel()
    assert record.times() == [0.0]  # nothing new within the period


class Speaker:
    """A peer whose every datagram reaches our node at once: its own clock runs one
    gossip interval per datagram, so one is always due, whatever the virtual time."""

    def __init__(self, index: int, node: LocalNode) -> None:
        self.peer, self.node, self.clock = make_node(index), node, 0.0
        self.peer.set_serving(True, 0.0)
        self.address = (self.peer.status.addresses[0], 3634)

    def say(self, load: float | None = None) -> None:
        """Send our node the peer's status, with `load` when given."""
        self.clock += 2.0
        if load is not None:
            sample = replace(IDLE, cpus=4, slots=4, foreign_load=load, mem_available=16 * GIB)
            self.peer.set_measurements(sample, self.clock)
        outgoing = self.peer.datagram_to_send(self.clock, WALL + self.clock)
        assert outgoing is not None
        self.node.receive(outgoing.data, self.address, Transport.MULTICAST, trio.current_time())


async def test_a_moving_load_reaches_the_file_at_most_once_a_second(
    autojump_clock: trio.testing.MockClock,
) -> None:
    board = ChangeBoard()
    node = make_node(1, board.notify)
    peer, newcomer = Speaker(2, node), Speaker(3, node)
    peer.say(load=0.0)  # ahead of localhost (a job there: 1.0, here: 0.5)
    record = Recorder()
    async with trio.open_nursery() as nursery:
        await nursery.start(
            partial(serve_state_file, node, board, Path("unused"), period=3.0, write=record)
        )
        for at, load in [(1.0, 8.0), (1.2, 0.0), (2.1, 8.0), (3.3, 0.0), (3.45, 8.0)]:
            await trio.sleep_until(at)
            peer.say(load)  # busy: a job there gets a third of a CPU, behind localhost
            if at == 3.3:
                await trio.sleep(0.1)
                newcomer.say()  # a peer joins: within min_gap of the last look
        await trio.sleep_until(5.0)
        nursery.cancel_scope.cancel()
    # 1.0: the last look was a second ago, at once; 2.0 and 3.0: a second after the
    # look before; 3.4: the newcomer, 0.1 s after the last look, with the load of 3.3;
    # 4.4: the load of 3.45, a second after that look.
    assert record.times() == [0.0, 1.0, 2.0, 3.0, 3.4, 4.4]
    assert hosts_lines(record) == [
        "10.0.0.2:3632/4 localhost/4",
        "localhost/4 10.0.0.2:3632/4",
        "10.0.0.2:3632/4 localhost/4",
        "localhost/4 10.0.0.2:3632/4",
        "10.0.0.3:3632/4 10.0.0.2:3632/4 localhost/4",
        "10.0.0.3:3632/4 localhost/4 10.0.0.2:3632/4",
    ]


async def test_a_peer_pausing_reaches_the_file_within_min_gap_after_a_load_look(
    autojump_clock: trio.testing.MockClock,
) -> None:
    board = ChangeBoard()
    node = make_node(1, board.notify)
    peer = Speaker(2, node)
    peer.say(load=0.0)
    record = Recorder()
    async with trio.open_nursery() as nursery:
        await nursery.start(
            partial(serve_state_file, node, board, Path("unused"), period=3.0, write=record)
        )
        await trio.sleep_until(1.0)
        peer.say(load=8.0)  # looked at at once: the last look was a second ago
        await trio.sleep_until(1.05)
        peer.peer.pause_for(None, "meeting", 1000, peer.clock, WALL)
        peer.say()  # paused: out of the line, 0.1 s after the look at 1.0
        await trio.sleep_until(1.5)
        peer.peer.resume(peer.clock)
        peer.say()  # back at once
        await trio.sleep_until(2.0)
        nursery.cancel_scope.cancel()
    assert record.times() == [0.0, 1.0, 1.1, 1.5]
    assert hosts_lines(record)[2:] == ["localhost/4", "localhost/4 10.0.0.2:3632/4"]


async def test_our_own_change_reaches_the_file_within_min_gap_after_a_load_look(
    autojump_clock: trio.testing.MockClock,
) -> None:
    board = ChangeBoard()
    node = make_node(1, board.notify)
    peer = Speaker(2, node)
    peer.say(load=0.0)
    record = Recorder()
    async with trio.open_nursery() as nursery:
        await nursery.start(
            partial(serve_state_file, node, board, Path("unused"), period=3.0, write=record)
        )
        await trio.sleep_until(1.0)
        peer.say(load=8.0)
        await trio.sleep_until(1.02)
        node.set_compilers([], trio.current_time())  # no compiler left: no line at all
        await trio.sleep_until(2.0)
        nursery.cancel_scope.cancel()
    assert record.times() == [0.0, 1.0, 1.1]
    state = statefile.parse(record.writes[-1][1])
    assert state is not None
    assert state[1:] == ({}, {}, {})


def hosts_lines(record: Recorder) -> list[str]:
    """Our compiler's DISTCC_HOSTS line in each file written."""
    parsed = [statefile.parse(text) for _, text in record.writes]
    return [state[1][FP][1] for state in parsed if state is not None]


async def test_real_file_is_replaced_and_removed_at_exit(tmp_path: Path) -> None:
    path = tmp_path / "state"
    board = ChangeBoard()
    node = make_node(1, board.notify)
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await nursery.start(partial(serve_state_file, node, board, path, period=0.05))
            first = statefile.read(str(path))
            assert first is not None
            while (current := statefile.read(str(path))) is None or current[0] == first[0]:
                await trio.sleep(0.01)
            nursery.cancel_scope.cancel()
    assert not path.exists()  # compiles go local at once when the daemon stops
