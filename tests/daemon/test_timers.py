"""The timer task hands the node the time whenever its deadline comes, at exactly then."""

from __future__ import annotations

import trio
import trio.testing

from p2pcc.core.model import NodeState
from p2pcc.core.node_change import Change
from p2pcc.daemon.changes import ChangeBoard
from p2pcc.daemon.timers import serve_timers
from tests.core.local_nodes import WALL, gossip, make_node
from tests.core.policies import default_timings


async def test_a_timed_pause_ends_on_time_without_any_gossip(
    autojump_clock: trio.testing.MockClock,
) -> None:
    board = ChangeBoard()
    node = make_node(1, board.notify)
    node.set_serving(True, 0.0)
    async with trio.open_nursery() as nursery:
        await nursery.start(serve_timers, node, board)
        await trio.sleep(5.0)
        with board.subscribe(Change.PAUSE) as pause_changes:
            node.pause_for(30.0, "meeting", uid=0, now=trio.current_time(), wall=WALL)
            await pause_changes.wait()  # the pause itself
            await pause_changes.wait()  # its end
        nursery.cancel_scope.cancel()
    assert (trio.current_time(), node.pause, node.status.state) == (35.0, None, NodeState.ACTIVE)


async def test_a_peer_that_joins_turns_suspect_then_dead_on_time(
    autojump_clock: trio.testing.MockClock,
) -> None:
    board = ChangeBoard()
    node, peer = make_node(1, board.notify), make_node(2)
    timings = default_timings()
    seen: list[tuple[float, str]] = []
    async with trio.open_nursery() as nursery:
        await nursery.start(serve_timers, node, board)
        await trio.sleep(2.0)
        with board.subscribe(Change.PEERS) as peer_changes:
            gossip(peer, node, trio.current_time())  # heard once at t=2, then never again
            for _ in range(3):
                await peer_changes.wait()
                seen.append((trio.current_time(), node.peers()[0].liveness.value))
        nursery.cancel_scope.cancel()
    assert seen == [
        (2.0, "alive"),
        (2.0 + timings.suspect_after, "suspect"),
        (2.0 + timings.dead_after, "dead"),
    ]
