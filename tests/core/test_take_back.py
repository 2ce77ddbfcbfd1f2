"""Which jobs on a straggler are taken back: only a measured, left-out peer's, and only
those that would end later there than compiled afresh."""

from __future__ import annotations

from ipaddress import ip_address as ip

from p2pcc.core.job_connections import ConnectionKey
from p2pcc.core.take_back import jobs_to_take_back
from p2pcc.core.turnaround import Turnaround

SLOW, FAST = b"s" * 16, b"f" * 16
#: Six times the others' typical 2-s job: a job there takes about 12 s, so one is worth
#: taking back while it has run less than (6 - 1) x 2 = 10 s.
MEASURED = Turnaround(3, 12.0, 12.0, 6.0, 2.0)


def key(port: int, peer: int = 2) -> ConnectionKey:
    return (ip("10.0.0.1"), port, ip(f"10.0.0.{peer}"), 3632, port)


def test_young_jobs_on_a_measured_straggler_out_of_the_lines_are_taken_back() -> None:
    open_jobs = {
        SLOW: [(key(40000), 0.0), (key(40001), 9.9), (key(40002), 10.0), (key(40003), 30.0)],
        FAST: [(key(40004, 3), 0.5)],
    }
    figures = {SLOW: MEASURED, FAST: Turnaround(9, 2.0, 2.0, 1.0, 12.0)}
    taken = jobs_to_take_back(open_jobs, figures, {SLOW: 0.15}, in_lines={FAST})
    assert taken == {SLOW: [key(40000), key(40001)]}


def test_a_peer_in_a_line_or_not_measured_slow_keeps_its_jobs() -> None:
    open_jobs = {SLOW: [(key(40000), 0.0)]}
    figures = {SLOW: MEASURED}
    assert jobs_to_take_back(open_jobs, figures, {SLOW: 0.15}, in_lines={SLOW}) == {}
    # Out of the lines for what it announces (paused, full), not for its speed.
    assert jobs_to_take_back(open_jobs, figures, {}, in_lines=()) == {}
    # A verdict from before, but no relative figure now (its evidence aged out).
    unknown = {SLOW: Turnaround(1, 12.0, 12.0)}
    assert jobs_to_take_back(open_jobs, unknown, {SLOW: 0.15}, in_lines=()) == {}
    assert jobs_to_take_back(open_jobs, {}, {SLOW: 0.15}, in_lines=()) == {}


def test_a_peer_barely_slower_than_the_others_keeps_even_its_youngest_job() -> None:
    barely = Turnaround(5, 2.0, 2.0, 1.0, 2.0)  # relative 1: nothing to gain
    taken = jobs_to_take_back({SLOW: [(key(40000), 0.0)]}, {SLOW: barely}, {SLOW: 0.5}, ())
    assert taken == {}
