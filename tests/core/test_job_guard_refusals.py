"""Joining the guard's report lines to distccd's job summaries, hostile text included."""

from __future__ import annotations

from p2pcc.core.guard_refusals import (
    MAX_KEYS,
    MAX_PENDING,
    UNKNOWN_CLIENT,
    GuardRefusals,
    Refusal,
    parse_report,
    parse_summaries,
)

SUMMARY = (
    "distccd[{pid}] (dcc_job_summary) client: {client}:40636 COMPILE_ERROR exit:87 sig:0 "
    "core:0 ret:0 time:8ms /run/p2pcc/guard/x86_64-linux-gnu-gcc a.c\n"
)


def summary(pid: int, client: str = "10.0.0.2") -> str:
    return SUMMARY.format(pid=pid, client=client)


def test_parse_report_keeps_well_formed_lines_only() -> None:
    text = "12 '-wrapper' is not allowed\n\nx 1\n13 \x1b[31mred\n14 " + "a" * 500 + "\n15 ok"
    assert parse_report(text) == [(12, "'-wrapper' is not allowed"), (15, "ok")]


def test_parse_summaries_reads_refused_jobs_only() -> None:
    ok = "distccd[9] (dcc_job_summary) client: 10.0.0.3:1 COMPILE_OK exit:0 sig:0 x\n"
    error = "distccd[9] (dcc_job_summary) client: 10.0.0.3:1 COMPILE_ERROR exit:1 sig:0 x\n"
    ipv6 = SUMMARY.format(pid=8, client="fe80::1")
    assert parse_summaries(ok + error + summary(7) + ipv6) == [(7, "10.0.0.2"), (8, "fe80::1")]


def test_refusals_join_by_pid_in_order_and_log_once_per_client_and_reason() -> None:
    refusals = GuardRefusals()
    got = refusals.add([(5, "a"), (6, "b"), (5, "a")], [])
    assert got == []  # no summary yet: they wait
    got = refusals.add([], parse_summaries(summary(6, "10.0.0.9") + summary(5) + summary(5)))
    assert got == [
        Refusal("10.0.0.2", "a", first=True),
        Refusal("10.0.0.9", "b", first=True),
        Refusal("10.0.0.2", "a", first=False),
    ]
    assert refusals.total == 3
    assert refusals.by_reason() == {"a": 2, "b": 1}
    assert refusals.by_client() == {"10.0.0.2": 2, "10.0.0.9": 1}
    assert refusals.as_document()["refusals"] == 3


def test_a_summary_before_its_report_waits_too() -> None:
    refusals = GuardRefusals()
    assert refusals.add([], [(4, "10.0.0.2")]) == []
    assert refusals.add([(4, "x")], []) == [Refusal("10.0.0.2", "x", first=True)]


def test_pending_is_bounded_and_the_oldest_counts_for_an_unknown_client() -> None:
    refusals = GuardRefusals()
    got = refusals.add([(pid, "r") for pid in range(MAX_PENDING + 3)], [])
    assert [refusal.client for refusal in got] == [UNKNOWN_CLIENT] * 3
    refusals.add([], [(pid, "c") for pid in range(10**6, 10**6 + MAX_PENDING + 5)])
    assert refusals.total == 3


def test_distinct_keys_are_bounded() -> None:
    refusals = GuardRefusals()
    for n in range(MAX_KEYS + 10):
        refusals.add([(n, f"reason {n}")], [(n, f"10.0.{n // 256}.{n % 256}")])
    assert refusals.total == MAX_KEYS + 10
    assert len(refusals.by_reason()) == MAX_KEYS
    assert len(refusals.by_client()) == MAX_KEYS


def test_problem() -> None:
    refusals = GuardRefusals()
    assert refusals.problem == "not checked yet"
    refusals.set_problem(None)
    assert refusals.as_document()["problem"] is None
