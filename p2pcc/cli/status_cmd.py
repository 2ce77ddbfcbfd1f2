"""`p2pcc status`: what the running daemon knows about this node and its peers.

`--json` prints the daemon's snapshot as it is (docs/status-json.md); without it a
compact listing, one line per node.  Exit status 3 when the daemon is not running.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from typing import Any, TypeGuard

from p2pcc.control_client import DaemonNotRunningError, ask_daemon, exit_status
from p2pcc.core.control_protocol import StatusRequest

_COLUMNS = ("NAME", "STATE", "LIVENESS", "LOAD", "SLOTS", "COMPILERS")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `status` command."""
    parser = sub.add_parser(
        "status",
        help="show the daemon's view of this node and its peers",
        description="Ask the running daemon for its status: this node, every peer with its "
        "state, liveness, load, free and offered slots, and compilers.",
    )
    parser.add_argument("--config", metavar="FILE", help="read this file instead of searching")
    parser.add_argument(
        "--json", action="store_true", help="print the full status document as JSON"
    )
    parser.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    """Print the daemon's status; 3 if it is not running."""
    try:
        status = ask_daemon(args.config, StatusRequest())
    except DaemonNotRunningError as error:
        print(f"p2pcc: {error}", file=sys.stderr)
        return exit_status(error)
    if args.json:
        print(json.dumps(status, sort_keys=True, indent=2))
    else:
        print(as_listing(status))
    return 0


def as_listing(status: Mapping[str, Any]) -> str:
    """Aligned lines: a header, this node, then each peer (missing fields shown as "?")."""
    rows: list[tuple[str, ...]] = [_COLUMNS]
    own = status.get("node")
    if isinstance(own, Mapping):
        rows.append(_row(own, own_name=True))
    peers = status.get("peers")
    if isinstance(peers, list):
        rows += [_row(peer) for peer in peers if isinstance(peer, Mapping)]
    widths = [max(len(row[column]) for row in rows) for column in range(len(_COLUMNS))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def _row(node: Mapping[str, Any], *, own_name: bool = False) -> tuple[str, ...]:
    name = _text(node.get("name"))
    load = node.get("load")
    compilers = node.get("compilers")
    return (
        f"{name} (self)" if own_name else name,
        _text(node.get("state")),
        "-" if own_name else _text(node.get("liveness")),
        f"{load:.2f}" if _is_number(load) else "?",
        f"{_free_slots(node)}/{_text(node.get('slots'))}",
        str(len(compilers)) if isinstance(compilers, list) else "?",
    )


def _free_slots(node: Mapping[str, Any]) -> str:
    free, slots, jobs = node.get("free_slots"), node.get("slots"), node.get("jobs")
    if _is_number(free):
        return str(free)
    if _is_number(slots) and _is_number(jobs):
        return str(max(0, slots - jobs))
    return "?"


def _text(value: object) -> str:
    # Names and states come from peers over the network: printable text only, no
    # escape sequences into the user's terminal.
    if value is None:
        return "?"
    text = str(value)
    return text if text.isprintable() else text.encode("unicode_escape").decode()


def _is_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)
