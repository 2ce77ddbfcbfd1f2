"""`p2pcc config`: print the configuration in effect as TOML, or `--check` a file."""

from __future__ import annotations

import argparse
import os

from p2pcc.config import load_config, render_config
from p2pcc.config.key_file import load_keyring


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `config` command to the CLI."""
    parser = sub.add_parser(
        "config",
        help="print the configuration in effect, or check a file",
        description=(
            "Print the effective configuration as TOML (every key, defaults filled in). "
            "The file is --config, else $P2PCC_CONFIG, else the user config dir, "
            "else /etc/p2pcc/p2pcc.toml."
        ),
    )
    parser.add_argument("--config", metavar="FILE", help="read this file instead of searching")
    parser.add_argument(
        "--check", action="store_true", help="only validate: print 'FILE: ok' or the error"
    )
    parser.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    """Load the configuration; print it, or just confirm it is valid."""
    config = load_config(args.config, os.environ)
    if args.check:
        load_keyring(config)  # the key file too: the daemon refuses one it cannot read
        print(f"{config.source or 'defaults'}: ok")
        return 0
    notes = []
    if os.environ.get("P2PCC_RUNTIME_DIR"):
        notes.append("runtime_dir comes from P2PCC_RUNTIME_DIR, which overrides the file")
    print(render_config(config, notes), end="")
    return 0
