"""The address rule: every refusal kind, IPv4 and IPv6, at the boundaries of a network;
and a node never dialling a peer whose every address is refused."""

from __future__ import annotations

import ipaddress

import pytest

from p2pcc.core.addresses import AddressPool, Refusal, check_address, screen_addresses
from p2pcc.core.auth import Keyring
from p2pcc.core.gossip import GossipEngine
from p2pcc.core.gossip_types import Transport
from p2pcc.core.local_compilers import LocalCompiler
from p2pcc.core.node import LocalNode
from tests.core.local_nodes import FP, WALL, fingerprint, status
from tests.core.policies import default_policy, default_timings

#: An IPv4 pool on 10.213.7.0/24 whose interface also has its IPv6 link-local address.
POOL4 = AddressPool(4, (ipaddress.ip_network("10.213.7.0/24"), ipaddress.ip_network("fe80::/64")))
#: An IPv6 pool on 2001:db8:7::/64 and the link-local network.
POOL6 = AddressPool(6, (ipaddress.ip_network("2001:db8:7::/64"), ipaddress.ip_network("fe80::/64")))
#: A pool whose gossip interface is loopback (the daemon's own tests run so).
LOOPBACK = AddressPool(4, (ipaddress.ip_network("127.0.0.0/8"),))


@pytest.mark.parametrize(
    ("text", "pool", "refusal"),
    [
        ("255.255.255.255", POOL4, Refusal.BROADCAST),
        ("10.213.7.255", POOL4, Refusal.BROADCAST),  # the subnet's broadcast address
        ("10.213.7.0", POOL4, Refusal.BROADCAST),  # its network address
        ("127.255.255.255", LOOPBACK, Refusal.BROADCAST),
        ("224.0.0.251", POOL4, Refusal.MULTICAST),
        ("239.192.74.70", POOL4, Refusal.MULTICAST),
        ("ff02::1", POOL6, Refusal.MULTICAST),
        ("ff02::1%eth0", POOL6, Refusal.MULTICAST),
        ("0.0.0.0", POOL4, Refusal.UNSPECIFIED),  # noqa: S104 - an address, not a bind
        ("::", POOL6, Refusal.UNSPECIFIED),
        ("127.0.0.1", POOL4, Refusal.LOOPBACK),
        ("127.1.2.3", POOL4, Refusal.LOOPBACK),
        ("::1", POOL6, Refusal.LOOPBACK),
        ("::1", LOOPBACK, Refusal.LOOPBACK),  # an IPv4 loopback pool holds only 127/8
        ("fe80::1", POOL6, Refusal.LINK_LOCAL),
        ("fe80::1", POOL4, Refusal.LINK_LOCAL),
        ("2001:db8:7::5", POOL4, Refusal.FAMILY),
        ("fe80::1%eth0", POOL4, Refusal.FAMILY),
        ("10.213.7.5", POOL6, Refusal.FAMILY),
        ("::ffff:10.213.7.5", POOL6, Refusal.FAMILY),  # IPv4-mapped: IPv4 in disguise
        ("::ffff:10.213.7.5", POOL4, Refusal.FAMILY),
        ("10.213.8.1", POOL4, Refusal.OUTSIDE),
        ("10.213.6.255", POOL4, Refusal.OUTSIDE),
        ("192.0.2.1", POOL4, Refusal.OUTSIDE),
        ("2001:db8:8::1", POOL6, Refusal.OUTSIDE),
        ("fe80::1%eth0", AddressPool(6, POOL6.networks[:1]), Refusal.OUTSIDE),
        ("10.213.7.1%eth0", POOL4, Refusal.MALFORMED),  # IPv4 has no scopes
        ("ws1.local", POOL4, Refusal.MALFORMED),
        ("", POOL4, Refusal.MALFORMED),
        ("10.213.7.256", POOL4, Refusal.MALFORMED),
    ],
)
def test_each_kind_of_bad_address_is_refused(
    text: str, pool: AddressPool, refusal: Refusal
) -> None:
    assert check_address(text, pool) is refusal


@pytest.mark.parametrize(
    ("text", "pool"),
    [
        ("10.213.7.1", POOL4),  # the first host after the network address
        ("10.213.7.254", POOL4),  # the last host before the broadcast address
        ("2001:db8:7::", POOL6),  # IPv6 has no broadcast: its network address is a host
        ("2001:db8:7::1", POOL6),
        ("2001:db8:7:0:ffff:ffff:ffff:ffff", POOL6),
        ("fe80::1%eth0", POOL6),  # a scope names the link
        ("fe80::1%2", POOL6),
        ("127.0.0.1", LOOPBACK),  # a loopback pool's members are loopback
    ],
)
def test_pool_members_are_accepted(text: str, pool: AddressPool) -> None:
    assert check_address(text, pool) == ipaddress.ip_address(text)


@pytest.mark.parametrize(
    ("network", "refused", "accepted"),
    [
        ("10.9.9.0/30", ["10.9.9.0", "10.9.9.3"], ["10.9.9.1", "10.9.9.2"]),
        ("10.9.9.0/31", [], ["10.9.9.0", "10.9.9.1"]),  # point-to-point: no broadcast
        ("10.9.9.7/32", [], ["10.9.9.7"]),
    ],
)
def test_small_networks_have_a_broadcast_address_only_up_to_a_30(
    network: str, refused: list[str], accepted: list[str]
) -> None:
    pool = AddressPool(4, (ipaddress.ip_network(network),))
    assert [check_address(text, pool) for text in refused] == [Refusal.BROADCAST] * len(refused)
    assert [str(check_address(text, pool)) for text in accepted] == accepted


def test_without_known_networks_only_the_intrinsic_rules_apply() -> None:
    assert check_address("192.0.2.1", None) == ipaddress.ip_address("192.0.2.1")
    assert check_address("2001:db8::1", None) == ipaddress.ip_address("2001:db8::1")
    assert check_address("10.0.0.255", None) == ipaddress.ip_address("10.0.0.255")
    assert check_address("255.255.255.255", None) is Refusal.BROADCAST
    assert check_address("127.0.0.1", None) is Refusal.LOOPBACK
    assert check_address("fe80::1", None) is Refusal.LINK_LOCAL


#: POOL6 on a known link: the gossip interface eth0.
ON_ETH0 = AddressPool(6, POOL6.networks, "eth0")


@pytest.mark.parametrize(
    ("text", "seen_as"),
    [
        ("fe80::1", "fe80::1%eth0"),  # unscoped: on the gossip link
        ("fe80::1%enp3s0", "fe80::1%eth0"),  # the sender's own interface means nothing here
        ("fe80::1%2", "fe80::1%eth0"),  # as python-zeroconf scopes an mDNS address
        ("2001:db8:7::1", "2001:db8:7::1"),  # global addresses have no scope
    ],
)
def test_on_a_known_link_a_link_local_address_is_scoped_to_it(text: str, seen_as: str) -> None:
    assert str(check_address(text, ON_ETH0)) == seen_as
    assert screen_addresses([text], ON_ETH0).accepted == (seen_as,)


def test_a_link_local_address_outside_the_links_networks_is_still_refused() -> None:
    no_link_local = AddressPool(6, POOL6.networks[:1], "eth0")
    assert check_address("fe80::1", no_link_local) is Refusal.OUTSIDE
    assert check_address("fe80::1", AddressPool(4, POOL4.networks, "eth0")) is Refusal.FAMILY


def test_a_link_is_a_scope_id() -> None:
    assert AddressPool(6, (), "3").link == "3"
    with pytest.raises(ValueError, match="no scope id"):
        AddressPool(6, (), "eth 0")


def test_a_pool_is_of_ip_version_4_or_6() -> None:
    with pytest.raises(ValueError, match="IP version must be 4 or 6"):
        AddressPool(5, ())


def test_screening_keeps_usable_addresses_in_order_and_canonical() -> None:
    screened = screen_addresses(
        ["10.213.7.9", "255.255.255.255", "10.213.7.8", "10.213.7.9"], POOL4
    )
    assert screened.accepted == ("10.213.7.9", "10.213.7.8")
    assert screened.refused == (("255.255.255.255", Refusal.BROADCAST),)
    upper = screen_addresses(["2001:DB8:7:0::0001"], POOL6)
    assert upper.accepted == ("2001:db8:7::1",)


def test_the_other_family_of_a_dual_stack_node_is_no_refusal_unless_nothing_else_passes() -> None:
    dual = screen_addresses(["2001:db8:7::9", "10.213.7.9"], POOL4)
    assert dual == screen_addresses(["10.213.7.9"], POOL4)
    only_v6 = screen_addresses(["2001:db8:7::9"], POOL4)
    assert only_v6.accepted == ()
    assert only_v6.refused == (("2001:db8:7::9", Refusal.FAMILY),)
    other_faults = screen_addresses(["2001:db8:7::9", "127.0.0.1", "10.213.7.9"], POOL4)
    assert other_faults.refused == (("127.0.0.1", Refusal.LOOPBACK),)


def test_a_peer_whose_every_address_is_refused_is_in_no_hosts_line() -> None:
    pool = AddressPool(4, (ipaddress.ip_network("10.0.0.0/24"),))
    node = LocalNode(
        engine=engine(1, "10.0.0.1", pool),
        compilers=[LocalCompiler(fingerprint(), ("gcc",))],
        policy=default_policy(),
        now=0.0,
    )
    for peer in (engine(2, "10.0.0.2", None), engine(3, "10.0.0.255", None)):
        outgoing = peer.poll_send(0.0, WALL)
        assert outgoing is not None
        node.receive(outgoing.data, (peer.status.addresses[0], 3634), Transport.MULTICAST, 0.0)
    assert len(node.peers()) == 2  # the forged one stays in the table ...
    assert node.hosts(0.0)[FP].hosts == "10.0.0.2:3632/4 localhost/4"  # ... and never dialled
    assert node.statistics(0.0).refused_addresses == {"address-broadcast": 1}


def test_a_link_local_peer_is_dialled_on_the_gossip_link() -> None:
    pool = AddressPool(6, (ipaddress.ip_network("fe80::/64"),), "eth0")
    node = LocalNode(
        engine=engine(1, "fe80::1%eth0", pool),
        compilers=[LocalCompiler(fingerprint(), ("gcc",))],
        policy=default_policy(),
        now=0.0,
    )
    peer = engine(2, "fe80::2%enp3s0", None)  # its own interface's name: no use here
    outgoing = peer.poll_send(0.0, WALL)
    assert outgoing is not None
    node.receive(outgoing.data, ("fe80::2%eth0", 3634), Transport.MULTICAST, 0.0)
    assert node.hosts(0.0)[FP].hosts == "[fe80::2%eth0]:3632/4 localhost/4"
    assert node.statistics(0.0).refused_addresses == {}


def engine(index: int, address: str, pool: AddressPool | None) -> GossipEngine:
    return GossipEngine(
        node_id=bytes([index]) * 16,
        incarnation=1,
        keyring=Keyring(),
        status=status(f"ws{index}", address),
        interval=2.0,
        timings=default_timings(),
        now=0.0,
        pool=pool,
    )
