"""Token buckets per uid, quiet refusal reports, and the control socket's budgets."""

from __future__ import annotations

from pathlib import Path

import pytest

from p2pcc.core import rate_limit
from p2pcc.core.rate_limit import ControlBudget, Reports, TokenBuckets


def takes(buckets: TokenBuckets, key: int, now: float, count: int) -> list[bool]:
    return [buckets.take(key, now) for _ in range(count)]


def test_a_bucket_gives_its_burst_then_its_rate() -> None:
    buckets = TokenBuckets(burst=3, rate=2.0)
    assert takes(buckets, 7, 0.0, 4) == [True, True, True, False]
    assert buckets.wait(7, 0.0) == 0.5
    assert takes(buckets, 7, 0.49, 1) == [False]  # a refusal takes nothing
    assert takes(buckets, 7, 0.5, 2) == [True, False]
    assert takes(buckets, 7, 100.0, 4) == [True, True, True, False]  # never above the burst


def test_each_key_has_its_own_bucket_and_time_going_back_adds_nothing() -> None:
    buckets = TokenBuckets(burst=1, rate=1.0)
    assert takes(buckets, 1, 10.0, 2) == [True, False]
    assert takes(buckets, 2, 10.0, 1) == [True]
    assert takes(buckets, 1, 5.0, 1) == [False]
    assert buckets.wait(3, 0.0) == 0.0  # an unknown key has a full bucket


def test_at_the_key_cap_the_least_recently_used_key_is_forgotten() -> None:
    buckets = TokenBuckets(burst=1, rate=0.001, max_keys=2)
    assert takes(buckets, 1, 0.0, 1) == takes(buckets, 2, 0.0, 1) == [True]
    assert takes(buckets, 1, 0.0, 1) == [False]  # 1 is now the most recent
    assert takes(buckets, 3, 0.0, 1) == [True]  # forgets 2, the least recent
    assert takes(buckets, 1, 0.0, 1) == [False]
    assert takes(buckets, 2, 0.0, 1) == [True]  # a fresh bucket again


def test_reports_say_the_first_event_then_one_per_interval_with_the_missed_count() -> None:
    reports = Reports(60.0)
    assert reports.due("a", 0.0) == 0
    assert [reports.due("a", t) for t in (1.0, 2.0, 59.9)] == [None, None, None]
    assert reports.due("b", 30.0) == 0  # another key: its own interval
    assert reports.due("a", 60.0) == 3
    assert reports.due("a", 61.0) is None
    assert reports.due("a", 200.0) == 1


def test_reports_forget_the_least_recent_key_at_the_cap() -> None:
    reports = Reports(60.0, max_keys=2)
    assert [reports.due(key, 0.0) for key in ("a", "b", "c")] == [0, 0, 0]
    assert reports.due("a", 1.0) == 0  # forgotten: reported as new
    assert reports.due("c", 1.0) is None


def test_a_flood_reaches_the_node_at_the_change_rate() -> None:
    budget = ControlBudget()
    passed = []
    for index in range(2000):  # 2,000 pause requests in 2.8 s, as in the issue
        now = index * 2.8 / 2000
        if not budget.request(1000, now) and not budget.change(1000, now):
            passed.append(now)
    burst, rate = rate_limit.CHANGE_BURST, rate_limit.CHANGE_RATE
    assert burst <= len(passed) <= burst + rate * 2.8 + 1
    assert len(passed) == 15


def test_requests_and_changes_have_separate_budgets_and_root_has_none() -> None:
    budget = ControlBudget()
    assert [budget.change(1000, 0.0) for _ in range(rate_limit.CHANGE_BURST)] == [""] * 10
    assert budget.change(1000, 0.0) == (
        "too many pauses and resumes from uid 1000 (at most 10 at once, then 2 a second); "
        "try again in 0.5 s"
    )
    assert budget.request(1000, 0.0) == ""  # reads go on
    assert all(budget.request(1001, 0.0) == "" for _ in range(rate_limit.REQUEST_BURST))
    assert budget.request(1001, 0.0).startswith("too many requests from uid 1001 (at most 40")
    assert all(budget.change(0, 0.0) == budget.request(0, 0.0) == "" for _ in range(1000))


@pytest.mark.parametrize(
    ("burst", "rate"),
    [
        (rate_limit.REQUEST_BURST, rate_limit.REQUEST_RATE),
        (rate_limit.CHANGE_BURST, rate_limit.CHANGE_RATE),
    ],
)
def test_the_documented_budgets_hold_over_a_minute(burst: int, rate: float) -> None:
    buckets = TokenBuckets(burst, rate)
    taken = sum(buckets.take(1000, step / 100) for step in range(6000))
    assert taken == burst + int(rate * 59.99)


def test_the_documented_lanes_match_the_code() -> None:
    text = (Path(__file__).parents[2] / "docs" / "control.md").read_text()
    assert f"(`MAX_CONNECTIONS_PER_UID`) | {rate_limit.MAX_CONNECTIONS_PER_UID} |" in text
    for kind in ("REQUEST", "CHANGE"):
        burst, rate = getattr(rate_limit, f"{kind}_BURST"), getattr(rate_limit, f"{kind}_RATE")
        assert f"| {burst} at once, then {rate:g} a second |" in text
    assert rate_limit.REFUSAL_REPORT_INTERVAL == 60.0
    assert "| one per uid and kind a minute |" in text
