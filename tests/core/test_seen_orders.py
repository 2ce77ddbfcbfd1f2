"""The replay memory's file: exact round trips, bounded size, damaged files refused whole."""

from __future__ import annotations

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from p2pcc.core import limits
from p2pcc.core.peers import PeerTable
from p2pcc.core.seen_orders import (
    MAX_ENTRIES,
    MAX_FILE_BYTES,
    decode_seen_orders,
    encode_seen_orders,
)
from tests.core.policies import default_timings


def node(n: int) -> bytes:
    return n.to_bytes(limits.NODE_ID_BYTES, "big")


counters = st.integers(min_value=0, max_value=limits.MAX_COUNTER)
orders_maps = st.dictionaries(
    st.binary(min_size=limits.NODE_ID_BYTES, max_size=limits.NODE_ID_BYTES),
    st.tuples(counters, counters),
    max_size=40,
)


@given(orders_maps)
def test_orders_survive_a_round_trip_in_their_order(orders: dict[bytes, tuple[int, int]]) -> None:
    decoded = decode_seen_orders(encode_seen_orders(orders))
    assert list(decoded.items()) == list(orders.items())


def test_the_largest_table_fits_the_file_cap() -> None:
    orders = {node(n): (limits.MAX_COUNTER, limits.MAX_COUNTER) for n in range(MAX_ENTRIES)}
    data = encode_seen_orders(orders)
    assert len(data) <= MAX_FILE_BYTES
    assert decode_seen_orders(data) == orders


def test_more_than_the_cap_keeps_the_newest_memories() -> None:
    orders = {node(n): (1, n) for n in range(MAX_ENTRIES + 5)}
    decoded = decode_seen_orders(encode_seen_orders(orders))
    assert list(decoded) == [node(n) for n in range(5, MAX_ENTRIES + 5)]


def test_a_repeated_id_keeps_its_newest_order() -> None:
    data = msgpack.packb({"v": 1, "orders": [[node(1), 2, 5], [node(1), 2, 9], [node(1), 1, 99]]})
    assert decode_seen_orders(data) == {node(1): (2, 9)}


def test_what_a_table_saw_is_refused_by_a_table_fed_from_the_file() -> None:
    own = node(99)
    before = PeerTable(own, default_timings())
    before.remember({node(1): (3, 4), node(2): (1, 8)})
    after = PeerTable(own, default_timings())
    after.remember(decode_seen_orders(encode_seen_orders(before.seen_orders())))
    assert after.seen_orders() == before.seen_orders() == {node(1): (3, 4), node(2): (1, 8)}


def packed(document: object) -> bytes:
    data: bytes = msgpack.packb(document, use_bin_type=True)
    return data


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "not msgpack"),
        (b"\xc1", "not msgpack"),
        (packed({"v": 1, "orders": []}) + b"\x00", "not msgpack"),
        (packed([1, []]), "exactly v and orders"),
        (packed({"v": 1}), "exactly v and orders"),
        (packed({"v": 1, "orders": [], "x": 0}), "exactly v and orders"),
        (packed({"v": 2, "orders": []}), "version 2"),
        (packed({"v": 1, "orders": {}}), "not a list"),
        (packed({"v": 1, "orders": [[node(1), 1, 1]] * (MAX_ENTRIES + 1)}), "not a list"),
        (packed({"v": 1, "orders": [[node(1), 1]]}), "entry 0"),
        (packed({"v": 1, "orders": [[node(1), 1, 1], [b"short", 1, 1]]}), "entry 1"),
        (packed({"v": 1, "orders": [["x" * 16, 1, 1]]}), "entry 0"),
        (packed({"v": 1, "orders": [[node(1), -1, 1]]}), "entry 0"),
        (packed({"v": 1, "orders": [[node(1), 1, True]]}), "entry 0"),
        (packed({"v": 1, "orders": [[node(1), 1, 1.5]]}), "entry 0"),
        (b"\x00" * (MAX_FILE_BYTES + 1), "larger than"),
    ],
)
def test_a_damaged_file_is_refused_with_its_reason(data: bytes, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        decode_seen_orders(data)


@given(st.binary(max_size=200))
def test_arbitrary_bytes_give_orders_or_a_value_error(data: bytes) -> None:
    try:
        orders = decode_seen_orders(data)
    except ValueError:
        return
    assert all(len(node_id) == limits.NODE_ID_BYTES for node_id in orders)
