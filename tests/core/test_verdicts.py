"""Verdicts drawn from the turnaround book: the share of its announced speed a peer
delivers, changed only by new evidence about the peer, standing for a while after it,
forgotten on request — all on explicit times."""

from __future__ import annotations

from dataclasses import replace

from p2pcc.core.turnaround import Turnaround
from p2pcc.core.verdicts import VERDICT_HOLD, Verdicts, delivered_factors

FAST, OTHER, SLOW = b"f" * 16, b"o" * 16, b"s" * 16
POWERS = dict.fromkeys((FAST, OTHER, SLOW), 1.0)
OTHERS = {
    FAST: Turnaround(9, 1.0, 1.0, 1.0, newest=0.0),
    OTHER: Turnaround(9, 1.0, 1.0, 1.0, newest=0.0),
}
#: A ten-fold straggler, its newest job ended at 0.
SLOW_FIGURE = Turnaround(5, 10.0, 10.0, 10.0, 1.0, newest=0.0)


def test_delivered_factors_compare_measured_with_announced() -> None:
    figures = {
        FAST: Turnaround(9, 1.0, 1.0, 0.5),
        OTHER: Turnaround(9, 2.0, 2.0, 1.0),
        SLOW: Turnaround(5, 20.0, 20.0, 10.0),  # a straggler completes few jobs
    }
    # All announce the same power: the ten-fold straggler delivers about a tenth, the
    # others all they announce (no factor: left out).
    same = dict.fromkeys((FAST, OTHER, SLOW), 1.0)
    factors = delivered_factors(figures, same)
    assert set(factors) == {SLOW}
    assert 0.084 <= factors[SLOW] <= 0.1  # snapped down to a quarter power of two
    # A peer announcing a tenth of the others' power delivers what it says.
    assert delivered_factors(figures, {**same, SLOW: 0.1}) == {}
    # Without a relative figure, or without others to compare, there is no verdict.
    assert delivered_factors({SLOW: Turnaround(3, 20.0, 20.0, None), **figures}, {SLOW: 1.0}) == {}
    assert delivered_factors({}, same) == {}


def test_delivered_factors_have_no_floor_and_few_values() -> None:
    others = {FAST: Turnaround(9, 1.0, 1.0, 1.0), OTHER: Turnaround(9, 1.0, 1.0, 1.0)}
    powers = dict.fromkeys((FAST, OTHER, SLOW), 1.0)
    seen = set()
    for tenths in range(10, 2000):
        figures = {**others, SLOW: Turnaround(9, 1.0, 1.0, tenths / 10)}
        seen.add(delivered_factors(figures, powers).get(SLOW, 1.0))
    assert min(seen) < 0.006  # 200 times slower: far below a quarter
    assert len(seen) < 40  # quarter powers of two: a few dozen steps, not 2,000


def test_a_verdict_changes_only_with_new_evidence_about_the_peer() -> None:
    verdicts = Verdicts()
    judged = verdicts.update({**OTHERS, SLOW: SLOW_FIGURE}, {}, POWERS, 0.0)
    assert set(judged) == {SLOW}
    assert judged[SLOW] < 0.1
    # Left out, it gets no job; the others slow down as the build goes on, and against
    # them its old jobs would now look fine: the verdict stands.
    busier = {FAST: Turnaround(9, 8.0, 8.0, 1.0), OTHER: Turnaround(9, 8.0, 8.0, 1.0)}
    drifted = {**busier, SLOW: replace(SLOW_FIGURE, relative=1.25)}
    assert verdicts.update(drifted, {}, POWERS, 1.0) == judged
    # Its old jobs leave the window one by one: fewer of them, too few to judge, yet
    # nothing new about it, so the verdict stands (it used to flap back into the lines).
    thinner = {**busier, SLOW: replace(SLOW_FIGURE, jobs=3, median=12.0, relative=None)}
    assert verdicts.update(thinner, {}, POWERS, 2.0) == judged
    # A job of it now running is new evidence, but too little to judge: still standing.
    assert verdicts.update(thinner, {SLOW: [0.5]}, POWERS, 3.0) == judged
    # New evidence that judges it (a job of it ended, like the others'): judged afresh.
    recovered = {**OTHERS, SLOW: replace(SLOW_FIGURE, median=1.1, relative=1.1, newest=4.0)}
    assert verdicts.update(recovered, {}, POWERS, 4.0) == {}


def test_a_verdict_outlives_the_book_until_the_hold_runs_out() -> None:
    verdicts = Verdicts()
    judged = verdicts.update({**OTHERS, SLOW: SLOW_FIGURE}, {}, POWERS, 0.0)
    # The book forgot its jobs (two minutes without one): the verdict stands.
    assert verdicts.update(OTHERS, {}, POWERS, 200.0) == judged
    assert verdicts.update(OTHERS, {}, POWERS, VERDICT_HOLD - 1.0) == judged
    # Held long enough: forgiven, so its next jobs judge it afresh.
    assert verdicts.update(OTHERS, {}, POWERS, VERDICT_HOLD) == {}
    assert verdicts.update(OTHERS, {}, POWERS, VERDICT_HOLD + 1.0) == {}
    # Judged slow again by those next jobs: a new verdict, held anew.
    again = {**OTHERS, SLOW: replace(SLOW_FIGURE, newest=VERDICT_HOLD + 20.0)}
    assert verdicts.update(again, {}, POWERS, VERDICT_HOLD + 20.0) == judged
    assert verdicts.update(OTHERS, {}, POWERS, 2 * VERDICT_HOLD) == judged


def test_a_hold_runs_from_the_evidence_that_last_judged_the_peer() -> None:
    verdicts = Verdicts(hold=100.0)
    verdicts.update({**OTHERS, SLOW: SLOW_FIGURE}, {}, POWERS, 0.0)
    # Still in a line (judged slower than announced, not out): it gets jobs, and each
    # one that ends judges it again, moving the hold on.
    for at in (50.0, 90.0, 140.0):
        later = {**OTHERS, SLOW: replace(SLOW_FIGURE, newest=at)}
        assert SLOW in verdicts.update(later, {}, POWERS, at)
    assert SLOW in verdicts.update(OTHERS, {}, POWERS, 239.0)
    assert verdicts.update(OTHERS, {}, POWERS, 240.0) == {}


def test_forgotten_verdicts_go_at_once() -> None:
    verdicts = Verdicts()
    verdicts.update({**OTHERS, SLOW: SLOW_FIGURE}, {}, POWERS, 0.0)
    verdicts.forget([SLOW, b"x" * 16])  # one never judged: nothing to do
    assert verdicts.update(OTHERS, {}, POWERS, 1.0) == {}
    verdicts.update({**OTHERS, SLOW: SLOW_FIGURE}, {}, POWERS, 2.0)
    verdicts.forget(None)  # every verdict
    assert verdicts.update(OTHERS, {}, POWERS, 3.0) == {}


def test_verdicts_fall_due_when_a_job_ends_or_once_a_second() -> None:
    verdicts = Verdicts()
    assert verdicts.due(0.0, finished=False)
    verdicts.update({}, {}, {}, 10.0)
    assert not verdicts.due(10.5, finished=False)
    assert verdicts.due(10.5, finished=True)
    assert verdicts.due(11.0, finished=False)


def test_a_peer_less_than_three_times_slower_is_left_to_what_it_announces() -> None:
    powers = dict.fromkeys((FAST, OTHER, SLOW), 1.0)
    others = {FAST: Turnaround(9, 1.0, 1.0, 0.4), OTHER: Turnaround(9, 1.0, 1.0, 0.4)}
    # 2.7 times: what equal peers of the shared test machine showed; no verdict.
    assert delivered_factors({**others, SLOW: Turnaround(9, 2.7, 2.7, 2.7)}, powers) == {}
    # 3 times and more: measured, and snapped down (a third is 0.297 after snapping).
    factors = delivered_factors({**others, SLOW: Turnaround(9, 3.0, 3.0, 3.0)}, powers)
    assert 0.29 < factors[SLOW] <= 1 / 3


def test_jobs_taken_back_leave_the_verdict_standing() -> None:
    verdicts = Verdicts()
    slow = replace(SLOW_FIGURE, jobs=3, relative=6.0)  # three ended, two running: judged
    judged = verdicts.update({**OTHERS, SLOW: slow}, {SLOW: [0.0, 0.0]}, POWERS, 0.0)
    assert SLOW in judged
    # Both running jobs taken back: no news about the peer, though against others
    # that have since slowed down its three old jobs would look fine.
    verdicts.set_aside([SLOW], {})
    busier = {FAST: Turnaround(9, 8.0, 8.0, 1.0), OTHER: Turnaround(9, 8.0, 8.0, 1.0)}
    drifted = {**busier, SLOW: replace(slow, relative=1.25)}
    assert verdicts.update(drifted, {}, POWERS, 1.0) == judged
    # Without set_aside the same change (no job running any more) would have been
    # judged afresh against the drifted others: no verdict.
    fresh = Verdicts()
    fresh.update({**OTHERS, SLOW: slow}, {SLOW: [0.0, 0.0]}, POWERS, 0.0)
    assert fresh.update(drifted, {}, POWERS, 1.0) == {}
