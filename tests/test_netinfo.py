"""Choosing the gossip interface from what `ip -json addr` and the routing table say."""

from __future__ import annotations

import ipaddress
import json

import pytest

from p2pcc.netinfo import (
    InterfaceError,
    InterfaceInfo,
    choose_interface,
    parse_default_route,
    parse_ip_json,
    read_interfaces,
)

IP_JSON = json.dumps(
    [
        {
            "ifindex": 1,
            "ifname": "lo",
            "flags": ["LOOPBACK", "UP", "LOWER_UP"],
            "addr_info": [
                {"family": "inet", "local": "127.0.0.1", "prefixlen": 8},
                {"family": "inet6", "local": "::1", "prefixlen": 128},
            ],
        },
        {
            "ifindex": 2,
            "ifname": "eth0",
            "flags": ["BROADCAST", "MULTICAST", "UP", "LOWER_UP"],
            "addr_info": [
                {"family": "inet", "local": "192.168.10.5", "prefixlen": 24},
                {"family": "inet6", "local": "fe80::1", "prefixlen": 64},
            ],
        },
        {"ifindex": 3, "ifname": "wlan0", "flags": ["BROADCAST", "MULTICAST"], "addr_info": []},
    ]
)

ROUTE = (
    "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
    "eth0\t000AA8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n"
    "eth0\t00000000\t010AA8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"
)


def test_parse_ip_json() -> None:
    lo, eth0, wlan0 = parse_ip_json(IP_JSON)
    assert (lo.name, lo.index, lo.up, lo.loopback) == ("lo", 1, True, True)
    assert eth0.ipv4() == (ipaddress.IPv4Interface("192.168.10.5/24"),)
    assert eth0.ipv6() == (ipaddress.IPv6Interface("fe80::1/64"),)
    assert (wlan0.up, wlan0.addresses) == (False, ())


def test_default_route_interface() -> None:
    assert parse_default_route(ROUTE) == "eth0"
    assert parse_default_route(ROUTE.splitlines()[0] + "\n") is None


def test_choice_prefers_configured_then_default_route_then_the_only_one() -> None:
    interfaces = parse_ip_json(IP_JSON)
    assert choose_interface(interfaces, "lo", "eth0").name == "lo"
    assert choose_interface(interfaces, "", "eth0").name == "eth0"
    assert choose_interface(interfaces, "", None).name == "eth0"


def test_choice_errors_name_the_remedy() -> None:
    interfaces = parse_ip_json(IP_JSON)
    with pytest.raises(
        InterfaceError, match=r"'eth9' does not exist here \(have: eth0, lo, wlan0\)"
    ):
        choose_interface(interfaces, "eth9", None)
    with pytest.raises(InterfaceError, match="wlan0 is down or has no address"):
        choose_interface(interfaces, "wlan0", None)
    two = [*interfaces, InterfaceInfo("eth1", 4, True, False, interfaces[1].addresses)]
    with pytest.raises(InterfaceError, match=r"2 usable interfaces \(eth0, eth1\): set gossip"):
        choose_interface(two, "", None)


def test_reads_this_machine() -> None:
    names = {interface.name for interface in read_interfaces()}
    assert "lo" in names
