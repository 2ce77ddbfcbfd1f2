"""`p2pcc status` against a real control server: once, `--json`, `--watch`, on a terminal."""

from __future__ import annotations

import io
import json
import os
import pty
import signal
import socket
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import trio

from p2pcc.cli import main
from p2pcc.cli.status_cmd import Looks, Screen, status_frame, symbols_for, watch
from p2pcc.cli.status_view import render_status
from p2pcc.cli.text_table import ASCII_SYMBOLS, UNICODE_SYMBOLS
from p2pcc.control_client import send_request
from p2pcc.core.control_protocol import ControlError, StatusRequest
from p2pcc.core.errors import P2pccError
from p2pcc.daemon.control import serve_control
from tests.cli.control_fixtures import UnexpectedHandler, daemon, run_cli

GOLDEN = Path(__file__).parent / "golden"
STATUS: dict[str, Any] = json.loads((GOLDEN / "status.json").read_text())


class StatusHandler(UnexpectedHandler):
    """Answers status; anything else is not expected of `p2pcc status`."""

    def __init__(self) -> None:
        self.calls = 0
        self.failure: Exception | None = None

    def status(self) -> dict[str, Any]:
        self.calls += 1
        if self.failure is not None:
            raise self.failure
        return STATUS


@pytest.fixture(autouse=True)
def hundred_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "100")


# --- once ---------------------------------------------------------------------------------


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


@pytest.mark.parametrize("columns", ["100", "72", "300"])
async def test_status_prints_the_table_as_wide_as_columns_allows(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    runtime_dir: Path,
    config_file: str,
    columns: str,
) -> None:
    monkeypatch.setenv("COLUMNS", columns)
    with trio.fail_after(10):
        async with daemon(runtime_dir, StatusHandler()):
            status = await run_cli("status", "--config", config_file)
    out, err = capsys.readouterr()
    assert (status, err) == (0, "")
    # Captured output is no terminal: no colour, whatever the environment says.
    assert out == render_status(STATUS, width=int(columns)) + "\n"
    assert max(len(line) for line in out.splitlines()) <= min(int(columns), 100)
    assert out.splitlines()[1].startswith("ws7 (self)")


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


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--watch", "--json"], "not allowed with argument"),
        (["--json", "--watch", "5"], "not allowed with argument"),
        (["--watch", "0"], "between 0.1 and 86400"),
        (["--watch", "soon"], "not a number of seconds"),
        (["--watch", "nan"], "between 0.1 and 86400"),
    ],
)
def test_watch_usage_errors(
    capsys: pytest.CaptureFixture[str], config_file: str, argv: list[str], message: str
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["status", *argv, "--config", config_file])
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


# --- how the output looks -----------------------------------------------------------------


class Terminal(io.StringIO):
    """A text stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    ("stream", "env", "colour"),
    [
        (Terminal(), {"TERM": "xterm-256color"}, True),
        (Terminal(), {}, True),
        (Terminal(), {"TERM": "xterm", "NO_COLOR": "1"}, False),
        (Terminal(), {"NO_COLOR": ""}, False),  # set at all, even empty
        (Terminal(), {"TERM": "dumb"}, False),
        (io.StringIO(), {"TERM": "xterm"}, False),
    ],
)
def test_colour_only_on_a_terminal_that_wants_it(
    stream: io.StringIO, env: dict[str, str], colour: bool
) -> None:
    looks = Looks.of(stream, env)
    assert looks.colour is colour
    assert ("\x1b[32m" in looks.render(STATUS)) is colour


def test_symbols_fall_back_to_ascii_where_the_encoding_lacks_them() -> None:
    assert symbols_for(io.TextIOWrapper(io.BytesIO(), encoding="utf-8")) == UNICODE_SYMBOLS
    assert symbols_for(io.TextIOWrapper(io.BytesIO(), encoding="ascii")) == ASCII_SYMBOLS
    assert symbols_for(io.TextIOWrapper(io.BytesIO(), encoding="latin-1")) == ASCII_SYMBOLS


# --- watch, with a fake clock -------------------------------------------------------------


class Frames:
    """Numbered frames; the sleeps between them are recorded, and may raise Ctrl-C."""

    def __init__(self, interrupt_at: int | None = None) -> None:
        self.drawn = 0
        self.sleeps: list[float] = []
        self.interrupt_at = interrupt_at

    def next(self) -> str:
        self.drawn += 1
        return f"frame {self.drawn}\nsecond line"

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        if len(self.sleeps) == self.interrupt_at:
            raise KeyboardInterrupt


def test_watch_off_a_terminal_prints_snapshots_separated_by_a_blank_line() -> None:
    out, frames = io.StringIO(), Frames()
    assert watch(frames.next, Screen(out, in_place=False), frames.sleep, 2.5, iterations=3) == 0
    assert out.getvalue() == (
        "frame 1\nsecond line\n\nframe 2\nsecond line\n\nframe 3\nsecond line\n"
    )
    assert frames.sleeps == [2.5, 2.5]


def test_watch_on_a_terminal_redraws_in_place_and_gives_the_cursor_back() -> None:
    out, frames = Terminal(), Frames()
    watch(frames.next, Screen(out, in_place=True), frames.sleep, 2.0, iterations=2)
    assert out.getvalue() == (
        "\x1b[?25l\x1b[2J"  # hide the cursor, clear the screen once
        "\x1b[Hframe 1\x1b[K\nsecond line\x1b[K\n\x1b[J"  # home, each line, clear below
        "\x1b[Hframe 2\x1b[K\nsecond line\x1b[K\n\x1b[J"
        "\x1b[?25h"  # cursor back
    )


@pytest.mark.parametrize("in_place", [True, False])
def test_ctrl_c_ends_the_watch_with_status_0(in_place: bool) -> None:
    out, frames = Terminal(), Frames(interrupt_at=3)
    assert watch(frames.next, Screen(out, in_place=in_place), frames.sleep, 1.0) == 0
    assert frames.drawn == 3
    assert out.getvalue().endswith("\x1b[?25h" if in_place else "frame 3\nsecond line\n")


def test_ctrl_c_while_a_frame_is_fetched_still_gives_the_cursor_back() -> None:
    def interrupted() -> str:
        raise KeyboardInterrupt

    out = Terminal()
    assert watch(interrupted, Screen(out, in_place=True), Frames().sleep, 1.0) == 0
    assert out.getvalue() == "\x1b[?25l\x1b[2J\x1b[?25h"


class SwitchableDaemon:
    """A real control server the test can stop and start again from the CLI's thread."""

    def __init__(self, nursery: trio.Nursery, path: Path) -> None:
        self.nursery, self.path = nursery, path
        self.scope = trio.CancelScope()
        self.stopped = trio.Event()

    async def start(self) -> None:
        self.scope, self.stopped = trio.CancelScope(), trio.Event()
        await self.nursery.start(self._serve)

    async def stop(self) -> None:
        self.scope.cancel()
        await self.stopped.wait()

    async def _serve(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        try:
            with self.scope:
                await serve_control(self.path, StatusHandler(), task_status=task_status)
        finally:
            self.stopped.set()


async def test_watch_shows_a_daemon_going_away_and_coming_back(
    runtime_dir: Path, config_file: str
) -> None:
    path = runtime_dir / "control"
    out = io.StringIO()
    looks = Looks(terminal=False, colour=False, symbols=UNICODE_SYMBOLS)
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            server = SwitchableDaemon(nursery, path)
            await server.start()
            between_frames = [server.stop, server.start]

            def sleep(seconds: float) -> None:
                assert seconds == 2.0
                trio.from_thread.run(between_frames.pop(0))

            status = await trio.to_thread.run_sync(
                partial(
                    watch, lambda: status_frame(path, looks), Screen(out, in_place=False), sleep
                ),
                2.0,
                3,
            )
            await server.stop()
    shown = out.getvalue()
    frames = shown.removesuffix("\n").split("\n\n")
    assert status == 0
    assert shown.endswith("\n")
    assert len(frames) == 3
    assert frames[0] == frames[2] == render_status(STATUS, width=100)
    assert frames[1].startswith("p2pcc: the p2pcc daemon is not running (no control socket at ")
    assert frames[1].endswith("start it with `p2pcc daemon` or `systemctl start p2pcc`")


# --- the real command in a real terminal --------------------------------------------------


async def read_until(master: int, wanted: bytes, count: int = 1) -> bytes:
    """What the terminal shows until `wanted` has appeared `count` times."""
    seen = b""
    while seen.count(wanted) < count:
        await trio.lowlevel.wait_readable(master)
        seen += os.read(master, 65536)
    return seen


@asynccontextmanager
async def on_a_terminal(*argv: str, env: dict[str, str]) -> AsyncIterator[tuple[Any, int]]:
    """`p2pcc ARGV` in a subprocess whose stdout is a pseudo-terminal; (process, master)."""
    master, slave = pty.openpty()
    os.set_blocking(master, False)
    try:
        process = await trio.lowlevel.open_process(
            [sys.executable, "-m", "p2pcc", *argv],
            stdout=slave,
            env=env,
            # Ctrl-C reaches a terminal's foreground job whatever started the test run: a
            # suite run as a background job of a shell has SIGINT ignored, and children
            # inherit that (then Python never raises KeyboardInterrupt).
            preexec_fn=_default_sigint,
        )
    finally:
        os.close(slave)
    try:
        yield process, master
    finally:
        with trio.CancelScope(shield=True):
            if process.returncode is None:
                process.kill()
            await process.wait()
        os.close(master)


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def terminal_env(**changes: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    return {**env, "TERM": "xterm", "COLUMNS": "100", **changes}


async def test_on_a_terminal_status_is_coloured_unless_no_color(
    runtime_dir: Path, config_file: str
) -> None:
    with trio.fail_after(20):
        async with daemon(runtime_dir, StatusHandler()):
            shown = {}
            for no_color in (False, True):
                env = terminal_env(**({"NO_COLOR": "1"} if no_color else {}))
                async with on_a_terminal("status", "--config", config_file, env=env) as (
                    process,
                    master,
                ):
                    shown[no_color] = await read_until(master, b"recommended -j19")
                    assert await process.wait() == 0
    assert b"\x1b[32mactive\x1b[0m" in shown[False]
    assert b"\x1b[" not in shown[True]
    assert b"build-server" in shown[True]


async def test_watch_on_a_terminal_ends_on_ctrl_c_with_status_0_and_the_cursor_back(
    runtime_dir: Path, config_file: str
) -> None:
    with trio.fail_after(20):
        async with daemon(runtime_dir, StatusHandler()):
            argv = ("status", "--watch", "0.1", "--config", config_file)
            async with on_a_terminal(*argv, env=terminal_env()) as (process, master):
                shown = await read_until(master, b"recommended -j19", count=2)
                process.send_signal(signal.SIGINT)
                assert await process.wait() == 0
                shown += await read_until(master, b"\x1b[?25h")
    assert shown.startswith(b"\x1b[?25l\x1b[2J\x1b[H")
    assert shown.count(b"\x1b[H") >= 2
    assert b"Traceback" not in shown


# --- the blocking client ------------------------------------------------------------------


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
