"""`gossip.seeds` in `status` (one line from the daemon's document) and in `doctor`
(looked up here, judged as the daemon judges)."""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from collections.abc import Sequence

from p2pcc.cli.doctor_checks import Level
from p2pcc.cli.seed_report import look_up_seeds, seed_findings, seeds_line, system_resolve
from p2pcc.cli.status_view import render_status
from p2pcc.config import config_from_mapping
from p2pcc.core.addresses import AddressPool
from p2pcc.core.seeds import Seed, SeedBook, SeedState

INTERFACE = (ipaddress.ip_interface("10.1.0.9/24"),)
RELEASE = threading.Event()


def fake_resolve(host: str, version: int) -> Sequence[str]:
    assert version == 4
    answers: dict[str, list[str]] = {
        "build1": ["10.2.0.5"],
        "far": ["10.9.0.5"],
        "self": ["10.1.0.9"],
        "bcast": ["10.1.0.255"],
    }
    if host == "stuck":
        RELEASE.wait(10)  # a hung resolver; released at the test's end
        return []
    if host not in answers:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    return answers[host]


def findings_for(seeds: list[str], networks: list[str] | None = None) -> list[tuple[Level, str]]:
    gossip: dict[str, object] = {"seeds": seeds, "networks": networks or []}
    config = config_from_mapping({"gossip": gossip}, None)
    return [(f.level, f.line()) for f in seed_findings(config, INTERFACE, fake_resolve)]


def test_no_seed_no_finding() -> None:
    assert findings_for([]) == []


def test_a_seed_inside_gossip_networks_is_ok_and_one_outside_is_a_warning() -> None:
    assert findings_for(["build1", "10.2.0.7:3700"], ["10.2.0.0/16"]) == [
        (Level.OK, "ok    seeds: seed build1 is reached at 10.2.0.5:3634"),
        (Level.OK, "ok    seeds: seed 10.2.0.7:3700 is reached at 10.2.0.7:3700"),
    ]
    assert findings_for(["build1"]) == [
        (
            Level.WARN,
            "warn  seeds: seed build1 resolves to 10.2.0.5, outside the networks the pool "
            "accepts (10.1.0.0/24); fix: add the seed's network to gossip.networks",
        )
    ]


def test_names_that_do_not_resolve_or_are_unusable_or_ourselves() -> None:
    assert findings_for(["nowhere:3700", "bcast", "self"]) == [
        (
            Level.WARN,
            "warn  seeds: seed nowhere:3700 does not resolve to an IPv4 address: Name or "
            "service not known; fix: check the name (`getent ahosts nowhere`) or list the "
            "seed by its address",
        ),
        (
            Level.WARN,
            "warn  seeds: seed bcast resolves to unusable 10.1.0.255 (address-broadcast); "
            "fix: correct its DNS record",
        ),
        (Level.OK, "ok    seeds: seed self is this machine"),
    ]


def test_a_hanging_lookup_costs_the_timeout_and_no_more() -> None:
    pool = AddressPool(4, (ipaddress.ip_network("10.2.0.0/16"),))
    seeds = (Seed("stuck"), Seed("build1"))
    started = time.monotonic()
    try:
        states = look_up_seeds(seeds, SeedBook(seeds, 3634, pool, ()), fake_resolve, 0.2)
    finally:
        RELEASE.set()
    assert time.monotonic() - started < 2
    assert [state.problem for state in states] == ["no answer within 0.2 s", None]


def test_the_system_resolver_asks_for_one_family() -> None:
    assert system_resolve("127.0.0.1", 4) == ["127.0.0.1"]


def test_status_shows_one_line_of_seeds() -> None:
    seeds = [
        SeedState("build1", (("10.2.0.5", 3634),), None).as_document(),
        SeedState("[fd00::5]:3700", (("fd00::5", 3700),), None).as_document(),
        SeedState("far", (), "Name or service not known", (("10.9.0.5", "x"),)).as_document(),
    ]
    assert seeds_line({"seeds": []}) is None
    line = seeds_line({"seeds": seeds})
    assert line == (
        "seeds: build1 10.2.0.5:3634; [fd00::5]:3700 [fd00::5]:3700; far - (Name or "
        "service not known) (not used: 10.9.0.5)"
    )
    assert render_status({"seeds": seeds}).endswith(line)
