"""DISTCC_HOSTS rendering: exact lines, localhost placement, lzo, IPv6 and the -j."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from p2pcc.core import limits
from p2pcc.core.hosts import HostEntry, HostsLine, host_spec, render_hosts
from p2pcc.core.metrics import GIB
from p2pcc.core.model import NodeState, NodeStatus
from p2pcc.core.peers import Liveness, Peer
from p2pcc.core.ranking import RankingPolicy, inherent_speed, measured_out, rank_peers
from tests.core.policies import default_policy
from tests.core.roomy_peers import BASE, FP, OFFER, node, peer

POLICY = default_policy()
SEED = b"client-1"
# This machine: 8 idle CPUs, plenty of memory, reference speed.
LOCAL = replace(BASE, name="here", addresses=("10.0.0.100",), cpus=8, slots=8)


# The worked example of docs/ranking.md (tests/core/test_ranking.py): per-job speeds
# 2.0 (alpha), 0.667 (bravo, busy building) and 1.0 (charlie), which delivers a quarter
# of that in the example.
ALPHA = peer(1, name="alpha", cpus=16, load=2.0, mem_available=32 * GIB, slots=8, power=2.0)
BRAVO = peer(2, name="bravo", cpus=8, load=10.0, jobs=2, mem_available=16 * GIB, slots=6, power=1.5)
CHARLIE = peer(3, name="charlie", cpus=4, load=0.0, mem_available=8 * GIB, slots=4, power=1.0)
EXAMPLE = [ALPHA, BRAVO, CHARLIE]
DELIVERED = {CHARLIE.node_id: 0.25}


def line(
    peers: list[Peer],
    local_slots: int,
    policy: RankingPolicy = POLICY,
    local: NodeStatus = LOCAL,
    delivered: dict[bytes, float] | None = None,
) -> HostsLine:
    """The line the node renders: localhost counts among the hosts for stragglers, and
    takes over the slots of those measured slow."""
    local_speed = inherent_speed(local, local_slots, policy)
    ranked = rank_peers(peers, FP, policy, SEED, delivered=delivered, local_speed=local_speed)
    absorbed = measured_out(peers, FP, ranked, delivered or {})
    return render_hosts(ranked, local, local_slots, policy, absorbed=absorbed)


def test_the_worked_example_leaves_the_straggler_out() -> None:
    # localhost/5: a job at 1.0 x 0.5 = 0.5, below alpha's 2.0 and bravo's 0.667; it
    # takes over charlie's 4 slots in the line, not in the -j.
    result = line(EXAMPLE, 5, delivered=DELIVERED)
    assert result.hosts == "10.0.0.1:3632/8 10.0.0.2:3632/6 localhost/9"
    assert result.jobs == 19
    assert [(entry.spec, round(entry.score, 3)) for entry in result.entries] == [
        ("10.0.0.1:3632/8", 2.0),
        ("10.0.0.2:3632/6", 0.667),
        ("localhost/9", 0.5),
    ]
    assert [entry.node_id for entry in result.entries] == [node(1), node(2), None]


def test_the_documented_line_matches_the_code() -> None:
    doc = (Path(__file__).parents[2] / "docs" / "ranking.md").read_text()
    documented = re.findall(r'^DISTCC_HOSTS="([^"]*)"$', doc, re.MULTILINE)
    assert documented == [line(EXAMPLE, 5, delivered=DELIVERED).hosts]
    assert "8 + 6 + 5 = 19" in doc


def test_a_stronger_localhost_moves_up() -> None:
    # At power 2.0 a local job scores 1.0: ahead of bravo, still behind alpha.
    result = line(EXAMPLE, 8, local=replace(LOCAL, power=2.0), delivered=DELIVERED)
    assert result.hosts == "10.0.0.1:3632/8 localhost/12 10.0.0.2:3632/6"  # + charlie's 4
    assert result.jobs == 22


def test_localhost_goes_first_when_the_peers_are_weak() -> None:
    result = line([BRAVO], 8, local=replace(LOCAL, power=2.0))
    assert result.hosts == "localhost/8 10.0.0.2:3632/6"
    assert result.jobs == 14


def test_localhost_goes_last_when_it_is_busy() -> None:
    # 8 CPUs with load 24 and 8 own jobs: a quarter CPU each, 1.0 x 0.25 x 0.5 = 0.125.
    result = line(EXAMPLE, 8, local=replace(LOCAL, load=24.0))
    assert result.hosts == "10.0.0.1:3632/8 10.0.0.3:3632/4 10.0.0.2:3632/6 localhost/8"
    assert result.entries[-1].score == 0.125


def test_a_tie_with_a_tier_best_keeps_the_peers_first() -> None:
    # localhost at 2.0 x 0.5 = 1.0, charlie's score and its tier's best.
    result = line(EXAMPLE, 6, local=replace(LOCAL, power=2.0))
    assert result.hosts == "10.0.0.1:3632/8 10.0.0.3:3632/4 localhost/6 10.0.0.2:3632/6"


def test_local_weight_one_ranks_localhost_like_a_peer() -> None:
    result = line(EXAMPLE, 8, replace(POLICY, local_weight=1.0))
    assert result.hosts == "10.0.0.1:3632/8 10.0.0.3:3632/4 localhost/8 10.0.0.2:3632/6"
    assert result.entries[2].score == 1.0


def test_localhost_is_never_put_inside_a_tier() -> None:
    # Tiers 10, 9, 8.5, 8 | 6, 5.5, 5 | 4.6; localhost at power 11 scores 5.5.
    powers = [10, 9, 8.5, 8, 6, 5.5, 5, 4.6]
    tiered = [peer(n, power=power) for n, power in enumerate(powers, 1)]
    result = line(tiered, 10, local=replace(LOCAL, cpus=64, power=11.0))
    assert result.hosts == (
        "10.0.0.3:3632/1 10.0.0.2:3632/1 10.0.0.4:3632/1 10.0.0.1:3632/1 "
        "10.0.0.7:3632/1 10.0.0.5:3632/1 10.0.0.6:3632/1 localhost/10 10.0.0.8:3632/1"
    )
    assert result.jobs == 18


def test_lzo_is_appended_to_remote_hosts_only() -> None:
    result = line(EXAMPLE, 5, replace(POLICY, lzo=True))
    assert result.hosts == (
        "10.0.0.1:3632/8,lzo 10.0.0.3:3632/4,lzo 10.0.0.2:3632/6,lzo localhost/5"
    )


def test_ipv6_hosts_are_bracketed_and_ipv4_preferred() -> None:
    v6_only = peer(5, addresses=("2001:db8::5",), distccd_port=3700, slots=2, power=3.0)
    dual = peer(6, addresses=("2001:db8::6", "10.0.0.6"), slots=2, power=2.0)
    result = line([dual, v6_only], 1)
    assert result.hosts == "[2001:db8::5]:3700/2 10.0.0.6:3632/2 localhost/1"
    assert result.jobs == 5


def test_excluded_peers_never_appear() -> None:
    strong = {"power": 100.0, "slots": 8}
    excluded = [
        peer(10, state=NodeState.PAUSED, **strong),
        peer(11, Liveness.SUSPECT, **strong),
        peer(12, Liveness.DEAD, **strong),
        peer(13, slots=0, power=100.0),
        peer(14, compilers=(), **strong),
    ]
    assert line([*excluded, *EXAMPLE], 5).hosts == line(EXAMPLE, 5).hosts


def test_no_matching_peer_leaves_localhost_alone() -> None:
    assert line([], 8) == HostsLine("localhost/8", 8, (HostEntry("localhost/8", 8, 0.5, None),))
    other = peer(1, compilers=(replace(OFFER, fingerprint="fedcba9876543210"),))
    assert line([other], 8).hosts == "localhost/8"


def test_the_local_slot_count_is_clamped() -> None:
    assert line([], 0).hosts == "localhost/1"
    assert line([], -3).jobs == 1
    assert line([], 10**6).hosts == f"localhost/{limits.MAX_SLOTS}"


def test_a_paused_machine_still_compiles_its_own_jobs() -> None:
    paused = replace(LOCAL, state=NodeState.PAUSED, pause_reason="meeting", slots=0)
    assert line([BRAVO], 4, local=paused).hosts == "10.0.0.2:3632/6 localhost/4"


def test_render_takes_a_ranking_as_is() -> None:
    ranked = rank_peers(EXAMPLE, FP, POLICY, SEED)
    assert render_hosts(ranked[1:], LOCAL, 2, POLICY).hosts == (
        "10.0.0.3:3632/4 10.0.0.2:3632/6 localhost/2"
    )


def test_host_spec() -> None:
    assert host_spec("10.1.2.3", 3632, 4, lzo=False) == "10.1.2.3:3632/4"
    assert host_spec("::1", 3633, 1, lzo=True) == "[::1]:3633/1,lzo"


SPEC = re.compile(r"^(localhost/(\d+)|(\d+\.\d+\.\d+\.\d+|\[[0-9a-f:]+\]):(\d+)/(\d+)(,lzo)?)$")

random_peers = st.lists(
    st.builds(
        lambda n, power, slots, v6, port: peer(
            n,
            power=power,
            slots=slots,
            distccd_port=port,
            addresses=(f"2001:db8::{n:x}",) if v6 else (f"10.0.0.{n}",),
        ),
        st.integers(1, 250),
        st.floats(0.0, 10.0),
        st.integers(0, 8),
        st.booleans(),
        st.integers(1, 65535),
    ),
    max_size=20,
    unique_by=lambda p: p.node_id,
)


@given(random_peers, st.integers(-2, 64), st.booleans(), st.binary(max_size=16))
def test_every_line_is_valid_distcc_syntax_with_one_localhost(
    peers: list[Peer], local_slots: int, lzo: bool, seed: bytes
) -> None:
    policy = replace(POLICY, lzo=lzo)
    result = render_hosts(rank_peers(peers, FP, policy, seed), LOCAL, local_slots, policy)
    tokens = result.hosts.split(" ")
    matches = [SPEC.match(token) for token in tokens]
    assert all(matches)
    limits_in_line = [int(m.group(2) or m.group(5)) for m in matches if m]
    assert result.jobs == sum(limits_in_line) >= 1
    assert [token.startswith("localhost/") for token in tokens].count(True) == 1
    assert all(token.endswith(",lzo") == lzo for token in tokens if token[0] != "l")
    assert len(tokens) == len(result.entries) <= POLICY.max_hosts + 1


def test_only_slots_of_peers_measured_slow_and_left_out_go_to_localhost() -> None:
    # Charlie measured slow but still worth its slots: it keeps them, localhost none.
    kept = line(EXAMPLE, 5, delivered={CHARLIE.node_id: 0.9})
    assert kept.hosts.endswith("localhost/5")
    assert "10.0.0.3:3632/4" in kept.hosts
    # Charlie paused: left out for what it announces, so nothing taken over.
    paused = replace(CHARLIE, status=replace(CHARLIE.status, state=NodeState.PAUSED))
    assert line([ALPHA, BRAVO, paused], 5, delivered=DELIVERED).hosts.endswith("localhost/5")
    # Never past MAX_SLOTS, and the -j is the hosts' that serve.
    big = replace(CHARLIE, status=replace(CHARLIE.status, slots=limits.MAX_SLOTS))
    full = line([ALPHA, BRAVO, big], limits.MAX_SLOTS - 1, delivered=DELIVERED)
    assert full.hosts.endswith(f"localhost/{limits.MAX_SLOTS}")
    assert full.jobs == 8 + 6 + limits.MAX_SLOTS - 1
