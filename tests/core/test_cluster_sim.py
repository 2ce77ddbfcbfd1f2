"""Five in-memory nodes gossiping through their peer tables on a virtual clock."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import pytest

from p2pcc.core.errors import RejectedMessageError
from p2pcc.core.gossip_types import Outgoing, Transport
from p2pcc.core.hosts import render_hosts
from p2pcc.core.metrics import GIB
from p2pcc.core.model import CompilerOffer, Message, MessageKind, NodeState, NodeStatus
from p2pcc.core.node import LocalNode
from p2pcc.core.peers import (
    Liveness,
    LivenessChanged,
    PeerEvent,
    PeerTable,
    PeerTimings,
    PeerUpdated,
)
from p2pcc.core.probing import PROBE_ATTEMPTS, PROBE_INTERVAL, PROBE_TIMEOUT
from p2pcc.core.ranking import rank_peers
from tests.core.clones import SHARED, clone
from tests.core.local_nodes import FP as LOCAL_FP
from tests.core.local_nodes import WALL, make_node
from tests.core.policies import default_policy, default_timings

FP = "0123456789abcdef"
OFFER = CompilerOffer(FP, "x86_64-linux-gnu--12", "x86_64-linux-gnu-gcc-12")
TIMINGS = PeerTimings(suspect_after=5.0, dead_after=15.0, forget_after=600.0)
POLICY = default_policy()


@dataclass
class SimNode:
    """One workstation: its identity, what it announces, and its view of the others."""

    index: int
    status: NodeStatus
    table: PeerTable
    incarnation: int = 1
    sequence: int = 0

    @property
    def node_id(self) -> bytes:
        return self.table.own_id

    def announce(self, now: float, kind: MessageKind = MessageKind.STATE) -> Message:
        self.sequence += 1
        body = self.status if kind is MessageKind.STATE else None
        return Message(self.node_id, self.incarnation, self.sequence, now, kind, body)

    def restart(self) -> None:
        self.incarnation += 1
        self.sequence = 0


@dataclass
class Cluster:
    """Nodes on a perfect multicast link that the test can cut per sender."""

    nodes: list[SimNode]
    now: float = 0.0
    log: list[tuple[float, int, PeerEvent]] = field(default_factory=list)

    @classmethod
    def of(cls, size: int) -> Cluster:
        nodes = []
        for index in range(size):
            status = NodeStatus(
                name=f"ws{index}",
                addresses=(f"10.0.0.{index + 1}",),
                distccd_port=3632,
                cpus=8,
                load=0.0,
                mem_available=16 * GIB,
                slots=4,
                jobs=0,
                power=1.3**index,  # 1, 1.3, 1.69, 2.2, 2.86: one tier each, no straggler
                compilers=(OFFER,),
            )
            table = PeerTable(bytes([index + 1]) * 16, TIMINGS)
            nodes.append(SimNode(index, status, table))
        return cls(nodes)

    def deliver(self, drop: frozenset[int] = frozenset()) -> None:
        """Every node not in `drop` announces itself to all others; then every node ticks."""
        for sender in self.nodes:
            if sender.index in drop:
                continue
            self.send(sender.announce(self.now), sender.index)
        self.tick()

    def send(self, message: Message, sender: int) -> None:
        for receiver in self.nodes:
            if receiver.index != sender:
                events = receiver.table.apply(message, self.now)
                self.log += [(self.now, receiver.index, event) for event in events]

    def tick(self) -> None:
        for receiver in self.nodes:
            events = receiver.table.tick(self.now)
            self.log += [(self.now, receiver.index, event) for event in events]

    def run(self, until: float, drop: frozenset[int] = frozenset()) -> None:
        """One delivery round per virtual second, up to and including `until`."""
        while self.now < until:
            self.now += 1.0
            self.deliver(drop)

    def liveness_changes(self, about: int) -> list[tuple[float, int, Liveness]]:
        node_id = self.nodes[about].node_id
        return [
            (at, receiver, event.new)
            for at, receiver, event in self.log
            if isinstance(event, LivenessChanged) and event.node_id == node_id
        ]

    def ranked_names(self, viewer: int) -> list[str]:
        peers = self.nodes[viewer].table.peers()
        return [entry.peer.status.name for entry in rank_peers(peers, FP, POLICY, b"sim")]


def test_everyone_knows_everyone_after_one_round() -> None:
    cluster = Cluster.of(5)
    cluster.deliver()
    for sim in cluster.nodes:
        assert sorted(peer.status.name for peer in sim.table.peers()) == sorted(
            f"ws{i}" for i in range(5) if i != sim.index
        )
    assert cluster.ranked_names(0) == ["ws4", "ws3", "ws2", "ws1"]


def test_a_silent_node_turns_suspect_then_dead_at_exact_virtual_times() -> None:
    cluster = Cluster.of(5)
    cluster.run(until=10.0)
    assert cluster.nodes[0].table.next_deadline() == 15.0
    cluster.run(until=30.0, drop=frozenset({4}))
    others = [0, 1, 2, 3]
    assert cluster.liveness_changes(about=4) == [
        *[(15.0, i, Liveness.SUSPECT) for i in others],
        *[(25.0, i, Liveness.DEAD) for i in others],
    ]
    assert cluster.nodes[0].table.next_deadline() == 35.0  # the live peers, heard at 30
    assert "ws4" not in cluster.ranked_names(0)
    # Nothing else changed liveness: the other four kept talking.
    assert all(cluster.liveness_changes(about=i) == [] for i in others)


def test_a_node_between_deadlines_is_found_with_next_deadline() -> None:
    cluster = Cluster.of(5)
    cluster.deliver()
    cluster.now = 0.25
    cluster.deliver(drop=frozenset({2}))  # node 2 last heard at 0.0, the others at 0.25
    table = cluster.nodes[0].table
    assert table.next_deadline() == 5.0
    cluster.now = 5.0
    cluster.tick()
    assert cluster.liveness_changes(about=2) == [(5.0, i, Liveness.SUSPECT) for i in (0, 1, 3, 4)]
    assert table.next_deadline() == 5.25


def test_a_restarted_node_is_accepted_at_once_and_its_old_packets_are_not() -> None:
    cluster = Cluster.of(5)
    cluster.run(until=3.0)
    restarting = cluster.nodes[2]
    stale = Message(restarting.node_id, 1, 2, 2.0, MessageKind.STATE, restarting.status)
    restarting.restart()
    cluster.log.clear()
    cluster.deliver()
    accepted = [
        (receiver, event.peer.order)
        for _, receiver, event in cluster.log
        if isinstance(event, PeerUpdated) and event.peer.node_id == restarting.node_id
    ]
    assert accepted == [(0, (2, 1)), (1, (2, 1)), (3, (2, 1)), (4, (2, 1))]
    for receiver in (0, 1, 3, 4):
        with pytest.raises(RejectedMessageError, match=r"^replay: "):
            cluster.nodes[receiver].table.apply(stale, cluster.now)


def test_a_paused_node_leaves_every_ranking_in_the_same_round() -> None:
    cluster = Cluster.of(5)
    cluster.deliver()
    assert all("ws3" in cluster.ranked_names(i) for i in (0, 1, 2, 4))
    paused = cluster.nodes[3]
    paused.status = replace(paused.status, state=NodeState.PAUSED, pause_reason="meeting")
    cluster.now = 1.0
    cluster.deliver()
    assert [cluster.ranked_names(i) for i in (0, 1, 2, 4)] == [
        ["ws4", "ws2", "ws1"],
        ["ws4", "ws2", "ws0"],
        ["ws4", "ws1", "ws0"],
        ["ws2", "ws1", "ws0"],
    ]
    # The paused node itself still builds with the others and with its own CPUs.
    line = render_hosts(
        rank_peers(paused.table.peers(), FP, POLICY, b"sim"), paused.status, 4, POLICY
    )
    # Its own job speed, power 2.2 x 0.5 = 1.1, is above ws0's 1.0 and below ws1's 1.3.
    assert (
        line.hosts == "10.0.0.5:3632/4 10.0.0.3:3632/4 10.0.0.2:3632/4 localhost/4 10.0.0.1:3632/4"
    )


def test_a_leaving_node_is_dropped_everywhere_at_once() -> None:
    cluster = Cluster.of(5)
    cluster.deliver()
    leaving = cluster.nodes[1]
    cluster.send(leaving.announce(0.5, MessageKind.LEAVE), leaving.index)
    assert all(leaving.node_id not in sim.table for sim in cluster.nodes)
    assert [len(sim.table) for sim in cluster.nodes] == [3, 4, 3, 3, 3]


# --- whole local nodes: a pause in, a peer's hosts line out -------------------------------


@dataclass
class NodeCluster:
    """Local nodes on a perfect multicast link, driven by a float clock; `deliver` hands
    every datagram that is due to every other node that is not cut off."""

    nodes: list[LocalNode]
    now: float = 0.0

    @classmethod
    def of(cls, size: int) -> NodeCluster:
        nodes = [make_node(index + 1) for index in range(size)]
        for node in nodes:
            node.set_serving(True, 0.0)
        return cls(nodes)

    def deliver(self, drop: frozenset[int] = frozenset()) -> None:
        for index, sender in enumerate(self.nodes):
            outgoing = sender.datagrams_to_send(self.now, WALL + self.now)
            if index not in drop:
                hand_out(
                    outgoing, sender, [node for node in self.nodes if node is not sender], self.now
                )

    def run_until(self, end: float, step: float = 0.1) -> None:
        """Advance the clock to `end`, running timers and delivering at each step."""
        while self.now < end:
            self.now = round(self.now + step, 6)
            for node in self.nodes:
                node.handle_timer(self.now)
            self.deliver()


def test_a_pause_leaves_a_peers_hosts_line_within_a_step_and_returns_when_it_ends() -> None:
    cluster = NodeCluster.of(3)
    alpha, beta, _ = cluster.nodes
    cluster.run_until(1.0)
    assert "10.0.0.2:3632/4" in alpha.hosts(cluster.now)[LOCAL_FP].hosts
    beta.pause_for(30.0, "demo at 3", uid=1000, now=cluster.now, wall=WALL + cluster.now)
    cluster.run_until(1.1)  # the pause goes out at once, not at the next interval
    line = alpha.hosts(cluster.now)[LOCAL_FP].hosts
    assert "10.0.0.2" not in line
    assert line == "10.0.0.3:3632/4 localhost/4"
    (seen,) = [peer for peer in alpha.peers() if peer.node_id == beta.node_id]
    assert (seen.status.state, seen.status.pause_reason) == (NodeState.PAUSED, "demo at 3")
    cluster.run_until(30.9)
    assert beta.pause is not None  # until 31.0 exactly
    assert "10.0.0.2" not in alpha.hosts(cluster.now)[LOCAL_FP].hosts
    cluster.run_until(31.0)  # the pause expires on beta's own timer and goes out at once
    assert beta.pause is None
    assert "10.0.0.2:3632/4" in alpha.hosts(cluster.now)[LOCAL_FP].hosts


def test_a_node_cut_off_leaves_the_others_lines_when_probes_find_it_silent() -> None:
    cluster = NodeCluster.of(3)
    alpha, beta, _ = cluster.nodes
    cluster.run_until(1.0)
    suspect_after = default_timings().suspect_after
    (seen,) = [peer for peer in alpha.peers() if peer.node_id == beta.node_id]
    heard = seen.last_heard
    cut = cluster.now
    while cluster.now < heard + suspect_after + 1:
        cluster.now = round(cluster.now + 0.1, 6)
        for node in cluster.nodes:
            node.handle_timer(cluster.now)
        cluster.deliver(drop=frozenset({1}))
        if "10.0.0.2" not in alpha.hosts(cluster.now)[LOCAL_FP].hosts:
            break
    # Suspect (out of every line) once a round of probes went unanswered: within a probe
    # interval and the attempts' timeouts of the cut, before silence alone would tell.
    silent_within = PROBE_INTERVAL + PROBE_ATTEMPTS * PROBE_TIMEOUT + 0.2
    assert cut + PROBE_ATTEMPTS * PROBE_TIMEOUT < cluster.now <= cut + silent_within
    assert cluster.now < heard + suspect_after
    (seen,) = [peer for peer in alpha.peers() if peer.node_id == beta.node_id]
    assert seen.liveness is Liveness.SUSPECT
    assert beta.hosts(cluster.now)[LOCAL_FP].hosts.startswith("10.0.0.")  # beta still hears them


@pytest.mark.parametrize(
    ("ws2_later", "heal_time"), [(False, 0.3), (True, 0.3)], ids=["together", "ws2-later"]
)
def test_two_machines_cloned_from_one_image_become_two_peers_within_an_interval(
    ws2_later: bool, heal_time: float
) -> None:
    # ws1 and ws2 share an id; ws3, the office, hears ws2 (the higher incarnation) only.
    low, high, office = clone(1, incarnation=5), clone(2, incarnation=7), make_node(3)
    office.set_serving(True, 0.0)
    cluster = NodeCluster([low, office] if ws2_later else [low, high, office])
    if ws2_later:  # ws1 sent its first datagram before ws2 listened: ws2 never heard it
        cluster.run_until(1.0)
        cluster.nodes.insert(1, high)
    both_run = cluster.now
    new_ids = iter([b"\xa0" * 16])
    while low.node_id == high.node_id or not everyone_sees_everyone(cluster.nodes):
        assert cluster.now < both_run + 2.0, "not healed within an interval"
        healed_at = cluster.now
        deliver_with_echoes(cluster)
        for node in cluster.nodes:
            if node.wants_new_id:  # what the daemon's identity task does
                node.renew_identity(next(new_ids), cluster.now)
        cluster.now = round(cluster.now + 0.1, 6)
    assert (low.node_id, high.node_id) == (b"\xa0" * 16, SHARED)
    # Found at once: the node that hears its id from another address answers at once
    # (or min_gap after its last datagram), the lower one renews, its new id goes out in
    # the next step, and the others greet the newcomer by unicast at once: 0.3 s in all.
    assert healed_at - both_run == pytest.approx(heal_time)
    low_sees = low.snapshot(cluster.now, WALL)["node"]["duplicate_id"]
    high_sees = high.snapshot(cluster.now, WALL)["node"]["duplicate_id"]
    assert (low_sees["address"], low_sees["new_id_here"], low_sees["healed"]) == (
        "10.0.0.2",
        True,
        True,
    )
    assert (high_sees["address"], high_sees["new_id_here"], high_sees["healed"]) == (
        "10.0.0.1",
        False,
        True,
    )
    assert office.snapshot(cluster.now, WALL)["node"]["duplicate_id"] is None


def deliver_with_echoes(cluster: NodeCluster) -> None:
    """Each due datagram to every node, its sender too (multicast loops back)."""
    for sender in cluster.nodes:
        hand_out(
            sender.datagrams_to_send(cluster.now, WALL + cluster.now),
            sender,
            cluster.nodes,
            cluster.now,
        )


def hand_out(
    outgoing: list[Outgoing], sender: LocalNode, receivers: list[LocalNode], now: float
) -> None:
    """Multicast datagrams to every receiver, unicast ones to the receiver they name."""
    address = (sender.status.addresses[0], 3634)
    for datagram in outgoing:
        for receiver in receivers:
            if datagram.multicast:
                receiver.receive(datagram.data, address, Transport.MULTICAST, now)
            elif (receiver.status.addresses[0], 3634) in datagram.unicast:
                receiver.receive(datagram.data, address, Transport.UNICAST, now)


def everyone_sees_everyone(nodes: list[LocalNode]) -> bool:
    return all(
        {peer.node_id for peer in node.peers()} == {o.node_id for o in nodes if o is not node}
        for node in nodes
    )
