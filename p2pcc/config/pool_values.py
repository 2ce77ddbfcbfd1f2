"""Parsers for the keys that let a pool span routed networks: `gossip.seeds` and
`gossip.networks`.

Both widen whom this node trusts as a pool member, so both are bounded here: a seed
must be spelt as an address or DNS name that can name another machine, and a network
must be narrow enough that it cannot mean "anyone" (`MIN_PREFIX`) and hold unicast
hosts (`RESERVED`).  Their agreement with `gossip.group`'s family is a check across
keys (`p2pcc.config.schema.check_relations`).
"""

from __future__ import annotations

import ipaddress

from p2pcc.config.values import BadValueError, IPAddress, IPNetwork, network_item, toml_string
from p2pcc.core import limits
from p2pcc.core.seeds import Seed, SeedSpellingError, parse_seed

#: The widest network `gossip.networks` takes, per IP version: a /8 holds a whole
#: private range such as 10.0.0.0/8, and anything wider is no office; IPv6 sites get a
#: /48, so a /16 is already far more than one.
MIN_PREFIX = {4: 8, 6: 16}

#: Networks in `gossip.networks` (each is checked against every peer address).
MAX_NETWORKS = 32

#: Where no pool member lives: multicast, loopback, link-local (never routed, so never
#: "beyond the gossip interface") and "this network".
RESERVED = tuple(
    ipaddress.ip_network(text)
    for text in (
        "0.0.0.0/8",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "224.0.0.0/4",
        "240.0.0.0/4",
        "::/128",
        "::1/128",
        "::ffff:0:0/96",
        "fe80::/10",
        "ff00::/8",
    )
)


def family_mismatches(
    group: IPAddress, seeds: tuple[Seed, ...], networks: tuple[IPNetwork, ...]
) -> list[tuple[str, str]]:
    """(key, "expected ..." reason) for each seed literal and network not of `group`'s
    IP version: the daemon gossips in the group's family alone."""
    family = f"IPv{group.version}"
    found = [
        (f"gossip.seeds[{index}]", f"an {family} address or a DNS name", str(seed))
        for index, seed in enumerate(seeds)
        if (address := seed.literal) is not None and address.version != group.version
    ]
    found += [
        (f"gossip.networks[{index}]", f"an {family} network", str(network))
        for index, network in enumerate(networks)
        if network.version != group.version
    ]
    return [
        (key, f"{what}, as gossip.group is {family} ({group}), got {toml_string(text)}")
        for key, what, text in found
    ]


SEED_EXAMPLE = '"build1.example.org", "10.2.0.5:3634" or "[fd00::5]:3634"'


def seed_list(value: object) -> tuple[Seed, ...]:
    """At most `limits.MAX_SEEDS` distinct seeds."""
    if not isinstance(value, list) or len(value) > limits.MAX_SEEDS:
        raise BadValueError(
            f"a list of at most {limits.MAX_SEEDS} seeds such as [{SEED_EXAMPLE}]", value
        )
    seeds: list[Seed] = []
    for index, item in enumerate(value):
        if not isinstance(item, str):
            raise BadValueError(f"a seed such as {SEED_EXAMPLE}", item, index)
        try:
            seed = parse_seed(item)
        except SeedSpellingError as error:
            raise BadValueError(str(error), item, index) from None
        if seed in seeds:
            raise BadValueError("each seed listed once", item, index)
        seeds.append(seed)
    return tuple(seeds)


def pool_networks(value: object) -> tuple[IPNetwork, ...]:
    """At most `MAX_NETWORKS` distinct networks where pool members may live."""
    expected = 'a list of networks such as ["10.2.0.0/16"]'
    if not isinstance(value, list) or len(value) > MAX_NETWORKS:
        raise BadValueError(f"{expected}, at most {MAX_NETWORKS}", value)
    networks: list[IPNetwork] = []
    for index, item in enumerate(value):
        network = _pool_network(item, index)
        if network in networks:
            raise BadValueError("each network listed once", item, index)
        networks.append(network)
    return tuple(networks)


def _pool_network(item: object, index: int) -> IPNetwork:
    network = network_item(item, index, "10.2.0.0/16")
    widest = MIN_PREFIX[network.version]
    if network.prefixlen < widest:
        raise BadValueError(
            f"a network no wider than /{widest} (a pool member is anyone who can announce "
            "an address there)",
            item,
            index,
        )
    if any(r.version == network.version and network.overlaps(r) for r in RESERVED):
        raise BadValueError(
            "a network of unicast hosts (not multicast, loopback, link-local or reserved)",
            item,
            index,
        )
    return network
