"""The state file is written at start, when its content changes, at least every period,
and removed at exit."""

from __future__ import annotations

from dataclasses import replace
from functools import partial
from pathlib import Path

import trio
import trio.testing

from p2pcc import statefile
from p2pcc.core.metrics import GIB, LocalMetrics
from p2pcc.core.node import LocalNode
from p2pcc.daemon.changes import ChangeBoard
from p2pcc.daemon.state_writer import serve_state_file
from tests.core.local_nodes import FP, gossip, make_node

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
