"""Two gossip tasks on loopback exchange real datagrams through real sockets."""

from __future__ import annotations

import ipaddress
import logging
import socket

import pytest
import trio

from p2pcc.core.model import NodeState
from p2pcc.daemon.gossip import GossipEndpoint, MembershipLog, serve_gossip
from tests.daemon.test_node import WALL, make_node

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
    alpha, beta = make_node(1), make_node(2)
    for node in (alpha, beta):
        node.set_serving(True, trio.current_time())
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            await nursery.start(
                serve_gossip, alpha, GossipEndpoint(GROUP, port, 1, lo, "127.0.0.2")
            )
            beta_scope = trio.CancelScope()

            async def run_beta(*, task_status: trio.TaskStatus[None]) -> None:
                with beta_scope:
                    endpoint = GossipEndpoint(GROUP, port, 1, lo, "127.0.0.3")
                    await serve_gossip(beta, endpoint, task_status=task_status)

            await nursery.start(run_beta)
            await wait_for(lambda: beta.engine.node_id in alpha.engine.table, "alpha hears beta")
            await wait_for(lambda: alpha.engine.node_id in beta.engine.table, "beta hears alpha")

            beta.pause(None, "lunch", uid=0, now=trio.current_time(), wall=WALL)

            def alpha_sees_pause() -> bool:
                peer = alpha.engine.table.get(beta.engine.node_id)
                return peer is not None and peer.status.state is NodeState.PAUSED

            await wait_for(alpha_sees_pause, "alpha sees the pause")
            beta_scope.cancel()
            await wait_for(lambda: beta.engine.node_id not in alpha.engine.table, "leave")
            stats = alpha.engine.statistics(trio.current_time())
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
