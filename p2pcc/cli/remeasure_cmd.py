"""`p2pcc remeasure [PEER ...]`: judge peers afresh by their next jobs.

The daemon learns from this machine's own jobs how long each peer takes, and leaves a
peer whose jobs take several times the others' out of the lines for a few minutes
(docs/ranking.md).  When its owner has fixed the cause (a throttled CPU, a runaway
process), or the judgement came from a one-off, this forgets what was measured of the
peers named (every peer without names), so they are ranked by what they announce
until their next jobs say otherwise; and has them proven again at once (a peer fixed
after a proof found it giving other code comes back without waiting out the hour).
Exit status 3 when the daemon is not running,
1 for a name no peer has.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from typing import Any

from p2pcc.control_client import DaemonNotRunningError, ask_daemon, exit_status
from p2pcc.core.control_protocol import RemeasureRequest


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `remeasure` command."""
    parser = sub.add_parser(
        "remeasure",
        help="forget how slow peers were measured to be; judge them by their next jobs",
        description="Forget what this machine's jobs measured of the PEERs named (every "
        "peer without names): a peer left out as a straggler is offered jobs again, "
        "and its next jobs judge it afresh.  The PEERs named (without names, those a "
        "proof found giving a different object) are proven again by a real compile as "
        "soon as this machine is idle.",
    )
    parser.add_argument("peers", nargs="*", metavar="PEER", help="a peer's name, as in status")
    parser.add_argument("--config", metavar="FILE", help="read this file instead of searching")
    parser.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    """Ask the daemon to forget; print what it forgot in one line."""
    try:
        result = ask_daemon(args.config, RemeasureRequest(tuple(args.peers)))
    except DaemonNotRunningError as error:
        print(f"p2pcc: {error}", file=sys.stderr)
        return exit_status(error)
    print(describe_remeasured(result))
    return 0


def describe_remeasured(result: Mapping[str, Any]) -> str:
    """One line for a remeasure result (fields in docs/control.md)."""
    forgotten, slow = result.get("forgotten"), result.get("judged_slow")
    if not isinstance(forgotten, list) or not isinstance(slow, list):
        return str(result)
    if not forgotten:
        return "no peer to remeasure"
    judged = f"; judged slow before: {', '.join(map(str, slow))}" if slow else ""
    proving = result.get("proving")
    again = ""
    if isinstance(proving, list) and proving:
        again = f"; proving again when this machine is idle: {', '.join(map(str, proving))}"
    return f"remeasuring {', '.join(map(str, forgotten))} from their next jobs{judged}{again}"
