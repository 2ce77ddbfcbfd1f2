"""A manual pause kept beside the node id: written on change, restored until it expires."""

from __future__ import annotations

import json
import logging
import math
import os
import threading
from functools import partial
from pathlib import Path

import pytest
import trio
import trio.testing
from hypothesis import given
from hypothesis import strategies as st

from p2pcc.core.model import NodeState
from p2pcc.core.node import LocalNode
from p2pcc.daemon.changes import ChangeBoard
from p2pcc.daemon.stores.pause import (
    MAX_FILE_BYTES,
    RETRY_INTERVAL,
    StoredPause,
    decode_pause,
    encode_pause,
    load_pause,
    pause_file,
    restore_pause,
    save_pause,
    serve_pause_store,
    stored_form,
)
from tests.core.local_nodes import WALL, make_node
from tests.daemon.stores.workers import in_place


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return pause_file(tmp_path / "node-id")


def test_the_file_sits_beside_the_node_id() -> None:
    assert pause_file(Path("/var/lib/p2pcc/node-id")) == Path("/var/lib/p2pcc/pause")


@given(
    st.text(max_size=20).filter(lambda text: len(text.encode()) <= 64),
    st.integers(0, 2**32 - 1),
    st.none() | st.floats(allow_nan=False, allow_infinity=False),
)
def test_a_pause_reads_back_as_written(reason: str, uid: int, until: float | None) -> None:
    pause = StoredPause(reason, uid, until)
    assert decode_pause(encode_pause(pause)) == pause


CORRUPT = [
    (b"", "not JSON"),
    (b"\xff\xfe", "not JSON"),
    (b"[]", "exactly by_uid, reason, until"),
    (b'{"reason": "x", "by_uid": 0}', "exactly by_uid, reason, until"),
    (b'{"reason": "x", "by_uid": 0, "until": null, "extra": 1}', "exactly"),
    (b'{"reason": 5, "by_uid": 0, "until": null}', "reason"),
    (json.dumps({"reason": "é" * 33, "by_uid": 0, "until": None}).encode(), "reason"),
    (b'{"reason": "", "by_uid": -1, "until": null}', "by_uid"),
    (b'{"reason": "", "by_uid": true, "until": null}', "by_uid"),
    (b'{"reason": "", "by_uid": 0, "until": "soon"}', "until"),
    (b'{"reason": "", "by_uid": 0, "until": NaN}', "until"),
    (b'{"reason": "", "by_uid": 0, "until": 1e999}', "until"),
    (b" " * (MAX_FILE_BYTES + 1), "larger than"),
]


@pytest.mark.parametrize(("data", "why"), CORRUPT)
def test_a_corrupt_file_is_refused_with_the_reason(data: bytes, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        decode_pause(data)


def test_a_corrupt_file_is_ignored_with_one_log_line_and_removed(
    path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path.write_bytes(b'{"reason": "meeting", "by_uid": 1000')
    with caplog.at_level(logging.INFO, logger="p2pcc"):
        assert load_pause(path, WALL) is None
    (record,) = caplog.records
    assert record.levelno == logging.WARNING
    assert f"ignoring and removing the corrupt pause file {path}: not JSON" in record.message
    assert not path.exists()


def test_no_file_means_no_pause(path: Path) -> None:
    assert load_pause(path, WALL) is None


def test_an_expired_pause_is_removed_and_an_open_one_restored(path: Path) -> None:
    save_pause(path, StoredPause("meeting", 1000, WALL + 60))
    assert load_pause(path, WALL + 59.5) == StoredPause("meeting", 1000, WALL + 60)
    assert path.exists()
    assert load_pause(path, WALL + 60) is None
    assert not path.exists()


def test_saving_replaces_the_file_whole_and_leaves_no_temporary(path: Path) -> None:
    save_pause(path, StoredPause("first", 1, None))
    save_pause(path, StoredPause("second", 2, WALL))
    assert json.loads(path.read_text()) == {"reason": "second", "by_uid": 2, "until": WALL}
    assert [p.name for p in path.parent.iterdir()] == ["pause"]
    assert path.stat().st_mode & 0o777 == 0o644
    save_pause(path, None)
    assert list(path.parent.iterdir()) == []
    save_pause(path, None)  # nothing to remove is fine


def test_a_failed_save_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    missing_dir = tmp_path / "gone" / "pause"
    with pytest.raises(FileNotFoundError):
        save_pause(missing_dir, StoredPause("x", 0, None))
    assert list(tmp_path.iterdir()) == []


def stored_form_of(node: LocalNode) -> StoredPause | None:
    return stored_form(node.pause)


def test_only_a_manual_pause_is_kept() -> None:
    node = make_node(1)
    assert stored_form(node.pause) is None
    node.auto_pause(0, 1.0)
    assert stored_form(node.pause) is None
    node.pause_for(60, "meeting", uid=1000, now=2.0, wall=WALL)
    assert stored_form(node.pause) == StoredPause("meeting", 1000, WALL + 60)


def test_restoring_pauses_the_node_until_the_same_wall_time(path: Path) -> None:
    save_pause(path, StoredPause("meeting", 1000, WALL + 600))
    node = make_node(1)
    kept = restore_pause(node, path, now=5.0, wall=WALL + 100)
    assert kept == StoredPause("meeting", 1000, WALL + 600)
    assert node.pause is not None
    assert (node.pause.by_uid, node.pause.reason) == (1000, "meeting")
    assert node.pause.until == pytest.approx(505.0)
    assert node.pause.until_wall == pytest.approx(WALL + 600)
    assert node.status.state is NodeState.PAUSED


def test_an_untimed_pause_is_restored_untimed(path: Path) -> None:
    save_pause(path, StoredPause("", 0, None))
    node = make_node(1)
    restore_pause(node, path, now=5.0, wall=WALL)
    assert node.pause is not None
    assert (node.pause.until, node.pause.until_wall) == (None, None)


async def test_the_file_follows_the_nodes_pause(path: Path, autojump_clock: trio.abc.Clock) -> None:
    board = ChangeBoard()
    node = make_node(1, board.notify)
    async with trio.open_nursery() as nursery:
        current = partial(stored_form_of, node)
        await nursery.start(partial(serve_pause_store, path, current, board, worker=in_place))
        node.pause_for(600, "meeting", uid=1000, now=trio.current_time(), wall=WALL)
        await trio.sleep(0.01)
        assert decode_pause(path.read_bytes()) == StoredPause("meeting", 1000, WALL + 600)
        node.resume(trio.current_time())
        await trio.sleep(0.01)
        assert not path.exists()
        node.auto_pause(0, trio.current_time())
        await trio.sleep(0.01)
        assert not path.exists()
        node.pause_for(30, "replaces the automatic one", uid=7, now=trio.current_time(), wall=WALL)
        await trio.sleep(0.01)
        assert decode_pause(path.read_bytes()).by_uid == 7
        node.handle_timer(math.inf)  # expires
        await trio.sleep(0.01)
        assert not path.exists()
        nursery.cancel_scope.cancel()


async def test_a_failing_save_is_logged_once_and_retried(
    path: Path, autojump_clock: trio.abc.Clock, caplog: pytest.LogCaptureFixture
) -> None:
    board = ChangeBoard()
    node = make_node(1, board.notify)
    attempts: list[StoredPause | None] = []

    def save(target: Path, pause: StoredPause | None) -> None:
        attempts.append(pause)
        if len(attempts) <= 3:
            raise OSError(28, "No space left on device")
        save_pause(target, pause)

    async with trio.open_nursery() as nursery:
        await nursery.start(
            lambda task_status: serve_pause_store(
                path,
                partial(stored_form_of, node),
                board,
                save=save,
                worker=in_place,
                task_status=task_status,
            )
        )
        node.pause_for(None, "benchmark", uid=0, now=trio.current_time(), wall=WALL)
        await trio.sleep(3 * RETRY_INTERVAL + 1)  # retried while failing, then no more
        nursery.cancel_scope.cancel()
    assert len(attempts) == 4
    assert decode_pause(path.read_bytes()) == StoredPause("benchmark", 0, None)
    errors = [r.message for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [f"cannot keep the pause in {path}: No space left on device"]


async def test_a_slow_save_leaves_the_event_loop_free_and_changes_meanwhile_coalesce(
    path: Path,
) -> None:
    board = ChangeBoard()
    node = make_node(1, board.notify)
    first_save_started = trio.Event()
    release = threading.Event()
    send_saved, saved = trio.open_memory_channel[StoredPause | None](math.inf)

    def save(target: Path, pause: StoredPause | None) -> None:
        # from_thread works only in a worker thread: on the event loop it would raise.
        if not first_save_started.is_set():
            trio.from_thread.run_sync(first_save_started.set)
            assert release.wait(10)
        save_pause(target, pause)
        trio.from_thread.run_sync(send_saved.send_nowait, pause)

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            current = partial(stored_form_of, node)
            await nursery.start(partial(serve_pause_store, path, current, board, save=save))
            for n, reason in enumerate(("first", "second", "third")):
                node.pause_for(60, reason, uid=n, now=trio.current_time(), wall=WALL)
                if n == 0:
                    await first_save_started.wait()  # the save hangs; the loop does not
            release.set()
            writes = [await saved.receive(), await saved.receive()]
            await trio.testing.wait_all_tasks_blocked()
            nursery.cancel_scope.cancel()
    assert [pause.reason if pause else None for pause in writes] == ["first", "third"]
    assert saved.statistics().current_buffer_used == 0  # "second" was never written
    assert decode_pause(path.read_bytes()).reason == "third"


@pytest.mark.parametrize("kind", ["fifo", "link"])
def test_a_fifo_or_link_in_its_place_is_a_warning_not_a_hang(
    path: Path, caplog: pytest.LogCaptureFixture, kind: str
) -> None:
    if kind == "fifo":
        os.mkfifo(path)
    else:
        elsewhere = path.with_name("elsewhere")
        save_pause(elsewhere, StoredPause("planted", 0, None))
        path.symlink_to(elsewhere)
    done = threading.Event()
    result: list[object] = []

    def load() -> None:
        result.append(load_pause(path, WALL))
        done.set()

    threading.Thread(target=load, daemon=True).start()
    assert done.wait(timeout=10), "reading the pause file blocked"
    assert result == [None]
    assert [record.getMessage() for record in caplog.records] == [
        f"cannot read the kept pause {path} (not a regular file); not restoring it"
    ]
