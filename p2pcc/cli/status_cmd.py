"""`p2pcc status`: the pool as the running daemon sees it, once or live.

Without options, one table (`status_view`) sized to the terminal (at most 100 columns),
coloured only on a terminal that wants colour.  `--json` prints the daemon's document as
it is (docs/status-json.md).  `--watch [SECONDS]` redraws the table until Ctrl-C, like
`distccmon-text N`: in place on a terminal, as snapshots separated by a blank line
otherwise; a daemon that goes away shows the not-running line and is asked again.
Exit status 3 when the daemon is not running (without `--watch`).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TextIO

from p2pcc.cli.status_view import MAX_WIDTH, render_status
from p2pcc.cli.text_table import ASCII_SYMBOLS, UNICODE_SYMBOLS, Symbols
from p2pcc.config import load_config
from p2pcc.control_client import (
    DaemonNotRunningError,
    control_socket_path,
    exit_status,
    send_request,
)
from p2pcc.core.control_protocol import StatusRequest
from p2pcc.core.errors import P2pccError

#: Seconds between redraws of `--watch` without a number, as `distccmon-text` users expect.
DEFAULT_WATCH_INTERVAL = 2.0

_HIDE_CURSOR, _SHOW_CURSOR = "\x1b[?25l", "\x1b[?25h"
_CLEAR_SCREEN, _HOME, _CLEAR_LINE_END, _CLEAR_BELOW = "\x1b[2J", "\x1b[H", "\x1b[K", "\x1b[J"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `status` command."""
    parser = sub.add_parser(
        "status",
        help="show this machine and its peers: state, load, slots, matching compilers",
        description="Ask the running daemon for the pool: this machine first, then peers in "
        "the order the default compiler (cc) uses them, with state, load per CPU, free/"
        "offered slots, jobs, power, which local compilers each matches, and when it was "
        "last heard.",
    )
    parser.add_argument("--config", metavar="FILE", help="read this file instead of searching")
    shown = parser.add_mutually_exclusive_group()
    shown.add_argument("--json", action="store_true", help="print the full status document as JSON")
    shown.add_argument(
        "--watch",
        nargs="?",
        const=DEFAULT_WATCH_INTERVAL,
        type=interval_argument,
        metavar="SECONDS",
        help=f"redraw every SECONDS (default {DEFAULT_WATCH_INTERVAL:g}) until Ctrl-C",
    )
    parser.set_defaults(handler=main)


def interval_argument(text: str) -> float:
    """A redraw interval: seconds, at least 0.1 (a faster loop only burns the daemon's CPU)."""
    try:
        seconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not (math.isfinite(seconds) and 0.1 <= seconds <= 86400):
        raise argparse.ArgumentTypeError("must be between 0.1 and 86400 seconds")
    return seconds


def main(args: argparse.Namespace) -> int:
    """Print the status once (3 if the daemon is not running), or watch it until Ctrl-C."""
    path = control_socket_path(load_config(args.config, os.environ))
    looks = Looks.of(sys.stdout, os.environ)
    if args.watch is not None:
        screen = Screen(sys.stdout, in_place=looks.terminal)
        return watch(lambda: status_frame(path, looks), screen, time.sleep, args.watch)
    try:
        document = send_request(path, StatusRequest())
    except DaemonNotRunningError as error:
        print(f"p2pcc: {error}", file=sys.stderr)
        return exit_status(error)
    if args.json:
        print(json.dumps(document, sort_keys=True, indent=2))
    else:
        print(looks.render(document))
    return 0


class Looks:
    """How the table looks on this output: width, colour and symbols."""

    def __init__(self, *, terminal: bool, colour: bool, symbols: Symbols) -> None:
        self.terminal = terminal
        self.colour = colour
        self.symbols = symbols

    @classmethod
    def of(cls, stream: TextIO, env: Mapping[str, str]) -> Looks:
        """Colour only on a terminal, never with NO_COLOR (any value) or TERM=dumb."""
        terminal = stream.isatty()
        colour = terminal and "NO_COLOR" not in env and env.get("TERM") != "dumb"
        return cls(terminal=terminal, colour=colour, symbols=symbols_for(stream))

    def render(self, document: Mapping[str, Any]) -> str:
        """The table for `document`, as wide as the terminal is now (COLUMNS honoured)."""
        width = shutil.get_terminal_size((MAX_WIDTH, 24)).columns
        return render_status(document, width=width, colour=self.colour, symbols=self.symbols)


def symbols_for(stream: TextIO) -> Symbols:
    """✓ and … where the output's encoding has them, ASCII stand-ins elsewhere."""
    if not stream.encoding:
        return UNICODE_SYMBOLS  # an in-memory stream holds any text
    try:
        (UNICODE_SYMBOLS.tick + UNICODE_SYMBOLS.ellipsis).encode(stream.encoding)
    except (UnicodeEncodeError, LookupError):
        return ASCII_SYMBOLS
    return UNICODE_SYMBOLS


def status_frame(path: Path, looks: Looks) -> str:
    """One `--watch` frame: the table, or one line saying why there is none this time."""
    try:
        return looks.render(send_request(path, StatusRequest()))
    except P2pccError as error:
        return f"p2pcc: {error}"


class Screen:
    """Where `watch` draws: in place on a terminal, else successive snapshots."""

    def __init__(self, stream: TextIO, *, in_place: bool) -> None:
        self.stream = stream
        self.in_place = in_place
        self.frames = 0

    def open(self) -> None:
        """Hide the cursor and clear the screen (in place only)."""
        if self.in_place:
            self._write(_HIDE_CURSOR + _CLEAR_SCREEN)

    def draw(self, text: str) -> None:
        """Show one frame: over the last one, or after it and a blank line."""
        if self.in_place:
            # Overwriting line by line and clearing what is left, instead of clearing the
            # whole screen first, keeps the table from flickering.
            lines = (line + _CLEAR_LINE_END for line in text.split("\n"))
            self._write(_HOME + "\n".join(lines) + "\n" + _CLEAR_BELOW)
        else:
            self._write(("\n" if self.frames else "") + text + "\n")
        self.frames += 1

    def close(self) -> None:
        """Give the cursor back."""
        if self.in_place:
            self._write(_SHOW_CURSOR)

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()


def watch(
    frame: Callable[[], str],
    screen: Screen,
    sleep: Callable[[float], None],
    interval: float,
    iterations: int | None = None,
) -> int:
    """Draw `frame()` every `interval` seconds, `iterations` times or until Ctrl-C: 0."""
    screen.open()
    try:
        drawn = 0
        while True:
            screen.draw(frame())
            drawn += 1
            if iterations is not None and drawn >= iterations:
                break
            sleep(interval)
    except KeyboardInterrupt:
        pass
    finally:
        screen.close()
    return 0
