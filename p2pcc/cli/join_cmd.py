"""`p2pcc join`: install the pool's key from the token `p2pcc keygen` printed elsewhere.

The token is read from standard input (a pipe, or a prompt that does not echo), never
from the command line, where shell history and `ps` would keep it.  The key file is
written whole under a temporary name and renamed into place (mode 0600, owned by the
user running join: root for the system daemon), so the daemon never reads half a key
and nothing is ever written through a link.  A different key already there is kept
unless `--replace`; the same key again changes nothing.  Then the running daemon, found
through its control socket (SO_PEERCRED names its pid), is told to reload (SIGHUP).
"""

from __future__ import annotations

import argparse
import getpass
import os
import signal
import socket
import stat
import struct
import sys
from pathlib import Path

from p2pcc.cli.keygen_cmd import key_file_text, key_target, make_parent
from p2pcc.config import Config, load_config
from p2pcc.config.key_file import read_key_file, trusted_uids
from p2pcc.control_client import control_socket_path
from p2pcc.core.errors import ConfigError, P2pccError
from p2pcc.core.key_token import decode_token
from p2pcc.safe_files import replace_file

#: More than any token (a 32-byte key makes a 60-character one) plus a pasted newline.
MAX_INPUT = 4096
_UCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid
_PROMPT = "paste the token `p2pcc keygen` printed on the first machine (not shown): "


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `join` sub-command."""
    parser = sub.add_parser(
        "join",
        help="install the pool's key from a token read on standard input",
        description="Read the token printed by `p2pcc keygen` from standard input, "
        "install the key as gossip.key_file (or --output) with mode 0600, and tell a "
        "running daemon to reload. Example: `ssh first-machine p2pcc keygen --token | "
        "sudo p2pcc join`.",
    )
    parser.add_argument("--config", metavar="FILE", help="read this file instead of searching")
    parser.add_argument(
        "--output", "-o", metavar="FILE", type=Path, help="install to FILE, not gossip.key_file"
    )
    parser.add_argument(
        "--replace", action="store_true", help="replace a different key already installed"
    )
    # Caught to refuse it without echoing it: a token in argv lands in shell history.
    parser.add_argument("token", nargs="?", help=argparse.SUPPRESS)
    parser.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    """Install the key the token on standard input holds; 0 when it is in place."""
    if args.token is not None:
        raise P2pccError(
            "a token on the command line stays in shell history and shows in `ps`: "
            "pipe it in (`... | p2pcc join`) or paste it at the prompt"
        )
    config = load_config(args.config, os.environ)
    target = key_target(args.output, config)
    key = decode_token(read_token())
    outcome = install_key(target, key, replace=args.replace)
    if outcome == "unchanged":
        print(f"{target} already holds this key; nothing to do")
        return 0
    print(f"{outcome} the pool's key in {target} (mode 0600)")
    if target == config.gossip.key_file:
        print(reload_daemon(config))
    return 0


def read_token() -> str:
    """The token from standard input: a prompt that does not echo on a terminal."""
    if sys.stdin.isatty():
        return getpass.getpass(_PROMPT)
    return sys.stdin.read(MAX_INPUT)


def install_key(path: Path, key: bytes, *, replace: bool) -> str:
    """Put a key file holding `key` at `path`: "installed", "replaced" or "unchanged"."""
    try:
        status: os.stat_result | None = os.lstat(path)
    except FileNotFoundError:
        status = None
    except OSError as error:
        raise P2pccError(f"{path}: cannot look: {error.strerror}") from None
    outcome = "installed"
    if status is not None:
        if _holds_key(path, status, key):
            return "unchanged"
        if not replace:
            raise P2pccError(f"{path}: {_why_kept(status)}; `p2pcc join --replace` replaces it")
        if stat.S_ISDIR(status.st_mode):
            raise P2pccError(f"{path}: is a directory; remove it or choose another --output")
        outcome = "replaced"
    make_parent(path)
    try:
        # A new file renamed over the name: a link there is replaced, never followed.
        replace_file(path, key_file_text(key).encode("ascii"), mode=0o600, durable=True)
    except OSError as error:
        raise P2pccError(f"{path}: cannot write: {error.strerror}") from None
    return outcome


def _holds_key(path: Path, status: os.stat_result, key: bytes) -> bool:
    """Whether `path` is already a valid key file whose signing key is `key`."""
    if stat.S_ISLNK(status.st_mode):
        return False
    try:
        return read_key_file(path, trusted_uids()).keys[0] == key
    except ConfigError:
        return False  # unsafe or invalid: as good as a different key


def _why_kept(status: os.stat_result) -> str:
    if stat.S_ISLNK(status.st_mode):
        return "is a symbolic link, which join never writes through"
    if not stat.S_ISREG(status.st_mode):
        return "is not a regular file"
    return "holds another key (or is not a valid, private key file)"


def reload_daemon(config: Config) -> str:
    """Send SIGHUP to the daemon behind the control socket; what happened, as a sentence."""
    path = control_socket_path(config)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(5.0)
        try:
            sock.connect(str(path))
            pid, _, _ = _UCRED.unpack(
                sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
            )
        except OSError:
            return "no daemon is running here: start it and it will use the key"
    try:
        os.kill(pid, signal.SIGHUP)
    except OSError as error:
        return (
            f"could not tell the daemon (pid {pid}) to reload ({error.strerror}): "
            "reload it yourself (`systemctl reload p2pcc`)"
        )
    return f"told the daemon (pid {pid}) to reload its key; `p2pcc status` shows the pool"
