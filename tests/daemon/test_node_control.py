"""The control socket's view of a real node: who may pause over whom, pauses that change
nothing cost nothing, and remeasuring forgets exactly the peers named."""

from __future__ import annotations

import logging

import pytest
import trio

from p2pcc.core.control_protocol import BAD_ARGUMENT, ControlError, PermissionDeniedError
from p2pcc.core.node_change import Change
from p2pcc.core.proof import Outcome, ProofResult, proof_targets
from p2pcc.daemon.node_control import NodeControl
from tests.core.local_nodes import WALL, gossip, make_node

ROOT, ALICE, MALLORY = 0, 1000, 1001


class Watched:
    """A NodeControl on a fresh node, and every change the node announced."""

    def __init__(self) -> None:
        self.changes: list[Change] = []
        self.node = make_node(1, self.changes.append)
        self.control = NodeControl(self.node)

    def pause_changes(self) -> int:
        return sum(1 for change in self.changes if change & Change.PAUSE)


@pytest.fixture
def watched() -> Watched:
    return Watched()


@pytest.mark.parametrize(
    "seconds",
    [0.01, 3600.0, None],  # shorter (the trick), longer, endless: all refused
)
async def test_another_user_cannot_replace_or_shorten_roots_pause(
    watched: Watched, seconds: float | None
) -> None:
    watched.control.pause(600.0, "maintenance", ROOT)
    before = watched.node.pause
    with pytest.raises(PermissionDeniedError) as refused:
        watched.control.pause(seconds, "mine now", MALLORY)
    assert str(refused.value).startswith("paused by uid 0 until ")
    assert str(refused.value).endswith(
        " UTC (maintenance): only that user or root may replace or shorten it"
    )
    assert before is not None
    assert refused.value.pause == before.as_document()
    assert watched.node.pause == before
    assert watched.pause_changes() == 1


async def test_root_may_replace_anyones_pause_and_a_user_their_own(watched: Watched) -> None:
    watched.control.pause(600.0, "alice's", ALICE)
    watched.control.pause(60.0, "shorter", ALICE)
    assert watched.node.pause is not None
    assert (watched.node.pause.by_uid, watched.node.pause.reason) == (ALICE, "shorter")
    watched.control.pause(None, "root's", ROOT)
    assert watched.node.pause is not None
    assert watched.node.pause.by_uid == ROOT
    with pytest.raises(PermissionDeniedError):
        watched.control.pause(None, "back to me", ALICE)
    assert watched.pause_changes() == 3


async def test_the_automatic_pause_belongs_to_the_daemons_user(watched: Watched) -> None:
    assert watched.node.auto_pause(ROOT, trio.current_time())
    with pytest.raises(PermissionDeniedError, match="while the desktop is in use"):
        watched.control.pause(0.01, "", MALLORY)
    with pytest.raises(PermissionDeniedError, match="may resume it"):
        watched.control.resume(MALLORY)
    result = watched.control.pause(60.0, "root's", ROOT)
    assert result["pause"]["automatic"] is False


async def test_the_same_endless_pause_again_changes_nothing(
    watched: Watched, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, "p2pcc.daemon"):
        first = watched.control.pause(None, "benchmarking", ALICE)
        again = [watched.control.pause(None, "benchmarking", ALICE) for _ in range(100)]
        reworded = watched.control.pause(None, "benchmarks", ALICE)
    assert all(result == first for result in again)
    assert reworded["pause"]["reason"] == "benchmarks"
    assert watched.pause_changes() == 2  # nothing to write or gossip for the repeats
    assert [record.getMessage() for record in caplog.records] == [
        "paused by uid 1000 for ever: benchmarking",
        "paused by uid 1000 for ever: benchmarks",
    ]


async def test_pause_now_replaces_the_same_pause_without_it_and_is_logged(
    watched: Watched, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, "p2pcc.daemon"):
        watched.control.pause(None, "lunch", ALICE)
        now = watched.control.pause(None, "lunch", ALICE, hand_back=True)
        again = watched.control.pause(None, "lunch", ALICE, hand_back=True)
    assert now == again
    assert now["pause"]["hand_back"] is True
    assert watched.pause_changes() == 2
    assert [record.getMessage() for record in caplog.records] == [
        "paused by uid 1000 for ever: lunch",
        "paused by uid 1000 for ever: lunch; handing back peers' jobs",
    ]


async def test_a_resume_while_not_paused_changes_nothing(watched: Watched) -> None:
    assert watched.control.resume(MALLORY) == {"state": "active", "was_paused": False}
    assert watched.pause_changes() == 0
    watched.control.pause(30.0, "", ALICE)
    with pytest.raises(PermissionDeniedError, match="paused by uid 1000 until "):
        watched.control.resume(MALLORY)
    assert watched.control.resume(ALICE) == {"state": "active", "was_paused": True}
    assert watched.node.pause is None
    assert watched.pause_changes() == 2


async def test_remeasure_forgets_the_named_peers_measurements_and_verdicts(
    watched: Watched,
) -> None:
    node = watched.node
    peers = {2: make_node(2), 3: make_node(3)}
    for peer in peers.values():
        gossip(peer, node, trio.current_time())
    slow, other = (bytes([index]) * 16 for index in peers)
    for node_id in (slow, other):
        node.reports.turnaround.observe(node_id, 1.0, trio.current_time())
    node.set_delivered({slow: 0.1, other: 0.5})
    result = watched.control.remeasure(("ws2",), ALICE)
    assert result == {"forgotten": ["ws2"], "judged_slow": ["ws2"], "proving": []}
    assert node.delivered == {other: 0.5}
    assert node.reports.turnaround.figures(trio.current_time()).keys() == {other}
    # All peers: every figure and factor goes.
    result = watched.control.remeasure((), MALLORY)
    assert result == {"forgotten": ["ws2", "ws3"], "judged_slow": ["ws3"], "proving": []}
    assert (node.delivered, node.reports.turnaround.peers()) == ({}, 0)


async def test_remeasure_has_the_named_peers_or_the_disproven_proven_again_at_once(
    watched: Watched,
) -> None:
    node = watched.node
    for index in (2, 3):
        gossip(make_node(index), node, trio.current_time())
    book = node.reports.proofs
    book.set_targets(proof_targets(node.peers(), node.compilers, lzo=False))
    ws2, ws3 = sorted(book.targets, key=lambda target: target.name)
    now = trio.current_time()
    for target, outcome in ((ws2, Outcome.OK), (ws3, Outcome.DIFFERENT)):
        book.record(ProofResult(target, outcome, "", 0.1, now, WALL + now))
    assert book.due(now + 1.0, True, frozenset()) is None  # both proven a second ago
    result = watched.control.remeasure((), MALLORY)
    assert result["proving"] == ["ws3"]  # without names: the disproven
    assert book.due(now + 1.0, True, frozenset()) == ws3
    assert book.disproven() == {ws3.fingerprint: frozenset({ws3.node_id})}  # until it passes
    book.record(ProofResult(ws3, Outcome.OK, "", 0.1, now + 2.0, WALL + now + 2.0))
    assert watched.control.remeasure(("ws2",), ALICE)["proving"] == ["ws2"]
    assert book.due(now + 3.0, True, frozenset()) == ws2
    book.record(ProofResult(ws2, Outcome.OK, "", 0.1, now + 3.0, WALL + now + 3.0))
    assert book.due(now + 4.0, True, frozenset()) is None


async def test_remeasuring_an_unknown_peer_changes_nothing(watched: Watched) -> None:
    gossip(make_node(2), watched.node, trio.current_time())
    watched.node.set_delivered({bytes([2]) * 16: 0.1})
    with pytest.raises(ControlError) as refused:
        watched.control.remeasure(("ws2", "ws9"), ALICE)
    assert refused.value.code == BAD_ARGUMENT
    assert str(refused.value) == "no peer named 'ws9' (peers: ws2)"
    assert watched.node.delivered == {bytes([2]) * 16: 0.1}
