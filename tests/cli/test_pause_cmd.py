"""`p2pcc pause` and `p2pcc resume` against a real control server."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import trio

from p2pcc import paths
from p2pcc.cli import main
from p2pcc.cli.pause_cmd import describe_pause_state
from p2pcc.core import limits
from p2pcc.core.control_protocol import PermissionDeniedError
from p2pcc.daemon.control import serve_control

UNTIL = 1_900_000_000.0


class PauseHandler:
    """Records pause/resume calls; `deny` makes every resume a permission error."""

    def __init__(self, *, deny: bool = False, was_paused: bool = True) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.deny = deny
        self.was_paused = was_paused

    def status(self) -> dict[str, Any]:
        raise AssertionError("not expected")

    def pause(self, seconds: float | None, reason: str, uid: int) -> dict[str, Any]:
        self.calls.append(("pause", seconds, reason, uid))
        until = None if seconds is None else UNTIL
        return {"state": "paused", "pause": {"reason": reason, "by_uid": uid, "until": until}}

    def resume(self, uid: int) -> dict[str, Any]:
        self.calls.append(("resume", uid))
        if self.deny:
            raise PermissionDeniedError("paused by uid 1000 (alice); only alice or root may resume")
        return {"state": "active", "was_paused": self.was_paused}

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
async def daemon(runtime_dir: Path, handler: PauseHandler) -> AsyncIterator[None]:
    async with trio.open_nursery() as nursery:
        await nursery.start(serve_control, runtime_dir / "control", handler)
        yield
        nursery.cancel_scope.cancel()


async def run_cli(*argv: str) -> int:
    status: int = await trio.to_thread.run_sync(partial(main, list(argv)))
    return status


async def test_pause_for_a_time_with_a_reason(
    capsys: pytest.CaptureFixture[str], runtime_dir: Path, config_file: str
) -> None:
    handler = PauseHandler()
    with trio.fail_after(10):
        async with daemon(runtime_dir, handler):
            status = await run_cli(
                "pause", "--for", "90", "--reason", "profiling", "--config", config_file
            )
    out, err = capsys.readouterr()
    assert (status, err) == (0, "")
    assert re.fullmatch(r"paused until \d{4}-\d\d-\d\d \d\d:\d\d:\d\d \S+ \(profiling\)\n", out)
    assert handler.calls == [("pause", 90.0, "profiling", 0)]


async def test_pause_without_a_time_lasts_until_resumed(
    capsys: pytest.CaptureFixture[str], runtime_dir: Path, config_file: str
) -> None:
    handler = PauseHandler()
    with trio.fail_after(10):
        async with daemon(runtime_dir, handler):
            status = await run_cli("pause", "--config", config_file)
    assert status == 0
    assert capsys.readouterr() == ("paused until `p2pcc resume`\n", "")
    assert handler.calls == [("pause", None, "", 0)]


async def test_resume(
    capsys: pytest.CaptureFixture[str], runtime_dir: Path, config_file: str
) -> None:
    handler = PauseHandler()
    with trio.fail_after(10):
        async with daemon(runtime_dir, handler):
            status = await run_cli("resume", "--config", config_file)
    assert status == 0
    assert capsys.readouterr() == ("resumed: taking peers' jobs\n", "")
    assert handler.calls == [("resume", 0)]


async def test_resume_denied_is_one_line_and_exit_4(
    capsys: pytest.CaptureFixture[str], runtime_dir: Path, config_file: str
) -> None:
    with trio.fail_after(10):
        async with daemon(runtime_dir, PauseHandler(deny=True)):
            status = await run_cli("resume", "--config", config_file)
    assert status == 4
    assert capsys.readouterr() == (
        "",
        "p2pcc: paused by uid 1000 (alice); only alice or root may resume\n",
    )


@pytest.mark.parametrize("command", ["pause", "resume"])
def test_not_running_is_exit_3(
    capsys: pytest.CaptureFixture[str], config_file: str, command: str
) -> None:
    assert main([command, "--config", config_file]) == 3
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1
    assert "not running" in err
    assert "systemctl start p2pcc" in err


@pytest.mark.parametrize(
    "seconds", ["0", "-5", "abc", "inf", "nan", str(int(limits.MAX_PAUSE_SECONDS) + 1)]
)
def test_a_bad_duration_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], config_file: str, seconds: str
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["pause", "--for", seconds, "--config", config_file])
    assert exited.value.code == 2
    assert "argument --for" in capsys.readouterr().err


@pytest.mark.parametrize("reason", ["two\nlines", "x" * (limits.MAX_PAUSE_REASON + 1)])
def test_a_bad_reason_is_refused_before_asking_the_daemon(
    capsys: pytest.CaptureFixture[str], config_file: str, reason: str
) -> None:
    # No daemon runs: reaching it would have meant exit 3, not this message.
    assert main(["pause", "--reason", reason, "--config", config_file]) == 1
    assert capsys.readouterr().err.startswith("p2pcc: 'reason' must be")


@pytest.mark.parametrize(
    ("result", "line"),
    [
        ({"state": "active", "was_paused": False}, "was not paused: taking peers' jobs"),
        (
            {"state": "paused", "pause": {"reason": "", "until": None}},
            "paused until `p2pcc resume`",
        ),
        ({"state": "paused", "pause": {"until": 1e300}}, "paused until 1e+300 (Unix time)"),
        ({"state": "leaving", "pause": None}, '{"pause": null, "state": "leaving"}'),
        ({}, "{}"),
    ],
)
def test_describe_pause_state(result: dict[str, Any], line: str) -> None:
    assert describe_pause_state(result) == line
