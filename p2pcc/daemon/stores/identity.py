"""Who this node is across restarts: a persistent random id and a growing incarnation.

The id is random (not the hostname or a MAC) so that two machines cloned from one image
differ once one of them renews it (`p2pcc.core.same_id`), and it never leaks anything
about the machine.  The incarnation must exceed every incarnation this node used before,
or peers would refuse the restarted node's messages as replays: it is the larger of the
stored counter plus one and the wall clock in milliseconds, so it still grows when the
file is lost or damaged.

Both files are written durably (the file and its directory flushed), so a power cut
right after the first start leaves the old content or the new, not an empty file.  Both
are read non-blocking, without following a link, regular files only: whatever else is
found there (empty, truncated, garbage, a FIFO, a link, a directory) is replaced, with
one warning naming the file, and the daemon starts.  Only a file that cannot be written
stops it.
"""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path

from p2pcc.core import limits
from p2pcc.core.errors import P2pccError
from p2pcc.safe_files import read_regular_file, replace_file

log = logging.getLogger("p2pcc.identity")

INCARNATION_FILE = "incarnation"

#: Bytes read from either file: a valid one holds a line of at most 33 or 21 bytes.
READ_LIMIT = 256


def incarnation_file(id_file: Path) -> Path:
    """Where the incarnation of the node whose id lives in `id_file` is counted."""
    return id_file.with_name(INCARNATION_FILE)


class IdentityError(P2pccError):
    """No node id can be kept in the id file."""


def load_node_id(path: Path) -> bytes:
    """The node id stored at `path`; a new one, stored there, on first start or when
    what is there is not a node id.  IdentityError if a new one cannot be stored."""
    data = read_regular_file(str(path), READ_LIMIT)
    node_id = None if data is None else _parse_node_id(data)
    if node_id is not None:
        return node_id
    first_start = data is None and not os.path.lexists(path)
    node_id = secrets.token_bytes(limits.NODE_ID_BYTES)
    store_node_id(path, node_id)
    if first_start:
        log.info("new node id %s written to %s", node_id.hex(), path)
    else:
        log.warning(
            "%s held no node id (%s); a new one, %s, replaces it",
            path,
            _damage(data, f"{limits.NODE_ID_BYTES * 2} hex digits"),
            node_id.hex(),
        )
    return node_id


def store_node_id(path: Path, node_id: bytes) -> None:
    """Keep `node_id` in `path` durably, creating its directory; IdentityError if not."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        replace_file(path, (node_id.hex() + "\n").encode(), durable=True)
    except OSError as error:
        raise IdentityError(
            f"{path}: cannot write the node id: {error.strerror or error}; make its "
            "directory writable by the daemon's user (node.id_file names another place)"
        ) from None


def _parse_node_id(data: bytes) -> bytes | None:
    try:
        node_id = bytes.fromhex(data.decode("ascii").strip())
    except ValueError:  # UnicodeDecodeError is one
        return None
    return node_id if len(node_id) == limits.NODE_ID_BYTES else None


def _damage(data: bytes | None, expected: str) -> str:
    """What is wrong with a file that should hold `expected`, for the warning."""
    if data is None:
        return "not a regular file, or unreadable"
    if not data.strip():
        return "empty"
    return f"not {expected}"


def next_incarnation(path: Path, wall: float) -> int:
    """A number larger than any earlier incarnation of this node; stored at `path`."""
    data = read_regular_file(str(path), READ_LIMIT)
    stored = None if data is None else _parse_counter(data)
    if stored is None and os.path.lexists(path):
        damage = _damage(data, "a counter")
        log.warning("%s held no incarnation (%s); counting from the clock", path, damage)
    incarnation = min(max((stored or 0) + 1, int(wall * 1000)), limits.MAX_COUNTER)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        replace_file(path, f"{incarnation}\n".encode(), durable=True)
    except OSError as error:
        log.warning("cannot store incarnation in %s (%s); relying on the clock", path, error)
    return incarnation


def _parse_counter(data: bytes) -> int | None:
    """The counter in `data`, or None unless it is one below the wire's limit."""
    text = data.decode("ascii", "replace").strip()
    if not text.isdigit():  # digits only: no sign, no underscores, no spaces within
        return None
    value = int(text)
    return value if value < limits.MAX_COUNTER else None
