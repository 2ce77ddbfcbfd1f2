"""`gossip.seeds` and `gossip.networks`: every spelling a seed takes, every refusal with
the entry it names, and the check of both against the gossip group's family."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from p2pcc.config import HostDefaults, parse_config
from p2pcc.config.pool_values import MAX_NETWORKS
from p2pcc.core import limits
from p2pcc.core.errors import ConfigError
from p2pcc.core.seeds import Seed

PATH = "/etc/p2pcc/p2pcc.toml"
HOST = HostDefaults(
    hostname="ws1",
    home=Path("/root"),
    distccd_found=True,
    runtime_dir=Path("/run/p2pcc"),
    runtime_dir_override=None,
    state_dir=Path("/var/lib/p2pcc"),
    config_dir=Path("/etc/p2pcc"),
)


def gossip(text: str, group: str = "239.192.74.70") -> str:
    return f'[gossip]\ngroup = "{group}"\n{text}'


def error_for(text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, PATH, host=HOST)
    return str(caught.value).removeprefix(f"{PATH}: ")


def seeds_of(text: str, group: str = "239.192.74.70") -> tuple[Seed, ...]:
    return parse_config(gossip(f"seeds = [{text}]", group), PATH, host=HOST).gossip.seeds


def test_seeds_default_to_none_and_networks_to_none() -> None:
    config = parse_config("", PATH, host=HOST)
    assert (config.gossip.seeds, config.gossip.networks) == ((), ())


@pytest.mark.parametrize(
    ("written", "seed", "shown"),
    [
        ('"build1.example.org"', Seed("build1.example.org"), "build1.example.org"),
        ('"build1.example.org."', Seed("build1.example.org."), "build1.example.org."),
        ('"build1:3700"', Seed("build1", 3700), "build1:3700"),
        ('"10.2.0.5"', Seed("10.2.0.5"), "10.2.0.5"),
        ('"10.2.0.5:65535"', Seed("10.2.0.5", 65535), "10.2.0.5:65535"),
        ('"127.0.0.1:3700"', Seed("127.0.0.1", 3700), "127.0.0.1:3700"),
        ('"my_host-2"', Seed("my_host-2"), "my_host-2"),
    ],
)
def test_ipv4_pool_seeds_parse_and_print_back(written: str, seed: Seed, shown: str) -> None:
    assert seeds_of(written) == (seed,)
    assert str(seed) == shown


@pytest.mark.parametrize(
    ("written", "seed", "shown"),
    [
        ('"[fd00::5]:3634"', Seed("fd00::5", 3634), "[fd00::5]:3634"),
        ('"FD00:0::5"', Seed("fd00::5"), "fd00::5"),
        ('"[fd00::5]"', Seed("fd00::5"), "fd00::5"),
        ('"build1.example.org:1"', Seed("build1.example.org", 1), "build1.example.org:1"),
    ],
)
def test_ipv6_pool_seeds_parse_and_print_back(written: str, seed: Seed, shown: str) -> None:
    assert seeds_of(written, "ff02::7063") == (seed,)
    assert str(seed) == shown


NAME = "a DNS name of letters, digits, hyphens and dots"


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ('""', "a host name or address, not an empty string"),
        ('"build1:0"', "a port from 1 to 65535 after the colon"),
        ('"build1:65536"', "a port from 1 to 65535 after the colon"),
        ('"build1:"', "a port from 1 to 65535 after the colon"),
        ('"build1:+5"', "a port from 1 to 65535 after the colon"),
        ('"build1:080"', "a port from 1 to 65535 after the colon"),
        ('"build 1"', NAME),
        ('"build1/24"', NAME),
        ('"-build1"', NAME),
        ('"build1-.example"', NAME),
        ('"a..example"', NAME),
        ('"' + "a" * 64 + '.example"', NAME),
        ('"' + "a." * 127 + 'ab"', NAME),  # 256 characters
        ('"10.0.0.256"', "a valid IPv4 address"),
        ('"[fd00::5]:x"', "a port from 1 to 65535 after the colon"),
        ('"[build1]:5"', "an IPv6 address inside [ ]"),
        ('"fd00::5::6"', "a valid IPv6 address"),
        ('"fe80::1%eth0"', "an address without a %scope"),
        ('"224.0.0.1"', "the unicast address of a machine"),
        ('"0.0.0.0"', "the unicast address of a machine"),
        ('"255.255.255.255"', "the unicast address of a machine"),
        ('"169.254.0.7"', "an address that routes"),
        ("5", "a seed such as"),
    ],
)
def test_bad_seeds_name_the_entry(written: str, expected: str) -> None:
    message = error_for(gossip(f'seeds = ["ok.example", {written}]'))
    assert message.startswith(f"gossip.seeds[1]: expected {expected}")
    assert message.endswith(f", got {written}")


def test_at_most_max_seeds_and_each_once() -> None:
    many = ", ".join(f'"s{n}"' for n in range(limits.MAX_SEEDS))
    assert len(seeds_of(many)) == limits.MAX_SEEDS
    too_many = error_for(gossip(f'seeds = [{many}, "one-more"]'))
    assert too_many.startswith(f"gossip.seeds: expected a list of at most {limits.MAX_SEEDS}")
    twice = error_for(gossip('seeds = ["10.2.0.5:3634", "10.2.0.5:3634"]'))
    assert twice == 'gossip.seeds[1]: expected each seed listed once, got "10.2.0.5:3634"'
    assert error_for(gossip('seeds = "a"')).startswith("gossip.seeds: expected a list")


def test_networks_parse_in_order() -> None:
    text = gossip('networks = ["10.2.0.0/16", "10.3.0.9/24", "10.0.0.0/8"]')
    assert parse_config(text, PATH, host=HOST).gossip.networks == (
        ipaddress.ip_network("10.2.0.0/16"),
        ipaddress.ip_network("10.3.0.0/24"),
        ipaddress.ip_network("10.0.0.0/8"),
    )


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ('"0.0.0.0/0"', "a network no wider than /8"),
        ('"10.0.0.0/7"', "a network no wider than /8"),
        ('"fd00::/8"', "a network no wider than /16"),
        ('"224.1.0.0/16"', "a network of unicast hosts"),
        ('"127.0.0.0/8"', "a network of unicast hosts"),
        ('"169.254.0.0/16"', "a network of unicast hosts"),
        ('"fe80::/64"', "a network of unicast hosts"),
        ('"ff05::/16"', "a network of unicast hosts"),
        ('"::ffff:10.0.0.0/104"', "a network of unicast hosts"),
        ('"10.2.0.0/33"', 'a network such as "10.2.0.0/16"'),
        ('"eth0"', 'a network such as "10.2.0.0/16"'),
        ("16", 'a network such as "10.2.0.0/16"'),
        ('"10.2.0.0/16"', "each network listed once"),
    ],
)
def test_bad_networks_name_the_entry(written: str, expected: str) -> None:
    message = error_for(gossip(f'networks = ["10.2.0.0/16", {written}]'))
    assert message.startswith(f"gossip.networks[1]: expected {expected}")


def test_at_most_max_networks() -> None:
    at_cap = ", ".join(f'"10.{n}.0.0/16"' for n in range(MAX_NETWORKS))
    config = parse_config(gossip(f"networks = [{at_cap}]"), PATH, host=HOST)
    assert len(config.gossip.networks) == MAX_NETWORKS
    many = f'{at_cap}, "10.250.0.0/16"'
    assert error_for(gossip(f"networks = [{many}]")).startswith("gossip.networks: expected")


def test_a_name_of_253_characters_is_the_longest() -> None:
    name = "a." * 126 + "a"  # 253 characters
    assert seeds_of(f'"{name}:1"') == (Seed(name, 1),)
    assert error_for(gossip(f'seeds = ["{name}b"]')).startswith("gossip.seeds[0]: expected a DNS")


def test_seeds_and_networks_must_be_of_the_groups_family() -> None:
    text = gossip('seeds = ["build1", "fd00::5"]\nnetworks = ["10.2.0.0/16", "fd00:2::/48"]')
    assert error_for(text).splitlines() == [
        "gossip.seeds[1]: expected an IPv4 address or a DNS name, as gossip.group "
        'is IPv4 (239.192.74.70), got "fd00::5"',
        f"{PATH}: gossip.networks[1]: expected an IPv4 network, as gossip.group is IPv4 "
        '(239.192.74.70), got "fd00:2::/48"',
    ]
    v6 = gossip('seeds = ["10.2.0.5"]', "ff02::7063")
    assert error_for(v6).startswith("gossip.seeds[0]: expected an IPv6 address or a DNS name")
