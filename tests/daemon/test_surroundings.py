"""Where the daemon says it is: its address on the gossip interface, link-local included."""

from __future__ import annotations

import ipaddress

import pytest

from p2pcc.config import parse_config
from p2pcc.core.errors import P2pccError
from p2pcc.daemon.startup import link_scope, surroundings_on
from p2pcc.netinfo import InterfaceInfo

IPV6_GOSSIP = parse_config('[gossip]\ngroup = "ff12::7063"\n', "test").gossip
IPV4_GOSSIP = parse_config("", "test").gossip


def interface(*addresses: str, name: str = "eth0") -> InterfaceInfo:
    parsed = tuple(ipaddress.ip_interface(a) for a in addresses)
    return InterfaceInfo(name, 3, up=True, loopback=False, addresses=parsed)


def test_a_global_address_is_preferred_and_announced_alone() -> None:
    found = surroundings_on(interface("fe80::7/64", "fd13:7:7::11/64"), IPV6_GOSSIP)
    assert found.endpoint.interface_address == "fd13:7:7::11"
    assert found.addresses == ("fd13:7:7::11",)


def test_a_link_local_address_alone_carries_the_interface_as_its_scope() -> None:
    found = surroundings_on(interface("fe80::7/64"), IPV6_GOSSIP)
    assert found.endpoint.interface_address == "fe80::7%eth0"
    assert found.addresses == ("fe80::7%eth0",)
    assert found.address_pool().link == "eth0"


def test_an_interface_name_that_is_no_scope_id_gives_its_index() -> None:
    odd = interface("fe80::7/64", name="wlan@home")
    assert link_scope(odd) == "3"
    assert surroundings_on(odd, IPV6_GOSSIP).addresses == ("fe80::7%3",)


def test_an_interface_without_an_address_of_the_groups_family_is_refused() -> None:
    with pytest.raises(P2pccError, match="no IPv6 address for gossip group ff12::7063"):
        surroundings_on(interface("10.0.0.7/24"), IPV6_GOSSIP)
    assert surroundings_on(interface("10.0.0.7/24"), IPV4_GOSSIP).addresses == ("10.0.0.7",)
