"""`p2pcc keygen`: make the pool's key, write it privately, print the token to share.

The key goes to `gossip.key_file` (by default `cluster.key` in the configuration
directory: /etc/p2pcc for root) or `--output`, created 0600 and never over anything.
Standard output gets exactly one line, the join token (p2pcc.core.key_token), so a
script can capture it; what to do with it goes to standard error.  `--token` prints
the token of the key already installed, for a machine that joins later.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import sys
from pathlib import Path

from p2pcc.config import Config, load_config
from p2pcc.config.key_file import read_key_file, trusted_uids
from p2pcc.core.auth import GENERATED_KEY_BYTES, format_key_line
from p2pcc.core.errors import P2pccError
from p2pcc.core.key_token import encode_token

_HEADER = (
    "# p2pcc cluster key: the same key on every node of the pool; keep it secret (mode 0600).\n"
    "# Install it elsewhere with `p2pcc keygen --token` here and `p2pcc join` there.\n"
    "# To rotate, add a new key as the second line everywhere, then swap the lines, then\n"
    "# delete the old one (docs/wire-format.md).\n"
)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `keygen` sub-command."""
    parser = sub.add_parser(
        "keygen",
        help="make the pool's cluster key and print the token that shares it",
        description="Make a new random cluster key, write it to gossip.key_file (or "
        "--output) with mode 0600, and print a one-line token: pipe it into `p2pcc join` "
        "on every other machine of the pool. Never overwrites a key.",
    )
    parser.add_argument("--config", metavar="FILE", help="read this file instead of searching")
    parser.add_argument(
        "--output",
        "-o",
        metavar="FILE",
        type=Path,
        help="write the key to FILE instead of gossip.key_file",
    )
    parser.add_argument(
        "--token",
        action="store_true",
        help="make no key: print the token of the key already installed",
    )
    parser.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    """Write a new key and print its token (or, with --token, the installed key's)."""
    target = key_target(args.output, load_config(args.config, os.environ))
    if args.token:
        key = read_key_file(target, trusted_uids()).keys[0]
        print(encode_token(key))
        return 0
    key = secrets.token_bytes(GENERATED_KEY_BYTES)
    if args.output is None:
        make_parent(target)
    write_new_private_file(target, key_file_text(key))
    print(encode_token(key))
    print(
        f"wrote a new cluster key to {target} (mode 0600). On every other machine of the "
        "pool, pipe the token above into `p2pcc join` (or paste it at its prompt); it is "
        "the key: keep it out of chats and shell history.",
        file=sys.stderr,
    )
    return 0


def key_target(output: Path | None, config: Config) -> Path:
    """Where the key file goes: `output`, else `gossip.key_file`."""
    if output is not None:
        return output
    if config.gossip.key_file is None:
        source = config.source or "the defaults"
        raise P2pccError(
            f'{source} runs an unkeyed pool (gossip.insecure = true, or key_file = ""): '
            "remove that to use a key, or name the key file with --output"
        )
    return config.gossip.key_file


def make_parent(path: Path) -> None:
    """Create the directory of the default key file (a user's config dir may not exist)."""
    try:
        path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    except OSError as error:
        raise P2pccError(f"{path.parent}: cannot create: {error.strerror}") from None


def key_file_text(key: bytes) -> str:
    """A complete key file holding `key`, with a comment on how to use it."""
    return _HEADER + format_key_line(key) + "\n"


def write_new_private_file(path: Path, text: str) -> None:
    """Create `path` with mode 0600 holding `text`; never follows or replaces anything."""
    try:
        # O_EXCL also refuses a symlink, even a dangling one, so nothing is written elsewhere.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except FileExistsError:
        raise P2pccError(
            f"{path}: already exists; refusing to overwrite a key (`p2pcc keygen --token` "
            "prints its token; remove it or choose another --output for a new key)"
        ) from None
    except OSError as error:
        raise P2pccError(f"{path}: cannot create: {error.strerror}") from None
    try:
        with os.fdopen(fd, "w", encoding="ascii") as file:
            # The umask may have removed bits from 0600; the key file's mode should be exact.
            os.fchmod(file.fileno(), 0o600)
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
    except OSError as error:
        with contextlib.suppress(OSError):
            path.unlink()
        raise P2pccError(f"{path}: cannot write: {error.strerror}") from None
