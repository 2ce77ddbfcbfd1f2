"""Two gossip tasks on loopback exchange real datagrams through real sockets."""

from __future__ import annotations

import ipaddress
import logging
import socket

import pytest
import trio

from p2pcc.core.model import NodeState
from p2pcc.core.node import LocalNode
from p2pcc.daemon.changes import ChangeBoard
from p2pcc.daemon.gossip import GossipEndpoint, MembershipLog, serve_gossip
from tests.core.local_nodes import WALL, make_node

GROUP = ipaddress.IPv4Address("239.192.74.70")


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def wait_for(predicate: object, what: str) -> None:
    assert callable(predicate)
    with trio.fail_after(10):
        while not predicate():
            await trio.sleep(0.02)


async def test_two_nodes_meet_see_a_pause_and_a_leave() -> None:
    port = free_udp_port()
    lo = socket.if_nametoindex("lo")
    alpha_board, beta_board = ChangeBoard(), ChangeBoard()
    alpha, beta = make_node(1, alpha_board.notify), make_node(2, beta_board.notify)
    for node in (alpha, beta):
        node.set_serving(True, trio.current_time())

    def knows(node: LocalNode, other: LocalNode) -> bool:
        return any(peer.node_id == other.node_id for peer in node.peers())

    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            await nursery.start(
                serve_gossip, alpha, GossipEndpoint(GROUP, port, 1, lo, "127.0.0.2"), alpha_board
            )
            beta_scope = trio.CancelScope()

            async def run_beta(*, task_status: trio.TaskStatus[None]) -> None:
                with beta_scope:
                    endpoint = GossipEndpoint(GROUP, port, 1, lo, "127.0.0.3")
                    await serve_gossip(beta, endpoint, beta_board, task_status=task_status)

            await nursery.start(run_beta)
            await wait_for(lambda: knows(alpha, beta), "alpha hears beta")
            await wait_for(lambda: knows(beta, alpha), "beta hears alpha")

            beta.pause_for(None, "lunch", uid=0, now=trio.current_time(), wall=WALL)

            def alpha_sees_pause() -> bool:
                return any(peer.status.state is NodeState.PAUSED for peer in alpha.peers())

            await wait_for(alpha_sees_pause, "alpha sees the pause")
            beta_scope.cancel()
            await wait_for(lambda: not knows(alpha, beta), "leave")
            stats = alpha.statistics(trio.current_time())
            assert stats.packets_in >= 2
            assert "bad-magic" not in stats.drops
            nursery.cancel_scope.cancel()


def test_membership_lines_beyond_the_budget_are_summed_up(caplog: pytest.LogCaptureFixture) -> None:
    membership = MembershipLog(budget=3, window=60.0)
    with caplog.at_level(logging.INFO, logger="p2pcc.gossip"):
        for index in range(10):
            membership.note(10.0 + index, "peer %s joined", f"ghost{index}")
        membership.note(69.999, "peer %s left", "ghost0")
        assert [r.getMessage() for r in caplog.records] == [
            "peer ghost0 joined",
            "peer ghost1 joined",
            "peer ghost2 joined",
        ]
        membership.note(70.0, "peer %s joined", "beta")  # a new window
    assert [r.getMessage() for r in caplog.records[3:]] == [
        "8 more peers joined or left in 60 s (not logged one by one)",
        "peer beta joined",
    ]
