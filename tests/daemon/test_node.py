"""The node turns task reports into the status peers see and the lines the wrapper uses."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest

from p2pcc.core.auth import Keyring
from p2pcc.core.fingerprint import Fingerprint
from p2pcc.core.gossip import GossipEngine, Transport
from p2pcc.core.model import CompilerOffer, NodeState, NodeStatus
from p2pcc.daemon.node import LocalCompiler, Node
from tests.core.policies import default_policy, default_timings

FP = "be03ec3c49bc7685"
OFFER = CompilerOffer(FP, "x86_64-linux-gnu--12", "x86_64-linux-gnu-gcc-12")
WALL = 1_800_000_000.0


def status(name: str, address: str) -> NodeStatus:
    return NodeStatus(
        name=name,
        addresses=(address,),
        distccd_port=3632,
        cpus=4,
        load=0.0,
        mem_available=16 << 30,
        slots=4,
        jobs=0,
        power=1.0,
        compilers=(OFFER,),
    )


def fingerprint() -> Fingerprint:
    return Fingerprint(
        id=FP,
        command="/usr/bin/gcc",
        real_path="/usr/bin/x86_64-linux-gnu-gcc-12",
        family="gcc",
        language="c",
        triple="x86_64-linux-gnu",
        version="12.2.0",
        loose_key=OFFER.loose_key,
        remote_name=OFFER.remote_name,
        binaries=(),
        remote_name_checks=(),
    )


def make_node(index: int) -> Node:
    engine = GossipEngine(
        node_id=bytes([index]) * 16,
        incarnation=1,
        keyring=Keyring(),
        status=status(f"ws{index}", f"10.0.0.{index}"),
        interval=2.0,
        timings=default_timings(),
        now=0.0,
    )
    compilers = [LocalCompiler(fingerprint(), ("gcc", "cc"))]
    return Node(engine=engine, compilers=compilers, policy=default_policy(), local_slots=2)


def test_not_serving_offers_no_slots_and_serving_restores_them() -> None:
    node = make_node(1)
    node.set_serving(True, 0.0)
    node.engine.poll_send(0.0, WALL)
    assert node.engine.status.slots == 4
    node.set_serving(False, 1.0)
    assert node.engine.status.slots == 0
    assert node.engine.next_deadline() == pytest.approx(1.0)  # told at once


def test_pause_is_advertised_and_expires() -> None:
    node = make_node(1)
    node.set_serving(True, 0.0)
    node.engine.poll_send(0.0, WALL)
    node.pause(60, "meeting", uid=1000, now=10.0, wall=WALL)
    advertised = node.engine.status
    assert (advertised.state, advertised.pause_reason, advertised.pause_until) == (
        NodeState.PAUSED,
        "meeting",
        WALL + 60,
    )
    assert node.next_deadline() <= 10.0  # the change goes out now
    node.engine.poll_send(10.0, WALL)
    node.handle_timer(69.9)
    assert node.engine.status.state is NodeState.PAUSED
    node.handle_timer(70.0)
    assert node.engine.status.state is NodeState.ACTIVE
    assert node.pause_state is None


def test_pause_rejects_nonsense_durations() -> None:
    node = make_node(1)
    for seconds in (0.0, -5.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="positive number of seconds"):
            node.pause(seconds, "", uid=0, now=0.0, wall=WALL)


def test_leaving_offers_nothing() -> None:
    node = make_node(1)
    node.set_serving(True, 0.0)
    node.begin_leave(1.0)
    assert (node.engine.status.state, node.engine.status.slots) == (NodeState.LEAVING, 0)


def test_hosts_line_and_snapshot_include_a_matching_peer() -> None:
    alpha, beta = make_node(1), make_node(2)
    beta.set_serving(True, 0.0)
    datagram = beta.engine.poll_send(0.0, WALL)
    assert datagram is not None
    alpha.engine.receive(datagram.data, ("10.0.0.2", 3634), Transport.MULTICAST, 0.1)
    line = alpha.hosts_for(FP)
    assert line.hosts == "10.0.0.2:3632/4 localhost/2"
    assert line.jobs == 6
    snapshot = alpha.snapshot(now=0.2, wall=WALL)
    assert snapshot["schema"] == 1
    assert snapshot["node"]["compilers"][0]["names"] == ["gcc", "cc"]
    (peer,) = snapshot["peers"]
    assert (peer["name"], peer["ranks"], peer["liveness"]) == ("ws2", {FP: 1}, "alive")
    assert snapshot["hosts"] == {FP: {"hosts": "10.0.0.2:3632/4 localhost/2", "jobs": 6}}


def test_measurements_update_the_advertised_status() -> None:
    node = make_node(1)
    node.set_serving(True, 0.0)
    node.set_measurements(1.0, load=1.5, slots=2, jobs=1)
    assert replace(node.engine.status, compilers=()) == replace(
        status("ws1", "10.0.0.1"), load=1.5, slots=2, jobs=1, compilers=()
    )


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
    alpha, beta = make_node(1), make_node(2)
    beta.set_serving(True, 0.0)
    datagram = beta.engine.poll_send(0.0, WALL)
    assert datagram is not None
    alpha.engine.receive(datagram.data, ("10.0.0.2", 3634), Transport.MULTICAST, 0.1)
    snapshot = alpha.snapshot(now=0.2, wall=WALL)
    assert set(snapshot) == documented_fields("## Top level")
    assert set(snapshot["node"]) == documented_fields("## `node`")
    assert set(snapshot["node"]["compilers"][0]) == documented_fields("Each `compilers` entry:")
    assert set(snapshot["peers"][0]) == documented_fields("## `peers[]`")
    assert set(snapshot["counters"]) == documented_fields("## `counters`")
