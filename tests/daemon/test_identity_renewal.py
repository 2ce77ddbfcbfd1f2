"""The identity task: one log line per machine found under our id, and the new id taken,
gossiped and kept on disk when it is ours to take."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

import pytest
import trio
import trio.testing

from p2pcc.core.node import LocalNode
from p2pcc.daemon.changes import ChangeBoard
from p2pcc.daemon.identity_renewal import (
    RENEWAL_GAP,
    Store,
    serve_identity_renewal,
    store_in_thread,
)
from p2pcc.daemon.stores.identity import IdentityError, load_node_id
from tests.core.clones import SHARED, clone
from tests.core.local_nodes import gossip


class Disk:
    """A fake `store`: what was written where, or an IdentityError when `broken`."""

    def __init__(self, broken: bool = False) -> None:
        self.written: list[tuple[Path, bytes]] = []
        self.broken = broken

    async def store(self, path: Path, node_id: bytes) -> None:
        if self.broken:
            raise IdentityError(f"{path}: cannot write the node id: Read-only file system")
        self.written.append((path, node_id))


@asynccontextmanager
async def renewing(
    make: Callable[[ChangeBoard], LocalNode], store: Store, id_file: Path
) -> AsyncIterator[LocalNode]:
    """A node made with `make(board)` and the identity task serving it."""
    board = ChangeBoard()
    node = make(board)
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            await nursery.start(partial(serve_identity_renewal, node, board, id_file, store=store))
            yield node
            nursery.cancel_scope.cancel()


def identity_lines(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    return [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "p2pcc.identity"]


def low(board: ChangeBoard) -> LocalNode:
    return clone(1, incarnation=5, on_change=board.notify)


def high(board: ChangeBoard) -> LocalNode:
    return clone(2, incarnation=7, on_change=board.notify)


async def test_the_lower_node_takes_a_new_id_keeps_it_and_says_so_once(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    disk, other = Disk(), high(ChangeBoard())
    async with renewing(low, disk.store, tmp_path / "node-id") as node:
        gossip(other, node, 1.0)
        await trio.testing.wait_all_tasks_blocked()
        assert (node.node_id, disk.written, identity_lines(caplog)) == (SHARED, [], [])
        gossip(node, other, 1.0)  # the gossip task answers under the shared id first
        await trio.testing.wait_all_tasks_blocked()
        new_id = node.node_id
        assert new_id != SHARED
        assert disk.written == [(tmp_path / "node-id", new_id)]
        assert node.datagram_to_send(1.0, 0.0) is not None  # gossiped at once
        gossip(other, node, 3.0)  # the old id is the other machine's alone now
        await trio.testing.wait_all_tasks_blocked()
        assert [peer.node_id for peer in node.peers()] == [SHARED]
    assert identity_lines(caplog) == [
        (
            logging.WARNING,
            f"the machine at 10.0.0.2 uses this node's id {SHARED.hex()} too (cloned from "
            f"one disk image?); this node takes the new id {new_id.hex()}",
        )
    ]


async def test_the_higher_node_keeps_its_id_and_says_so_once(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    disk, other = Disk(), low(ChangeBoard())
    async with renewing(high, disk.store, tmp_path / "node-id") as node:
        for now in (1.0, 3.0, 5.0):
            gossip(other, node, now)
            await trio.testing.wait_all_tasks_blocked()
        assert (node.node_id, disk.written) == (SHARED, [])
    assert identity_lines(caplog) == [
        (
            logging.WARNING,
            f"the machine at 10.0.0.1 uses this node's id {SHARED.hex()} too (cloned from "
            "one disk image?); it takes a new id",
        )
    ]


async def test_a_new_id_that_cannot_be_kept_is_an_error_and_used_anyway(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    other = high(ChangeBoard())
    async with renewing(low, Disk(broken=True).store, tmp_path / "node-id") as node:
        gossip(other, node, 1.0)
        gossip(node, other, 1.0)
        await trio.testing.wait_all_tasks_blocked()
        assert node.node_id != SHARED
    assert identity_lines(caplog)[-1] == (
        logging.ERROR,
        f"{tmp_path / 'node-id'}: cannot write the node id: Read-only file system; "
        "the new id lasts until the daemon stops",
    )


async def test_the_new_id_is_on_disk_for_the_next_start(tmp_path: Path) -> None:
    id_file = tmp_path / "node-id"
    id_file.write_text(SHARED.hex() + "\n")
    other = high(ChangeBoard())
    async with renewing(low, store_in_thread, id_file) as node:
        gossip(other, node, 1.0)
        gossip(node, other, 1.0)
        with trio.fail_after(10):
            while load_node_id(id_file) == SHARED:
                await trio.sleep(0.01)
        assert load_node_id(id_file) == node.node_id != SHARED


async def test_a_second_new_id_waits_for_the_renewal_gap(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    """A forger who copies each new id (an unkeyed pool) gets one renewal a minute."""
    renewed_at: list[float] = []

    async def store(path: Path, node_id: bytes) -> None:
        renewed_at.append(trio.current_time())

    board = ChangeBoard()
    node = low(board)
    task = partial(serve_identity_renewal, node, board, tmp_path / "node-id", store=store)
    with trio.fail_after(RENEWAL_GAP * 3):
        async with trio.open_nursery() as nursery:
            await nursery.start(task)
            await copied_twice(node, renewed_at)
            nursery.cancel_scope.cancel()
    assert renewed_at[1] - renewed_at[0] >= RENEWAL_GAP


async def copied_twice(node: LocalNode, renewed_at: list[float]) -> None:
    """The shared id found, then found again under the node's new id 10 s later."""
    await trio.sleep(1.0)
    other = high(ChangeBoard())
    gossip(other, node, trio.current_time())
    gossip(node, other, trio.current_time())
    while len(renewed_at) < 1:
        await trio.sleep(0.5)
    first_id = node.node_id
    await trio.sleep(10.0)
    copier = clone(3, node_id=first_id, incarnation=9)  # it copied our new id
    gossip(copier, node, trio.current_time())
    gossip(node, copier, trio.current_time())
    while len(renewed_at) < 2:
        await trio.sleep(0.5)
    assert node.node_id not in (SHARED, first_id)
