"""Ring probing: whom a node watches, when it probes, and when a member is silent."""

from __future__ import annotations

import random

import pytest

from p2pcc.core.probing import (
    DEAD_PROBE_INTERVAL,
    HEALING_PROBE_INTERVAL,
    HEALING_SPAN,
    PROBE_ATTEMPTS,
    PROBE_INTERVAL,
    PROBE_TIMEOUT,
    PROBE_WATCHERS,
    Answer,
    Prober,
    successors,
)

IDS = [bytes([index]) * 16 for index in range(1, 7)]


def test_each_node_watches_the_next_members_on_the_ring_wrapping_round() -> None:
    assert successors(IDS[2], IDS, 2) == (IDS[3], IDS[4])
    assert successors(IDS[5], IDS, 2) == (IDS[0], IDS[1])
    assert successors(IDS[0], [IDS[0], IDS[1]], 2) == (IDS[1],)
    assert successors(IDS[0], [IDS[0]], 2) == ()


def test_every_member_is_watched_by_exactly_the_watchers_count() -> None:
    watchers = dict.fromkeys(IDS, 0)
    for node in IDS:
        for watched in successors(node, IDS, PROBE_WATCHERS):
            watchers[watched] += 1
    assert set(watchers.values()) == {PROBE_WATCHERS}


def prober(now: float = 0.0) -> Prober:
    probe = Prober(IDS[0], random.Random(1), now)
    probe.set_members(IDS[1:], now)
    return probe


def test_probes_are_staggered_and_an_answered_one_waits_an_interval() -> None:
    probe = prober()
    assert probe.watched == (IDS[1], IDS[2])
    assert probe.next_deadline(any_dead=False) == pytest.approx(PROBE_INTERVAL / 3)
    sent, silent = probe.poll(PROBE_INTERVAL / 3)
    assert [p.node_id for p in sent] == [IDS[1]]
    assert silent == []
    assert probe.acked(IDS[1], sent[0].nonce, 0.4) is Answer.ROUND
    assert probe.acked(IDS[1], sent[0].nonce, 0.4) is Answer.LATE  # answered already
    assert probe.acked(IDS[2], sent[0].nonce, 0.4) is Answer.UNKNOWN  # not its nonce
    sent, _ = probe.poll(2 * PROBE_INTERVAL / 3)
    assert [p.node_id for p in sent] == [IDS[2]]
    assert probe.next_deadline(any_dead=False) == pytest.approx(2 / 3 + PROBE_TIMEOUT)


def test_a_member_that_answers_no_attempt_is_silent_once_then_probed_afresh() -> None:
    probe = prober()
    now, attempts = PROBE_INTERVAL / 3, 0
    while True:
        sent, silent = probe.poll(now)
        attempts += sum(p.node_id == IDS[1] for p in sent)
        if silent:
            break
        for p in sent:
            if p.node_id == IDS[2]:
                probe.acked(IDS[2], p.nonce, now)
        now = probe.next_deadline(any_dead=False)
    assert silent == [IDS[1]]
    assert attempts == PROBE_ATTEMPTS
    assert now == pytest.approx(PROBE_INTERVAL / 3 + PROBE_ATTEMPTS * PROBE_TIMEOUT)
    assert probe.poll(now) == ([], [])
    assert probe.next_deadline(any_dead=False) <= now + PROBE_INTERVAL


def test_an_answer_to_an_earlier_attempt_ends_the_round_and_a_later_one_is_late() -> None:
    """A busy member (a daemon starting up) answers after PROBE_TIMEOUT: the probe was
    sent again, and both answers come.  The first ends the round, whichever attempt it
    answers; the second is late, not a stranger's ack."""
    probe = prober()
    first, _ = probe.poll(PROBE_INTERVAL / 3)
    again, _ = probe.poll(PROBE_INTERVAL / 3 + PROBE_TIMEOUT)
    assert [p.node_id for p in again] == [IDS[1]]
    assert again[0].nonce != first[0].nonce
    assert probe.acked(IDS[1], first[0].nonce, 0.6) is Answer.ROUND
    assert probe.acked(IDS[1], again[0].nonce, 0.61) is Answer.LATE
    assert probe.next_deadline(any_dead=False) == pytest.approx(2 / 3)  # IDS[2]'s turn
    sent, _ = probe.poll(2 / 3)
    assert [p.node_id for p in sent] == [IDS[2]]
    assert probe.next_deadline(any_dead=False) == pytest.approx(2 / 3 + PROBE_TIMEOUT)
    assert probe.acked(IDS[1], first[0].nonce + 10**6, 0.7) is Answer.UNKNOWN


def test_a_dead_member_is_probed_now_and_then_and_its_answer_says_so() -> None:
    probe = prober()
    assert probe.dead_probe([IDS[4]], 1.0) is None  # not yet due
    assert probe.next_deadline(any_dead=True) <= DEAD_PROBE_INTERVAL
    dead = probe.dead_probe([IDS[4]], DEAD_PROBE_INTERVAL)
    assert dead is not None
    assert dead.node_id == IDS[4]
    assert probe.acked(IDS[4], dead.nonce, 5.1) is Answer.HEALED
    assert probe.dead_probe([], 2 * DEAD_PROBE_INTERVAL) is None


def test_a_member_leaving_the_ring_is_no_longer_probed() -> None:
    probe = prober()
    probe.set_members([IDS[3], IDS[4]], 0.0)
    assert probe.watched == (IDS[3], IDS[4])
    probe.set_members([], 0.0)
    assert probe.next_deadline(any_dead=False) == float("inf")


def test_once_a_dead_member_answers_the_others_are_probed_quickly_for_a_while() -> None:
    probe = prober()
    dead = [IDS[3], IDS[4], IDS[5]]
    first = probe.dead_probe(dead, DEAD_PROBE_INTERVAL)
    assert first is not None
    assert probe.acked(first.node_id, first.nonce, 5.01) is Answer.HEALED  # the cut healed
    ticks = [5.01 + step * 0.05 for step in range(1, 200)]  # ten seconds
    probed = [now for now in ticks if probe.dead_probe(dead, now) is not None]
    healing = [now for now in probed if now < 5.01 + HEALING_SPAN]
    assert len(healing) >= HEALING_SPAN / HEALING_PROBE_INTERVAL - 1
    assert len(probed) - len(healing) <= 2  # then back to one every DEAD_PROBE_INTERVAL
