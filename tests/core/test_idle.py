"""The automatic-pause policy: pause while in use, resume after rest, a manual pause wins."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from p2pcc.core.idle import Action, IdlePolicy, IdleState, PauseKind, decide

POLICY = IdlePolicy(active_within=60.0, resume_after=300.0)


def run(
    looks: list[tuple[float, bool]], pause: PauseKind = PauseKind.NONE
) -> list[tuple[float, Action]]:
    """Feed looks (time, busy) to the policy, applying its actions to a simulated pause."""
    state, actions = IdleState(), list[tuple[float, Action]]()
    for now, busy in looks:
        state, action = decide(POLICY, state, now, busy=busy, pause=pause)
        if action is Action.PAUSE:
            pause = PauseKind.AUTOMATIC
        elif action is Action.RESUME:
            pause = PauseKind.NONE
        if action is not Action.NOTHING:
            actions.append((now, action))
    return actions


def every_second(until: int, busy_at: set[int]) -> list[tuple[float, bool]]:
    return [(float(t), t in busy_at) for t in range(until)]


def test_activity_pauses_at_once_and_rest_resumes_after_resume_after() -> None:
    looks = every_second(1000, busy_at={10, 11, 12})
    assert run(looks) == [(10.0, Action.PAUSE), (312.0, Action.RESUME)]


def test_new_activity_while_paused_postpones_the_resume() -> None:
    looks = every_second(1000, busy_at={10, 200})
    assert run(looks) == [(10.0, Action.PAUSE), (500.0, Action.RESUME)]


def test_a_quiet_desktop_is_never_paused() -> None:
    assert run(every_second(1000, busy_at=set())) == []


def test_a_manual_pause_is_never_lifted_however_long_the_desktop_rests() -> None:
    looks = every_second(2000, busy_at={10})
    assert run(looks, pause=PauseKind.MANUAL) == []


def test_when_a_manual_pause_ends_while_the_desktop_is_in_use_an_automatic_one_follows() -> None:
    state, _ = decide(POLICY, IdleState(), 100.0, busy=True, pause=PauseKind.MANUAL)
    state, action = decide(POLICY, state, 130.0, busy=False, pause=PauseKind.NONE)
    assert action is Action.PAUSE  # 30 s since the activity: still in use


def test_when_a_manual_pause_ends_after_active_within_nothing_follows() -> None:
    state, _ = decide(POLICY, IdleState(), 100.0, busy=True, pause=PauseKind.MANUAL)
    state, action = decide(POLICY, state, 160.0, busy=False, pause=PauseKind.NONE)
    assert action is Action.NOTHING  # 60 s since the activity: no longer in use


def test_a_resume_by_hand_holds_the_automatic_pause_off_until_the_desktop_rests() -> None:
    state, action = decide(POLICY, IdleState(), 0.0, busy=True, pause=PauseKind.NONE)
    assert action is Action.PAUSE
    # Someone resumed by hand: the desktop stays busy, yet no automatic pause follows.
    state, action = decide(
        POLICY, state, 1.0, busy=True, pause=PauseKind.NONE, resumed_by_hand=True
    )
    assert (action, state.held_off) == (Action.NOTHING, True)
    for now in range(2, 100):
        state, action = decide(POLICY, state, float(now), busy=True, pause=PauseKind.NONE)
        assert action is Action.NOTHING
    # Idle from 99 on: held off until 399, then the next activity pauses again.
    state, action = decide(POLICY, state, 398.0, busy=False, pause=PauseKind.NONE)
    assert state.held_off
    state, action = decide(POLICY, state, 399.0, busy=False, pause=PauseKind.NONE)
    assert (action, state.held_off) == (Action.NOTHING, False)
    state, action = decide(POLICY, state, 400.0, busy=True, pause=PauseKind.NONE)
    assert action is Action.PAUSE


def test_a_resume_by_hand_on_a_rested_desktop_holds_nothing_off() -> None:
    state, action = decide(
        POLICY, IdleState(), 5.0, busy=False, pause=PauseKind.NONE, resumed_by_hand=True
    )
    assert (action, state.held_off) == (Action.NOTHING, False)


def test_idle_for_counts_from_the_last_busy_look() -> None:
    state, _ = decide(POLICY, IdleState(), 7.0, busy=True, pause=PauseKind.NONE)
    assert (IdleState().idle_for(9.0), state.idle_for(9.5)) == (None, 2.5)


@pytest.mark.parametrize(("active_within", "resume_after"), [(0.0, 1.0), (5.0, 4.0), (-1, 5)])
def test_the_policy_refuses_thresholds_that_would_flap(
    active_within: float, resume_after: float
) -> None:
    with pytest.raises(ValueError, match="active_within <= resume_after"):
        IdlePolicy(active_within, resume_after)


looks_strategy = st.lists(
    st.tuples(st.floats(0.01, 400.0), st.booleans(), st.booleans(), st.sampled_from(PauseKind)),
    max_size=60,
)


@given(looks_strategy)
def test_actions_always_fit_the_pause_in_effect(
    steps: list[tuple[float, bool, bool, PauseKind]],
) -> None:
    state, now = IdleState(), 0.0
    for gap, busy, by_hand, pause in steps:
        now += gap
        before = state
        state, action = decide(POLICY, state, now, busy=busy, pause=pause, resumed_by_hand=by_hand)
        if pause is PauseKind.MANUAL:
            assert action is Action.NOTHING  # a manual pause always wins
        if action is Action.RESUME:
            assert pause is PauseKind.AUTOMATIC
            idle_for = state.idle_for(now)
            assert idle_for is None or idle_for >= POLICY.resume_after
        if action is Action.PAUSE:
            assert pause is PauseKind.NONE
            assert not state.held_off
            assert not by_hand
            assert busy or (before.last_busy is not None and now - before.last_busy < 60.0)
