"""The replay memory kept beside the node id: saved when it changes and at exit, restored
at start-up so that a restarted daemon still refuses what it saw before."""

from __future__ import annotations

import logging
import math
import os
import threading
from functools import partial
from pathlib import Path

import pytest
import trio

from p2pcc.core.errors import RejectedMessageError
from p2pcc.core.model import Message, MessageKind
from p2pcc.core.peers import PeerTable
from p2pcc.core.seen_orders import decode_seen_orders, encode_seen_orders
from p2pcc.daemon.stores.seen import (
    SAVE_INTERVAL,
    load_seen_orders,
    restore_seen_orders,
    seen_file,
    serve_seen_store,
)
from tests.core.policies import default_timings
from tests.daemon.stores.workers import in_place

OWN = bytes(16)


def node(n: int) -> bytes:
    return n.to_bytes(16, "big")


def leave(n: int, incarnation: int, sequence: int) -> Message:
    return Message(node(n), incarnation, sequence, 0.0, MessageKind.LEAVE)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return seen_file(tmp_path / "node-id")


def test_the_file_sits_beside_the_node_id() -> None:
    assert seen_file(Path("/var/lib/p2pcc/node-id")) == Path("/var/lib/p2pcc/seen")


def test_a_restored_table_refuses_what_the_earlier_run_saw(path: Path) -> None:
    before = PeerTable(OWN, default_timings())
    before.apply(leave(1, 4, 7), 0.0)
    path.write_bytes(encode_seen_orders(before.seen_orders()))
    after = PeerTable(OWN, default_timings())
    assert restore_seen_orders(after, path) == {node(1): (4, 7)}
    with pytest.raises(RejectedMessageError) as refused:
        after.apply(leave(1, 4, 7), 1.0)
    assert refused.value.reason == "replay"
    assert after.apply(leave(1, 4, 8), 1.0) == []  # newer: taken


def test_no_file_is_no_memory_and_no_warning(path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="p2pcc"):
        assert load_seen_orders(path) == {}
    assert caplog.records == []


@pytest.mark.parametrize("content", [b"", b"\xc1garbage", encode_seen_orders({})[:-1]])
def test_a_damaged_file_is_one_warning_and_no_memory(
    path: Path, caplog: pytest.LogCaptureFixture, content: bytes
) -> None:
    path.write_bytes(content)
    table = PeerTable(OWN, default_timings())
    with caplog.at_level(logging.INFO, logger="p2pcc"):
        assert restore_seen_orders(table, path) == {}
    (record,) = caplog.records
    assert record.levelno == logging.WARNING
    assert record.getMessage().startswith(f"ignoring the damaged replay memory {path}: ")
    assert table.seen_orders() == {}


def test_a_fifo_in_its_place_is_a_warning_not_a_hang(
    path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    os.mkfifo(path)
    done = threading.Event()
    result: list[object] = []

    def load() -> None:
        result.append(load_seen_orders(path))
        done.set()

    threading.Thread(target=load, daemon=True).start()
    assert done.wait(timeout=10), "reading the FIFO blocked"
    assert result == [{}]
    assert [record.getMessage() for record in caplog.records] == [
        f"cannot read the replay memory {path}; starting without it"
    ]


async def test_changes_are_saved_each_interval_and_at_exit(
    path: Path, autojump_clock: trio.abc.Clock
) -> None:
    table = PeerTable(OWN, default_timings())
    async with trio.open_nursery() as nursery:
        await nursery.start(partial(serve_seen_store, path, table.seen_orders, worker=in_place))
        table.apply(leave(1, 1, 1), 0.0)
        await trio.sleep(SAVE_INTERVAL / 2)
        assert not path.exists()  # not before the interval
        await trio.sleep(SAVE_INTERVAL)
        assert decode_seen_orders(path.read_bytes()) == {node(1): (1, 1)}
        written = path.stat().st_ino
        await trio.sleep(3 * SAVE_INTERVAL)
        assert path.stat().st_ino == written  # unchanged memory: not rewritten
        table.apply(leave(2, 1, 5), 0.0)
        nursery.cancel_scope.cancel()  # the daemon stops before the next interval
    assert decode_seen_orders(path.read_bytes()) == {node(1): (1, 1), node(2): (1, 5)}


async def test_what_was_on_disk_at_start_is_not_written_again(
    path: Path, autojump_clock: trio.abc.Clock
) -> None:
    table = PeerTable(OWN, default_timings())
    kept = {node(3): (2, 2)}
    path.write_bytes(encode_seen_orders(kept))
    restore_seen_orders(table, path)
    written = path.stat().st_ino
    async with trio.open_nursery() as nursery:
        store = partial(serve_seen_store, path, table.seen_orders, on_disk=kept, worker=in_place)
        await nursery.start(store)
        await trio.sleep(3 * SAVE_INTERVAL)
        nursery.cancel_scope.cancel()
    assert path.stat().st_ino == written


async def test_a_failing_save_is_logged_once_and_retried(
    tmp_path: Path, autojump_clock: trio.abc.Clock, caplog: pytest.LogCaptureFixture
) -> None:
    path = seen_file(tmp_path / "gone" / "node-id")  # its directory does not exist yet
    table = PeerTable(OWN, default_timings())
    table.apply(leave(1, 1, 1), 0.0)
    with caplog.at_level(logging.INFO, logger="p2pcc"):
        async with trio.open_nursery() as nursery:
            await nursery.start(partial(serve_seen_store, path, table.seen_orders, worker=in_place))
            await trio.sleep(3.5 * SAVE_INTERVAL)  # three failed saves
            path.parent.mkdir()
            await trio.sleep(SAVE_INTERVAL)
            nursery.cancel_scope.cancel()
    assert decode_seen_orders(path.read_bytes()) == {node(1): (1, 1)}
    messages = [(record.levelno, record.getMessage()) for record in caplog.records]
    assert [level for level, _ in messages] == [logging.ERROR, logging.INFO]
    assert messages[0][1] == f"cannot keep the replay memory in {path}: No such file or directory"
    assert messages[1][1] == f"the replay memory is kept in {path} again"


async def test_the_save_at_exit_is_made_in_a_worker_thread_and_waited_for(path: Path) -> None:
    table = PeerTable(OWN, default_timings())
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await nursery.start(
                partial(serve_seen_store, path, table.seen_orders, interval=math.inf)
            )
            table.apply(leave(1, 2, 3), 0.0)
            nursery.cancel_scope.cancel()  # the thread starts in a cancelled scope
    assert decode_seen_orders(path.read_bytes()) == {node(1): (2, 3)}
