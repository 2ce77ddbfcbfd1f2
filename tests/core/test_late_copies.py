"""The memory that tells a late copy of a word from a replay (core/late_copies.py)."""

from __future__ import annotations

from p2pcc.core.late_copies import LateCopies

NODE, OTHER = b"\x01" * 16, b"\x02" * 16


def test_only_the_orders_a_word_passed_within_the_window_are_late() -> None:
    late = LateCopies(window=1.0, capacity=8)
    late.accepted(NODE, None, (7, 3), 0.0)  # first heard at sequence 3
    assert late.late_reason(NODE, (7, 3), 0.5) == "duplicate"
    assert late.late_reason(NODE, (7, 2), 0.5) is None  # before we heard it: no telling
    late.accepted(NODE, (7, 3), (7, 6), 0.5)
    assert late.late_reason(NODE, (7, 4), 0.6) == "reordered"
    assert late.late_reason(NODE, (7, 3), 0.6) == "duplicate"  # taken at 0.0, still fresh
    assert late.late_reason(OTHER, (7, 4), 0.6) is None
    assert late.late_reason(NODE, (7, 3), 1.01) is None  # a second after it was taken
    assert late.late_reason(NODE, (7, 5), 1.5) == "reordered"
    assert late.late_reason(NODE, (7, 5), 1.51) is None


def test_a_flood_shortens_the_memory_it_cannot_grow_it() -> None:
    late = LateCopies(window=1.0, capacity=8)
    late.accepted(NODE, None, (1, 1), 0.0)
    for index in range(8):
        late.accepted(bytes([index + 10]) * 16, None, (1, 1), 0.1)
    assert late.late_reason(NODE, (1, 1), 0.2) is None
    assert late.late_reason(bytes([17]) * 16, (1, 1), 0.2) == "duplicate"


def test_judge_renames_only_replays() -> None:
    late = LateCopies()
    late.accepted(NODE, None, (1, 1), 0.0)
    assert late.judge(NODE, (1, 1), "replay", 0.1) == "duplicate"
    assert late.judge(NODE, (1, 1), "table-full", 0.1) == "table-full"
    assert late.judge(NODE, (1, 0), "replay", 0.1) == "replay"
