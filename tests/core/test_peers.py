"""The peer table: ordering, replays, tombstones, liveness timings and the size cap."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from p2pcc.core import limits
from p2pcc.core.errors import RejectedMessageError
from p2pcc.core.liveness import SILENCE_WINDOW
from p2pcc.core.metrics import GIB
from p2pcc.core.model import CompilerOffer, Message, MessageKind, NodeState, NodeStatus
from p2pcc.core.peers import (
    TRANSITIONS,
    Liveness,
    LivenessChanged,
    LivenessInput,
    Peer,
    PeerForgotten,
    PeerJoined,
    PeerLeft,
    PeerTable,
    PeerTimings,
    PeerUpdated,
    expected_liveness,
    silence_input,
    step,
)

OWN = b"\x00" * 16
OFFER = CompilerOffer("0123456789abcdef", "x86_64-linux-gnu--12", "x86_64-linux-gnu-gcc-12")
STATUS = NodeStatus(
    name="alpha",
    addresses=("10.0.0.1",),
    distccd_port=3632,
    cpus=8,
    load=1.0,
    mem_available=16 * GIB,
    slots=4,
    jobs=0,
    power=1.0,
    compilers=(OFFER,),
)
TIMINGS = PeerTimings(suspect_after=5.0, dead_after=15.0, forget_after=600.0)


def node(n: int) -> bytes:
    return bytes([n]) * 16


def state(n: int, incarnation: int, sequence: int, status: NodeStatus = STATUS) -> Message:
    return Message(node(n), incarnation, sequence, 0.0, MessageKind.STATE, status)


def leave(n: int, incarnation: int, sequence: int) -> Message:
    return Message(node(n), incarnation, sequence, 0.0, MessageKind.LEAVE)


def table(**kwargs: int) -> PeerTable:
    return PeerTable(OWN, TIMINGS, **kwargs)


def rejection(peers: PeerTable, message: Message, now: float) -> str:
    with pytest.raises(RejectedMessageError) as caught:
        peers.apply(message, now)
    return caught.value.reason


# --- merging messages -----------------------------------------------------------------


def test_a_new_node_joins_alive() -> None:
    peers = table()
    events = peers.apply(state(1, 1, 1), 100.0)
    expected = Peer(node(1), STATUS, Liveness.ALIVE, 100.0, 100.0, (1, 1))
    assert events == [PeerJoined(expected)]
    assert peers.get(node(1)) == expected
    assert peers.peers() == (expected,)
    assert len(peers) == 1
    assert node(1) in peers


def test_a_newer_state_replaces_and_says_whether_it_is_material() -> None:
    peers = table()
    peers.apply(state(1, 1, 1), 100.0)
    busier = replace(STATUS, load=3.5, jobs=2)
    events = peers.apply(state(1, 1, 2, busier), 101.0)
    updated = Peer(node(1), busier, Liveness.ALIVE, 101.0, 100.0, (1, 2))
    assert events == [PeerUpdated(updated, previous=STATUS)]
    assert events[0].changed
    assert busier.material_key() == STATUS.material_key()
    paused = replace(busier, state=NodeState.PAUSED, pause_reason="meeting")
    events = peers.apply(state(1, 1, 3, paused), 102.0)
    assert events == [
        PeerUpdated(replace(updated, status=paused, last_heard=102.0, order=(1, 3)), busier)
    ]
    assert paused.material_key() != busier.material_key()


@pytest.mark.parametrize(
    "changed",
    [
        replace(STATUS, slots=2),
        replace(STATUS, compilers=()),
        replace(STATUS, addresses=("10.0.0.9",)),
        replace(STATUS, distccd_port=3700),
        replace(STATUS, state=NodeState.LEAVING),
    ],
)
def test_material_changes(changed: NodeStatus) -> None:
    peers = table()
    peers.apply(state(1, 1, 1), 0.0)
    events = peers.apply(state(1, 1, 2, changed), 1.0)
    assert [event.changed for event in events if isinstance(event, PeerUpdated)] == [True]
    assert changed.material_key() != STATUS.material_key()


@pytest.mark.parametrize("order", [(3, 7), (3, 6), (2, 99), (0, 0)])
def test_a_replay_of_the_same_or_an_older_order_is_rejected(order: tuple[int, int]) -> None:
    peers = table()
    peers.apply(state(1, 3, 7), 100.0)
    assert rejection(peers, state(1, *order, replace(STATUS, slots=1)), 101.0) == "replay"
    assert peers.get(node(1)) == Peer(node(1), STATUS, Liveness.ALIVE, 100.0, 100.0, (3, 7))


def test_a_new_incarnation_is_accepted_with_a_lower_sequence() -> None:
    peers = table()
    peers.apply(state(1, 1, 50), 100.0)
    events = peers.apply(state(1, 2, 1), 101.0)
    assert events == [
        PeerUpdated(Peer(node(1), STATUS, Liveness.ALIVE, 101.0, 100.0, (2, 1)), STATUS)
    ]
    assert not events[0].changed


def test_our_own_echo_is_rejected() -> None:
    peers = table()
    assert rejection(peers, Message(OWN, 1, 1, 0.0, MessageKind.STATE, STATUS), 1.0) == "own"
    assert rejection(peers, Message(OWN, 1, 2, 0.0, MessageKind.LEAVE), 1.0) == "own"
    assert len(peers) == 0


def test_a_state_without_body_is_rejected() -> None:
    peers = table()
    message = Message(node(1), 1, 1, 0.0, MessageKind.STATE, None)
    assert rejection(peers, message, 1.0) == "malformed"
    assert len(peers) == 0


def test_leave_removes_the_peer_at_once() -> None:
    peers = table()
    peers.apply(state(1, 1, 1), 100.0)
    peers.apply(state(2, 1, 1), 100.0)
    events = peers.apply(leave(1, 1, 2), 100.5)
    assert events == [PeerLeft(Peer(node(1), STATUS, Liveness.ALIVE, 100.0, 100.0, (1, 1)))]
    assert [peer.node_id for peer in peers.peers()] == [node(2)]
    assert peers.seen_orders() == {node(1): (1, 2), node(2): (1, 1)}


def test_a_stale_leave_is_a_replay_and_keeps_the_peer() -> None:
    peers = table()
    peers.apply(state(1, 2, 5), 100.0)
    assert rejection(peers, leave(1, 2, 4), 101.0) == "replay"
    assert node(1) in peers


def test_a_leave_from_an_unknown_node_is_remembered() -> None:
    peers = table()
    assert peers.apply(leave(1, 4, 2), 1.0) == []
    assert rejection(peers, state(1, 4, 1), 2.0) == "replay"


def test_after_a_leave_old_states_cannot_resurrect_the_peer() -> None:
    peers = table()
    peers.apply(state(1, 1, 1), 100.0)
    peers.apply(state(1, 1, 2), 101.0)
    peers.apply(leave(1, 1, 3), 102.0)
    for order in [(1, 1), (1, 2), (1, 3)]:
        assert rejection(peers, state(1, *order), 103.0) == "replay"
    assert len(peers) == 0
    peers.apply(state(2, 1, 1), 103.5)
    # A genuine restart has a higher incarnation and rejoins.
    events = peers.apply(state(1, 2, 1), 104.0)
    assert events == [PeerJoined(Peer(node(1), STATUS, Liveness.ALIVE, 104.0, 104.0, (2, 1)))]
    # Its tombstone is gone: seen_orders lists tombstones first, then peers as they joined.
    assert list(peers.seen_orders().items()) == [(node(2), (1, 1)), (node(1), (2, 1))]


def test_the_tombstone_set_is_bounded_and_drops_the_oldest() -> None:
    peers = table(max_tombstones=2)
    for n in (1, 2, 3):
        peers.apply(state(n, 1, 1), 0.0)
        peers.apply(leave(n, 1, 2), 0.0)
    assert peers.seen_orders() == {node(2): (1, 2), node(3): (1, 2)}
    # The oldest memory is gone, so its old packet is accepted again; the others are not.
    assert peers.apply(state(1, 1, 1), 1.0) == [
        PeerJoined(Peer(node(1), STATUS, Liveness.ALIVE, 1.0, 1.0, (1, 1)))
    ]
    assert rejection(peers, state(2, 1, 1), 1.0) == "replay"
    assert rejection(peers, state(3, 1, 2), 1.0) == "replay"


def test_the_default_tombstone_cap_is_the_limit() -> None:
    peers = PeerTable(OWN, TIMINGS)
    ids = [n.to_bytes(16, "big") for n in range(1, limits.MAX_TOMBSTONES + 2)]
    for node_id in ids:
        peers.apply(Message(node_id, 1, 1, 0.0, MessageKind.LEAVE), 0.0)
    assert peers.seen_orders() == dict.fromkeys(ids[1:], (1, 1))


def test_seen_orders_cover_held_peers_and_tombstones_oldest_first() -> None:
    peers = table()
    peers.apply(state(1, 1, 1), 0.0)
    peers.apply(leave(1, 1, 2), 0.0)
    peers.apply(state(2, 3, 7), 0.0)
    peers.apply(leave(4, 5, 6), 0.0)
    assert list(peers.seen_orders().items()) == [
        (node(1), (1, 2)),
        (node(4), (5, 6)),
        (node(2), (3, 7)),
    ]


def test_remembered_orders_refuse_replays_in_a_new_table() -> None:
    before = table()
    before.apply(state(1, 1, 1), 0.0)
    before.apply(state(1, 1, 9), 1.0)
    before.apply(state(2, 2, 3), 1.0)
    before.apply(leave(2, 2, 4), 2.0)
    after = table()
    after.remember(before.seen_orders())
    # Everything the old table saw is a replay to the new one, live peer or departed ...
    for message in (state(1, 1, 1), state(1, 1, 9), state(2, 2, 3), leave(2, 2, 4)):
        assert rejection(after, message, 10.0) == "replay"
    assert len(after) == 0
    # ... while newer messages and restarted nodes are taken as before.
    assert [type(event) for event in after.apply(state(1, 1, 10), 10.0)] == [PeerJoined]
    assert [type(event) for event in after.apply(state(2, 3, 1), 10.0)] == [PeerJoined]


def test_remembering_leaves_held_peers_and_our_own_id_alone() -> None:
    peers = table()
    peers.apply(state(1, 1, 5), 0.0)
    peers.remember({node(1): (1, 9), OWN: (1, 1), node(3): (2, 2)})
    # Only node 3 is remembered (tombstones come first), the held peer keeps its order.
    assert list(peers.seen_orders().items()) == [(node(3), (2, 2)), (node(1), (1, 5))]
    # The held peer's own order still rules: its next datagram is not refused.
    assert [type(event) for event in peers.apply(state(1, 1, 6), 1.0)] == [PeerUpdated]


def test_remembering_more_than_the_tombstone_cap_keeps_the_newest_memories() -> None:
    peers = table(max_tombstones=2)
    peers.remember({node(1): (1, 1), node(2): (1, 1), node(3): (1, 1)})
    assert peers.seen_orders() == {node(2): (1, 1), node(3): (1, 1)}


# --- liveness timings -----------------------------------------------------------------


def test_silence_turns_a_peer_suspect_then_dead_then_forgotten_at_exact_times() -> None:
    peers = table()
    peers.apply(state(1, 1, 1), 100.0)
    assert peers.next_deadline() == 105.0
    assert peers.tick(104.999) == []
    assert peers.tick(105.0) == [LivenessChanged(node(1), Liveness.ALIVE, Liveness.SUSPECT)]
    assert peers.next_deadline() == 115.0
    assert peers.tick(114.999) == []
    assert peers.tick(115.0) == [LivenessChanged(node(1), Liveness.SUSPECT, Liveness.DEAD)]
    assert peers.next_deadline() == 700.0
    assert peers.tick(699.999) == []
    assert peers.get(node(1)) == Peer(node(1), STATUS, Liveness.DEAD, 100.0, 100.0, (1, 1))
    assert peers.tick(700.0) == [PeerForgotten(node(1), evicted=False)]
    assert len(peers) == 0
    assert peers.next_deadline() is None
    assert peers.seen_orders() == {node(1): (1, 1)}
    assert rejection(peers, state(1, 1, 1), 701.0) == "replay"


def test_a_late_tick_jumps_straight_to_dead_and_forgotten() -> None:
    peers = table()
    peers.apply(state(1, 1, 1), 0.0)
    assert peers.tick(1000.0) == [
        LivenessChanged(node(1), Liveness.ALIVE, Liveness.DEAD),
        PeerForgotten(node(1), evicted=False),
    ]


def test_next_deadline_is_the_earliest_over_all_peers() -> None:
    peers = table()
    assert peers.next_deadline() is None
    peers.apply(state(1, 1, 1), 10.0)
    peers.apply(state(2, 1, 1), 12.0)
    assert peers.next_deadline() == 15.0
    peers.tick(15.0)
    assert peers.next_deadline() == 17.0  # node 2 turns suspect before node 1 dies at 25
    peers.apply(state(1, 1, 2), 16.0)
    assert peers.next_deadline() == 17.0
    peers.tick(17.0)
    assert peers.next_deadline() == 21.0  # node 1 heard at 16


def test_a_tick_at_next_deadline_fires_despite_float_rounding() -> None:
    timings = PeerTimings(suspect_after=5.1, dead_after=15.0, forget_after=600.0)
    peers = PeerTable(OWN, timings)
    peers.apply(state(1, 1, 1), 100.1)
    deadline = peers.next_deadline()
    assert deadline is not None
    assert deadline - 100.1 < 5.1  # the subtraction would round below the threshold
    assert peers.tick(deadline) == [LivenessChanged(node(1), Liveness.ALIVE, Liveness.SUSPECT)]


@pytest.mark.parametrize(
    ("silent_until", "was"), [(105.0, Liveness.SUSPECT), (115.0, Liveness.DEAD)]
)
def test_a_silent_peer_that_is_heard_again_is_alive(silent_until: float, was: Liveness) -> None:
    peers = table()
    peers.apply(state(1, 1, 1), 100.0)
    peers.tick(silent_until)
    silent = peers.get(node(1))
    assert silent is not None
    assert silent.liveness is was
    events = peers.apply(state(1, 1, 2), silent_until + 1)
    heard = Peer(node(1), STATUS, Liveness.ALIVE, silent_until + 1, 100.0, (1, 2))
    assert events == [LivenessChanged(node(1), was, Liveness.ALIVE), PeerUpdated(heard, STATUS)]
    assert peers.next_deadline() == silent_until + 6


@pytest.mark.parametrize(
    "values", [(0.0, 15.0, 600.0), (5.0, 5.0, 600.0), (5.0, 15.0, 15.0), (5.0, 15.0, float("inf"))]
)
def test_timings_are_validated(values: tuple[float, float, float]) -> None:
    with pytest.raises(ValueError, match="peer timings"):
        PeerTimings(*values)


def test_summary_is_plain_data() -> None:
    peers = table()
    peers.apply(state(1, 2, 9, replace(STATUS, jobs=1)), 100.0)
    peer = peers.get(node(1))
    assert peer is not None
    assert peer.summary(103.5) == {
        "node_id": "01" * 16,
        "name": "alpha",
        "addresses": ["10.0.0.1"],
        "liveness": "alive",
        "silent_for": 3.5,
        "known_for": 3.5,
        "incarnation": 2,
        "sequence": 9,
        "state": "active",
        "pause_reason": "",
        "pause_until": None,
        "cpus": 8,
        "load": 1.0,
        "slots": 4,
        "jobs": 1,
        "free_slots": 3,
        "power": 1.0,
        "compilers": ["0123456789abcdef"],
    }


# --- the size cap ---------------------------------------------------------------------


def test_a_full_table_evicts_dead_then_suspect_peers_longest_silent_first() -> None:
    peers = table(max_peers=3)
    peers.apply(state(1, 1, 1), 0.0)
    peers.apply(state(2, 1, 1), 10.0)
    peers.apply(state(3, 1, 1), 20.0)
    # At 26 (no tick since): node 1 and 2 are dead (26, 16 s silent), node 3 suspect (6 s).
    evictions = []
    for newcomer in (4, 5, 6):
        events = peers.apply(state(newcomer, 1, 1), 26.0)
        assert isinstance(events[1], PeerJoined)
        evictions.append(events[0])
    assert evictions == [PeerForgotten(node(n), evicted=True) for n in (1, 2, 3)]
    assert rejection(peers, state(7, 1, 1), 26.0) == "table-full"
    assert [peer.node_id for peer in peers.peers()] == [node(4), node(5), node(6)]
    assert rejection(peers, state(1, 1, 1), 26.0) == "replay"  # evicted ids are tombstoned


def test_a_full_table_of_live_peers_refuses_newcomers_but_not_updates() -> None:
    peers = table(max_peers=2)
    peers.apply(state(1, 1, 1), 0.0)
    peers.apply(state(2, 1, 1), 1.0)
    assert rejection(peers, state(3, 1, 1), 4.999) == "table-full"
    assert [event.__class__ for event in peers.apply(state(1, 1, 2), 4.999)] == [PeerUpdated]
    # Node 2 was heard at 1.0, node 1 at 4.999: node 2 turns suspect at 6.0 and goes.
    assert rejection(peers, state(3, 1, 1), 5.999) == "table-full"
    assert peers.apply(state(3, 1, 1), 6.0)[0] == PeerForgotten(node(2), evicted=True)


# --- the liveness state machine -------------------------------------------------------


def test_the_transition_table_is_total() -> None:
    pairs = set(itertools.product(Liveness, LivenessInput))
    assert set(TRANSITIONS) == pairs
    assert all(isinstance(TRANSITIONS[pair], Liveness) for pair in pairs)


def test_hearing_a_peer_always_makes_it_alive() -> None:
    assert {step(state_, LivenessInput.HEARD) for state_ in Liveness} == {Liveness.ALIVE}


timings_strategy = st.tuples(
    st.floats(0.001, 1e4), st.floats(0.001, 1e4), st.floats(0.001, 1e5)
).map(lambda t: PeerTimings(t[0], t[0] + t[1], t[0] + t[1] + t[2]))


@given(
    timings=timings_strategy,
    start=st.sampled_from(list(Liveness)),
    last_heard=st.floats(-1e6, 1e6),
    waits=st.lists(st.floats(0, 1e5), max_size=8),
)
def test_every_state_and_silence_input_is_consistent_with_the_timings(
    timings: PeerTimings, start: Liveness, last_heard: float, waits: list[float]
) -> None:
    # Any state at the moment it is heard becomes ALIVE; from then on, stepping the table
    # with the silence inputs of growing times must give exactly the timings' verdict.
    now = last_heard
    liveness = step(start, LivenessInput.HEARD)
    for wait in waits:
        now += wait
        event = silence_input(last_heard, now, timings)
        if event is not None:
            liveness = step(liveness, event)
        assert liveness is expected_liveness(last_heard, now, timings)
    # And every pair: a silence input never revives, and lands where its threshold says.
    for state_, event in itertools.product(Liveness, LivenessInput):
        new = step(state_, event)
        if event is LivenessInput.SILENT_DEAD:
            assert new is Liveness.DEAD
        elif event is LivenessInput.SILENT_SUSPECT:
            assert new is (Liveness.DEAD if state_ is Liveness.DEAD else Liveness.SUSPECT)


@dataclass(frozen=True)
class Advance:
    """Let `seconds` pass, then tick the table if `tick`."""

    seconds: float
    tick: bool


def outcome(peers: PeerTable, message: Message, now: float) -> str | None:
    """The rejection reason, or None if the table accepted the message."""
    try:
        peers.apply(message, now)
    except RejectedMessageError as error:
        return error.reason
    return None


states = st.builds(
    lambda n, incarnation, sequence, slots: state(
        n, incarnation, sequence, replace(STATUS, slots=slots)
    ),
    st.integers(0, 5),
    st.integers(0, 3),
    st.integers(0, 9),
    st.integers(1, 8),
)
leaves = st.builds(leave, st.integers(0, 5), st.integers(0, 3), st.integers(0, 4))
# Short waits mostly, so the table fills up with live peers; long ones cross every timing.
waits = st.one_of(st.floats(0, 2), st.sampled_from([5.0, 15.0, 60.0]), st.floats(0, 100))
operation = st.one_of(states, states, states, leaves, st.builds(Advance, waits, st.booleans()))


def check_after_tick(peers: PeerTable, now: float) -> None:
    for peer in peers.peers():
        assert peer.liveness is expected_liveness(peer.last_heard, now, peers.timings)
    deadline = peers.next_deadline()
    assert deadline is None or deadline > now


@settings(deadline=None)
@given(st.lists(operation, min_size=10, max_size=80))
def test_random_traffic_never_breaks_the_invariants(operations: list[Message | Advance]) -> None:
    peers = PeerTable(node(0), PeerTimings(5.0, 15.0, 60.0), max_peers=3, max_tombstones=2)
    now = 0.0
    for op in operations:
        if isinstance(op, Advance):
            now += op.seconds
            if op.tick:
                peers.tick(now)
                check_after_tick(peers, now)
            continue
        before = peers.get(op.node_id)
        reason = outcome(peers, op, now)
        after = peers.get(op.node_id)
        assert (reason == "own") == (op.node_id == node(0))
        if reason is not None:
            assert after == before
        else:
            assert before is None or op.order > before.order
            assert (after is None) == (op.kind is MessageKind.LEAVE)
        if reason == "table-full":
            silences = [expected_liveness(p.last_heard, now, peers.timings) for p in peers.peers()]
            assert silences == [Liveness.ALIVE] * 3
        assert len(peers) <= 3
        assert node(0) not in peers
        assert all(peer.last_heard <= now for peer in peers.peers())


def test_a_suspicion_of_an_older_order_stands_only_once_we_too_heard_nothing_for_a_while() -> None:
    peers = table()
    peers.apply(state(2, 1, 7), 10.0)  # we hold order (1, 7), heard at 10.0
    with pytest.raises(RejectedMessageError):  # heard within the silence it reports
        peers.suspect(node(2), (1, 6), 10.0 + SILENCE_WINDOW - 0.1)
    events = peers.suspect(node(2), (1, 6), 10.0 + SILENCE_WINDOW)
    assert [type(event).__name__ for event in events] == ["LivenessChanged"]
    peer = peers.get(node(2))
    assert peer is not None
    assert (peer.liveness, peer.order) == (Liveness.SUSPECT, (1, 7))
