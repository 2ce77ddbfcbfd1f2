"""`gossip.seeds`: where to reach the pool beyond multicast's link, and what became of
each seed's lookups.

A seed is written `host`, `host:port`, `[v6addr]:port` or a bare `v6addr`; the host is
an IP literal or a DNS name, and a missing port means `gossip.port`.  `parse_seed`
checks the spelling (the configuration reports its `SeedSpellingError`).

The daemon resolves each name now and then (`p2pcc.daemon.seeds`) and hands every
outcome to a `SeedBook`, which decides what the node may dial:

- a lookup that fails keeps the seed's last good endpoints (a DNS outage must not cut
  the pool in two) and is worth one warning per seed and reason, not one per lookup;
- each resolved address passes the same rule as a peer's announced address
  (`p2pcc.core.addresses`): one outside the accepted networks is not used, with one
  warning per seed and address that says what to set;
- our own addresses are dropped quietly (one seed list serves every machine);
- a seed whose endpoints change is worth an info line.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from typing import Any

from p2pcc.core import limits
from p2pcc.core.addresses import AddressPool, Refusal, check_address

Endpoint = tuple[str, int]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: RFC 1035: a DNS name is at most 253 characters as written, a label at most 63.
MAX_NAME = 253
_LABEL = re.compile(r"(?!-)[A-Za-z0-9_-]{1,63}(?<!-)")
_BRACKETED = re.compile(r"\[([^\]]*)\](?::(.*))?")

#: Seconds one lookup may take: glibc's resolver gives a server 5 s per try, and an
#: answer that has not come by then will not come this round.
LOOKUP_TIMEOUT = 5.0

#: The state of a seed before its first lookup has ended.
NOT_LOOKED_UP = "not looked up yet"


class SeedSpellingError(ValueError):
    """A seed is misspelt; the message completes "expected ..."."""


@dataclass(frozen=True, slots=True)
class Seed:
    """One `gossip.seeds` entry: an IP literal (canonical text) or a DNS name, and its
    port (None: `gossip.port`)."""

    host: str
    port: int | None = None

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host and self.port is not None else self.host
        return host if self.port is None else f"{host}:{self.port}"

    @property
    def literal(self) -> IPAddress | None:
        """The address, when the host is an IP literal that needs no lookup."""
        try:
            return ipaddress.ip_address(self.host)
        except ValueError:
            return None


def parse_seed(text: str) -> Seed:
    """The seed `text` spells; `SeedSpellingError` says what is wrong."""
    if not text:
        raise SeedSpellingError("a host name or address, not an empty string")
    bracketed = _BRACKETED.fullmatch(text)
    if bracketed:
        host, port = bracketed.group(1), bracketed.group(2)
        if ":" not in host:
            raise SeedSpellingError("an IPv6 address inside [ ]")
    elif text.count(":") >= 2:
        host, port = text, None  # a bare IPv6 address has no port
    elif ":" in text:
        host, _, port = text.partition(":")
    else:
        host, port = text, None
    return Seed(_parse_host(host, ipv6=":" in host), None if port is None else _parse_port(port))


def _parse_port(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= limits.MAX_PORT or text.startswith("0"):
        raise SeedSpellingError(f"a port from 1 to {limits.MAX_PORT} after the colon")
    return int(text)


def _parse_host(host: str, *, ipv6: bool) -> str:
    if "%" in host:
        raise SeedSpellingError("an address without a %scope (a seed is reached by routing)")
    if ipv6 or re.fullmatch(r"[0-9.]+", host):
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            kind = "IPv6" if ipv6 else "IPv4"
            raise SeedSpellingError(f"a valid {kind} address") from None
        _check_literal(address)
        return str(address)
    labels = host.removesuffix(".").split(".")
    if len(host) > MAX_NAME or not all(_LABEL.fullmatch(label) for label in labels):
        raise SeedSpellingError(
            "a DNS name of letters, digits, hyphens and dots (labels of 1 to 63 characters, "
            f"at most {MAX_NAME} in all) or an IP address"
        )
    return host


def _check_literal(address: IPAddress) -> None:
    """Refuse an address that can name no other machine.  Loopback is let through: a
    pool whose gossip interface is loopback (tests) reaches its seeds there."""
    if address.is_multicast or address.is_unspecified:
        raise SeedSpellingError("the unicast address of a machine")
    if address == ipaddress.IPv4Address("255.255.255.255"):
        raise SeedSpellingError("the unicast address of a machine")
    if address.is_link_local:
        raise SeedSpellingError("an address that routes (a link-local one never leaves its link)")


@dataclass(frozen=True, slots=True)
class SeedState:
    """What `status` shows of one seed: the endpoints in use, why the last lookup failed
    (None when it did not) and the addresses it resolved to that are not used."""

    seed: str
    endpoints: tuple[Endpoint, ...] = ()
    problem: str | None = NOT_LOOKED_UP
    unused: tuple[tuple[str, str], ...] = ()  # (address, refusal token)

    def as_document(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "endpoints": [[address, port] for address, port in self.endpoints],
            "problem": self.problem,
            "unused": [{"address": a, "reason": why} for a, why in self.unused],
        }


@dataclass(frozen=True, slots=True)
class Notice:
    """A line for the log: a warning, or (`warning` False) an info line."""

    warning: bool
    text: str


class SeedBook:
    """Each seed's last good endpoints; see the module docstring."""

    def __init__(
        self, seeds: Sequence[Seed], default_port: int, pool: AddressPool, own: Collection[str]
    ) -> None:
        self._ports = {str(seed): seed.port or default_port for seed in seeds}
        self._states = {name: SeedState(name) for name in self._ports}
        self._pool = pool
        self._own = frozenset(_canonical(text) for text in own)
        self._warned: set[tuple[str, str]] = set()
        self._capped = False

    @property
    def version(self) -> int:
        """The IP version whose addresses a lookup asks for: the gossip group's."""
        return self._pool.version

    def states(self) -> tuple[SeedState, ...]:
        return tuple(self._states.values())

    def endpoints(self) -> tuple[Endpoint, ...]:
        """Every seed's endpoints in seed order, each once, the first `limits.MAX_SEEDS`."""
        return self._all_endpoints()[: limits.MAX_SEEDS]

    def _all_endpoints(self) -> tuple[Endpoint, ...]:
        found = (e for state in self._states.values() for e in state.endpoints)
        return tuple(dict.fromkeys(found))

    def failed(self, seed: str, reason: str) -> list[Notice]:
        """The lookup of `seed` failed for `reason`; its last endpoints stay."""
        old = self._states[seed]
        self._states[seed] = replace(old, problem=reason)
        if reason == old.problem:
            return []
        kept = _endpoint_list(old.endpoints)
        still = f"keeping {kept}" if kept else "no address to reach it yet"
        return [Notice(True, f"seed {seed}: lookup failed ({reason}); {still}")]

    def resolved(self, seed: str, addresses: Sequence[str]) -> list[Notice]:
        """`seed` resolved to `addresses` (the gossip group's family asked for)."""
        if not addresses:
            return self.failed(seed, f"no IPv{self._pool.version} address")
        old, port = self._states[seed], self._ports[seed]
        accepted: list[Endpoint] = []
        unused: list[tuple[str, str]] = []
        notices: list[Notice] = []
        for text in addresses:
            verdict = check_address(text, self._pool)
            if isinstance(verdict, Refusal):
                unused.append((text, verdict.value))
                notices += self._refused(seed, text, verdict)
            elif str(verdict) not in self._own:
                accepted.append((str(verdict), port))
        endpoints = tuple(dict.fromkeys(accepted))
        self._states[seed] = SeedState(seed, endpoints, None, tuple(unused))
        if endpoints != old.endpoints or old.problem not in {None, NOT_LOOKED_UP}:
            shown = _endpoint_list(endpoints) or "no usable address"
            notices.append(Notice(False, f"seed {seed}: {shown}"))
        return notices + self._over_cap()

    def _over_cap(self) -> list[Notice]:
        """A warning, the first time the seeds resolve to more endpoints than are used."""
        count = len(self._all_endpoints())
        if count <= limits.MAX_SEEDS or self._capped:
            return []
        self._capped = True
        return [
            Notice(
                True,
                f"the seeds resolve to {count} endpoints; only the first {limits.MAX_SEEDS} "
                "get our state (limits.MAX_SEEDS): list fewer seeds, or names with fewer "
                "addresses",
            )
        ]

    def _refused(self, seed: str, address: str, why: Refusal) -> list[Notice]:
        if (seed, address) in self._warned:
            return []
        self._warned.add((seed, address))
        return [
            Notice(True, f"seed {seed}: address {address} is not used ({why.value}); {_fix(why)}")
        ]


def _fix(why: Refusal) -> str:
    if why is Refusal.OUTSIDE:
        return "it lies outside the gossip interface's networks: add its network to gossip.networks"
    if why is Refusal.FAMILY:
        return "it is not of the gossip group's family: name the seed by an address of that family"
    return "no pool member can be reached there: correct the seed or its DNS record"


def _canonical(text: str) -> str:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return text


def _endpoint_list(endpoints: Sequence[Endpoint]) -> str:
    return ", ".join(f"[{a}]:{p}" if ":" in a else f"{a}:{p}" for a, p in endpoints)
