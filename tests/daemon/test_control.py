"""The control socket server over real unix sockets, with a fake handler recording calls."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import socket
import stat
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from p2pcc.core import limits, rate_limit
from p2pcc.core.control_protocol import ControlError, PermissionDeniedError, may_resume
from p2pcc.core.errors import P2pccError
from p2pcc.daemon.control import (
    ControlHandler,
    ControlSocketError,
    Lanes,
    PeerCredentials,
    SocketInUseError,
    answer,
    serve_control,
)

STATUS = {"schema": 1, "node": {"name": "ws7", "state": "active"}, "peers": []}
NOBODY = 65534


class FakeHandler:
    """Records every call; pause/resume follow the real permission rule."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.paused_by: int | None = None
        self.fail_with: Exception | None = None
        self.status_result: Any = STATUS

    def status(self) -> dict[str, Any]:
        self.calls.append(("status",))
        if self.fail_with is not None:
            raise self.fail_with
        result: dict[str, Any] = self.status_result
        return result

    def pause(
        self, seconds: float | None, reason: str, uid: int, *, hand_back: bool = False
    ) -> dict[str, Any]:
        self.calls.append(("pause", seconds, reason, uid))
        self.paused_by = uid
        return {"state": "paused", "pause": {"reason": reason, "by_uid": uid, "until": None}}

    def resume(self, uid: int) -> dict[str, Any]:
        self.calls.append(("resume", uid))
        if self.paused_by is not None and not may_resume(uid, self.paused_by):
            raise PermissionDeniedError(f"paused by uid {self.paused_by}; only they or root")
        self.paused_by = None
        return {"state": "active", "was_paused": True}

    def hosts(self, fingerprint: str) -> dict[str, Any]:
        self.calls.append(("hosts", fingerprint))
        return {"hosts": "ws8/4 localhost/2", "jobs": 6}

    def remeasure(self, peers: tuple[str, ...], uid: int) -> dict[str, Any]:
        self.calls.append(("remeasure", peers, uid))
        return {"forgotten": list(peers), "judged_slow": []}


def _conforms(handler: FakeHandler) -> ControlHandler:
    return handler  # mypy checks the fake against the Protocol here


@pytest.fixture
def handler() -> FakeHandler:
    return FakeHandler()


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "run" / "control"


@asynccontextmanager
async def running(path: Path, handler: FakeHandler, **options: Any) -> AsyncIterator[None]:
    async with trio.open_nursery() as nursery:
        await nursery.start(partial(serve_control, path, _conforms(handler), **options))
        yield
        nursery.cancel_scope.cancel()


class Client:
    """A test client on a trio stream: send lines, read response lines."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.buffer = b""

    async def send(self, data: bytes) -> None:
        await self.stream.send_all(data)

    async def read_line(self) -> dict[str, Any]:
        """The next response; the connection must still be open."""
        line = await self._next_line()
        assert line is not None, "the server closed the connection"
        response: dict[str, Any] = json.loads(line)
        return response

    async def at_end(self) -> bool:
        """Whether the server closed the connection with nothing more to say."""
        return await self._next_line() is None

    async def ask(self, data: bytes) -> dict[str, Any]:
        await self.send(data)
        return await self.read_line()

    async def _next_line(self) -> bytes | None:
        while b"\n" not in self.buffer:
            data = await self.stream.receive_some(65536)
            if not data:
                assert self.buffer == b"", "a response without newline"
                return None
            self.buffer += data
        line, self.buffer = self.buffer.split(b"\n", 1)
        return line


@asynccontextmanager
async def connected(path: Path) -> AsyncIterator[Client]:
    stream = await trio.open_unix_socket(str(path))
    async with stream:
        yield Client(stream)


async def test_status_round_trip(path: Path, handler: FakeHandler) -> None:
    with trio.fail_after(5):
        async with running(path, handler), connected(path) as client:
            response = await client.ask(b'{"v": 1, "op": "status"}\n')
    assert response == {"v": 1, "ok": True, "result": STATUS}
    assert handler.calls == [("status",)]


async def test_several_requests_on_one_connection_are_answered_in_order(
    path: Path, handler: FakeHandler
) -> None:
    with trio.fail_after(5):
        async with running(path, handler), connected(path) as client:
            await client.send(
                b'{"op": "hosts", "fingerprint": "0123456789abcdef"}\n\n{"op": "status"}\n'
            )
            first, second = await client.read_line(), await client.read_line()
            third = await client.ask(b'{"op": "pause", "seconds": 30, "reason": "demo"}\n')
    assert first["result"] == {"hosts": "ws8/4 localhost/2", "jobs": 6}
    assert second["result"] == STATUS
    assert third["ok"] is True
    assert handler.calls == [
        ("hosts", "0123456789abcdef"),
        ("status",),
        ("pause", 30.0, "demo", os.getuid()),
    ]


async def test_pause_and_resume_carry_the_callers_real_uid(
    path: Path, handler: FakeHandler
) -> None:
    with trio.fail_after(5):
        async with running(path, handler), connected(path) as client:
            paused = await client.ask(b'{"op": "pause"}\n')
            resumed = await client.ask(b'{"op": "resume"}\n')
    assert paused["result"]["state"] == "paused"
    assert resumed == {"v": 1, "ok": True, "result": {"state": "active", "was_paused": True}}
    assert handler.calls == [("pause", None, "", os.getuid()), ("resume", os.getuid())]


async def test_remeasure_carries_the_peers_and_the_callers_real_uid(
    path: Path, handler: FakeHandler
) -> None:
    with trio.fail_after(5):
        async with running(path, handler), connected(path) as client:
            every = await client.ask(b'{"op": "remeasure"}\n')
            named = await client.ask(b'{"op": "remeasure", "peers": ["ws8"]}\n')
    assert every["result"] == {"forgotten": [], "judged_slow": []}
    assert named["result"] == {"forgotten": ["ws8"], "judged_slow": []}
    assert handler.calls == [("remeasure", (), os.getuid()), ("remeasure", ("ws8",), os.getuid())]


def test_remeasure_is_spent_from_the_change_budget(handler: FakeHandler) -> None:
    lanes, caller = Lanes(), PeerCredentials(1, 4242, 4242)
    answers = [
        json.loads(answer(b'{"op": "remeasure"}', handler, caller, lanes, 0.0))
        for _ in range(rate_limit.CHANGE_BURST + 1)
    ]
    assert [a["ok"] for a in answers] == [True] * rate_limit.CHANGE_BURST + [False]
    assert answers[-1]["code"] == "busy"


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory other users can traverse (pytest's tmp_path is closed to them)."""
    directory = Path(tempfile.mkdtemp(prefix="p2pcc-control-"))
    directory.chmod(0o755)
    try:
        yield directory
    finally:
        shutil.rmtree(directory)


CLIENT_AS_OTHER_USER = """
import socket, sys
sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
sock.settimeout(5)
sock.connect(sys.argv[1])
sock.sendall(b'{"op": "resume"}\\n{"op": "pause", "reason": "mine"}\\n{"op": "status"}\\n')
data = b""
while data.count(b"\\n") < 3:
    chunk = sock.recv(65536)
    if not chunk:
        break
    data += chunk
sys.stdout.buffer.write(data)
"""


# The test's own interpreter may live where `nobody` cannot read it (under /root); the
# client script needs only the standard library, so the system's python3 does.
SYSTEM_PYTHON = shutil.which("python3", path=os.defpath)


@pytest.mark.skipif(os.geteuid() != 0, reason="running a client as another user needs root")
@pytest.mark.skipif(SYSTEM_PYTHON is None, reason="no python3 in the system PATH")
async def test_another_user_may_pause_but_not_resume_roots_pause(
    shared_dir: Path, handler: FakeHandler
) -> None:
    assert SYSTEM_PYTHON is not None
    path = shared_dir / "run" / "control"
    handler.paused_by = 0
    with trio.fail_after(10):
        async with running(path, handler):
            result = await trio.run_process(
                [SYSTEM_PYTHON, "-I", "-c", CLIENT_AS_OTHER_USER, str(path)],
                user=NOBODY,
                group=NOBODY,
                extra_groups=[],
                capture_stdout=True,
            )
    resumed, paused, status = (json.loads(line) for line in result.stdout.splitlines())
    assert resumed["ok"] is False
    assert resumed["code"] == "permission-denied"
    assert paused["ok"] is True
    assert status["ok"] is True
    assert handler.calls == [("resume", NOBODY), ("pause", None, "mine", NOBODY), ("status",)]
    assert stat.S_IMODE((shared_dir / "run").stat().st_mode) == 0o755


async def test_socket_is_mode_0666_in_a_new_0755_directory(
    path: Path, handler: FakeHandler
) -> None:
    with trio.fail_after(5):
        async with running(path, handler):
            socket_mode = path.stat().st_mode
            directory_mode = path.parent.stat().st_mode
    assert stat.S_ISSOCK(socket_mode)
    assert stat.S_IMODE(socket_mode) == 0o666
    assert stat.S_IMODE(directory_mode) == 0o755


async def test_socket_file_is_removed_on_exit(path: Path, handler: FakeHandler) -> None:
    with trio.fail_after(5):
        async with running(path, handler):
            assert path.exists()
    assert not path.exists()
    assert path.parent.is_dir()


async def test_a_socket_someone_else_put_in_our_place_is_left_alone(
    path: Path, handler: FakeHandler
) -> None:
    with trio.fail_after(5):
        async with running(path, handler):
            path.unlink()
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as usurper:
                usurper.bind(str(path))
    assert stat.S_ISSOCK(path.lstat().st_mode)


def leave_stale_socket(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as dead:
        dead.bind(str(path))  # bound, never listening, closed: what a killed daemon leaves


async def test_a_stale_socket_is_replaced(path: Path, handler: FakeHandler) -> None:
    leave_stale_socket(path)
    with trio.fail_after(5):
        async with running(path, handler), connected(path) as client:
            response = await client.ask(b'{"op": "status"}\n')
            mode = stat.S_IMODE(path.lstat().st_mode)
    assert response["ok"] is True
    assert mode == 0o666  # ours, not the stale one (made under the umask)


async def test_a_live_daemons_socket_is_not_stolen(path: Path, handler: FakeHandler) -> None:
    other = FakeHandler()
    with trio.fail_after(5):
        async with running(path, handler):
            with pytest.raises(SocketInUseError, match="another p2pcc daemon is listening"):
                await serve_control(path, other)
            async with connected(path) as client:
                response = await client.ask(b'{"op": "status"}\n')
    assert response["ok"] is True
    assert handler.calls == [("status",)]
    assert other.calls == []


async def test_a_file_that_is_not_a_socket_is_refused(path: Path, handler: FakeHandler) -> None:
    path.parent.mkdir(parents=True)
    path.write_text("precious")
    with trio.fail_after(5), pytest.raises(SocketInUseError, match="not a socket"):
        await serve_control(path, handler)
    assert path.read_text() == "precious"


async def test_malformed_json_gets_an_error_and_the_connection_stays(
    path: Path, handler: FakeHandler
) -> None:
    with trio.fail_after(5):
        async with running(path, handler), connected(path) as client:
            bad = await client.ask(b'{"op": status}\n')
            unknown = await client.ask(b'{"op": "reboot"}\n')
            good = await client.ask(b'{"op": "status"}\n')
    assert (bad["ok"], bad["code"]) == (False, "malformed")
    assert unknown["code"] == "unknown-op"
    assert good["ok"] is True
    assert handler.calls == [("status",)]


async def test_an_oversized_line_is_refused_and_the_connection_closed(
    path: Path, handler: FakeHandler
) -> None:
    with trio.fail_after(5):
        async with running(path, handler), connected(path) as client:
            await client.send(b" " * (limits.MAX_CONTROL_LINE + 1))
            refused = await client.read_line()
            closed = await client.at_end()
    assert refused["code"] == "line-too-long"
    assert closed
    assert handler.calls == []


async def test_a_silent_client_is_dropped_after_the_idle_timeout(
    path: Path, handler: FakeHandler
) -> None:
    with trio.fail_after(5):
        async with running(path, handler, idle_timeout=0.2), connected(path) as client:
            await client.send(b'{"op": "sta')  # half a request, then nothing
            timed_out = await client.read_line()
            closed = await client.at_end()
    assert timed_out["code"] == "timeout"
    assert closed


async def test_a_last_line_without_newline_is_answered(path: Path, handler: FakeHandler) -> None:
    with trio.fail_after(5):
        async with running(path, handler), connected(path) as client:
            await client.send(b'{"op": "status"}')
            await client.stream.send_eof()
            response = await client.read_line()
            closed = await client.at_end()
    assert response["ok"] is True
    assert closed


async def test_connections_over_the_cap_are_told_busy(path: Path, handler: FakeHandler) -> None:
    with trio.fail_after(5):
        async with running(path, handler, max_connections=1), connected(path) as first:
            await first.ask(b'{"op": "status"}\n')  # takes the only slot
            async with connected(path) as second:
                busy = await second.read_line()
                closed = await second.at_end()
            still_served = await first.ask(b'{"op": "status"}\n')
        async with running(path, handler, max_connections=1), connected(path) as third:
            after = await third.ask(b'{"op": "status"}\n')
    assert busy["code"] == "busy"
    assert closed
    assert still_served["ok"] is True
    assert after["ok"] is True


async def test_many_concurrent_clients_are_all_answered(path: Path, handler: FakeHandler) -> None:
    answers: list[dict[str, Any]] = []

    async def one_client() -> None:
        async with connected(path) as client:
            answers.append(await client.ask(b'{"op": "status"}\n'))

    with trio.fail_after(10):
        async with running(path, handler), trio.open_nursery() as nursery:
            for _ in range(20):
                nursery.start_soon(one_client)
    assert len(answers) == 20
    assert all(response["ok"] for response in answers)


@pytest.mark.parametrize(
    ("failure", "code"),
    [
        (ControlError("not-paused", "nothing to resume"), "not-paused"),
        (PermissionDeniedError("no"), "permission-denied"),
        (P2pccError("the peer table is being rebuilt"), "failed"),
        (RuntimeError("bug"), "internal"),
        (KeyError("bug"), "internal"),
    ],
)
async def test_handler_errors_become_error_responses_and_serving_goes_on(
    path: Path, handler: FakeHandler, failure: Exception, code: str
) -> None:
    handler.fail_with = failure
    with trio.fail_after(5):
        async with running(path, handler), connected(path) as client:
            failed = await client.ask(b'{"op": "status"}\n')
            handler.fail_with = None
            recovered = await client.ask(b'{"op": "status"}\n')
    assert (failed["ok"], failed["code"]) == (False, code)
    assert recovered["ok"] is True


# --- answer(), without sockets ---------------------------------------------------------

CALLER = PeerCredentials(pid=4242, uid=1000, gid=1000)


@pytest.mark.parametrize("result", [["not", "a", "dict"], {"load": float("inf")}, {"x": {1}}])
def test_a_handler_result_that_is_not_a_json_object_is_an_internal_error(
    handler: FakeHandler, result: object
) -> None:
    handler.status_result = result
    response = json.loads(answer(b'{"op": "status"}', _conforms(handler), CALLER, Lanes(), 0.0))
    assert (response["ok"], response["code"]) == (False, "internal")


def test_answer_passes_the_callers_uid_and_never_raises(handler: FakeHandler) -> None:
    handler.paused_by = 0
    denied = json.loads(answer(b'{"op": "resume"}', _conforms(handler), CALLER, Lanes(), 0.0))
    garbage = json.loads(answer(b"\x00\xff", _conforms(handler), CALLER, Lanes(), 0.0))
    assert denied["code"] == "permission-denied"
    assert "paused by uid 0" in denied["error"]
    assert garbage["code"] == "malformed"
    assert handler.calls == [("resume", 1000)]


async def test_a_client_that_leaves_before_hearing_busy_does_not_stop_the_server(
    path: Path, handler: FakeHandler
) -> None:
    with trio.fail_after(5):
        async with running(path, handler, max_connections=1), connected(path) as first:
            await first.ask(b'{"op": "status"}\n')  # takes the only slot
            for _ in range(5):
                stream = await trio.open_unix_socket(str(path))
                await stream.aclose()  # gone before the server can say "busy"
            await trio.testing.wait_all_tasks_blocked()
            still_served = await first.ask(b'{"op": "status"}\n')
    assert still_served["ok"] is True


async def test_a_path_too_long_for_a_unix_socket_is_a_clear_error(
    tmp_path: Path, handler: FakeHandler
) -> None:
    path = tmp_path / ("x" * 120) / "control"
    with trio.fail_after(5), pytest.raises(ControlSocketError, match="cannot create the control"):
        await serve_control(path, handler)
    assert not path.exists()


# --- lanes: budgets and connections per uid, over real sockets on a virtual clock -------
# Each test client binds its socket to an abstract name that says its uid (trio binds a
# path, or a name given as str, in a worker thread, during which the virtual clock
# would jump); the server's
# `credentials` reads it back from the peer's address, so one process can be many users.


def credentials_from_name(stream: trio.SocketStream) -> PeerCredentials:
    name = stream.socket.getpeername()  # bytes: an abstract name
    uid = int(name.split(b"-")[2])
    return PeerCredentials(pid=4242, uid=uid, gid=uid)


@asynccontextmanager
async def connected_as(path: Path, uid: int) -> AsyncIterator[Client]:
    sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    await sock.bind(f"\0p2pcc-test-{uid}-{os.urandom(6).hex()}".encode())
    await sock.connect(str(path))
    async with trio.SocketStream(sock) as stream:
        yield Client(stream)


async def ask_many(client: Client, line: bytes, count: int) -> list[dict[str, Any]]:
    await client.send(line * count)
    return [await client.read_line() for _ in range(count)]


async def test_a_uid_over_its_request_budget_is_told_busy_until_tokens_come_back(
    path: Path, handler: FakeHandler, autojump_clock: trio.abc.Clock
) -> None:
    burst, rate = rate_limit.REQUEST_BURST, rate_limit.REQUEST_RATE
    status = b'{"op": "status"}\n'
    async with (
        running(path, handler, credentials=credentials_from_name),
        connected_as(path, 1000) as alice,
        connected_as(path, 0) as root,
    ):
        answers = await ask_many(alice, status, burst + 5)
        root_answers = await ask_many(root, status, 3 * burst)  # root is not limited
        await trio.sleep(5 / rate)
        later = await ask_many(alice, status, 6)
    assert [a["ok"] for a in answers] == [True] * burst + [False] * 5
    assert answers[-1]["code"] == "busy"
    assert answers[-1]["error"] == (
        f"too many requests from uid 1000 (at most {burst} at once, then {rate:g} a second); "
        f"try again in {1 / rate:.1f} s"
    )
    assert all(a["ok"] for a in root_answers)
    assert [a["ok"] for a in later] == [True] * 5 + [False]
    assert len(handler.calls) == burst + 3 * burst + 5


async def test_a_pause_flood_reaches_the_handler_at_the_change_rate_and_logs_little(
    path: Path,
    handler: FakeHandler,
    autojump_clock: trio.abc.Clock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    burst, rate = rate_limit.CHANGE_BURST, rate_limit.CHANGE_RATE
    pause = b'{"op": "pause", "seconds": 0.01}\n'
    with caplog.at_level(logging.DEBUG, "p2pcc.daemon.control"):
        async with running(path, handler, credentials=credentials_from_name):
            async with connected_as(path, 1001) as mallory:
                flood = []
                for _ in range(20):  # 400 requests over 10 s of virtual time
                    flood += await ask_many(mallory, pause, 20)
                    await trio.sleep(0.5)
                await trio.sleep(60)
            async with connected_as(path, 1001) as mallory:  # the first one timed out
                after_a_minute = await ask_many(mallory, pause, burst + 1)
    passed = [a for a in flood if a["ok"]]
    assert len(passed) == burst + int(rate * 9.5)
    assert {a["code"] for a in flood if not a["ok"]} == {"busy"}
    assert len(handler.calls) == len(passed) + burst
    busy_lines = [r.getMessage() for r in caplog.records if ": busy: " in r.getMessage()]
    assert len(busy_lines) == 2  # one at the first refusal, one a minute on
    assert busy_lines[0].startswith("control: pid 4242 uid 1001: busy: too many pauses")
    assert busy_lines[1].endswith(f"({len(flood) - len(passed) - 1} more since the last such line)")
    assert [a["ok"] for a in after_a_minute] == [True] * burst + [False]


async def test_held_connections_lock_out_no_one_else_and_only_until_the_timeout(
    path: Path, handler: FakeHandler, autojump_clock: trio.abc.Clock
) -> None:
    status = b'{"op": "status"}\n'
    async with running(path, handler, idle_timeout=5.0, credentials=credentials_from_name):
        async with contextlib.AsyncExitStack() as held:
            hogs = [
                await held.enter_async_context(connected_as(path, 1001))
                for _ in range(rate_limit.MAX_CONNECTIONS_PER_UID)
            ]
            for hog in hogs:  # served (so counted), then silent
                assert (await hog.ask(status))["ok"] is True
            async with connected_as(path, 1001) as one_more:
                refused = await one_more.read_line()
            start = trio.current_time()
            async with connected_as(path, 1000) as alice:
                served = await alice.ask(status)
                served_after = trio.current_time() - start
            async with connected_as(path, 0) as root:  # root is not capped per uid
                root_served = await root.ask(status)
            timed_out = [await hog.read_line() for hog in hogs]
            closed_after = trio.current_time() - start
        async with connected_as(path, 1001) as again:
            served_again = await again.ask(status)
    assert refused["code"] == "busy"
    assert refused["error"] == (
        f"uid 1001 has {rate_limit.MAX_CONNECTIONS_PER_UID} control connections open "
        "already, the most one user may; close one and try again"
    )
    assert (served["ok"], served_after) == (True, 0.0)
    assert root_served["ok"] is True
    assert {hog["code"] for hog in timed_out} == {"timeout"}
    assert closed_after == 5.0
    assert served_again["ok"] is True


async def test_the_cap_on_all_connections_still_holds(
    path: Path, handler: FakeHandler, autojump_clock: trio.abc.Clock
) -> None:
    async with (
        running(path, handler, max_connections=3, credentials=credentials_from_name),
        contextlib.AsyncExitStack() as held,
    ):
        for uid in (1000, 1001, 0):
            client = await held.enter_async_context(connected_as(path, uid))
            assert (await client.ask(b'{"op": "status"}\n'))["ok"] is True
        async with connected_as(path, 0) as root:
            refused = await root.read_line()
    assert refused["error"] == "too many control connections; try again"
