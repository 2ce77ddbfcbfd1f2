"""`p2pcc pause` and `p2pcc resume`: lend this machine to peers, or stop for a while.

A pause stops new peer jobs (running ones finish) until it expires or someone resumes.
Anyone local may pause; only root or the user who paused may resume (exit status 4
otherwise).  Exit status 3 when the daemon is not running.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import sys
from collections.abc import Mapping
from typing import Any

from p2pcc.control_client import DaemonNotRunningError, ask_daemon, exit_status
from p2pcc.core import limits
from p2pcc.core.control_protocol import PauseRequest, PermissionDeniedError, ResumeRequest


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `pause` and `resume` commands."""
    pause = sub.add_parser(
        "pause",
        help="stop taking peers' jobs (running ones finish)",
        description="Stop taking new compile jobs from peers, until --for runs out or "
        "`p2pcc resume`. Jobs already running finish.",
    )
    pause.add_argument(
        "--for",
        dest="seconds",
        type=seconds_argument,
        metavar="SECONDS",
        help="resume by itself after SECONDS (default: stay paused until resumed)",
    )
    pause.add_argument(
        "--reason", default="", metavar="TEXT", help="shown to peers, e.g. 'benchmarking'"
    )
    resume = sub.add_parser(
        "resume",
        help="take peers' jobs again",
        description="End a pause. Only root or the user who paused may resume.",
    )
    for parser, resuming in ((pause, False), (resume, True)):
        parser.add_argument("--config", metavar="FILE", help="read this file instead of searching")
        parser.set_defaults(handler=main, resume=resuming)


def seconds_argument(text: str) -> float:
    """A pause duration: a number of seconds above 0 and at most MAX_PAUSE_SECONDS."""
    try:
        seconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not (math.isfinite(seconds) and 0 < seconds <= limits.MAX_PAUSE_SECONDS):
        raise argparse.ArgumentTypeError(
            f"must be above 0 and at most {limits.MAX_PAUSE_SECONDS:.0f} seconds; "
            "to pause indefinitely, leave --for out"
        )
    return seconds


def main(args: argparse.Namespace) -> int:
    """Pause or resume; print the new state in one line.  3: no daemon, 4: not allowed."""
    request = ResumeRequest() if args.resume else PauseRequest(args.seconds, args.reason)
    try:
        result = ask_daemon(args.config, request)
    except (DaemonNotRunningError, PermissionDeniedError) as error:
        print(f"p2pcc: {error}", file=sys.stderr)
        return exit_status(error)
    print(describe_pause_state(result))
    return 0


def describe_pause_state(result: Mapping[str, Any]) -> str:
    """One line for a pause/resume result (fields in docs/control.md)."""
    state, pause = result.get("state"), result.get("pause")
    if state == "paused" and isinstance(pause, Mapping):
        until = pause.get("until")
        if isinstance(until, int | float) and not isinstance(until, bool):
            line = f"paused until {_local_time(until)}"
        else:
            line = "paused until `p2pcc resume`"
        reason = pause.get("reason")
        return f"{line} ({reason})" if isinstance(reason, str) and reason else line
    if state == "active":
        was_paused = result.get("was_paused", True)
        return "resumed: taking peers' jobs" if was_paused else "was not paused: taking peers' jobs"
    return json.dumps(result, sort_keys=True)


def _local_time(timestamp: float) -> str:
    try:
        moment = datetime.datetime.fromtimestamp(timestamp).astimezone()
    except (OverflowError, OSError, ValueError):
        return f"{timestamp:g} (Unix time)"
    return moment.strftime("%Y-%m-%d %H:%M:%S %Z")
