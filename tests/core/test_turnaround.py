"""The turnaround book: a straggler recognized within a handful of jobs, forgiven after as
many, unknown with too few, bounded in peers and jobs — all on explicit times."""

from __future__ import annotations

import itertools
import math

import pytest

from p2pcc.core.turnaround import (
    MAX_TURNAROUND,
    MIN_JOBS,
    UNKNOWN,
    WINDOW_JOBS,
    WINDOW_SECONDS,
    Turnaround,
    TurnaroundBook,
)

FAST, OTHER, SLOW = b"f" * 16, b"o" * 16, b"s" * 16


def feed(book: TurnaroundBook, jobs: list[tuple[bytes, float, float]]) -> None:
    for node_id, seconds, at in jobs:
        book.observe(node_id, seconds, at)


def round_robin(start: float, **per_peer: list[float]) -> list[tuple[bytes, float, float]]:
    """Jobs of each peer in turn, one every 0.5 s from `start`."""
    ids = {"fast": FAST, "other": OTHER, "slow": SLOW}
    interleaved = itertools.zip_longest(
        *[[(ids[name], s) for s in times] for name, times in per_peer.items()]
    )
    flat = [job for group in interleaved for job in group if job is not None]
    return [(node_id, s, start + 0.5 * i) for i, (node_id, s) in enumerate(flat)]


@pytest.mark.parametrize(
    ("fast", "slow", "expected_fast", "expected_slow"),
    [
        # A few slow jobs among fast ones: no verdict on anecdotes, either way.
        ([1.0] * 8, [10.0] * (MIN_JOBS - 1), None, None),
        # The MIN_JOBS-th slow job gives the verdict: ten times the other (which, the
        # only other peer, is a tenth of it).
        ([1.0] * 8, [10.0] * MIN_JOBS, 0.1, 10.0),
        # Noisy fast jobs, a straggler among them: its median says 10, its mean (8.8 s
        # against 1.29 s) 6.8, and slower is only as far as both agree.
        ([0.8, 1.2, 1.0, 3.0, 0.9, 1.1, 1.0], [9.0, 12.0, 10.0, 11.0, 2.0], 0.1, 6.84),
        # Equals are 1.0 both ways.
        ([2.0] * 6, [2.0] * 6, 1.0, 1.0),
    ],
)
def test_relative_figures(
    fast: list[float],
    slow: list[float],
    expected_fast: float | None,
    expected_slow: float | None,
) -> None:
    book = TurnaroundBook()
    feed(book, round_robin(0.0, fast=fast, slow=slow))
    figures = book.figures(10.0)
    for node_id, expected in ((FAST, expected_fast), (SLOW, expected_slow)):
        relative = figures[node_id].relative
        if expected is None:
            assert relative is None
        else:
            assert relative == pytest.approx(expected, rel=0.15)


def test_a_ten_fold_straggler_among_three_is_recognized_within_min_jobs_of_its_own() -> None:
    book = TurnaroundBook()
    jobs = round_robin(0.0, fast=[1.0] * 10, other=[1.2] * 10, slow=[10.0] * MIN_JOBS)
    relatives = []
    for node_id, seconds, at in jobs:
        book.observe(node_id, seconds, at)
        relatives.append(book.figure(SLOW, at).relative)
    first = next(i for i, value in enumerate(relatives) if value is not None)
    # Within 30 s of jobs (one every 0.5 s here), and at the slow peer's MIN_JOBS-th.
    assert jobs[first][2] <= 30.0
    assert [job[0] for job in jobs[: first + 1]].count(SLOW) == MIN_JOBS
    assert (relatives[first] or 0.0) > 8.0
    figures = book.figures(jobs[-1][2])
    fast, other = figures[FAST].relative, figures[OTHER].relative
    assert fast is not None
    assert fast < 1.0
    assert other is not None
    assert 1.0 <= other < 1.5


def test_a_recovered_peer_is_forgiven_after_a_handful_of_fast_jobs() -> None:
    book = TurnaroundBook()
    feed(book, round_robin(0.0, fast=[1.0] * WINDOW_JOBS, slow=[10.0] * WINDOW_JOBS))
    assert book.figure(SLOW, 9.0).relative == pytest.approx(10.0)
    recovered = [(SLOW, 1.0, 10.0 + i) for i in range(WINDOW_JOBS // 2 + 1)]
    feed(book, recovered)
    assert book.figure(SLOW, 20.0).relative == pytest.approx(1.0)


def test_old_turnarounds_fade_so_an_idle_straggler_starts_anew() -> None:
    book = TurnaroundBook()
    feed(book, round_robin(0.0, fast=[1.0] * 6, slow=[10.0] * 6))
    first, last = 0.0, 5.5
    assert book.figure(SLOW, first + WINDOW_SECONDS - 0.1).relative is not None
    assert book.figure(SLOW, last + WINDOW_SECONDS) == UNKNOWN
    assert book.figures(last + WINDOW_SECONDS) == {}


def test_one_peer_alone_has_figures_but_no_relative_one() -> None:
    book = TurnaroundBook()
    feed(book, [(FAST, seconds, 1.0) for seconds in (1.0, 2.0, 3.0, 4.0, 5.0, 6.0)])
    assert book.figure(FAST, 1.0) == Turnaround(6, 3.5, 3.5, None, newest=1.0)
    assert book.figure(SLOW, 1.0) == UNKNOWN
    assert UNKNOWN.as_document() == {"jobs": 0, "median": None, "mean": None, "relative": None}


@pytest.mark.parametrize("bad", [-1.0, math.nan, math.inf, -math.inf])
def test_impossible_turnarounds_are_ignored(bad: float) -> None:
    book = TurnaroundBook()
    book.observe(FAST, bad, 1.0)
    assert book.peers() == 0


def test_a_hanging_connection_counts_as_the_cap() -> None:
    book = TurnaroundBook()
    book.observe(FAST, 10 * MAX_TURNAROUND, 1.0)
    assert book.figure(FAST, 1.0).median == MAX_TURNAROUND


def test_all_zero_turnarounds_give_no_relative_figure() -> None:
    book = TurnaroundBook()
    feed(book, round_robin(0.0, fast=[0.0] * 6, slow=[0.0] * 6))
    assert book.figure(SLOW, 6.0) == Turnaround(6, 0.0, 0.0, None, newest=5.5)


def test_jobs_per_peer_are_bounded_by_the_window() -> None:
    book = TurnaroundBook()
    feed(book, [(FAST, float(i), i) for i in range(100)])
    figure = book.figure(FAST, 100.0)
    assert figure.jobs == WINDOW_JOBS
    assert figure.median == 100 - 1 - WINDOW_JOBS // 2


def test_peers_are_bounded_and_the_longest_unheard_goes_first() -> None:
    book = TurnaroundBook(max_peers=3)
    for index in range(5):
        book.observe(bytes([index]) * 16, 1.0, float(index))
    book.observe(bytes([2]) * 16, 1.0, 10.0)  # heard again: now the newest
    book.observe(bytes([9]) * 16, 1.0, 11.0)
    assert book.peers() == 3
    assert set(book.figures(11.0)) == {bytes([2]) * 16, bytes([4]) * 16, bytes([9]) * 16}


def test_forgotten_peers_are_dropped() -> None:
    book = TurnaroundBook()
    feed(book, [(FAST, 1.0, 0.0), (SLOW, 1.0, 0.0)])
    book.keep_only([FAST, OTHER])
    assert (book.peers(), set(book.figures(0.0))) == (1, {FAST})


def test_jobs_still_running_hasten_a_straggler_verdict_as_lower_bounds() -> None:
    book = TurnaroundBook()
    feed(book, round_robin(0.0, fast=[1.0] * 8, slow=[10.0] * (MIN_JOBS - 2)))
    assert book.figure(SLOW, 10.0).relative is None  # three finished jobs: anecdotes
    # Two more jobs running there for 9 and 12 s so far: five figures, median 10 s.
    figures = book.figures(10.0, running={SLOW: [9.0, 12.0]})
    assert figures[SLOW].relative == pytest.approx(10.0)
    assert figures[SLOW].jobs == MIN_JOBS - 2  # only finished jobs are reported as such
    # Jobs that have only just begun can pull the median down, never up.
    figures = book.figures(10.0, running={SLOW: [0.1, 0.2, 0.3, 0.4]})
    assert figures[SLOW].relative == pytest.approx(0.4)
    # Running jobs never join another peer's reference: three finished jobs elsewhere
    # are still too few to judge the fast peer by.
    assert book.figures(10.0, running={SLOW: [50.0] * 5})[FAST].relative is None


def test_a_peer_is_slower_only_when_its_mean_agrees_with_its_median() -> None:
    # Two equal peers of a small project: one got mostly big files, one mostly small
    # ones; their medians differ 3-fold, their means do not.
    book = TurnaroundBook()
    feed(book, round_robin(0.0, fast=[1.0, 1.0, 1.0, 1.0, 8.0, 8.0], slow=[3.0] * 6))
    figures = book.figures(10.0)
    assert figures[FAST].relative == pytest.approx(1 / 3)  # faster: the medians say so
    assert figures[SLOW].relative == pytest.approx(1.0)  # 3.0 against a mean of 3.33


def test_only_jobs_of_the_same_time_are_compared() -> None:
    # A C build on FAST and OTHER, then, a minute later, a C++ build (jobs five times
    # as long) on SLOW alone: nothing to compare SLOW's jobs with, so no verdict.
    book = TurnaroundBook()
    feed(book, round_robin(0.0, fast=[1.0] * 8, other=[1.0] * 8))
    feed(book, [(SLOW, 5.0, 70.0 + 5 * n) for n in range(6)])
    assert book.figures(100.0)[SLOW].relative is None
    # The same jobs of SLOW while the others build too: ten times theirs.
    book = TurnaroundBook()
    feed(book, round_robin(70.0, fast=[0.5] * 20, other=[0.5] * 20))
    feed(book, [(SLOW, 5.0, 70.0 + 5 * n) for n in range(6)])
    assert book.figures(100.0)[SLOW].relative == pytest.approx(10.0)


def test_the_typical_job_a_peer_is_measured_against_comes_with_its_relative_figure() -> None:
    book = TurnaroundBook()
    feed(book, round_robin(70.0, fast=[0.5] * 20, other=[1.5] * 20))
    feed(book, [(SLOW, 5.0, 70.0 + 5 * n) for n in range(6)])
    figures = book.figures(100.0)
    assert figures[SLOW].typical == pytest.approx(1.0)  # the others' median: 0.5 and 1.5
    assert figures[SLOW].relative == pytest.approx(5.0)
    assert book.figures(100.0, {}).keys() == figures.keys()
    lone = TurnaroundBook()
    feed(lone, [(SLOW, 5.0, 70.0 + 5 * n) for n in range(6)])
    assert lone.figures(100.0)[SLOW] == Turnaround(6, 5.0, 5.0, None, None, newest=95.0)


def test_forgetting_a_peer_drops_only_its_jobs() -> None:
    book = TurnaroundBook()
    feed(book, round_robin(0.0, fast=[1.0] * 6, slow=[10.0] * 6))
    book.forget([SLOW, OTHER])  # OTHER has no jobs: nothing to do
    assert set(book.figures(6.0)) == {FAST}
