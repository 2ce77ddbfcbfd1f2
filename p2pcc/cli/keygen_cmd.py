"""`p2pcc keygen`: make a new cluster key, printed or written to a new 0600 file."""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import sys
from pathlib import Path

from p2pcc.core.auth import GENERATED_KEY_BYTES, format_key_line
from p2pcc.core.errors import P2pccError

_HEADER = (
    "# p2pcc cluster key: give this same file to every node of the pool; keep it secret.\n"
    "# To rotate, add a new key as the second line everywhere, then swap the lines, then\n"
    "# delete the old one (docs/wire-format.md).\n"
)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `keygen` sub-command."""
    parser = sub.add_parser(
        "keygen",
        help="make a new cluster key",
        description="Make a new random cluster key in the key-file format. "
        "Without --output it is printed to standard output.",
    )
    parser.add_argument(
        "--output",
        "-o",
        metavar="FILE",
        type=Path,
        help="write the key to FILE (mode 0600); refuses to overwrite an existing file",
    )
    parser.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    """Print a new key file, or write it to `args.output`; returns the exit status."""
    text = key_file_text(secrets.token_bytes(GENERATED_KEY_BYTES))
    output: Path | None = args.output
    if output is None:
        sys.stdout.write(text)
        return 0
    write_new_private_file(output, text)
    print(f"wrote a new cluster key to {output}; copy it to every node of the pool")
    return 0


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
            f"{path}: already exists; refusing to overwrite a key (remove it or choose "
            "another --output)"
        ) from None
    except OSError as error:
        raise P2pccError(f"{path}: cannot create: {error.strerror}") from None
    try:
        with os.fdopen(fd, "w", encoding="ascii") as file:
            # The umask may have removed bits from 0600; the key file's mode should be exact.
            os.fchmod(file.fileno(), 0o600)
            file.write(text)
    except OSError as error:
        with contextlib.suppress(OSError):
            path.unlink()
        raise P2pccError(f"{path}: cannot write: {error.strerror}") from None
