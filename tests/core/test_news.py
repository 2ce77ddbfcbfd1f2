"""The news queue: one entry per node, the newest word, least-sent first, bounded."""

from __future__ import annotations

import pytest

from p2pcc.core import limits
from p2pcc.core.model import EntryKind, NewsEntry
from p2pcc.core.news import MAX_QUEUED, NewsQueue, newer, transmits

ID_A, ID_B = b"\xaa" * 16, b"\xbb" * 16


def entry(kind: EntryKind, node_id: bytes = ID_A, sequence: int = 1) -> NewsEntry:
    return NewsEntry(kind, node_id, 1, sequence, 1)


def fixed_size(size: int = 100) -> NewsQueue:
    return NewsQueue(lambda entry: size)


@pytest.mark.parametrize(
    ("members", "times"), [(1, 3), (9, 3), (10, 6), (99, 6), (100, 9), (1000, 12)]
)
def test_news_is_passed_on_a_few_more_times_per_decade_of_pool(members: int, times: int) -> None:
    assert transmits(members) == times


def test_later_word_about_a_node_replaces_earlier_and_never_the_reverse() -> None:
    queue = fixed_size()
    assert queue.add(entry(EntryKind.STATE, sequence=5), 3)
    assert not queue.add(entry(EntryKind.STATE, sequence=4), 3)  # older
    assert queue.add(entry(EntryKind.SUSPECT, sequence=5), 3)  # same order, later news
    assert not queue.add(entry(EntryKind.STATE, sequence=5), 3)
    assert queue.add(entry(EntryKind.LEAVE, sequence=5), 3)
    assert queue.take(1000) == (entry(EntryKind.LEAVE, sequence=5),)
    assert newer(entry(EntryKind.STATE, sequence=6), entry(EntryKind.LEAVE, sequence=5))


def test_each_take_is_one_transmit_and_a_spent_entry_leaves() -> None:
    queue = fixed_size()
    queue.add(entry(EntryKind.STATE), 2)
    assert len(queue.take(1000)) == 1
    assert len(queue.take(1000)) == 1
    assert not queue
    assert queue.take(1000) == ()
    assert not queue.add(entry(EntryKind.STATE, sequence=2), 0)  # nothing to do


def test_fresh_news_goes_first_and_the_budget_is_kept() -> None:
    queue = fixed_size(100)
    queue.add(entry(EntryKind.STATE, ID_A), 1)
    queue.add(entry(EntryKind.STATE, ID_B), 5)
    assert [e.node_id for e in queue.take(150)] == [ID_B]  # one fits: the least sent
    assert [e.node_id for e in queue.take(250)] == [ID_B, ID_A]


def test_a_datagram_carries_at_most_max_news_entries() -> None:
    queue = fixed_size(1)
    for index in range(limits.MAX_NEWS + 5):
        queue.add(entry(EntryKind.SUSPECT, index.to_bytes(16, "big")), 1)
    assert len(queue.take(10_000)) == limits.MAX_NEWS
    assert len(queue) == 5


def test_a_full_queue_drops_the_entry_closest_to_done() -> None:
    queue = fixed_size()
    for index in range(MAX_QUEUED):
        queue.add(entry(EntryKind.SUSPECT, index.to_bytes(16, "big")), 5 if index else 1)
    queue.add(entry(EntryKind.STATE, ID_A), 5)
    assert len(queue) == MAX_QUEUED
    taken: set[bytes] = set()
    while queue:
        taken |= {e.node_id for e in queue.take(10**6)}
    assert ID_A in taken
    assert (0).to_bytes(16, "big") not in taken  # the one with a single transmit left
    queue.add(entry(EntryKind.STATE, ID_A, sequence=9), 5)
    queue.discard(ID_A)
    assert not queue
