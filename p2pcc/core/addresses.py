"""Which addresses a peer may be dialled at: one rule for mDNS records and gossip.

Anyone on the link can announce an address, in an mDNS record or (without a key) in a
gossip datagram, and the daemon sends its unicast fallback there and puts it in distcc
hosts lines.  An address that is no host of the gossip link makes the kernel refuse the
send (a broadcast address gives EACCES, one of the other family a resolver error) or
sends our gossip somewhere it does not belong, so each address is checked here before
any use, and only those that pass are kept.

An address is refused for the first of these that holds (the reason is the token
`status --json` counts it under):

- `address-malformed`: not an IP address (a scope on an IPv4 address included);
- `address-broadcast`: 255.255.255.255, or the broadcast or network address of an IPv4
  network of the gossip interface (prefixes up to /30; /31 and /32 have neither);
- `address-multicast`, `address-unspecified` (0.0.0.0, ::);
- `address-loopback`: unless the gossip interface is loopback itself (its networks hold
  the address), a loopback address names the machine that reads it, never the sender;
- `address-link-local`: an IPv6 link-local address without a scope names no link (only
  without a known link: see below);
- `address-family`: not the gossip group's family (an IPv4-mapped IPv6 address is IPv4);
- `address-outside`: in none of the gossip interface's networks, nor of those
  `gossip.networks` adds (pool members on other subnets, reached through seeds).

Without known networks (`pool` None: tests that build a bare engine) the last two rules
and the subnet broadcast are skipped.

An IPv6 link-local address (`fe80::/10`) names a host only together with a link.  When
the pool knows its link (`AddressPool.link`, the gossip interface), a peer's link-local
address is taken as on that link: its scope becomes the link, whatever scope the peer
wrote (one names the peer's own interface, meaningless here).  Gossip reaches no further
than its link (hop limit 1), and mDNS neither, so that is where such a peer is.
"""

from __future__ import annotations

import enum
import functools
import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

LIMITED_BROADCAST = ipaddress.IPv4Address("255.255.255.255")

#: IPv4 prefixes longer than this have no broadcast or network address (RFC 3021).
MAX_BROADCAST_PREFIX = 30

#: A scope id as the wire format and the state file accept it (an interface's name or index).
SCOPE_ID = re.compile(r"[A-Za-z0-9_.-]+")


class Refusal(enum.Enum):
    """Why an address is refused; the value is the token counted in `status --json`."""

    MALFORMED = "address-malformed"
    BROADCAST = "address-broadcast"
    MULTICAST = "address-multicast"
    UNSPECIFIED = "address-unspecified"
    LOOPBACK = "address-loopback"
    LINK_LOCAL = "address-link-local"
    FAMILY = "address-family"
    OUTSIDE = "address-outside"


@dataclass(frozen=True, slots=True)
class AddressPool:
    """Where pool members live: the gossip group's IP version, the networks of the gossip
    interface with `gossip.networks`, and that interface as the scope of link-local
    addresses ("": none known)."""

    version: int
    networks: tuple[IPNetwork, ...]
    link: str = ""

    def __post_init__(self) -> None:
        if self.version not in {4, 6}:
            raise ValueError(f"IP version must be 4 or 6, got {self.version}")
        if self.link and not SCOPE_ID.fullmatch(self.link):
            raise ValueError(f"{self.link!r} is no scope id: use the interface's index")

    def holds(self, address: IPAddress) -> bool:
        """Whether one of the networks holds `address` (its scope aside)."""
        return any(address in network for network in self.networks)

    def subnet_broadcast(self, address: IPAddress) -> bool:
        """Whether `address` is the broadcast or network address of one of the networks."""
        return any(
            isinstance(network, ipaddress.IPv4Network)
            and network.prefixlen <= MAX_BROADCAST_PREFIX
            and address in (network.broadcast_address, network.network_address)
            for network in self.networks
        )


#: Distinct address texts the caches keep: a full table's members (`limits.MAX_PEERS`),
#: most with an address of each family.
_CACHED_TEXTS = 8192


@functools.lru_cache(maxsize=_CACHED_TEXTS)
def check_address(text: str, pool: AddressPool | None) -> IPAddress | Refusal:
    """The address `text` names, or why a pool member cannot be dialled there.  Cached:
    every member's addresses come round in every datagram it sends."""
    try:
        address = ipaddress.ip_address(text)  # an IPv6 scope is parsed, an IPv4 one refused
    except ValueError:
        return Refusal.MALFORMED
    if pool is not None and pool.link:
        address = on_link(address, pool.link)
    refusal = _intrinsic_refusal(address, pool)
    if refusal is None and pool is not None:
        refusal = _pool_refusal(address, pool)
    return address if refusal is None else refusal


@functools.lru_cache(maxsize=_CACHED_TEXTS)
def unscoped_addresses(texts: tuple[str, ...]) -> tuple[IPAddress, ...]:
    """The addresses a peer announces as the kernel shows its connections (no IPv6
    scope; an IPv4-mapped address as IPv4), malformed ones left out.  Cached: the door
    and the turnaround watch read every member's addresses on each change of any, so
    in a pool of a thousand they would otherwise parse thousands a second."""
    found = []
    for text in texts:
        try:
            address = ipaddress.ip_address(text.partition("%")[0])
        except ValueError:
            continue
        found.append(unmapped(address))
    return tuple(found)


def unmapped(address: IPAddress) -> IPAddress:
    """An IPv4 address seen through a dual-stack socket (`::ffff:a.b.c.d`) as itself."""
    mapped = getattr(address, "ipv4_mapped", None)
    return mapped if mapped is not None else address


def on_link(address: IPAddress, link: str) -> IPAddress:
    """`address` with scope `link` if it is IPv6 link-local, else `address` unchanged."""
    if not (isinstance(address, ipaddress.IPv6Address) and address.is_link_local):
        return address
    return ipaddress.IPv6Address(f"{str(address).partition('%')[0]}%{link}")


def _intrinsic_refusal(address: IPAddress, pool: AddressPool | None) -> Refusal | None:
    """What is wrong with `address` wherever the pool is."""
    if address == LIMITED_BROADCAST:
        return Refusal.BROADCAST
    if address.is_multicast:
        return Refusal.MULTICAST
    if address.is_unspecified:
        return Refusal.UNSPECIFIED
    if address.is_loopback and (pool is None or not pool.holds(address)):
        return Refusal.LOOPBACK
    unscoped = isinstance(address, ipaddress.IPv6Address) and not address.scope_id
    if unscoped and address.is_link_local:
        return Refusal.LINK_LOCAL
    return None


def _pool_refusal(address: IPAddress, pool: AddressPool) -> Refusal | None:
    """What is wrong with `address` for this pool."""
    mapped = isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None
    if address.version != pool.version or mapped:
        return Refusal.FAMILY
    if pool.subnet_broadcast(address):
        return Refusal.BROADCAST
    if not pool.holds(address):
        return Refusal.OUTSIDE
    return None


@dataclass(frozen=True, slots=True)
class Screened:
    """A node's announced addresses, checked: those to use and those refused."""

    accepted: tuple[str, ...]  # canonical text, in the order announced
    refused: tuple[tuple[str, Refusal], ...]  # (address as announced, why)


def screen_addresses(texts: Iterable[str], pool: AddressPool | None) -> Screened:
    """Check each address of one node.  A refusal for the family alone is left out when
    another address passed: a dual-stack peer's other family is no fault of its own."""
    accepted: list[str] = []
    refused: list[tuple[str, Refusal]] = []
    for text in texts:
        verdict = check_address(text, pool)
        if isinstance(verdict, Refusal):
            refused.append((text, verdict))
        elif (canonical := str(verdict)) not in accepted:
            accepted.append(canonical)
    if accepted:
        refused = [(text, why) for text, why in refused if why is not Refusal.FAMILY]
    return Screened(tuple(accepted), tuple(refused))
