"""`p2pcc daemon`: run this workstation's node in the foreground (systemd runs it so)."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from p2pcc.config import load_config


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "daemon",
        help="run the p2pcc daemon in the foreground",
        description="Join the pool: gossip this machine's state, keep the peer table, "
        "serve distccd, answer `p2pcc status`. Logs to stderr. SIGTERM/SIGINT leave the "
        "pool cleanly; SIGHUP reloads the configuration.",
    )
    parser.add_argument("--config", metavar="FILE", help="configuration file (TOML)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug details")
    parser.set_defaults(handler=main)


def configure_logging(verbose: bool) -> None:
    """One line per event on stderr; no timestamps under journald, which adds its own."""
    under_journald = bool(os.environ.get("JOURNAL_STREAM"))
    fmt = "%(levelname)s %(name)s: %(message)s"
    if not under_journald:
        fmt = "%(asctime)s " + fmt
    logging.basicConfig(
        stream=sys.stderr, level=logging.DEBUG if verbose else logging.INFO, format=fmt
    )
    # python-zeroconf logs every malformed packet from the network at WARNING, and its
    # asyncio loop chats at DEBUG; our own mDNS module logs what matters.
    logging.getLogger("zeroconf").setLevel(logging.ERROR)
    logging.getLogger("asyncio").setLevel(logging.WARNING)


def main(args: argparse.Namespace) -> int:
    import trio

    from p2pcc.daemon.run import run_daemon

    config = load_config(args.config)
    configure_logging(args.verbose)
    trio.run(run_daemon, config, dict(os.environ))
    return 0
