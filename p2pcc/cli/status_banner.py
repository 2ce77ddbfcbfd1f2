"""Banners above the `p2pcc status` table for what must not go unnoticed.

One today: a pool without a cluster key (`node.insecure` in the status document, set
only when the configuration says `gossip.insecure = true`).  A banner is wrapped to
the table's width and painted red on a colour terminal.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from typing import Any

INSECURE_BANNER = (
    "WARNING: unauthenticated pool (gossip.insecure = true). Any machine on the network "
    "can join it, receive your preprocessed sources and send back object files your "
    "builds link. Give the pool a key: `p2pcc keygen` on one machine, `p2pcc join` on "
    "the others."
)
_RED = "31"


def banner_lines(node: Mapping[str, Any], width: int, colour: bool) -> list[str]:
    """The banner lines for `node` (the document's `node` object), none when all is well."""
    if node.get("insecure") is not True:
        return []
    lines = textwrap.wrap(INSECURE_BANNER, max(width, 20))
    if colour:
        lines = [f"\x1b[{_RED}m{line}\x1b[0m" for line in lines]
    return lines
