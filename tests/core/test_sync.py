"""Sync cookies and transfers: proof of address first, then a paced, bounded transfer."""

from __future__ import annotations

import pytest

from p2pcc.core.model import EntryKind, NewsEntry
from p2pcc.core.pool_exchange import pack
from p2pcc.core.sync import (
    COOKIE_PERIOD,
    MAX_TRANSFERS,
    SYNC_DATAGRAMS,
    SYNC_GAP,
    SYNC_TICK,
    SyncServer,
    cookie,
    cookie_valid,
)
from tests.core.golden_vectors import ACTIVE_STATUS

SECRET = b"s" * 32
ASKER = ("10.0.0.9", 3634)


def test_a_cookie_holds_for_its_period_and_the_next_and_only_for_its_address() -> None:
    issued = cookie(SECRET, ASKER, 10.0)
    assert cookie_valid(SECRET, ASKER, issued, 10.0)
    assert cookie_valid(SECRET, ASKER, issued, COOKIE_PERIOD + 10.0)
    assert not cookie_valid(SECRET, ASKER, issued, 2 * COOKIE_PERIOD + 10.0)
    assert not cookie_valid(SECRET, ("10.0.0.8", 3634), issued, 10.0)
    assert not cookie_valid(SECRET, (ASKER[0], 3635), issued, 10.0)
    assert not cookie_valid(b"t" * 32, ASKER, issued, 10.0)


def entries(count: int) -> list[NewsEntry]:
    return [
        NewsEntry(EntryKind.STATE, index.to_bytes(16, "big"), 1, 1, 1, ACTIVE_STATUS)
        for index in range(count)
    ]


def test_the_table_is_packed_into_datagrams_that_fit() -> None:
    batches = pack(entries(40))
    assert sum(len(batch) for batch in batches) == 40
    assert len(batches) == 10  # 4 statuses of ~300 bytes fit one datagram


def test_a_transfer_is_paced_and_each_requester_served_once_per_gap() -> None:
    server = SyncServer()
    batches = pack(entries(100))
    assert server.start(ASKER, 7, batches, 0.0)
    first = server.poll(0.0)
    assert len(first) == SYNC_DATAGRAMS
    assert {d.nonce for d in first} == {7}
    assert server.poll(SYNC_TICK / 2) == []
    assert server.next_deadline() == pytest.approx(SYNC_TICK)
    got = len(first)
    now = 0.0
    while server.active:
        now += SYNC_TICK
        got += len(server.poll(now))
    assert got == len(batches)
    assert not server.start(ASKER, 8, batches, SYNC_GAP - 1)
    assert server.start(ASKER, 8, batches, SYNC_GAP)


def test_no_more_than_max_transfers_at_once() -> None:
    server = SyncServer()
    batches = pack(entries(100))
    for index in range(MAX_TRANSFERS):
        assert server.start((f"10.0.1.{index}", 3634), index, batches, 0.0)
    assert not server.start(("10.0.2.1", 3634), 99, batches, 0.0)
