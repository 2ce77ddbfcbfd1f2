"""The discovery task publishes under the node's current id: a node that takes a new id
(a cloned machine) is published under it at once, without the failure back-off."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing

from p2pcc.daemon.changes import ChangeBoard
from p2pcc.daemon.mdns import discovery
from tests.core.local_nodes import make_node


async def test_a_new_node_id_is_published_at_once(
    autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    published: list[tuple[float, bytes]] = []

    async def fake_serve_mdns(*, node_id: bytes, task_status: Any, **_: Any) -> None:
        published.append((trio.current_time(), node_id))
        task_status.started(None)
        await trio.sleep_forever()

    monkeypatch.setattr(discovery, "serve_mdns", fake_serve_mdns)
    board = ChangeBoard()
    node = make_node(1, board.notify)
    async with trio.open_nursery() as nursery:
        await nursery.start(
            lambda task_status: discovery.serve_discovery(
                node,
                board,
                addresses=["10.0.0.1"],
                hostname="ws1",
                gossip_port=3634,
                task_status=task_status,
            )
        )
        await trio.sleep(10)
        node.renew_identity(b"\x09" * 16, trio.current_time())
        await trio.sleep(1)
        nursery.cancel_scope.cancel()
    assert published == [(0.0, b"\x01" * 16), (10.0, b"\x09" * 16)]
