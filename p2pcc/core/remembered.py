"""Members beyond our link, remembered across a restart: a pool spanning subnets is found
again when every seed is down.

A running node needs its seeds only until it knows the pool: then any member it hears
brings the rest.  A node that restarts knows nobody beyond its link, and with its seeds
down (the seed machine rebooting with the office, or the one it named renamed) it would
build with its own subnet's peers alone until a seed came back.  So the daemon keeps
the endpoints of a few members beyond its link (`to_remember`: the most recently heard,
at most `MAX_REMEMBERED`) in a small file, and at start-up tries them as seeds
(`contacts`) until a member beyond the link is known again, or for
`REMEMBERED_SPAN` seconds at most: an address kept from last week may be somebody
else's today, and must not get our state for ever.

The file is ours (beside the node id, root's), but read as hostile all the same: a
header, then one `address port` per line, every address a literal and every port in
range, or the whole file is refused (`decode`).  The daemon screens the addresses by
the pool's rule again before use, since the configuration may have changed.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Iterable, Mapping, Sequence

from p2pcc.core import limits
from p2pcc.core.gossip_types import Endpoint
from p2pcc.core.peers import Peer

#: Endpoints kept: any one that answers brings the whole pool, and a few spread over the
#: pool's subnets survive a few machines being off.
MAX_REMEMBERED = 16

#: Seconds after start-up after which remembered endpoints are no longer tried (unless a
#: member beyond our link answered before, which ends it at once).
REMEMBERED_SPAN = 600.0

HEADER = "p2pcc-members 1"

#: Bytes read of the file: the header and MAX_REMEMBERED lines of an IPv6 address and a
#: port, with room to spare.
MAX_FILE_BYTES = 4096


def to_remember(beyond: Mapping[bytes, Endpoint], peers: Iterable[Peer]) -> tuple[Endpoint, ...]:
    """The endpoints of the members beyond our link (`beyond`, by node id) to keep: the
    most recently heard, at most MAX_REMEMBERED, sorted."""
    heard = {peer.node_id: peer.last_heard for peer in peers}
    newest = sorted(beyond, key=lambda node_id: heard.get(node_id, -math.inf), reverse=True)
    return tuple(sorted({beyond[node_id] for node_id in newest[:MAX_REMEMBERED]}))


def contacts(seeds: Sequence[Endpoint], remembered: Sequence[Endpoint]) -> tuple[Endpoint, ...]:
    """What the node takes as its seeds: the configured ones first, then the remembered
    members, without repeats."""
    return tuple(dict.fromkeys((*seeds, *remembered)))


def encode(endpoints: Iterable[Endpoint]) -> bytes:
    """The file holding `endpoints`."""
    lines = [HEADER, *(f"{address} {port}" for address, port in endpoints)]
    return ("\n".join(lines) + "\n").encode()


def decode(data: bytes) -> tuple[Endpoint, ...]:
    """The endpoints a file holds; ValueError, saying why, if it is not such a file."""
    if len(data) > MAX_FILE_BYTES:
        raise ValueError(f"over {MAX_FILE_BYTES} bytes")
    try:
        lines = data.decode("ascii").splitlines()
    except UnicodeDecodeError:
        raise ValueError("not ASCII text") from None
    if not lines or lines[0] != HEADER:
        raise ValueError(f"does not start with {HEADER!r}")
    endpoints: list[Endpoint] = []
    for number, line in enumerate(lines[1:], start=2):
        address, _, port = line.partition(" ")
        try:
            ipaddress.ip_address(address)
            value = int(port)
        except ValueError:
            raise ValueError(f"line {number} is not 'address port'") from None
        if not 0 < value <= limits.MAX_PORT or port != str(value):
            raise ValueError(f"line {number}: no port {port!r}")
        endpoints.append((address, value))
    if len(endpoints) > MAX_REMEMBERED:
        raise ValueError(f"more than {MAX_REMEMBERED} members")
    return tuple(endpoints)
