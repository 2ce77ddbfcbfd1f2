"""The local node: reports in, advertised status and hosts lines out, and which changes it
announces for each — without trio or a clock."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import replace
from pathlib import Path

import pytest

from p2pcc.core import limits
from p2pcc.core.addresses import AddressPool
from p2pcc.core.auth import Keyring
from p2pcc.core.gossip_types import RefusedAddress, Transport
from p2pcc.core.idle import PauseKind
from p2pcc.core.metrics import GIB, LocalMetrics
from p2pcc.core.model import Message, MessageKind, NodeState
from p2pcc.core.node import LocalNode
from p2pcc.core.node_change import Change, table_change
from p2pcc.core.peers import PeerJoined, PeerUpdated
from p2pcc.core.seeds import SeedState
from p2pcc.core.wire import encode
from p2pcc.core.zeroconf_names import StockServer
from tests.core.clones import SHARED, clone
from tests.core.local_nodes import FP, WALL, gossip, make_node, status
from tests.core.roomy_peers import peer as roomy_peer

IDLE = LocalMetrics(
    cpus=2, load_raw=0.0, served_load=0.0, foreign_load=0.0, mem_available=8 * GIB, jobs=0, slots=2
)


def serving(index: int, changes: list[Change] | None = None) -> LocalNode:
    """A node whose distccd serves; its first datagram is due at once."""
    node = make_node(index) if changes is None else make_node(index, changes.append)
    node.set_serving(True, 0.0)
    return node


def spoken(index: int, changes: list[Change] | None = None) -> LocalNode:
    """A serving node that has sent its first datagram (the next is an interval away)."""
    node = serving(index, changes)
    assert node.datagram_to_send(0.0, WALL) is not None
    return node


def test_not_serving_offers_no_slots_and_serving_restores_them() -> None:
    changes: list[Change] = []
    node = spoken(1, changes)
    assert node.status.slots == 4
    changes.clear()
    node.set_serving(False, 1.0)
    assert (node.status.slots, node.serving) == (0, False)
    assert node.next_send == pytest.approx(1.0)  # told at once
    assert changes == [Change.STATUS | Change.SEND]


def test_a_pause_is_advertised_and_expires_on_its_own_timer() -> None:
    changes: list[Change] = []
    node = spoken(1, changes)
    assert node.datagram_to_send(9.0, WALL) is not None  # the next is due at 11.0
    changes.clear()
    node.pause_for(60, "meeting", uid=1000, now=10.0, wall=WALL)
    advertised = node.status
    assert (advertised.state, advertised.pause_reason, advertised.pause_until) == (
        NodeState.PAUSED,
        "meeting",
        WALL + 60,
    )
    assert changes == [Change.PAUSE | Change.TIMER | Change.STATUS | Change.SEND]
    assert node.next_send == 10.0  # the change goes out now
    assert node.next_deadline() == 70.0  # the pause's end, before any peer's silence
    node.handle_timer(69.9)
    assert node.status.state is NodeState.PAUSED
    node.handle_timer(70.0)
    assert node.status.state is NodeState.ACTIVE
    assert node.pause is None
    assert node.resumes_by_hand == 0  # expiry is not a person resuming


def test_pause_rejects_nonsense_durations_and_changes_nothing() -> None:
    node = make_node(1)
    for seconds in (0.0, -5.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="positive number of seconds"):
            node.pause_for(seconds, "", uid=0, now=0.0, wall=WALL)
    assert node.pause is None


def test_a_long_reason_is_cut_to_the_wire_limit() -> None:
    node = make_node(1)
    node.pause_for(None, "x" * 1000, uid=0, now=0.0, wall=WALL)
    assert node.pause is not None
    assert len(node.pause.reason) == limits.MAX_PAUSE_REASON


def test_a_manual_pause_replaces_an_automatic_one_and_is_never_lifted_by_it() -> None:
    node = serving(1)
    assert node.auto_pause(1000, 1.0)
    assert node.pause_kind() is PauseKind.AUTOMATIC
    assert (node.status.pause_reason, node.status.pause_until) == ("desktop in use", None)
    assert node.snapshot(1.5, WALL)["node"]["pause"] == {
        "reason": "desktop in use",
        "by_uid": 1000,
        "until": None,
        "automatic": True,
        "hand_back": True,
    }
    assert not node.auto_pause(1000, 2.0)  # already paused
    node.pause_for(None, "maintenance", uid=0, now=3.0, wall=WALL)
    assert node.pause_kind() is PauseKind.MANUAL
    assert not node.auto_resume(4.0)
    assert node.pause_kind() is PauseKind.MANUAL
    assert node.resume(5.0)
    assert (node.pause_kind(), node.resumes_by_hand) == (PauseKind.NONE, 1)
    assert not node.resume(6.0)  # nothing to resume: not counted
    assert node.resumes_by_hand == 1


def test_a_pause_hands_back_when_asked_and_an_automatic_one_unless_told_not_to() -> None:
    changes: list[Change] = []
    node = serving(1, changes)

    def hands_back() -> bool | None:
        return None if node.pause is None else node.pause.hand_back

    node.pause_for(None, "", uid=0, now=1.0, wall=WALL)
    assert hands_back() is False
    changes.clear()
    node.pause_for(None, "", uid=0, now=2.0, wall=WALL, hand_back=True)
    assert hands_back() is True
    assert node.snapshot(2.0, WALL)["node"]["pause"]["hand_back"] is True
    assert changes
    assert all(change & Change.PAUSE for change in changes)
    node.resume(3.0)
    assert node.auto_pause(1000, 4.0, hand_back=False)
    assert hands_back() is False
    node.resume(5.0)
    assert node.auto_pause(1000, 6.0)
    assert hands_back() is True


def test_an_automatic_pause_ends_automatically() -> None:
    node = serving(1)
    node.auto_pause(1000, 1.0)
    assert node.auto_resume(2.0)
    assert node.status.state is NodeState.ACTIVE
    assert not node.auto_resume(3.0)


def test_leaving_offers_nothing() -> None:
    node = serving(1)
    node.begin_leave(1.0)
    assert (node.status.state, node.status.slots) == (NodeState.LEAVING, 0)


def test_a_metrics_sample_sets_the_advertised_numbers_and_local_slots() -> None:
    node = serving(1)
    node.set_measurements(replace(IDLE, foreign_load=1.5, jobs=1), 1.0)
    assert replace(node.status, compilers=()) == replace(
        status("ws1", "10.0.0.1"),
        cpus=2,
        load=1.5,
        mem_available=8 * GIB,
        slots=2,
        jobs=1,
        compilers=(),
    )
    assert node.local_slots == 2


def test_calibration_sets_the_power_and_a_cpu_limit_slows_it() -> None:
    node = serving(1)
    assert node.recalibrate([1.0, 2.0, 4.0], 1.0) == 2.0  # the median
    assert node.status.power == 2.0
    node.set_measurements(replace(IDLE, cpus=1, slots=0, cpu_limit=0.15, slot_speed=0.15), 2.0)
    assert (node.status.cpus, node.status.slots, node.local_slots) == (1, 0, 1)
    assert node.status.power == pytest.approx(0.3)


def test_a_peer_joining_is_a_ranking_change_a_timer_change_and_a_reason_to_speak() -> None:
    changes: list[Change] = []
    alpha, beta = spoken(1, changes), serving(2)
    assert alpha.next_deadline() == float("inf")  # no peer, no pause: nothing timed
    changes.clear()
    beta.set_measurements(IDLE, 0.05)
    gossip(beta, alpha, 0.1)
    assert changes == [Change.PEERS | Change.MEMBERS | Change.TIMER | Change.SEND]
    assert alpha.next_deadline() == pytest.approx(0.1 + default_suspect_after())


def default_suspect_after() -> float:
    from tests.core.policies import default_timings

    return default_timings().suspect_after


def test_a_peer_repeating_itself_changes_nothing_and_a_new_load_changes_the_ranking() -> None:
    changes: list[Change] = []
    alpha, beta = serving(1, changes), serving(2)
    gossip(beta, alpha, 0.0)
    changes.clear()
    gossip(beta, alpha, 2.0)  # the same status, an interval later
    assert changes == []
    beta.set_measurements(replace(IDLE, foreign_load=0.5), 3.0)
    gossip(beta, alpha, 3.0)
    assert changes == [Change.PEERS]


def test_a_peer_pausing_is_a_material_change_and_its_load_is_not() -> None:
    changes: list[Change] = []
    alpha, beta = serving(1, changes), serving(2)
    gossip(beta, alpha, 0.0)
    changes.clear()
    beta.pause_for(None, "meeting", 1000, 1.0, WALL)
    gossip(beta, alpha, 1.0)  # told at once: a material change
    moved = replace(IDLE, cpus=4, slots=4, foreign_load=0.5, jobs=2, mem_available=GIB)
    beta.set_measurements(moved, 3.0)  # the same four slots, busier
    gossip(beta, alpha, 3.0)
    assert changes == [Change.PEERS, Change.LOAD]
    assert Change.LOAD in Change.RANKING


def test_hosts_line_and_snapshot_include_a_matching_peer() -> None:
    alpha, beta = serving(1), serving(2)
    gossip(beta, alpha, 0.1)
    line = alpha.hosts_for(FP, 0.2)
    assert line.hosts == "10.0.0.2:3632/4 localhost/4"
    assert line.jobs == 8
    snapshot = alpha.snapshot(now=0.2, wall=WALL)
    assert snapshot["schema"] == 1
    assert snapshot["node"]["compilers"][0]["names"] == ["gcc", "cc"]
    (peer,) = snapshot["peers"]
    assert (peer["name"], peer["ranks"], peer["liveness"]) == ("ws2", {FP: 1}, "alive")
    assert snapshot["hosts"] == {FP: {"hosts": "10.0.0.2:3632/4 localhost/4", "jobs": 8}}


def test_a_fingerprint_we_do_not_have_is_ranked_on_request() -> None:
    alpha, beta = serving(1), serving(2)
    gossip(beta, alpha, 0.1)
    assert alpha.hosts_for("0" * 16, 0.2).hosts == "localhost/4"


def test_ranking_is_computed_once_per_change_whoever_asks() -> None:
    alpha, beta = serving(1), serving(2)
    gossip(beta, alpha, 0.1)
    first = alpha.ranking(0.2)
    alpha.snapshot(0.3, WALL)
    alpha.hosts(0.4)
    assert alpha.ranking(0.5) is first
    beta.set_measurements(replace(IDLE, foreign_load=0.5), 0.6)
    gossip(beta, alpha, 0.6)
    assert alpha.ranking(0.7) is not first


def test_reading_the_hosts_applies_the_silence_due_by_then() -> None:
    alpha, beta = serving(1), serving(2)
    gossip(beta, alpha, 0.0)
    assert alpha.hosts(1.0)[FP].hosts.startswith("10.0.0.2")
    assert alpha.hosts(default_suspect_after())[FP].hosts == "localhost/4"


def test_a_new_policy_ranks_anew() -> None:
    changes: list[Change] = []
    alpha, beta = serving(1, changes), serving(2)
    gossip(beta, alpha, 0.1)
    changes.clear()
    from tests.core.policies import default_policy

    alpha.set_policy(replace(default_policy(), lzo=True))
    assert changes == [Change.PEERS]
    assert alpha.hosts(0.2)[FP].hosts == "10.0.0.2:3632/4,lzo localhost/4"


def test_reports_for_the_status_document() -> None:
    node = make_node(1)
    server = StockServer("distcc@old", ("10.0.0.9",), 3632, "x86_64-linux-gnu--12", 2, 4)
    node.reports.add_stock_server(server)
    node.reports.count_mdns_drop("bad-address")
    node.reports.count_mdns_drop("bad-address")
    node.reports.count_aborted(3)
    node.reports.set_cutoff_problem(None)
    document = node.snapshot(0.0, WALL)
    assert document["stock_servers"][0]["instance"] == "distcc@old"
    assert document["counters"]["mdns_drops"] == {"bad-address": 2}
    assert document["counters"]["aborted_connections"] == 3
    assert document["node"]["cutoff_problem"] is None
    node.reports.remove_stock_server(server)
    assert node.snapshot(0.0, WALL)["stock_servers"] == []


def test_stock_servers_are_bounded_like_peers() -> None:
    node = make_node(1)
    for index in range(limits.MAX_PEERS + 5):
        node.reports.add_stock_server(StockServer(f"distcc@{index}", (), 3632, "k", 1, 1))
    assert len(node.reports.stock_servers()) == limits.MAX_PEERS


def documented_fields(heading: str) -> set[str]:
    """The field names in the first column of the table under `heading` in status-json.md."""
    doc = (Path(__file__).parents[2] / "docs" / "status-json.md").read_text()
    lines = doc.split(f"\n{heading}\n", 1)[1].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    names: set[str] = set()
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        names |= set(re.findall(r"`([a-z_]+)`", line.split("|")[1]))
    return names


def test_status_document_matches_its_documentation() -> None:
    alpha, beta = serving(1), serving(2)
    gossip(beta, alpha, 0.1)
    snapshot = alpha.snapshot(now=0.2, wall=WALL)
    assert set(snapshot) == documented_fields("## Top level")
    assert set(snapshot["node"]) == documented_fields("## `node`")
    assert set(snapshot["node"]["compilers"][0]) == documented_fields("Each `compilers` entry:")
    assert set(snapshot["peers"][0]) == documented_fields("## `peers[]`")
    assert set(snapshot["counters"]) == documented_fields("## `counters`")
    assert snapshot["seeds"] == []
    alpha.reports.set_seeds((SeedState("build1", (("10.2.0.5", 3634),), None),))
    seeds = alpha.snapshot(now=0.2, wall=WALL)["seeds"]
    assert seeds == [
        {"seed": "build1", "endpoints": [["10.2.0.5", 3634]], "problem": None, "unused": []}
    ]
    assert set(seeds[0]) == documented_fields("## `seeds[]`")


def test_a_peer_falling_silent_is_a_liveness_change_and_a_ranking_change() -> None:
    changes: list[Change] = []
    alpha, beta = serving(1, changes), serving(2)
    gossip(beta, alpha, 0.0)
    changes.clear()
    alpha.handle_timer(default_suspect_after() - 0.001)
    assert changes == []
    alpha.handle_timer(default_suspect_after())
    assert changes == [Change.PEERS | Change.MEMBERS | Change.LIVENESS]


def test_another_node_under_our_id_is_answered_at_once_then_the_lower_wants_a_new_id() -> None:
    low_changes: list[Change] = []
    high_changes: list[Change] = []
    low = clone(1, incarnation=5, on_change=low_changes.append)
    high = clone(2, incarnation=7, on_change=high_changes.append)
    low_changes.clear()
    high_changes.clear()
    outgoing = low.datagram_to_send(0.0, WALL)
    assert outgoing is not None
    low.receive(outgoing.data, ("10.0.0.1", 3634), Transport.MULTICAST, 0.0)  # our echo
    assert (low.shared_id, low_changes) == (None, [])
    high.receive(outgoing.data, ("10.0.0.1", 3634), Transport.MULTICAST, 0.0)
    assert high_changes == [Change.IDENTITY]  # its first datagram was due already
    gossip(high, low, 0.0)
    assert low_changes == [Change.IDENTITY | Change.SEND]
    assert low.shared_id is not None
    assert low.shared_id.namesake.address == "10.0.0.2"
    # Low answers under the shared id first (min_gap after its last datagram), so that
    # high learns of it even if it had not heard low before; then low wants a new id.
    assert (low.wants_new_id, low.next_send) == (False, pytest.approx(0.2))
    assert low.datagram_to_send(0.2, WALL) is not None
    assert low_changes[-1] == Change.IDENTITY
    assert (low.wants_new_id, high.wants_new_id) == (True, False)
    low_changes.clear()
    gossip(high, low, 2.0)  # the same namesake again: answered, but nothing new
    assert low_changes == [Change.SEND]
    assert low.peers() == high.peers() == ()


def test_renewing_the_id_gossips_it_at_once_and_keeps_incarnation_and_replay_memory() -> None:
    changes: list[Change] = []
    low, high, third = (
        clone(1, incarnation=5, on_change=changes.append),
        clone(2, incarnation=7),
        serving(3),
    )
    assert low.datagram_to_send(0.0, WALL) is not None
    gossip(third, low, 0.0)
    gossip(high, low, 0.0)
    remembered = low.seen_orders()
    changes.clear()
    low.renew_identity(b"\xa0" * 16, 1.0)
    assert changes == [Change.IDENTITY | Change.PEERS | Change.MEMBERS | Change.SEND | Change.TIMER]
    assert (low.node_id, low.incarnation, low.wants_new_id) == (b"\xa0" * 16, 5, False)
    assert low.peers() == ()  # heard anew, each within an interval
    assert low.seen_orders() == remembered  # a replay of third is still refused
    outgoing = low.datagram_to_send(1.0, WALL + 1.0)  # due at once
    assert outgoing is not None
    high.receive(outgoing.data, ("10.0.0.1", 3634), Transport.MULTICAST, 1.0)
    assert [peer.node_id for peer in high.peers()] == [b"\xa0" * 16]
    gossip(high, low, 1.1)  # the old id is high's alone now
    assert [peer.node_id for peer in low.peers()] == [SHARED]


def test_a_renewed_node_keeps_judging_addresses_by_its_pool() -> None:
    refused: list[RefusedAddress] = []
    pool = AddressPool(4, (ipaddress.ip_network("10.0.0.0/24"),))
    low = clone(1, incarnation=5, pool=pool, on_refused=refused.append)
    low.renew_identity(b"\xa0" * 16, 1.0)
    outside = Message(b"\x09" * 16, 1, 1, WALL, MessageKind.STATE, status("ws9", "192.0.2.9"))
    low.receive(encode(outside, Keyring()), ("10.0.0.9", 3634), Transport.MULTICAST, 1.0)
    assert [(r.address, r.reason) for r in refused] == [("192.0.2.9", "address-outside")]


def test_the_status_document_shows_the_shared_id_until_restart() -> None:
    low, high = clone(1, incarnation=5), clone(2, incarnation=7)
    assert low.snapshot(0.0, WALL)["node"]["duplicate_id"] is None
    gossip(high, low, 1.0)
    low.renew_identity(b"\xa0" * 16, 1.0)
    assert low.snapshot(3.0, WALL)["node"]["duplicate_id"] == {
        "address": "10.0.0.2",
        "since": WALL - 2.0,
        "shared_id": SHARED.hex(),
        "new_id_here": True,
        "healed": False,
    }
    gossip(high, low, 3.0)
    document = low.snapshot(3.0, WALL)["node"]
    assert (document["node_id"], document["duplicate_id"]["healed"]) == ("a0" * 16, True)
    doc = (Path(__file__).parents[2] / "docs" / "status-json.md").read_text()
    (row,) = [line for line in doc.splitlines() if line.startswith("| `duplicate_id`")]
    assert set(re.findall(r'"([a-z_]+)": ', row)) == set(document["duplicate_id"])


def test_a_peer_measured_as_a_straggler_leaves_the_line_and_comes_back() -> None:
    changes: list[Change] = []
    alpha, beta, gamma = serving(1, changes), serving(2), serving(3)
    gossip(beta, alpha, 0.1)
    gossip(gamma, alpha, 0.1)
    assert alpha.hosts(0.2)[FP].hosts.count("/4") == 3  # both peers and localhost
    changes.clear()
    alpha.set_delivered({gamma.node_id: 0.1})
    assert changes == [Change.PEERS]
    # Gamma's four slots go to localhost in the line, not in the -j.
    assert alpha.hosts(0.3)[FP].hosts == "10.0.0.2:3632/4 localhost/8"
    assert alpha.hosts(0.3)[FP].jobs == 8
    shown = {peer["name"]: peer["delivered"] for peer in alpha.snapshot(0.3, WALL)["peers"]}
    assert shown == {"ws2": 1.0, "ws3": 0.1}
    alpha.set_delivered({gamma.node_id: 0.1})  # the same verdict again: nothing to re-rank
    assert changes == [Change.PEERS]
    alpha.set_delivered({})
    assert "10.0.0.3:3632/4" in alpha.hosts(0.4)[FP].hosts


def test_a_peer_disproven_by_a_proof_leaves_the_line_until_forgiven() -> None:
    changes: list[Change] = []
    alpha, beta, gamma = serving(1, changes), serving(2), serving(3)
    gossip(beta, alpha, 0.1)
    gossip(gamma, alpha, 0.1)
    changes.clear()
    alpha.set_disproven({FP: frozenset({gamma.node_id})})
    assert changes == [Change.PEERS]
    # Unlike a straggler's, its slots do not go to localhost: it is simply not there.
    assert alpha.hosts(0.3)[FP].hosts == "10.0.0.2:3632/4 localhost/4"
    alpha.set_disproven({})
    assert "10.0.0.3:3632/4" in alpha.hosts(0.4)[FP].hosts


def test_only_what_changes_who_may_connect_is_a_members_change() -> None:
    base = roomy_peer(2)
    moved = roomy_peer(2, addresses=("10.0.0.9",))
    paused = roomy_peer(2, state=NodeState.PAUSED, slots=0)
    assert table_change([PeerUpdated(moved, base.status)]) == Change.PEERS | Change.MEMBERS
    assert table_change([PeerUpdated(paused, base.status)]) == Change.PEERS
    assert table_change([PeerUpdated(roomy_peer(2, load=3.0), base.status)]) == Change.LOAD
    assert Change.MEMBERS & table_change([PeerJoined(base)])
    node = make_node(1)
    before = node.members_version
    gossip(serving(2), node, 0.1)
    assert node.members_version == before + 1
