"""The door task keeps nft's sets in step with the pool, on time, and survives nft failing."""

from __future__ import annotations

import ipaddress
import json
import logging
from collections.abc import Sequence
from dataclasses import replace

import pytest
import trio
import trio.testing

from p2pcc.config.model import DistccdConfig
from p2pcc.core.door import DoorPolicy, DoorReport
from p2pcc.daemon.changes import ChangeBoard
from p2pcc.daemon.distccd.supervisor import DistccdState
from p2pcc.daemon.door import (
    COUNTER_PERIOD,
    RETRY_DELAY,
    DoorError,
    open_door,
    serve_door,
    serve_no_distccd,
)
from p2pcc.daemon.timers import serve_timers
from tests.core.local_nodes import gossip, gossip_as_one_zero, make_node
from tests.core.policies import default_timings

POLICY = DoorPolicy(3632, (ipaddress.ip_network("192.168.5.0/24"),))


class FakeNft:
    """Records each script with the time it ran; fails while `failing`."""

    def __init__(self) -> None:
        self.runs: list[tuple[float, str]] = []
        self.failing = 0
        self.refused = 0

    async def __call__(self, args: Sequence[str], script: str) -> str:
        if "counter" in args:
            counter = {"name": "refused", "packets": self.refused}
            return json.dumps({"nftables": [{"counter": counter}]})
        if self.failing:
            self.failing -= 1
            raise DoorError("Error: Operation not permitted")
        self.runs.append((trio.current_time(), script))
        return ""

    def scripts(self) -> list[str]:
        return [script for _, script in self.runs]


async def test_the_door_is_set_up_before_and_removed_after_the_block(
    autojump_clock: trio.testing.MockClock,
) -> None:
    nft, reports = FakeNft(), list[DoorReport]()
    async with open_door(POLICY, reports.append, nft) as door:
        assert door.up
        assert nft.scripts()[0].startswith("table inet p2pcc_door_3632\ndelete table")
        assert "ip saddr { 192.168.5.0/24 } accept" in nft.scripts()[0]
    assert nft.scripts()[-1] == "table inet p2pcc_door_3632\ndelete table inet p2pcc_door_3632\n"
    assert reports[-1] == DoorReport("p2pcc_door_3632", 0, 0, ("192.168.5.0/24",), None)


async def test_a_door_that_cannot_be_set_up_says_why_and_is_still_removed(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    nft, reports = FakeNft(), list[DoorReport]()
    nft.failing = 1
    ups = []

    async def fail_inside() -> None:
        async with open_door(POLICY, reports.append, nft) as door:
            ups.append(door.up)
            raise RuntimeError("the daemon failed")

    with pytest.raises(RuntimeError, match="the daemon failed"):
        await fail_inside()
    assert ups == [False]
    assert reports[-1].problem is not None
    assert "CAP_NET_ADMIN" in reports[-1].problem
    assert nft.scripts() == ["table inet p2pcc_door_3632\ndelete table inet p2pcc_door_3632\n"]
    assert "distccd will not serve" in caplog.text


async def test_an_unkeyed_pools_door_says_it_is_open(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    async with open_door(replace(POLICY, keyed=False), list[DoorReport]().append, FakeNft()):
        pass
    assert "unkeyed pool: distccd's door is open to everyone" in caplog.text


async def test_members_are_admitted_at_once_and_dropped_when_declared_dead(
    autojump_clock: trio.testing.MockClock,
) -> None:
    board, nft = ChangeBoard(), FakeNft()
    node, other = make_node(1, board.notify), make_node(2)
    async with open_door(POLICY, node.reports.set_door, nft) as door, trio.open_nursery() as n:
        await n.start(serve_timers, node, board)
        await n.start(serve_door, door, node, board)
        await trio.sleep(1.0)
        gossip_as_one_zero(other, node, trio.current_time())  # at t=1, then never again
        await trio.sleep(30.0)
        n.cancel_scope.cancel()
    dead_at = 1.0 + default_timings().dead_after
    assert nft.runs[1:3] == [
        (1.0, "add element inet p2pcc_door_3632 members_v4 { 10.0.0.2 }\n"),
        (dead_at, "delete element inet p2pcc_door_3632 members_v4 { 10.0.0.2 }\n"),
    ]
    assert len(nft.runs) == 4  # and the table removed at the end
    assert node.reports.door == DoorReport("p2pcc_door_3632", 0, 0, ("192.168.5.0/24",))


async def test_a_failed_update_is_logged_once_and_retried_with_a_resync(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    board, nft = ChangeBoard(), FakeNft()
    node, other = make_node(1, board.notify), make_node(2)
    caplog.set_level(logging.INFO, "p2pcc.daemon.door")
    async with open_door(POLICY, node.reports.set_door, nft) as door, trio.open_nursery() as n:
        await n.start(serve_door, door, node, board)
        nft.failing = 3
        gossip(other, node, trio.current_time())
        await trio.sleep(10 * RETRY_DELAY)
        n.cancel_scope.cancel()
    assert nft.runs[1] == (
        3 * RETRY_DELAY,
        "flush set inet p2pcc_door_3632 members_v4\n"
        "add element inet p2pcc_door_3632 members_v4 { 10.0.0.2 }\n"
        "flush set inet p2pcc_door_3632 members_v6\n",
    )
    assert caplog.text.count("cannot update distccd's door") == 1
    assert "up to date again" in caplog.text
    assert node.reports.door is not None
    assert node.reports.door.members == 1


async def test_the_refusal_counter_is_read_for_status(
    autojump_clock: trio.testing.MockClock,
) -> None:
    board, nft = ChangeBoard(), FakeNft()
    node = make_node(1, board.notify)
    async with open_door(POLICY, node.reports.set_door, nft) as door, trio.open_nursery() as n:
        await n.start(serve_door, door, node, board)
        nft.refused = 4
        await trio.sleep(COUNTER_PERIOD + 0.5)
        assert node.reports.door is not None
        assert node.reports.door.refused == 4
        assert node.snapshot(trio.current_time(), 0.0)["node"]["door"]["refused"] == 4
        n.cancel_scope.cancel()


async def test_without_a_door_distccd_is_not_started_and_the_node_offers_no_slots(
    autojump_clock: trio.testing.MockClock,
) -> None:
    node = make_node(1)
    node.set_serving(True, 0.0)
    config = DistccdConfig(
        manage=True, port=3632, allow=(), allow_stock_clients=(), jobs=0, nice=10, user="distccd"
    )
    async with trio.open_nursery() as nursery:
        state: DistccdState = await nursery.start(
            lambda task_status: serve_no_distccd(
                config,
                listen="10.0.0.1",
                on_serving=lambda serving: node.set_serving(serving, trio.current_time()),
                interface="eth0",
                task_status=task_status,
            )
        )
        nursery.cancel_scope.cancel()
    assert (state.pid, state.serving, node.serving, node.status.slots) == (None, False, False, 0)
