"""The file that carries the peer table's replay memory across a daemon restart.

A restarted daemon would otherwise start with no memory of which `(incarnation,
sequence)` orders it has seen, and take a recording of a departed node's datagrams as
new until the real node is heard again (docs/security.md).  The daemon saves
`PeerTable.seen_orders()` in this form and feeds it back with `PeerTable.remember()`.

The content is one msgpack map: `{"v": 1, "orders": [[id, incarnation, sequence], ...]}`
with the oldest memory first.  Decoding is strict and bounded, like the wire format: a
damaged file is refused whole with a reason, never half-used.
"""

from __future__ import annotations

from collections.abc import Mapping

import msgpack

from p2pcc.core import limits

VERSION = 1

#: Entries kept: every peer the table holds plus every tombstone.
MAX_ENTRIES = limits.MAX_PEERS + limits.MAX_TOMBSTONES

#: Largest file decoded: an entry is at most 16 id bytes and two 9-byte integers plus
#: framing (under 40 bytes); anything larger is not a file this code wrote.
MAX_FILE_BYTES = 64 + MAX_ENTRIES * 40


def encode_seen_orders(orders: Mapping[bytes, tuple[int, int]]) -> bytes:
    """The file content for `orders` (node id -> newest order seen), in their order."""
    entries = [
        [node_id, incarnation, sequence] for node_id, (incarnation, sequence) in orders.items()
    ]
    data: bytes = msgpack.packb({"v": VERSION, "orders": entries[-MAX_ENTRIES:]}, use_bin_type=True)
    return data


def decode_seen_orders(data: bytes) -> dict[bytes, tuple[int, int]]:
    """The orders kept in a file's content; ValueError saying what is wrong with it."""
    if len(data) > MAX_FILE_BYTES:
        raise ValueError(f"larger than {MAX_FILE_BYTES} bytes")
    try:
        document = msgpack.unpackb(data, raw=False, strict_map_key=True)
    except (ValueError, msgpack.UnpackException, RecursionError) as error:
        # unpackb caps every length at the input's size, which is capped above.
        raise ValueError(f"not msgpack ({str(error)[:80] or type(error).__name__})") from None
    if not isinstance(document, dict) or set(document) != {"v", "orders"}:
        raise ValueError("expected a map with exactly v and orders")
    if document["v"] != VERSION:
        raise ValueError(f"version {document['v']!r}, this daemon reads {VERSION}")
    entries = document["orders"]
    if not isinstance(entries, list) or len(entries) > MAX_ENTRIES:
        raise ValueError(f"orders is not a list of at most {MAX_ENTRIES} entries")
    orders: dict[bytes, tuple[int, int]] = {}
    for index, entry in enumerate(entries):
        if not _is_entry(entry):
            raise ValueError(f"entry {index} is not [16-byte id, incarnation, sequence]")
        node_id, incarnation, sequence = entry
        orders[node_id] = max(orders.get(node_id, (0, 0)), (incarnation, sequence))
    return orders


def _is_entry(entry: object) -> bool:
    if not isinstance(entry, list) or len(entry) != 3:
        return False
    node_id, *counters = entry
    return (
        isinstance(node_id, bytes)
        and len(node_id) == limits.NODE_ID_BYTES
        and all(_is_counter(counter) for counter in counters)
    )


def _is_counter(value: object) -> bool:
    return (
        isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= limits.MAX_COUNTER
    )
