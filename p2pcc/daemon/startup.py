"""Start-up facts the daemon needs before it announces anything.

Each function does one fallible look-up (the gossip interface, the cluster key, the
compilers) and fails with a message that says what to fix, so a bad setup stops the
daemon before it has told peers anything.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from p2pcc.config import Config
from p2pcc.core.errors import P2pccError
from p2pcc.daemon.gossip import GossipEndpoint
from p2pcc.netinfo import InterfaceInfo, IPInterface, gossip_interface

log = logging.getLogger("p2pcc.daemon")


@dataclass(frozen=True, slots=True)
class Surroundings:
    """What start-up learned about this machine, kept for status and reload."""

    interface: InterfaceInfo
    endpoint: GossipEndpoint
    addresses: tuple[str, ...]


def discover_surroundings(config: Config) -> Surroundings:
    """The gossip interface, the address peers reach us at, and the gossip endpoint."""
    interface = gossip_interface(config.gossip.interface)
    group = config.gossip.group
    candidates: list[IPInterface]
    if group.version == 6:
        candidates = sorted(interface.ipv6(), key=lambda a: a.ip.is_link_local)
    else:
        candidates = list(interface.ipv4())
    if not candidates:
        raise P2pccError(
            f"interface {interface.name} has no IPv{group.version} address for gossip group {group}"
        )
    own = str(candidates[0].ip)
    endpoint = GossipEndpoint(group, config.gossip.port, config.gossip.ttl, interface.index, own)
    addresses = tuple(str(a.ip) for a in interface.addresses if not a.ip.is_link_local)
    return Surroundings(interface, endpoint, addresses or (own,))
