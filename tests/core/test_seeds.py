"""The seed book: last good endpoints kept through failed lookups, each warning once,
own and refused addresses left out, changes announced."""

from __future__ import annotations

import ipaddress

from p2pcc.core import limits
from p2pcc.core.addresses import AddressPool
from p2pcc.core.seeds import NOT_LOOKED_UP, Notice, Seed, SeedBook, SeedState

#: The gossip interface on 10.1.0.0/24, and gossip.networks = ["10.2.0.0/16"].
POOL = AddressPool(4, (ipaddress.ip_network("10.1.0.0/24"), ipaddress.ip_network("10.2.0.0/16")))
SEEDS = (Seed("build1.example"), Seed("build2.example", 3700))


def book(own: tuple[str, ...] = ("10.1.0.9",)) -> SeedBook:
    return SeedBook(SEEDS, 3634, POOL, own)


def test_before_any_lookup_each_seed_is_not_looked_up_and_nothing_is_dialled() -> None:
    seeds = book()
    assert seeds.states() == (
        SeedState("build1.example"),
        SeedState("build2.example:3700"),
    )
    assert seeds.states()[0].problem == NOT_LOOKED_UP
    assert seeds.endpoints() == ()


def test_resolved_addresses_become_endpoints_with_the_seeds_port() -> None:
    seeds = book()
    assert seeds.resolved("build1.example", ["10.2.0.5", "10.2.0.6"]) == [
        Notice(False, "seed build1.example: 10.2.0.5:3634, 10.2.0.6:3634")
    ]
    assert seeds.resolved("build2.example:3700", ["10.2.0.5"]) == [
        Notice(False, "seed build2.example:3700: 10.2.0.5:3700")
    ]
    assert seeds.endpoints() == (("10.2.0.5", 3634), ("10.2.0.6", 3634), ("10.2.0.5", 3700))
    # The same answer again says nothing.
    assert seeds.resolved("build1.example", ["10.2.0.5", "10.2.0.6"]) == []


def test_a_failed_lookup_keeps_the_last_endpoints_and_warns_once_per_reason() -> None:
    seeds = book()
    seeds.resolved("build1.example", ["10.2.0.5"])
    failure = "Temporary failure in name resolution"
    assert seeds.failed("build1.example", failure) == [
        Notice(True, f"seed build1.example: lookup failed ({failure}); keeping 10.2.0.5:3634")
    ]
    assert seeds.failed("build1.example", failure) == []
    assert seeds.endpoints() == (("10.2.0.5", 3634),)
    assert seeds.states()[0] == SeedState("build1.example", (("10.2.0.5", 3634),), failure)
    assert seeds.failed("build1.example", "timed out") == [
        Notice(True, "seed build1.example: lookup failed (timed out); keeping 10.2.0.5:3634")
    ]
    # Recovery with the same address is worth a line; the next failure warns again.
    assert seeds.resolved("build1.example", ["10.2.0.5"]) == [
        Notice(False, "seed build1.example: 10.2.0.5:3634")
    ]
    assert len(seeds.failed("build1.example", failure)) == 1


def test_a_seed_that_never_resolved_says_so() -> None:
    seeds = book()
    assert seeds.failed("build2.example:3700", "Name or service not known") == [
        Notice(
            True,
            "seed build2.example:3700: lookup failed (Name or service not known); "
            "no address to reach it yet",
        )
    ]
    assert seeds.resolved("build2.example:3700", []) == [
        Notice(
            True,
            "seed build2.example:3700: lookup failed (no IPv4 address); no address to reach it yet",
        )
    ]


def test_refused_addresses_are_not_used_and_warned_about_once_each() -> None:
    seeds = book()
    notices = seeds.resolved("build1.example", ["10.9.0.5", "10.2.0.5", "10.2.255.255"])
    assert notices == [
        Notice(
            True,
            "seed build1.example: address 10.9.0.5 is not used (address-outside); it lies "
            "outside the gossip interface's networks: add its network to gossip.networks",
        ),
        Notice(
            True,
            "seed build1.example: address 10.2.255.255 is not used (address-broadcast); no "
            "pool member can be reached there: correct the seed or its DNS record",
        ),
        Notice(False, "seed build1.example: 10.2.0.5:3634"),
    ]
    assert seeds.endpoints() == (("10.2.0.5", 3634),)
    assert seeds.states()[0].unused == (
        ("10.9.0.5", "address-outside"),
        ("10.2.255.255", "address-broadcast"),
    )
    assert seeds.resolved("build1.example", ["10.9.0.5", "10.2.0.5", "10.2.255.255"]) == []


def test_the_wrong_family_says_which_to_use() -> None:
    notices = book().resolved("build1.example", ["fd00::5"])
    assert notices[0].text.endswith(
        "(address-family); it is not of the gossip group's family: name the seed by an "
        "address of that family"
    )
    assert len(notices) == 1  # no endpoint before, none now: no change to tell
    seeds = book()
    seeds.resolved("build1.example", ["10.2.0.5"])
    assert seeds.resolved("build1.example", ["fd00::5"])[1] == Notice(
        False, "seed build1.example: no usable address"
    )


def test_our_own_addresses_are_left_out_quietly() -> None:
    seeds = book(own=("10.1.0.9", "fd00::9", "not-an-address"))
    assert seeds.resolved("build1.example", ["10.1.0.9"]) == []
    assert seeds.endpoints() == ()
    assert seeds.states()[0] == SeedState("build1.example", (), None)


def test_ipv6_endpoints_are_shown_in_brackets() -> None:
    pool = AddressPool(6, (ipaddress.ip_network("fd00:1::/64"),))
    seeds = SeedBook((Seed("fd00:1::5"),), 3634, pool, ())
    assert seeds.resolved("fd00:1::5", ["fd00:1::5"]) == [
        Notice(False, "seed fd00:1::5: [fd00:1::5]:3634")
    ]


def test_a_state_as_a_document() -> None:
    state = SeedState("b:1", (("10.2.0.5", 1),), None, (("10.9.0.1", "address-outside"),))
    assert state.as_document() == {
        "seed": "b:1",
        "endpoints": [["10.2.0.5", 1]],
        "problem": None,
        "unused": [{"address": "10.9.0.1", "reason": "address-outside"}],
    }


def test_a_seed_literal_is_its_address() -> None:
    assert Seed("10.2.0.5", 1).literal == ipaddress.ip_address("10.2.0.5")
    assert Seed("build1").literal is None


def test_more_endpoints_than_max_seeds_are_cut_with_one_warning() -> None:
    seeds = SeedBook((Seed("many"), Seed("more")), 3634, POOL, ())
    many = [f"10.2.0.{n}" for n in range(1, limits.MAX_SEEDS)]
    assert seeds.resolved("many", many)[-1].warning is False
    notices = seeds.resolved("more", ["10.2.1.1", "10.2.1.2"])
    assert notices[-1] == Notice(
        True,
        f"the seeds resolve to {limits.MAX_SEEDS + 1} endpoints; only the first "
        f"{limits.MAX_SEEDS} get our state (limits.MAX_SEEDS): list fewer seeds, or names "
        "with fewer addresses",
    )
    assert len(seeds.endpoints()) == limits.MAX_SEEDS
    assert seeds.endpoints()[-1] == ("10.2.1.1", 3634)
    assert seeds.resolved("more", ["10.2.1.1", "10.2.1.3"])[-1].warning is False
