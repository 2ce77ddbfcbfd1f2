"""Our state to members beyond our link, a few a tick: each once a cycle, none twice,
the ones a cycle missed first in the next."""

from __future__ import annotations

import math

from p2pcc.core.state_turns import TURN_TICK, StateTurns


def endpoints(count: int) -> list[tuple[str, int]]:
    return [(f"10.1.{i // 250}.{i % 250 + 1}", 3634) for i in range(count)]


def test_a_cycle_reaches_every_member_once_at_an_even_pace_within_its_interval() -> None:
    members = endpoints(1000)
    turns = StateTurns(0.0)
    turns.start_cycle(members, 0.0, 50.0)
    seen: list[tuple[str, int]] = []
    now = 0.0
    while turns.next_turn() < math.inf:
        now = turns.next_turn()
        turn = turns.take(now, set(members))
        assert len(turn) == 2  # 1000 members over 500 ticks
        seen += turn
    assert sorted(seen) == sorted(members)
    assert now < 50.0
    assert turns.take(now + TURN_TICK, set(members)) == []


def test_nothing_before_the_next_tick() -> None:
    turns = StateTurns(0.0)
    turns.start_cycle(endpoints(3), 0.0, 2.0)
    assert len(turns.take(0.0, set(endpoints(3)))) == 1
    assert turns.take(0.05, set(endpoints(3))) == []
    assert turns.next_turn() == TURN_TICK


def test_members_a_cycle_missed_go_first_and_those_gone_not_at_all() -> None:
    turns = StateTurns(0.0, b"node")
    members = sorted(endpoints(10), key=turns.place)  # a cycle's order
    turns.start_cycle(members, 0.0, 0.2)  # two ticks for ten: five a tick
    assert turns.take(0.0, set(members)) == members[:5]
    gone = members[9]
    turns.start_cycle([m for m in members if m != gone], 0.2, 0.2)
    assert turns.take(0.2, set(members)) == [*members[5:9], members[0]]
    assert len(turns) == 4  # members[1:5]: nine listed, five done
    assert turns.take(turns.next_turn(), {members[1]}) == [members[1]]  # the others died meanwhile


def test_each_node_has_an_order_of_its_own() -> None:
    members = endpoints(50)
    ours, theirs = StateTurns(0.0, b"a" * 16), StateTurns(0.0, b"b" * 16)
    assert sorted(members, key=ours.place) != sorted(members, key=theirs.place)
