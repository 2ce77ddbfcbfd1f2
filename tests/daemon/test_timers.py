"""The timer task hands the node the time whenever its deadline comes, at exactly then."""

from __future__ import annotations

from collections.abc import Callable

import trio
import trio.testing

from p2pcc.core.liveness import SUSPICION_TIMEOUT
from p2pcc.core.model import NodeState
from p2pcc.core.node import LocalNode
from p2pcc.core.node_change import Change
from p2pcc.core.probing import PROBE_ATTEMPTS, PROBE_INTERVAL, PROBE_TIMEOUT
from p2pcc.daemon.changes import ChangeBoard
from p2pcc.daemon.timers import serve_timers
from tests.core.local_nodes import WALL, gossip, gossip_as_one_zero, make_node
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


async def liveness_seen(
    deliver: Callable[[LocalNode, LocalNode, float], None],
) -> list[tuple[float, str]]:
    """The liveness of a peer heard once at t=2 and never again, as it changes."""
    board = ChangeBoard()
    node, peer = make_node(1, board.notify), make_node(2)
    seen: list[tuple[float, str]] = []
    async with trio.open_nursery() as nursery:
        await nursery.start(serve_timers, node, board)
        await trio.sleep(2.0)
        with board.subscribe(Change.PEERS) as peer_changes:
            deliver(peer, node, trio.current_time())
            for _ in range(3):
                await peer_changes.wait()
                seen.append((trio.current_time(), node.peers()[0].liveness.value))
        nursery.cancel_scope.cancel()
    return seen


async def test_a_one_zero_peer_that_joins_turns_suspect_then_dead_on_silence(
    autojump_clock: trio.testing.MockClock,
) -> None:
    timings = default_timings()
    assert await liveness_seen(gossip_as_one_zero) == [
        (2.0, "alive"),
        (2.0 + timings.suspect_after, "suspect"),
        (2.0 + timings.dead_after, "dead"),
    ]


async def test_a_peer_that_answers_no_probe_is_suspected_then_dead_sooner(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Watched from the first timer after it joined: the first probe half an interval
    # later (the one watched member is staggered to the middle), then every attempt's
    # timeout; the suspicion stands for `suspicion_timeout`.
    silent = 2.0 + PROBE_INTERVAL / 2 + PROBE_ATTEMPTS * PROBE_TIMEOUT
    assert await liveness_seen(gossip) == [
        (2.0, "alive"),
        (silent, "suspect"),
        (silent + SUSPICION_TIMEOUT, "dead"),
    ]
