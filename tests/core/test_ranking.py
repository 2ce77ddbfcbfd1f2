"""Ranking: who is selected, the per-job score, stragglers left out, measured delivery,
tiers and the seeded order within a tier."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from p2pcc.core import limits
from p2pcc.core.metrics import GIB
from p2pcc.core.model import NodeState
from p2pcc.core.peers import Liveness, Peer
from p2pcc.core.ranking import (
    MEMORY_FLOOR,
    STRAGGLER_RATIO,
    RankedPeer,
    _tier_bests,
    cpu_share,
    dial_address,
    inherent_speed,
    job_speed,
    memory_factor,
    rank_peers,
    straggler_threshold,
)
from tests.core.policies import default_policy
from tests.core.roomy_peers import BASE, FP, OFFER, OTHER_OFFER, peer

POLICY = default_policy()
SEED = b"client-1"


# The worked example of docs/ranking.md: alpha is idle, bravo is busy building (its own
# compiles are in its load, not taken off its slots), charlie is as fast as the typical
# host by what it announces, but our jobs there were measured to take four times as long.
ALPHA = peer(1, name="alpha", cpus=16, load=2.0, mem_available=32 * GIB, slots=8, power=2.0)
BRAVO = peer(2, name="bravo", cpus=8, load=10.0, jobs=2, mem_available=16 * GIB, slots=6, power=1.5)
CHARLIE = peer(3, name="charlie", cpus=4, load=0.0, mem_available=8 * GIB, slots=4, power=1.0)
DELIVERED = {CHARLIE.node_id: 0.25}


def summary(ranked: list[RankedPeer]) -> list[tuple[str, float, int, int]]:
    return [
        (entry.peer.status.name, round(entry.score, 3), entry.tier, entry.limit) for entry in ranked
    ]


def test_the_worked_example_scores() -> None:
    # alpha: 10 runnable jobs on 16 CPUs, memory for all 8 jobs: a job runs at 2.0.
    assert cpu_share(ALPHA.status, 8) == 1.0
    assert memory_factor(ALPHA.status, 8, POLICY) == 1.0
    assert job_speed(ALPHA.status, 8, POLICY) == 2.0
    # bravo: load 10 + 2 running + 6 ours = 18 runnable on 8 CPUs: 4/9 of a CPU per job.
    assert cpu_share(BRAVO.status, 6) == pytest.approx(4 / 9)
    assert job_speed(BRAVO.status, 6, POLICY) == pytest.approx(1.5 * 4 / 9)
    assert inherent_speed(BRAVO.status, 6, POLICY) == 1.5
    # charlie: idle and roomy, but delivering a quarter of what it announces.
    assert job_speed(CHARLIE.status, 4, POLICY, DELIVERED[CHARLIE.node_id]) == 0.25
    # the typical host: the median of 2.0, 1.5, 0.25 and localhost's 1.0 is 1.25.
    assert straggler_threshold([2.0, 1.5, 0.25, 1.0]) == STRAGGLER_RATIO * 1.25 == 0.625


def test_the_worked_example_ranking() -> None:
    ranked = rank_peers(
        [CHARLIE, ALPHA, BRAVO], FP, POLICY, SEED, delivered=DELIVERED, local_speed=1.0
    )
    assert summary(ranked) == [("alpha", 2.0, 0, 8), ("bravo", 0.667, 1, 6)]
    assert [entry.offer for entry in ranked] == [OFFER] * 2
    # Measured as it announces, charlie is a typical host and is ranked by its speed.
    ranked = rank_peers([CHARLIE, ALPHA, BRAVO], FP, POLICY, SEED, local_speed=1.0)
    assert summary(ranked) == [("alpha", 2.0, 0, 8), ("charlie", 1.0, 1, 4), ("bravo", 0.667, 2, 6)]


def test_a_busy_peer_keeps_its_slots_in_the_line() -> None:
    # Every slot taken by other clients' jobs: still listed with all its slots, ranked
    # by the share a job of ours would get next to them (8 CPUs, 8 + 8 jobs: half).
    busy = peer(1, cpus=8, slots=8, jobs=8)
    (entry,) = rank_peers([busy], FP, POLICY, SEED)
    assert (entry.limit, entry.score) == (8, 0.5)


def test_a_straggler_gets_no_job() -> None:
    typical = [peer(n, power=1.0) for n in (1, 2, 3)]
    slow = peer(4, power=1.0)
    ranked = rank_peers([*typical, slow], FP, POLICY, SEED, delivered={slow.node_id: 0.4})
    assert sorted(entry.peer.node_id[0] for entry in ranked) == [1, 2, 3]
    # At half the typical speed it is not a straggler yet: a job there ends as one that
    # waited for a typical slot would.
    ranked = rank_peers([*typical, slow], FP, POLICY, SEED, delivered={slow.node_id: 0.5})
    assert sorted(entry.peer.node_id[0] for entry in ranked) == [1, 2, 3, 4]
    assert ranked[-1].peer.node_id[0] == 4


def test_localhost_counts_as_a_typical_host() -> None:
    # Two peers, one slow: only localhost's speed tells which one is typical.
    fast, slow = peer(1, power=2.0), peer(2, power=0.7)
    assert len(rank_peers([fast, slow], FP, POLICY, SEED)) == 2  # median 1.35: 0.7 is in
    ranked = rank_peers([fast, slow], FP, POLICY, SEED, local_speed=2.0)
    assert [entry.peer.node_id[0] for entry in ranked] == [1]  # median 2.0: 0.7 is out


def test_the_order_is_by_the_speed_of_one_job_not_by_capacity() -> None:
    # Eight slow slots do not go before one fast slot: with fewer compiles than slots,
    # distcc fills the first free slot of the line, and that must be the fastest.
    wide, quick = peer(1, power=0.8, slots=8), peer(2, power=1.6, slots=1)
    ranked = rank_peers([wide, quick], FP, POLICY, SEED)
    assert [entry.peer.node_id[0] for entry in ranked] == [2, 1]


def test_only_alive_active_peers_with_the_same_compiler_slots_and_an_address() -> None:
    strong = {"power": 100.0, "slots": 8}
    excluded = [
        peer(10, state=NodeState.PAUSED, **strong),
        peer(11, state=NodeState.LEAVING, **strong),
        peer(12, Liveness.SUSPECT, **strong),
        peer(13, Liveness.DEAD, **strong),
        peer(14, slots=0, power=100.0),  # its owner is busy, or it does not serve
        peer(16, compilers=(OTHER_OFFER,), **strong),
        peer(17, compilers=(), **strong),
        peer(18, addresses=(), **strong),
        peer(19, addresses=("build-19.example",), **strong),  # a name would need DNS
        peer(20, distccd_port=0, **strong),
        peer(21, power=0.0),
    ]
    ranked = rank_peers([*excluded, ALPHA, BRAVO, CHARLIE], FP, POLICY, SEED)
    assert [entry.peer.status.name for entry in ranked] == ["alpha", "charlie", "bravo"]
    assert rank_peers(excluded, FP, POLICY, SEED) == []


# Scores 10, 9, 8.5, 8 | 6, 5.5, 5 | 3.9 with the default tier ratio 0.8 (the median is
# 7, so 3.9 is no straggler).
TIERED = [peer(n, power=power) for n, power in enumerate([10, 9, 8.5, 8, 6, 5.5, 5, 3.9], 1)]


def test_tiers_group_peers_within_the_ratio_of_the_tier_best() -> None:
    ranked = rank_peers(TIERED, FP, POLICY, b"client-1")
    assert [(entry.peer.node_id[0], entry.tier) for entry in ranked] == [
        (3, 0), (2, 0), (4, 0), (1, 0), (7, 1), (5, 1), (6, 1), (8, 2),
    ]  # fmt: skip


def test_two_seeds_shuffle_within_tiers_but_never_across() -> None:
    first = [entry.peer.node_id[0] for entry in rank_peers(TIERED, FP, POLICY, b"client-1")]
    second = [entry.peer.node_id[0] for entry in rank_peers(TIERED, FP, POLICY, b"client-2")]
    assert first == [3, 2, 4, 1, 7, 5, 6, 8]
    assert second == [4, 2, 3, 1, 7, 6, 5, 8]


def test_the_same_seed_gives_the_same_order_whatever_the_input_order() -> None:
    forward = rank_peers(TIERED, FP, POLICY, b"client-1")
    assert rank_peers(list(reversed(TIERED)), FP, POLICY, b"client-1") == forward


def test_a_tier_ratio_of_one_keeps_every_score_apart() -> None:
    ranked = rank_peers(TIERED, FP, replace(POLICY, tier_ratio=1.0), SEED)
    assert [entry.peer.node_id[0] for entry in ranked] == [1, 2, 3, 4, 5, 6, 7, 8]
    assert [entry.tier for entry in ranked] == list(range(8))


def test_max_hosts_keeps_the_best_tiers() -> None:
    ranked = rank_peers(TIERED, FP, replace(POLICY, max_hosts=5), b"client-1")
    assert [entry.peer.node_id[0] for entry in ranked] == [3, 2, 4, 1, 7]


def test_memory_pressure_has_a_floor() -> None:
    starved = peer(1, slots=4, mem_available=0, power=2.0)
    assert memory_factor(starved.status, 4, POLICY) == MEMORY_FLOOR == 0.1
    assert summary(rank_peers([starved], FP, POLICY, SEED)) == [("p1", 0.2, 0, 4)]


def test_a_peer_claiming_huge_numbers_is_capped() -> None:
    greedy = peer(1, slots=10**6, cpus=10**6, mem_available=10**18, power=1e9)
    (entry,) = rank_peers([greedy], FP, POLICY, SEED)
    assert entry.limit == limits.MAX_SLOTS
    assert entry.score == limits.MAX_POWER


def test_negative_load_counts_as_idle() -> None:
    assert cpu_share(replace(BASE, cpus=2, load=-3.0), 2) == 1.0


@pytest.mark.parametrize(
    ("addresses", "expected"),
    [
        (("2001:db8::5", "10.0.0.9"), "10.0.0.9"),
        (("fe80::1", "2001:db8::5"), "fe80::1"),
        (("not an address", "2001:db8::5"), "2001:db8::5"),
        ((), None),
    ],
)
def test_the_dial_address_prefers_the_first_ipv4(
    addresses: tuple[str, ...], expected: str | None
) -> None:
    assert dial_address(replace(BASE, addresses=addresses)) == expected


@pytest.mark.parametrize(
    "knobs",
    [
        {"tier_ratio": 0.0},
        {"tier_ratio": 1.5},
        {"job_memory": 0},
        {"local_weight": 0.0},
        {"local_weight": float("inf")},
        {"max_hosts": 0},
        {"max_hosts": limits.MAX_PEERS + 1},
    ],
)
def test_policy_values_are_validated(knobs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=next(iter(knobs))):
        replace(POLICY, **knobs)


def test_a_seed_longer_than_a_blake2b_key_is_refused() -> None:
    with pytest.raises(ValueError, match="at most 64 bytes"):
        rank_peers(TIERED, FP, POLICY, bytes(65))


random_peers = st.lists(
    st.builds(
        lambda n, power, slots, jobs, load, gib: peer(
            n, power=power, slots=slots, jobs=jobs, load=load, mem_available=gib * GIB, cpus=8
        ),
        st.integers(1, 250),
        st.floats(0.0, 10.0),
        st.integers(0, 16),
        st.integers(0, 16),
        st.floats(0.0, 32.0),
        st.integers(0, 32),
    ),
    max_size=20,
    unique_by=lambda p: p.node_id,
)


@given(random_peers, st.binary(max_size=64), st.binary(max_size=64), st.floats(0.05, 1.0))
def test_seeds_only_reorder_within_tiers(
    peers: list[Peer], seed_a: bytes, seed_b: bytes, ratio: float
) -> None:
    policy = replace(POLICY, tier_ratio=ratio, max_hosts=limits.MAX_PEERS)
    first = rank_peers(peers, FP, policy, seed_a)
    second = rank_peers(peers, FP, policy, seed_b)
    assert [entry.tier for entry in first] == [entry.tier for entry in second]
    assert {(e.peer.node_id, e.tier) for e in first} == {(e.peer.node_id, e.tier) for e in second}
    best: dict[int, float] = {}
    for entry in first:
        best[entry.tier] = max(best.get(entry.tier, 0.0), entry.score)
        assert 1 <= entry.limit <= entry.peer.status.slots
    for entry in first:
        assert entry.score >= ratio * best[entry.tier]
        if entry.tier > 0:
            assert best[entry.tier] < ratio * best[entry.tier - 1]
    assert [entry.tier for entry in first] == sorted(entry.tier for entry in first)


def _tiers_by_walking(
    scores: list[float], ratio: float, max_hosts: int
) -> tuple[list[float], float]:
    """The tiers as first written: a walk down every score, best first."""
    bests: list[float] = []
    floor = math.inf
    for count, score in enumerate(sorted(scores, reverse=True)):
        if not bests or score < ratio * bests[-1]:
            if count >= max_hosts:
                break
            bests.append(score)
        floor = score
    return bests, floor


@given(
    st.lists(st.floats(0.001, 100.0), max_size=60),
    st.floats(0.05, 1.0),
    st.integers(1, 20),
)
def test_tiers_found_by_bisection_are_those_of_a_walk_down_the_scores(
    scores: list[float], ratio: float, max_hosts: int
) -> None:
    policy = replace(default_policy(), tier_ratio=ratio, max_hosts=max_hosts)
    assert _tier_bests(sorted(scores), policy) == _tiers_by_walking(scores, ratio, max_hosts)
