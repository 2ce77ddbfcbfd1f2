"""The `p2pcc` command line: one module per command, each exposing `register` and `main`.

`main(argv)` returns the exit status instead of exiting, so tests call it directly.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import Protocol

from p2pcc import __version__
from p2pcc.core.errors import P2pccError


class _Command(Protocol):
    def register(self, sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None: ...


def _commands() -> list[_Command]:
    # Imported here so `p2pcc --version` stays fast and one broken command cannot
    # take the others down at import time.
    from p2pcc.cli import (
        build_cmd,
        config_cmd,
        daemon_cmd,
        doctor_cmd,
        fingerprint_cmd,
        hosts_cmd,
        join_cmd,
        keygen_cmd,
        links_cmd,
        pause_cmd,
        remeasure_cmd,
        status_cmd,
    )

    return [
        daemon_cmd,
        status_cmd,
        pause_cmd,
        remeasure_cmd,
        doctor_cmd,
        links_cmd,
        hosts_cmd,
        build_cmd,
        fingerprint_cmd,
        config_cmd,
        keygen_cmd,
        join_cmd,
    ]


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser; each command module adds its own sub-parser."""
    parser = argparse.ArgumentParser(
        prog="p2pcc",
        description="Peer-to-peer distcc: every workstation a client and a server.",
    )
    parser.add_argument("--version", action="version", version=f"p2pcc {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in _commands():
        command.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse `argv`, run the chosen command and return its exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return handler(args)
    except P2pccError as error:
        print(f"p2pcc: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def run() -> None:
    """Console-script entry point."""
    try:
        status = main()
        sys.stdout.flush()
    except BrokenPipeError:
        # `p2pcc status | head`: the reader left, which is not an error of ours.  Point
        # stdout at /dev/null so the interpreter's final flush does not complain again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        status = 0
    sys.exit(status)
