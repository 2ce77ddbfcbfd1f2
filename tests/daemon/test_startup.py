"""What start-up derives from the interface and the configuration: where peers may live."""

from __future__ import annotations

import ipaddress

from p2pcc.core.addresses import Refusal, check_address
from p2pcc.daemon.gossip import GossipEndpoint
from p2pcc.daemon.startup import Surroundings
from p2pcc.netinfo import InterfaceInfo

INTERFACE = InterfaceInfo(
    "eth0", 2, up=True, loopback=False, addresses=(ipaddress.ip_interface("10.1.0.9/24"),)
)
ENDPOINT = GossipEndpoint(ipaddress.IPv4Address("239.192.74.70"), 3634, 1, 2, "10.1.0.9")


def test_the_address_pool_is_the_interfaces_networks_and_gossip_networks() -> None:
    plain = Surroundings(INTERFACE, ENDPOINT, ("10.1.0.9",)).address_pool()
    assert check_address("10.2.0.5", plain) is Refusal.OUTSIDE
    wider = Surroundings(
        INTERFACE,
        ENDPOINT,
        ("10.1.0.9",),
        (ipaddress.ip_network("10.2.0.0/16"), ipaddress.ip_network("10.1.0.0/24")),
    ).address_pool()
    assert wider.networks == (
        ipaddress.ip_network("10.1.0.0/24"),
        ipaddress.ip_network("10.2.0.0/16"),
    )
    assert check_address("10.2.0.5", wider) == ipaddress.ip_address("10.2.0.5")
