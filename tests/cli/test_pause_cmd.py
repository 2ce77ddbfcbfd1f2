"""`p2pcc pause` and `p2pcc resume` against a real control server."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import trio

from p2pcc.cli import main
from p2pcc.cli.pause_cmd import describe_pause_state, describe_refusal, local_zone
from p2pcc.core import control_protocol as proto
from p2pcc.core import limits
from p2pcc.core.control_protocol import ControlError, PermissionDeniedError, foreign_pause_error
from p2pcc.core.durations import format_duration
from tests.cli.control_fixtures import UnexpectedHandler, daemon, run_cli

UNTIL = 1_900_000_000.0


class PauseHandler(UnexpectedHandler):
    """Records pause/resume calls; `deny` makes every resume a permission error, and
    `paused_by_root` every pause and resume the daemon's refusal of them."""

    def __init__(
        self,
        *,
        deny: bool = False,
        was_paused: bool = True,
        paused_by_root: dict[str, Any] | None = None,
    ) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.deny = deny
        self.was_paused = was_paused
        self.paused_by_root = paused_by_root

    def pause(
        self, seconds: float | None, reason: str, uid: int, *, hand_back: bool = False
    ) -> dict[str, Any]:
        self.calls.append(("pause", seconds, reason, uid) + (("now",) if hand_back else ()))
        if self.paused_by_root is not None:
            raise foreign_pause_error(self.paused_by_root, "replace or shorten")
        until = None if seconds is None else UNTIL
        pause = {"reason": reason, "by_uid": uid, "until": until, "hand_back": hand_back}
        return {"state": "paused", "pause": pause}

    def resume(self, uid: int) -> dict[str, Any]:
        self.calls.append(("resume", uid))
        if self.paused_by_root is not None:
            raise foreign_pause_error(self.paused_by_root, "resume")
        if self.deny:
            raise PermissionDeniedError("paused by uid 1000 (alice); only alice or root may resume")
        return {"state": "active", "was_paused": self.was_paused}


async def test_pause_for_a_time_with_a_reason(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    runtime_dir: Path,
    config_file: str,
) -> None:
    monkeypatch.setenv("TZ", "UTC")
    handler = PauseHandler()
    with trio.fail_after(10):
        async with daemon(runtime_dir, handler):
            before = time.time()
            status = await run_cli(
                "pause", "--for", "90", "--reason", "profiling", "--config", config_file
            )
            after = time.time()
    out, err = capsys.readouterr()
    assert (status, err) == (0, "")
    # UNTIL lies years ahead of the test's clock: the line says in how long, too, as
    # the clock read somewhere between `before` and `after` makes it (a zero hour count
    # is left out, so no fixed pattern fits every time of day).
    expected = {
        f"paused until 2030-03-17 17:46:40 UTC, in {format_duration(round(UNTIL - now))}"
        " (profiling)\n"
        for now in (before, after)
    }
    assert out in expected
    assert handler.calls == [("pause", 90.0, "profiling", 0)]


@pytest.mark.parametrize(
    ("duration", "seconds"),
    [("90s", 90.0), ("30m", 1800.0), ("1h30m", 5400.0), ("1.5h", 5400.0), ("2d", 172800.0)],
)
async def test_pause_takes_human_durations(
    runtime_dir: Path, config_file: str, duration: str, seconds: float
) -> None:
    handler = PauseHandler()
    with trio.fail_after(10):
        async with daemon(runtime_dir, handler):
            assert await run_cli("pause", "--for", duration, "--config", config_file) == 0
    assert handler.calls == [("pause", seconds, "", 0)]


async def test_pause_until_a_time_of_day_is_within_a_day(
    monkeypatch: pytest.MonkeyPatch, runtime_dir: Path, config_file: str
) -> None:
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    handler = PauseHandler()
    with trio.fail_after(10):
        async with daemon(runtime_dir, handler):
            before = datetime.now(ZoneInfo("Asia/Tokyo"))
            status = await run_cli("pause", "--for", "until 18:00", "--config", config_file)
    assert status == 0
    ((_, seconds, _, _),) = handler.calls
    assert 0 < seconds <= 86400
    end = before + timedelta(seconds=seconds)
    # Read in Tokyo time: the pause ends at 18:00 there (give or take the test's runtime).
    assert abs((end.replace(hour=18, minute=0, second=0, microsecond=0) - end).total_seconds()) < 5


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


async def test_pause_now_asks_for_the_jobs_handed_back_and_says_so(
    capsys: pytest.CaptureFixture[str], runtime_dir: Path, config_file: str
) -> None:
    handler = PauseHandler()
    with trio.fail_after(10):
        async with daemon(runtime_dir, handler):
            status = await run_cli("pause", "--now", "--reason", "mine", "--config", config_file)
    assert status == 0
    assert capsys.readouterr() == (
        "paused until `p2pcc resume` (mine); peers' running jobs handed back\n",
        "",
    )
    assert handler.calls == [("pause", None, "mine", 0, "now")]


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
async def test_someone_elses_pause_is_refused_saying_who_and_until_when_in_local_time(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    runtime_dir: Path,
    config_file: str,
    command: str,
) -> None:
    doing = "replace or shorten" if command == "pause" else "resume"
    monkeypatch.setenv("TZ", "Europe/Paris")
    maintenance = {"reason": "maintenance", "by_uid": 0, "until": UNTIL, "automatic": False}
    with trio.fail_after(10):
        async with daemon(runtime_dir, PauseHandler(paused_by_root=maintenance)):
            args = [command, "--for", "1m"] if command == "pause" else [command]
            status = await run_cli(*args, "--config", config_file)
    out, err = capsys.readouterr()
    assert (status, out) == (4, "")
    assert err.startswith("p2pcc: paused by root (uid 0) until 2030-03-17 18:46:40 CET, in ")
    assert err.endswith(f" (maintenance): only that user or root may {doing} it\n")


async def test_a_rate_limited_request_says_when_to_try_again(
    capsys: pytest.CaptureFixture[str], runtime_dir: Path, config_file: str
) -> None:
    class Busy(PauseHandler):
        def pause(
            self, seconds: float | None, reason: str, uid: int, *, hand_back: bool = False
        ) -> dict[str, Any]:
            raise ControlError(proto.BUSY, "too many pauses and resumes from uid 1001 (…)")

    with trio.fail_after(10):
        async with daemon(runtime_dir, Busy()):
            status = await run_cli("pause", "--config", config_file)
    assert (status, capsys.readouterr().err) == (
        1,
        "p2pcc: too many pauses and resumes from uid 1001 (…)\n",
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
    ("duration", "message"),
    [
        ("0", "'0' is no time at all"),
        ("-5", "not a duration: '-5'; use one of 90 (seconds), 90s, 30m, 2h, 1h30m"),
        ("abc", "not a duration: 'abc'"),
        ("inf", "not a duration: 'inf'"),
        ("nan", "not a duration: 'nan'"),
        (str(int(limits.MAX_PAUSE_SECONDS) + 1), "is too long; the maximum is 31d"),
        ("32d", "'32d' is too long; the maximum is 31d"),
        ("until 25:00", "no such time of day: 25:00"),
        ("until 2001-01-01 09:00", "2001-01-01 09:00 is already past"),
        ("until", "'until' needs its time in the same argument, quoted: --for 'until 18:00'"),
    ],
)
def test_a_bad_duration_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], config_file: str, duration: str, message: str
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["pause", "--for", duration, "--config", config_file])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "p2pcc pause: error: argument --for: " in err
    assert message in err


@pytest.mark.parametrize("reason", ["two\nlines", "x" * (limits.MAX_PAUSE_REASON + 1)])
def test_a_bad_reason_is_refused_before_asking_the_daemon(
    capsys: pytest.CaptureFixture[str], config_file: str, reason: str
) -> None:
    # No daemon runs: reaching it would have meant exit 3, not this message.
    assert main(["pause", "--reason", reason, "--config", config_file]) == 1
    assert capsys.readouterr().err.startswith("p2pcc: 'reason' must be")


NOW = datetime(2026, 6, 4, 14, 30, tzinfo=UTC).timestamp()


@pytest.mark.parametrize(
    ("result", "line"),
    [
        ({"state": "active", "was_paused": False}, "was not paused: taking peers' jobs"),
        ({"state": "active", "was_paused": True}, "resumed: taking peers' jobs"),
        (
            {"state": "paused", "pause": {"reason": "", "until": None}},
            "paused until `p2pcc resume`",
        ),
        (
            {"state": "paused", "pause": {"reason": "demo", "until": NOW + 5400.4}},
            "paused until 2026-06-04 16:00:00 UTC, in 1h30m (demo)",
        ),
        (
            {"state": "paused", "pause": {"reason": "", "until": NOW + 89.6}},
            "paused until 2026-06-04 14:31:29 UTC, in 1m30s",
        ),
        (
            {"state": "paused", "pause": {"until": NOW + 0.5}},
            "paused until 2026-06-04 14:30:00 UTC",
        ),
        ({"state": "paused", "pause": {"until": 1e300}}, "paused until 1e+300 (Unix time)"),
        ({"state": "leaving", "pause": None}, '{"pause": null, "state": "leaving"}'),
        ({}, "{}"),
    ],
)
def test_describe_pause_state(result: dict[str, Any], line: str) -> None:
    assert describe_pause_state(result, NOW, UTC) == line


def test_the_end_of_a_pause_is_told_in_local_time_with_its_zone() -> None:
    result = {"state": "paused", "pause": {"reason": "", "until": NOW + 3600}}
    line = describe_pause_state(result, NOW, ZoneInfo("Europe/Paris"))
    assert line == "paused until 2026-06-04 17:30:00 CEST, in 1h"


@pytest.mark.parametrize(
    ("tz", "zone"),
    [
        ("Europe/Paris", ZoneInfo("Europe/Paris")),
        (":Asia/Tokyo", ZoneInfo("Asia/Tokyo")),
        ("", UTC),
        (":", UTC),
    ],
)
def test_local_zone_follows_tz(tz: str, zone: Any) -> None:
    moment = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
    assert (
        moment.astimezone(local_zone({"TZ": tz})).utcoffset() == moment.astimezone(zone).utcoffset()
    )


def test_local_zone_reads_a_zone_file_named_by_tz_or_etc_localtime() -> None:
    summer = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)
    for tz in ("/usr/share/zoneinfo/Europe/Paris", ":/usr/share/zoneinfo/Europe/Paris"):
        assert summer.astimezone(local_zone({"TZ": tz})).utcoffset() == timedelta(hours=2)
    # Without TZ: the machine's own zone, with its rules (a real ZoneInfo, not an offset).
    assert isinstance(local_zone({}), ZoneInfo)


def test_local_zone_falls_back_to_the_current_offset_for_a_posix_rule() -> None:
    zone = local_zone({"TZ": "XYZ-3"})
    assert isinstance(zone, timezone)
    assert datetime.now(zone).utcoffset() == datetime.now().astimezone().utcoffset()


@pytest.mark.parametrize(
    ("pause", "line"),
    [
        (
            {"reason": "", "by_uid": 0, "until": NOW + 90, "automatic": False},
            "paused by root (uid 0) until 2026-06-04 14:31:30 UTC, in 1m30s: only that user "
            "or root may resume it",
        ),
        (
            {"reason": "x", "by_uid": 0, "until": NOW, "automatic": False},
            "paused by root (uid 0) until 2026-06-04 14:30:00 UTC (x): only that user or root "
            "may resume it",
        ),
        (
            {"reason": "desktop in use", "by_uid": 0, "until": None, "automatic": True},
            "paused by root (uid 0) while the desktop is in use (desktop in use): only that "
            "user or root may resume it",
        ),
        (
            {"reason": "", "by_uid": 4_000_000_000, "until": None, "automatic": False},
            "paused by uid 4000000000 until resumed: only that user or root may resume it",
        ),
        (None, "the daemon's own words"),
        ({"by_uid": "zero"}, "the daemon's own words"),
    ],
)
def test_describe_refusal(pause: dict[str, Any] | None, line: str) -> None:
    error = PermissionDeniedError("the daemon's own words", pause)
    assert describe_refusal(error, "resume", NOW, UTC) == line
