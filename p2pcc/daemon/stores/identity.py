"""Who this node is across restarts: a persistent random id and a growing incarnation.

The id is random (not the hostname or a MAC) so that two machines cloned from one image
still differ once each has started once, and it never leaks anything about the machine.
The incarnation must exceed every incarnation this node used before, or peers would
refuse the restarted node's messages as replays: it is the larger of the stored counter
plus one and the wall clock in milliseconds, so it still grows when the file is lost.
"""

from __future__ import annotations

import logging
import secrets
from pathlib import Path

from p2pcc.core import limits
from p2pcc.core.errors import P2pccError
from p2pcc.safe_files import replace_file

log = logging.getLogger("p2pcc.identity")

INCARNATION_FILE = "incarnation"


def incarnation_file(id_file: Path) -> Path:
    """Where the incarnation of the node whose id lives in `id_file` is counted."""
    return id_file.with_name(INCARNATION_FILE)


class IdentityError(P2pccError):
    """The node id file exists but is not a node id."""


def load_node_id(path: Path) -> bytes:
    """The node id stored at `path`, creating it (and its directory) on first start."""
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        node_id = secrets.token_bytes(limits.NODE_ID_BYTES)
        path.parent.mkdir(parents=True, exist_ok=True)
        replace_file(path, (node_id.hex() + "\n").encode())
        log.info("new node id %s written to %s", node_id.hex(), path)
        return node_id
    try:
        node_id = bytes.fromhex(text)
    except ValueError:
        node_id = b""
    if len(node_id) != limits.NODE_ID_BYTES:
        raise IdentityError(
            f"{path}: not a node id ({limits.NODE_ID_BYTES * 2} hex digits expected); "
            "delete the file to make a new one"
        )
    return node_id


def next_incarnation(path: Path, wall: float) -> int:
    """A number larger than any earlier incarnation of this node; stored at `path`."""
    try:
        stored = int(path.read_text().strip())
    except (OSError, ValueError):
        stored = 0
    incarnation = min(max(stored + 1, int(wall * 1000)), limits.MAX_COUNTER)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        replace_file(path, f"{incarnation}\n".encode())
    except OSError as error:
        log.warning("cannot store incarnation in %s (%s); relying on the clock", path, error)
    return incarnation
