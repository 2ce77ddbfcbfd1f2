"""The remembering ranker: always the answer of ranking from scratch, and per peer only
the work a change calls for."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from p2pcc.core import ranker as ranker_module
from p2pcc.core.hosts import HostsLine, render_hosts
from p2pcc.core.peers import Liveness, Peer
from p2pcc.core.ranker import Ranker, RankInputs
from p2pcc.core.ranking import Candidate, RankedPeer, candidate, measured_out, rank_peers
from tests.core.policies import default_policy
from tests.core.roomy_peers import BASE, FP, OFFER, OTHER_FP, OTHER_OFFER, peer

POLICY = default_policy()
LOCAL = replace(BASE, name="here", addresses=("10.0.0.100",), cpus=8, slots=8)
RARE_FP = "1111222233334444"  # only peer 40 has it
PEERS = [peer(n, power=1.0 + n / 10, slots=1 + n % 4) for n in range(1, 31)]


def inputs(delivered: Mapping[bytes, float] | None = None, **policy: Any) -> RankInputs:
    ranking_policy = replace(POLICY, **policy)
    return RankInputs(ranking_policy, b"\x01" * 16, delivered or {}, LOCAL, 4)


def from_scratch(
    peers: Sequence[Peer], given_inputs: RankInputs, fingerprint: str = FP
) -> tuple[tuple[RankedPeer, ...], HostsLine]:
    """What `rank_peers`, `measured_out` and `render_hosts` say, the ranker's reference."""
    policy, delivered = given_inputs.policy, given_inputs.delivered
    ranked = rank_peers(
        peers,
        fingerprint,
        policy,
        given_inputs.seed,
        delivered=delivered,
        local_speed=given_inputs.local_speed,
    )
    out = measured_out(peers, fingerprint, ranked, delivered)
    line = render_hosts(ranked, LOCAL, given_inputs.local_slots, policy, absorbed=out)
    return tuple(ranked), line


def remembered(
    ranker: Ranker, peers: Sequence[Peer], given_inputs: RankInputs
) -> tuple[tuple[RankedPeer, ...], HostsLine]:
    ranking = ranker.ranking([FP], peers, given_inputs)
    return ranking.ranked[FP], ranking.hosts[FP]


@pytest.fixture
def worked_out(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """The node ids the ranker works a candidate out for, in order."""
    calls: list[bytes] = []

    def counting(peer: Peer, *args: Any) -> Candidate:
        calls.append(peer.node_id)
        return candidate(peer, *args)

    monkeypatch.setattr(ranker_module, "candidate", counting)
    return calls


def test_only_a_peer_whose_status_moved_is_worked_out_again(worked_out: list[bytes]) -> None:
    ranker = Ranker()
    remembered(ranker, PEERS, inputs())
    assert len(worked_out) == len(PEERS)
    worked_out.clear()
    busier = replace(PEERS[4], status=replace(PEERS[4].status, load=40.0), last_heard=2.0)
    peers = [*PEERS[:4], busier, *PEERS[5:]]
    assert remembered(ranker, peers, inputs()) == from_scratch(peers, inputs())
    assert worked_out == [busier.node_id]


def test_the_same_status_heard_again_is_not_worked_out_but_shows_the_new_snapshot(
    worked_out: list[bytes],
) -> None:
    ranker = Ranker()
    remembered(ranker, PEERS, inputs())
    worked_out.clear()
    heard = [replace(each, last_heard=2.0, order=(1, 2)) for each in PEERS]
    ranked, line = remembered(ranker, heard, inputs())
    assert worked_out == []
    assert (ranked, line) == from_scratch(heard, inputs())
    assert {entry.peer.last_heard for entry in ranked} == {2.0}


def test_a_peer_turning_suspect_or_leaving_leaves_the_line(worked_out: list[bytes]) -> None:
    ranker, apart = Ranker(), inputs(tier_ratio=1.0)  # a tier per score: the best first
    best = PEERS[-1]
    assert remembered(ranker, PEERS, apart)[0][0].peer == best
    worked_out.clear()
    suspect = [*PEERS[:-1], replace(best, liveness=Liveness.SUSPECT)]
    assert remembered(ranker, suspect, apart) == from_scratch(suspect, apart)
    assert worked_out == [best.node_id]
    ranked, line = remembered(ranker, PEERS[:-1], apart)
    assert best.node_id not in {entry.peer.node_id for entry in ranked}
    assert (ranked, line) == from_scratch(PEERS[:-1], apart)


def test_a_new_delivered_factor_works_out_that_peer_again(worked_out: list[bytes]) -> None:
    ranker = Ranker()
    remembered(ranker, PEERS, inputs())
    worked_out.clear()
    slow = {PEERS[-1].node_id: 0.1}
    assert remembered(ranker, PEERS, inputs(slow)) == from_scratch(PEERS, inputs(slow))
    assert worked_out == [PEERS[-1].node_id]
    worked_out.clear()
    assert remembered(ranker, PEERS, inputs()) == from_scratch(PEERS, inputs())
    assert worked_out == [PEERS[-1].node_id]


def test_a_peer_disproven_for_a_compiler_leaves_that_compilers_line_only() -> None:
    ranker = Ranker()
    both = [peer(n, compilers=(OTHER_OFFER, OFFER)) for n in (1, 2)]
    disproven = replace(inputs(), disproven={FP: frozenset({both[0].node_id})})
    ranking = ranker.ranking([FP, OTHER_FP], both, disproven)
    assert [e.peer.node_id for e in ranking.ranked[FP]] == [both[1].node_id]
    assert {e.peer.node_id for e in ranking.ranked[OTHER_FP]} == {p.node_id for p in both}
    assert "10.0.0.1:" not in ranking.hosts[FP].hosts
    assert ranking.hosts[FP] == from_scratch(both[1:], inputs())[1]
    # Proven again (or forgiven): back in the line.
    again = ranker.ranking([FP, OTHER_FP], both, inputs())
    assert {e.peer.node_id for e in again.ranked[FP]} == {p.node_id for p in both}


@pytest.mark.parametrize(
    "knobs", [{"tier_ratio": 1.0}, {"max_hosts": 3}, {"job_memory": 1 << 40}, {"lzo": True}]
)
def test_a_new_policy_works_out_every_peer_again(
    worked_out: list[bytes], knobs: dict[str, Any]
) -> None:
    ranker = Ranker()
    remembered(ranker, PEERS, inputs())
    worked_out.clear()
    assert remembered(ranker, PEERS, inputs(**knobs)) == from_scratch(PEERS, inputs(**knobs))
    assert len(worked_out) == len(PEERS)


def test_a_new_seed_shuffles_anew() -> None:
    ranker = Ranker()
    remembered(ranker, PEERS, inputs(tier_ratio=0.1))
    renamed = replace(inputs(tier_ratio=0.1), seed=b"\x02" * 16)
    assert remembered(ranker, PEERS, renamed) == from_scratch(PEERS, renamed)


def test_a_fingerprint_we_lack_is_ranked_but_not_remembered(worked_out: list[bytes]) -> None:
    ranker = Ranker()
    other = [peer(40, compilers=(replace(OFFER, fingerprint=RARE_FP),))]
    line = ranker.line(RARE_FP, [*PEERS, *other], inputs())
    assert line == from_scratch([*PEERS, *other], inputs(), RARE_FP)[1]
    assert line.hosts == "10.0.0.40:3632/1 localhost/4"
    worked_out.clear()
    ranker.line(RARE_FP, PEERS, inputs())
    assert len(worked_out) == len(PEERS)  # nothing kept from the first time


def test_a_seed_longer_than_a_blake2b_key_is_refused() -> None:
    with pytest.raises(ValueError, match="at most 64 bytes"):
        Ranker().ranking([FP], PEERS, replace(inputs(), seed=bytes(65)))


# One step of a pool's life: (peer index, what happens to it).
steps = st.lists(
    st.tuples(
        st.integers(0, len(PEERS) - 1),
        st.sampled_from(["load", "power", "slots", "suspect", "alive", "gone", "back", "slow"]),
    ),
    max_size=25,
)


@given(steps, st.sampled_from([0.1, 0.8, 1.0]), st.integers(1, 16))
def test_every_step_gives_the_answer_from_scratch(
    history: list[tuple[int, str]], ratio: float, max_hosts: int
) -> None:
    ranker = Ranker()
    held = {each.node_id: each for each in PEERS}
    delivered: dict[bytes, float] = {}
    for index, what in history:
        node_id = PEERS[index].node_id
        if what == "gone":
            held.pop(node_id, None)
        elif what == "slow":
            delivered[node_id] = 0.2 if node_id not in delivered else 1.0
        else:
            current = held.get(node_id, PEERS[index])
            held[node_id] = moved(current, what, index)
        now = inputs(delivered, tier_ratio=ratio, max_hosts=max_hosts)
        peers = list(held.values())
        assert remembered(ranker, peers, now) == from_scratch(peers, now)


def moved(current: Peer, what: str, index: int) -> Peer:
    status = current.status
    if what == "load":
        status = replace(status, load=status.load + 1.5 * index, jobs=index % 3)
    elif what == "power":
        status = replace(status, power=status.power * 1.7)
    elif what == "slots":
        status = replace(status, slots=(status.slots + 1) % 5)
    liveness = {"suspect": Liveness.SUSPECT, "alive": Liveness.ALIVE}.get(what, current.liveness)
    return replace(current, status=status, liveness=liveness, last_heard=current.last_heard + 1)


def test_local_compilers_coming_and_going_keep_every_line_that_of_a_ranking_from_scratch(
    worked_out: list[bytes],
) -> None:
    rare = peer(40, compilers=(replace(OFFER, fingerprint=RARE_FP), OFFER))
    peers = [*PEERS, rare]
    ranker = Ranker()
    for fingerprints in ([FP], [FP, RARE_FP], [RARE_FP], [FP, RARE_FP]):
        ranking = ranker.ranking(fingerprints, peers, inputs())
        assert set(ranking.hosts) == set(fingerprints)
        for fingerprint in fingerprints:
            expected = from_scratch(peers, inputs(), fingerprint)
            assert (ranking.ranked[fingerprint], ranking.hosts[fingerprint]) == expected
    worked_out.clear()
    peers[0] = moved(peers[0], "load", 1)
    ranker.ranking([FP, RARE_FP], peers, inputs())
    # One peer moved: worked out once per local compiler, the others not at all.
    assert worked_out == [peers[0].node_id, peers[0].node_id]
