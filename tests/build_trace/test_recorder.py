"""The recorder on state files the test writes: only files of processes under the root
pid, only regular files of ours, garbage kept as "present"; the poll loop on a virtual
clock; the trace written atomically or a clear error."""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
import trio

from p2pcc.build_trace import recorder
from p2pcc.build_trace.recorder import (
    Ancestry,
    TraceRecorder,
    read_state_file,
    write_trace,
)
from p2pcc.core.distcc_state import MAGIC, STATE_SIZE, Phase
from p2pcc.core.errors import P2pccError

T = TypeVar("T")
ME = os.getpid()


def state_bytes(pid: int, file: bytes, host: bytes, phase: Phase = Phase.COMPILE) -> bytes:
    return struct.pack("@NLL128s128siiP", STATE_SIZE, MAGIC, pid, file, host, 0, phase, 0)


@pytest.fixture
def distcc_dir(tmp_path: Path) -> Path:
    (tmp_path / "state").mkdir()
    return tmp_path


def write_state(distcc_dir: Path, pid: int, data: bytes) -> Path:
    path = distcc_dir / "state" / f"binstate_{pid}"
    path.write_bytes(data)
    return path


def test_only_compiles_under_the_root_pid_are_read(distcc_dir: Path) -> None:
    write_state(distcc_dir, ME, state_bytes(ME, b"mine.c", b"localhost"))
    write_state(distcc_dir, 1, state_bytes(1, b"init.c", b"localhost"))  # not under us
    (distcc_dir / "state" / "notes.txt").write_text("hello")
    scan = TraceRecorder(distcc_dir, ME, lambda: None).scan()
    assert [(o.pid, o.file, o.host, o.phase) for o in scan.seen] == [
        (ME, "mine.c", "localhost", Phase.COMPILE)
    ]
    assert scan.seen[0].started is not None
    assert scan.present == []


def test_a_parent_of_the_root_is_not_under_it() -> None:
    assert Ancestry(ME).member(ME) is not None
    assert Ancestry(ME).member(os.getppid()) is None
    assert Ancestry(os.getppid()).member(ME) is not None
    assert Ancestry(ME).member(2**22 + 1) is None  # no such process


def test_garbage_or_a_half_written_file_keeps_the_compile_present(distcc_dir: Path) -> None:
    write_state(distcc_dir, ME, b"")
    assert TraceRecorder(distcc_dir, ME, lambda: None).scan().present == [ME]
    write_state(distcc_dir, ME, state_bytes(ME, b"a.c", b"localhost")[:100])
    assert TraceRecorder(distcc_dir, ME, lambda: None).scan().present == [ME]


def test_a_file_written_for_another_pid_is_ignored(distcc_dir: Path) -> None:
    write_state(distcc_dir, ME, state_bytes(ME + 1, b"a.c", b"localhost"))
    scan = TraceRecorder(distcc_dir, ME, lambda: None).scan()
    assert (scan.seen, scan.present) == ([], [])


def test_a_remote_compile_without_a_file_name_takes_it_from_the_command_line(
    distcc_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_state(distcc_dir, ME, state_bytes(ME, b"", b"localhost", Phase.CPP))
    monkeypatch.setattr(recorder, "_read_proc", fake_proc(b"distcc\0gcc\0-c\0src/x.c\0"))
    (seen,) = TraceRecorder(distcc_dir, ME, lambda: None).scan().seen
    assert seen.file == "x.c"


def fake_proc(cmdline: bytes) -> Callable[[int, str, int], bytes | None]:
    real = recorder._read_proc

    def read(pid: int, name: str, limit: int) -> bytes | None:
        return cmdline if name == "cmdline" else real(pid, name, limit)

    return read


def test_links_fifos_and_other_users_files_are_not_read(tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.write_bytes(b"x")
    (tmp_path / "link").symlink_to(target)
    os.mkfifo(tmp_path / "fifo")  # a blocking open would hang the poll
    assert read_state_file(str(tmp_path / "link"), os.geteuid()) is None
    assert read_state_file(str(tmp_path / "fifo"), os.geteuid()) is None
    assert read_state_file(str(target), os.geteuid() + 1) is None
    assert read_state_file(str(target), os.geteuid()) == b"x"
    target.write_bytes(b"y" * 10_000)
    assert read_state_file(str(target), os.geteuid()) == b"y" * (STATE_SIZE + 1)


def test_a_missing_state_directory_is_an_empty_poll(tmp_path: Path) -> None:
    scan = TraceRecorder(tmp_path / "nowhere", ME, lambda: None).scan()
    assert (scan.seen, scan.present) == ([], [])


async def run_here(function: Callable[[], T]) -> T:
    """`trio.to_thread.run_sync` without the thread, so the virtual clock stays exact."""
    return function()


async def test_polls_every_period_and_ends_a_compile_at_the_poll_that_missed_it(
    distcc_dir: Path, monkeypatch: pytest.MonkeyPatch, autojump_clock: trio.abc.Clock
) -> None:
    monkeypatch.setattr(trio.to_thread, "run_sync", run_here)
    slots = iter([4, 4, 6, None, 6, 6, 6, 6, 6, 6])
    trace = TraceRecorder(distcc_dir, ME, lambda: next(slots), period=0.05)
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            start = trio.current_time()
            state = write_state(distcc_dir, ME, state_bytes(ME, b"a.c", b"10.0.0.2:3632"))
            await nursery.start(trace.run)
            await trio.sleep(0.12)  # polls at 0, 0.05, 0.10 see it
            state.unlink()
            await trio.sleep(0.1)  # the poll at 0.15 misses it
            nursery.cancel_scope.cancel()
    document = trace.document(start + 1.0)
    spans = [event for event in document["traceEvents"] if event["ph"] == "X"]
    assert [(s["name"], s["cat"], s["ts"], s["dur"]) for s in spans] == [
        ("a.c", "remote", 0, 150_000)
    ]
    slot_counts = [e["args"]["slots"] for e in document["traceEvents"] if e["name"] == "slots"]
    assert slot_counts == [4, 6]
    assert document["otherData"]["poll_period_s"] == 0.05
    assert document["otherData"]["polls"] == 5


def test_a_document_before_the_first_poll_is_empty(distcc_dir: Path) -> None:
    document = TraceRecorder(distcc_dir, ME, lambda: None).document(3.0)
    assert [e for e in document["traceEvents"] if e["ph"] != "M"] == []


def test_the_trace_is_written_atomically_as_json(tmp_path: Path) -> None:
    path = tmp_path / "build.json"
    path.write_text("old")
    document: dict[str, Any] = {"traceEvents": [], "displayTimeUnit": "ms"}
    write_trace(path, document)
    assert json.loads(path.read_text()) == document
    assert sorted(p.name for p in tmp_path.iterdir()) == ["build.json"]


def test_a_trace_that_cannot_be_written_says_where_and_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(P2pccError, match=r"nowhere/build.json: No such file.*--trace"):
        write_trace(tmp_path / "nowhere" / "build.json", {"traceEvents": []})
