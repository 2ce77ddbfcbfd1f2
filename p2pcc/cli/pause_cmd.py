"""`p2pcc pause` and `p2pcc resume`: lend this machine to peers, or stop for a while.

A pause stops new peer jobs (running ones finish at nice 19; with `--now` they are
stopped and their clients compile them) until it expires or someone resumes.
`--for` takes human durations (`30m`, `1h30m`, `until 18:00`: core/durations.py), read
in this machine's time zone with its daylight-saving rules.  Anyone local may pause
while no one else's pause is in effect; only root or the user who paused may replace,
shorten or end a pause (exit status 4 otherwise, with who paused and until when).
Exit status 3 when the daemon is not running.
"""

from __future__ import annotations

import argparse
import json
import os
import pwd
import sys
import time
from collections.abc import Mapping
from datetime import UTC, datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from p2pcc.control_client import DaemonNotRunningError, ask_daemon, exit_status
from p2pcc.core import limits
from p2pcc.core.control_protocol import (
    PauseRequest,
    PermissionDeniedError,
    ResumeRequest,
    describe_foreign_pause,
)
from p2pcc.core.durations import DurationError, format_duration, parse_duration


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `pause` and `resume` commands."""
    pause = sub.add_parser(
        "pause",
        help="stop taking peers' jobs (running ones finish)",
        description="Stop taking new compile jobs from peers, until --for runs out or "
        "`p2pcc resume`. Jobs already running finish at nice 19, or with --now are "
        "handed back to their clients at once.",
    )
    pause.add_argument(
        "--for",
        dest="seconds",
        type=duration_argument,
        metavar="DURATION",
        help="resume by itself after DURATION: 90 (seconds), 90s, 30m, 2h, 1h30m, 1.5h, 2d, "
        "'until 18:00' or 'until 2026-12-01 09:00'; at most 31 days "
        "(default: stay paused until resumed)",
    )
    pause.add_argument(
        "--reason", default="", metavar="TEXT", help="shown to peers, e.g. 'benchmarking'"
    )
    pause.add_argument(
        "--now",
        action="store_true",
        help="also hand back the jobs running here for peers: stop them within a second, "
        "their clients compile those files themselves (default: they finish at nice 19)",
    )
    resume = sub.add_parser(
        "resume",
        help="take peers' jobs again",
        description="End a pause. Only root or the user who paused may resume.",
    )
    for parser, resuming in ((pause, False), (resume, True)):
        parser.add_argument("--config", metavar="FILE", help="read this file instead of searching")
        parser.set_defaults(handler=main, resume=resuming)


def duration_argument(text: str) -> float:
    """Seconds of pause for `text` from now, in local time; a usage error if it is no good."""
    if text.strip().lower() == "until":
        raise argparse.ArgumentTypeError(
            "'until' needs its time in the same argument, quoted: --for 'until 18:00'"
        )
    now = datetime.now(local_zone(os.environ))
    try:
        return parse_duration(text, now, maximum=limits.MAX_PAUSE_SECONDS)
    except DurationError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def local_zone(env: Mapping[str, str]) -> tzinfo:
    """This machine's time zone with its daylight-saving rules: TZ, else /etc/localtime."""
    name = env.get("TZ")
    if name is not None:
        name = name.removeprefix(":")
        if not name:
            return UTC  # as the C library reads an empty TZ
    try:
        if name is None or name.startswith("/"):
            with open(name or "/etc/localtime", "rb") as file:
                return ZoneInfo.from_file(file)
        return ZoneInfo(name)
    except (OSError, ValueError, ZoneInfoNotFoundError):
        # A POSIX rule string such as "CET-1CEST,M3.5.0,M10.5.0/3": the C library still
        # knows the current offset, just not the rules ahead.
        return datetime.now().astimezone().tzinfo or UTC


def main(args: argparse.Namespace) -> int:
    """Pause or resume; print the new state in one line.  3: no daemon, 4: not allowed."""
    request = ResumeRequest() if args.resume else PauseRequest(args.seconds, args.reason, args.now)
    try:
        result = ask_daemon(args.config, request)
    except DaemonNotRunningError as error:
        print(f"p2pcc: {error}", file=sys.stderr)
        return exit_status(error)
    except PermissionDeniedError as error:
        doing = "resume" if args.resume else "replace or shorten"
        line = describe_refusal(error, doing, time.time(), local_zone(os.environ))
        print(f"p2pcc: {line}", file=sys.stderr)
        return exit_status(error)
    print(describe_pause_state(result, time.time(), local_zone(os.environ)))
    return 0


def describe_refusal(error: PermissionDeniedError, doing: str, now: float, zone: tzinfo) -> str:
    """One line for a pause or resume refused because someone else paused: who (by
    name), until when (in `zone`) and why; the daemon's own words if it did not say."""
    pause = error.pause
    by_uid = None if pause is None else pause.get("by_uid")
    if pause is None or not isinstance(by_uid, int) or isinstance(by_uid, bool):
        return str(error)
    name = user_name(by_uid)
    who = f"uid {by_uid}" if name is None else f"{name} (uid {by_uid})"

    def at(until: float) -> str:
        left = f", in {format_duration(round(until - now))}" if until - now >= 1 else ""
        return f"{_local_time(until, zone) or f'{until:g} (Unix time)'}{left}"

    return describe_foreign_pause(pause, doing, who, at)


def user_name(uid: int) -> str | None:
    """The login name of `uid`, or None when it has none."""
    try:
        return pwd.getpwuid(uid).pw_name
    except (KeyError, OverflowError):
        return None


def describe_pause_state(result: Mapping[str, Any], now: float, zone: tzinfo) -> str:
    """One line for a pause/resume result (fields in docs/control.md), times in `zone`."""
    state, pause = result.get("state"), result.get("pause")
    if state == "paused" and isinstance(pause, Mapping):
        until = pause.get("until")
        if isinstance(until, int | float) and not isinstance(until, bool):
            when = _local_time(until, zone)
            if when is None:
                line = f"paused until {until:g} (Unix time)"
            elif until - now >= 1:
                line = f"paused until {when}, in {format_duration(round(until - now))}"
            else:
                line = f"paused until {when}"
        else:
            line = "paused until `p2pcc resume`"
        reason = pause.get("reason")
        line = f"{line} ({reason})" if isinstance(reason, str) and reason else line
        return (
            f"{line}; peers' running jobs handed back" if pause.get("hand_back") is True else line
        )
    if state == "active":
        was_paused = result.get("was_paused", True)
        return "resumed: taking peers' jobs" if was_paused else "was not paused: taking peers' jobs"
    return json.dumps(result, sort_keys=True)


def _local_time(timestamp: float, zone: tzinfo) -> str | None:
    try:
        moment = datetime.fromtimestamp(timestamp, zone)
    except (OverflowError, OSError, ValueError):
        return None
    return moment.strftime("%Y-%m-%d %H:%M:%S %Z")
