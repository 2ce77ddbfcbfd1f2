"""`p2pcc status` against a real control server, and the blocking client under it."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import trio

from p2pcc import paths
from p2pcc.cli import main
from p2pcc.cli.status_cmd import as_listing
from p2pcc.control_client import send_request
from p2pcc.core.control_protocol import ControlError, StatusRequest
from p2pcc.core.errors import P2pccError
from p2pcc.daemon.control import serve_control

STATUS: dict[str, Any] = {
    "schema": 1,
    "node": {
        "name": "ws7",
        "state": "active",
        "load": 0.5,
        "slots": 4,
        "jobs": 1,
        "compilers": [{"fingerprint": "0123456789abcdef"}, {"fingerprint": "fedcba9876543210"}],
    },
    "peers": [
        {
            "name": "build-server",
            "state": "paused",
            "liveness": "alive",
            "load": 11.25,
            "slots": 16,
            "jobs": 2,
            "free_slots": 14,
            "compilers": ["0123456789abcdef"],
        },
        {"name": "ws9", "state": "active", "liveness": "suspect", "load": 0, "slots": 2},
    ],
    "counters": {"packets_in": 10, "packets_out": 12, "drops": {"bad-mac": 1}},
}

LISTING = """\
NAME          STATE   LIVENESS  LOAD   SLOTS  COMPILERS
ws7 (self)    active  -         0.50   3/4    2
build-server  paused  alive     11.25  14/16  1
ws9           active  suspect   0.00   ?/2    ?
"""


class StatusHandler:
    """Answers status; anything else is not expected of `p2pcc status`."""

    def __init__(self) -> None:
        self.calls = 0
        self.failure: Exception | None = None

    def status(self) -> dict[str, Any]:
        self.calls += 1
        if self.failure is not None:
            raise self.failure
        return STATUS

    def pause(self, seconds: float | None, reason: str, uid: int) -> dict[str, Any]:
        raise AssertionError("not expected")

    def resume(self, uid: int) -> dict[str, Any]:
        raise AssertionError("not expected")

    def hosts(self, fingerprint: str) -> dict[str, Any]:
        raise AssertionError("not expected")


@pytest.fixture(autouse=True)
def no_real_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr(paths, "SYSTEM_CONFIG", tmp_path / "etc" / "p2pcc.toml")
    monkeypatch.delenv("P2PCC_CONFIG", raising=False)
    monkeypatch.delenv("P2PCC_RUNTIME_DIR", raising=False)


@pytest.fixture
def runtime_dir(tmp_path: Path) -> Path:
    return tmp_path / "run"


@pytest.fixture
def config_file(tmp_path: Path, runtime_dir: Path) -> str:
    path = tmp_path / "p2pcc.toml"
    path.write_text(f"runtime_dir = {json.dumps(str(runtime_dir))}\n")
    return str(path)


@asynccontextmanager
async def daemon(runtime_dir: Path, handler: StatusHandler) -> AsyncIterator[None]:
    async with trio.open_nursery() as nursery:
        await nursery.start(serve_control, runtime_dir / "control", handler)
        yield
        nursery.cancel_scope.cancel()


async def run_cli(*argv: str) -> int:
    """The CLI in a worker thread, so the server keeps running in this trio loop."""
    status: int = await trio.to_thread.run_sync(partial(main, list(argv)))
    return status


async def test_status_json_prints_the_snapshot_sorted_and_indented(
    capsys: pytest.CaptureFixture[str], runtime_dir: Path, config_file: str
) -> None:
    handler = StatusHandler()
    with trio.fail_after(10):
        async with daemon(runtime_dir, handler):
            status = await run_cli("status", "--json", "--config", config_file)
    out, err = capsys.readouterr()
    assert (status, err) == (0, "")
    assert out == json.dumps(STATUS, sort_keys=True, indent=2) + "\n"
    assert handler.calls == 1


async def test_status_prints_a_listing_one_node_a_line(
    capsys: pytest.CaptureFixture[str], runtime_dir: Path, config_file: str
) -> None:
    with trio.fail_after(10):
        async with daemon(runtime_dir, StatusHandler()):
            status = await run_cli("status", "--config", config_file)
    assert status == 0
    assert capsys.readouterr().out == LISTING


async def test_a_daemon_side_failure_is_one_line_and_status_1(
    capsys: pytest.CaptureFixture[str], runtime_dir: Path, config_file: str
) -> None:
    handler = StatusHandler()
    handler.failure = P2pccError("the peer table is being rebuilt")
    with trio.fail_after(10):
        async with daemon(runtime_dir, handler):
            status = await run_cli("status", "--config", config_file)
    assert status == 1
    assert capsys.readouterr() == ("", "p2pcc: the peer table is being rebuilt\n")


def assert_not_running_message(err: str) -> None:
    assert err.count("\n") == 1
    assert err.startswith("p2pcc: the p2pcc daemon is not running")
    assert "`p2pcc daemon`" in err
    assert "`systemctl start p2pcc`" in err


def test_no_socket_means_not_running_exit_3(
    capsys: pytest.CaptureFixture[str], runtime_dir: Path, config_file: str
) -> None:
    assert main(["status", "--config", config_file]) == 3
    out, err = capsys.readouterr()
    assert out == ""
    assert_not_running_message(err)
    assert f"no control socket at {runtime_dir / 'control'}" in err


def test_a_stale_socket_means_not_running_exit_3(
    capsys: pytest.CaptureFixture[str], runtime_dir: Path, config_file: str
) -> None:
    runtime_dir.mkdir()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as dead:
        dead.bind(str(runtime_dir / "control"))
    assert main(["status", "--json", "--config", config_file]) == 3
    out, err = capsys.readouterr()
    assert out == ""
    assert_not_running_message(err)
    assert "nothing listens" in err


# --- the listing, without a daemon ------------------------------------------------------


def test_an_empty_document_lists_only_the_header() -> None:
    assert as_listing({}) == "NAME  STATE  LIVENESS  LOAD  SLOTS  COMPILERS"


def test_peer_text_cannot_drive_the_terminal() -> None:
    listing = as_listing({"peers": [{"name": "evil\x1b[2J", "state": "active\n"}]})
    assert "\x1b" not in listing
    assert listing.count("\n") == 1
    assert "evil\\x1b[2J" in listing


def test_odd_values_show_as_question_marks() -> None:
    row = as_listing(
        {"peers": [{"name": None, "load": "high", "slots": True, "compilers": 3}, "junk"]}
    ).splitlines()[1]
    assert row.split() == ["?", "?", "?", "?", "?/True", "?"]


# --- the blocking client ----------------------------------------------------------------


@pytest.fixture
def raw_server(tmp_path: Path) -> Iterator[tuple[Path, list[bytes]]]:
    """A unix socket whose single connection gets whatever bytes the test puts in the list."""
    path = tmp_path / "raw"
    replies: list[bytes] = []
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(str(path))
        listener.listen(1)

        def serve_once() -> None:
            connection, _ = listener.accept()
            with connection:
                connection.recv(65536)
                connection.sendall(b"".join(replies))

        thread = threading.Thread(target=serve_once)
        thread.start()
        try:
            yield path, replies
        finally:
            thread.join(timeout=5)


@pytest.mark.parametrize(
    "reply", [b"", b"not json\n", b'{"v": 1, "ok": true, "result": {}', b'{"v": 9, "ok": true}\n']
)
def test_a_broken_daemon_answer_is_a_bad_response(
    raw_server: tuple[Path, list[bytes]], reply: bytes
) -> None:
    path, replies = raw_server
    replies.append(reply)
    with pytest.raises(ControlError) as raised:
        send_request(path, StatusRequest(), timeout=5)
    assert raised.value.code == "bad-response"


def test_a_daemon_that_never_answers_times_out(tmp_path: Path) -> None:
    path = tmp_path / "mute"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as mute:
        mute.bind(str(path))
        mute.listen(1)  # connections queue up but are never accepted nor answered
        with pytest.raises(P2pccError, match=r"did not answer within 0\.1 s"):
            send_request(path, StatusRequest(), timeout=0.1)
