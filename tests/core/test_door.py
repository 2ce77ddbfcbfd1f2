"""distccd's door as text: who is admitted, the table, the updates, the counter."""

from __future__ import annotations

import ipaddress
import json
from dataclasses import replace

import pytest

from p2pcc.core.door import (
    DoorPolicy,
    DoorReport,
    admitted,
    delete_script,
    failure_with_fix,
    open_networks,
    refused_count,
    resync_script,
    table_name,
    table_script,
    update_script,
)
from p2pcc.core.gossip_types import Transport
from p2pcc.core.node import LocalNode
from p2pcc.core.peers import Liveness, Peer
from tests.core.local_nodes import WALL, gossip, make_node, status
from tests.core.policies import default_timings

A, B, C = (ipaddress.ip_address(f"10.0.0.{i}") for i in (2, 3, 4))
V6 = ipaddress.ip_address("fd00::7")
NET = ipaddress.ip_network


def peer(address: str, *more: str, liveness: Liveness = Liveness.ALIVE) -> Peer:
    body = replace(status("p", address), addresses=(address, *more))
    return Peer(bytes(16), body, liveness, 0.0, 0.0, (1, 1))


def leave(sender: LocalNode, receiver: LocalNode, now: float) -> None:
    outgoing = sender.leave_datagram(now, WALL + now)
    receiver.receive(outgoing.data, (sender.status.addresses[0], 3634), Transport.MULTICAST, now)


def test_members_are_the_peers_not_dead_at_every_address_they_announce() -> None:
    peers = [
        peer("10.0.0.2", "fd00::7"),
        peer("10.0.0.3", liveness=Liveness.SUSPECT),
        peer("10.0.0.4", liveness=Liveness.DEAD),
        peer("not-an-address", "fe80::1%eth0"),
    ]
    assert admitted(peers) == {A, V6, B, ipaddress.ip_address("fe80::1")}


def test_a_member_counts_from_its_first_datagram_until_it_leaves() -> None:
    node, other = make_node(1), make_node(2)
    assert admitted(node.peers()) == frozenset()
    gossip(other, node, 0.0)
    assert admitted(node.peers()) == {ipaddress.ip_address("10.0.0.2")}
    leave(other, node, 1.0)
    assert admitted(node.peers()) == frozenset()


def test_a_member_stops_counting_when_it_is_declared_dead() -> None:
    node, other = make_node(1), make_node(2)
    gossip(other, node, 0.0)
    dead_at = node.peers()[0].last_heard + default_timings().dead_after
    node.handle_timer(dead_at - 0.001)
    assert admitted(node.peers()) == {ipaddress.ip_address("10.0.0.2")}  # suspect: still in
    node.handle_timer(dead_at)
    assert admitted(node.peers()) == frozenset()


def test_an_unkeyed_pool_opens_the_door_to_distccds_allow_networks() -> None:
    stock, allow = [NET("192.168.5.0/24")], [NET("10.0.0.0/24"), NET("fd00::/64")]
    assert open_networks(stock, allow, keyed=True) == (NET("192.168.5.0/24"),)
    assert open_networks(stock, allow, keyed=False) == (
        NET("10.0.0.0/24"),
        NET("192.168.5.0/24"),
        NET("fd00::/64"),
    )
    assert open_networks([NET("10.0.0.0/25")], [NET("10.0.0.0/24")], keyed=False) == (
        NET("10.0.0.0/24"),  # no overlapping intervals: nft refuses them
    )


def test_the_table_replaces_a_stale_one_and_rejects_strangers_with_a_counted_reset() -> None:
    policy = DoorPolicy(3632, (NET("192.168.5.0/24"), NET("fd00::/64")))
    script = table_script(policy, [B, A, V6])
    assert script.splitlines()[:3] == [
        "table inet p2pcc_door_3632",
        "delete table inet p2pcc_door_3632",
        "table inet p2pcc_door_3632 {",
    ]
    assert "\tset members_v4 { type ipv4_addr; elements = { 10.0.0.2, 10.0.0.3 }; }" in script
    assert "\tset members_v6 { type ipv6_addr; elements = { fd00::7 }; }" in script
    chain = script[script.index("chain door") :].splitlines()
    assert chain[1:] == [
        '\t\tiif "lo" accept',
        "\t\tip saddr @members_v4 accept",
        "\t\tip6 saddr @members_v6 accept",
        "\t\tip saddr { 192.168.5.0/24 } accept",
        "\t\tip6 saddr { fd00::/64 } accept",
        '\t\tcounter name "refused" reject with tcp reset',
        "\t}",
        "}",
    ]
    assert "\t\ttcp dport 3632 ct state new jump door" in script  # established: never checked


def test_an_empty_door_has_empty_sets_and_no_open_networks() -> None:
    script = table_script(DoorPolicy(4000), [])
    assert "\tset members_v4 { type ipv4_addr; }" in script
    assert "saddr {" not in script
    assert table_name(4000) == DoorPolicy(4000).table == "p2pcc_door_4000"


def test_an_update_deletes_the_gone_and_adds_the_new_in_one_transaction() -> None:
    assert update_script("t", [A, B, V6], [B, C]) == (
        "delete element inet t members_v4 { 10.0.0.2 }\n"
        "add element inet t members_v4 { 10.0.0.4 }\n"
        "delete element inet t members_v6 { fd00::7 }\n"
    )
    assert update_script("t", [A], [A]) == ""


def test_a_resync_empties_both_sets_then_fills_them() -> None:
    assert resync_script("t", [V6]) == (
        "flush set inet t members_v4\n"
        "flush set inet t members_v6\n"
        "add element inet t members_v6 { fd00::7 }\n"
    )
    assert delete_script("t") == "table inet t\ndelete table inet t\n"


def test_the_refusal_counter_is_read_from_nfts_json() -> None:
    listing = {
        "nftables": [
            {"metainfo": {"version": "1.0.6"}},
            {"counter": {"family": "inet", "name": "refused", "packets": 7, "bytes": 420}},
        ]
    }
    assert refused_count(json.dumps(listing)) == 7
    for bad in ("", "[]", '{"nftables": [{"counter": {"name": "refused", "packets": -1}}]}'):
        with pytest.raises(ValueError, match=r"nft JSON|no refused counter"):
            refused_count(bad)


@pytest.mark.parametrize(
    ("message", "fix"),
    [
        ("Error: Operation not permitted", "CAP_NET_ADMIN"),
        ("nft is not installed", "apt install nftables"),
        ("Error: Could not process rule: No such file or directory", "modprobe nf_tables"),
        ("something new", "docs/troubleshooting.md"),
    ],
)
def test_a_failure_to_set_up_names_the_fix(message: str, fix: str) -> None:
    assert fix in failure_with_fix(message)
    assert failure_with_fix(message).startswith(message)


def test_the_report_is_a_status_document() -> None:
    report = DoorReport("p2pcc_door_3632", 2, 5, ("192.168.5.0/24",), None)
    assert report.as_document() == {
        "table": "p2pcc_door_3632",
        "members": 2,
        "refused": 5,
        "open_networks": ["192.168.5.0/24"],
        "problem": None,
    }
