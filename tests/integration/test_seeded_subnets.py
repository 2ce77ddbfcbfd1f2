"""One pool across two routed subnets, through a seed (issue 15).

Two daemons on the bed's first LAN (west), two on a second one (east), a router between
that forwards unicast and no multicast (tests/integration/router.py).  The east daemons
name a west daemon in `gossip.seeds`; every daemon names the other subnet in
`gossip.networks`.  Then, in order on one bed:

- the halves form one pool: every daemon holds the three others alive, at their own
  addresses, within seconds (the seed's table arrives in a sync, the rest by unicast);
- a build on an east workstation compiles on the west peers too (DISTCC_FALLBACK=0,
  objects identical to a local build, the jobs in the west peers' distccd logs);
- the router cut splits the pool into two working halves: each side holds the other as
  not alive, and still holds its own side alive;
- healing rejoins them: everyone alive to everyone again (a probe of a dead member gets
  an answer, and both sides ask each other for their tables);
- a node alone on its subnet (east-b, its link-mate stopped: a laptop on a VPN at home)
  restarted while its seed is down finds the pool again through the members beyond its
  link it kept in its `members` file (core/remembered.py).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from p2pcc.daemon.stores.members import SAVE_INTERVAL
from tests.integration import project
from tests.integration.distccd_jobs import kill_orphaned_distccd
from tests.integration.netbed import TestBed
from tests.integration.peer_builds import builds_on_peers, hosts_lines
from tests.integration.pool import Daemon, wait_until
from tests.integration.router import Router
from tests.integration.workstation_compilers import pretend_idle

pytestmark = [pytest.mark.integration, pytest.mark.netns]

WEST = ("west-a", "west-b")
EAST = ("east-a", "east-b")
NAMES = WEST + EAST


@dataclass
class Halves:
    base: Path
    router: Router
    daemons: dict[str, Daemon]

    def alive_to(self, name: str) -> set[str]:
        """The names `name`'s daemon holds alive."""
        peers = self.daemons[name].peers_by_name()
        return {other for other, peer in peers.items() if peer["liveness"] == "alive"}

    def client_lines(self, name: str) -> str:
        return hosts_lines(self.daemons[name])


@pytest.fixture(scope="module")
def halves() -> Iterator[Halves]:
    if os.geteuid() != 0:
        pytest.skip("network-namespace workstations need root")
    project.fetch(project.BROTLI)  # before the bed: the workstations have no route out
    base = Path(tempfile.mkdtemp(prefix="p2pcc-seeded-"))
    base.chmod(0o755)  # distccd's user must reach the daemons' runtime directories
    try:
        with TestBed() as bed:
            west, east = bed.lans[0], bed.add_lan()
            pool = Halves(base, Router(bed, bed.lans), {})
            seed = None
            for name in NAMES:
                lan, other = (west, east) if name in WEST else (east, west)
                ws = bed.add_workstation(name, lan)
                pretend_idle(ws, base)
                seed = seed or ws.address  # west-a
                config = f'networks = ["{other.network}"]\n'
                if name in EAST:
                    config += f'seeds = ["{seed}"]\n'
                pool.daemons[name] = Daemon(ws, base / name, extra_config=config)
            try:
                for daemon in pool.daemons.values():
                    daemon.start()
                yield pool
            finally:
                for daemon in pool.daemons.values():
                    print(f"--- {daemon.ws.name} log tail\n{daemon.log_text()[-2000:]}")
                bed.close()
                for daemon in pool.daemons.values():
                    kill_orphaned_distccd(daemon)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_the_halves_form_one_pool_through_the_seed(halves: Halves) -> None:
    started = time.monotonic()
    wait_until(
        lambda: all(halves.alive_to(name) == set(NAMES) - {name} for name in NAMES),
        45,
        "every daemon holding the three others alive",
    )
    print(f"\none pool across the router after {time.monotonic() - started:.1f} s")
    for name in NAMES:
        peers = halves.daemons[name].peers_by_name()
        for other, peer in peers.items():
            assert peer["addresses"] == [halves.daemons[other].ws.address], (name, other)
        status = halves.daemons[name].status()
        assert status is not None
        assert status["counters"]["refused_addresses"] == {}


def test_a_build_on_one_side_compiles_on_the_other(halves: Halves) -> None:
    west_addresses = [halves.daemons[name].ws.address for name in WEST]
    wait_until(
        lambda: all(f"{a}:3632/" in halves.client_lines("east-b") for a in west_addresses),
        60,
        "the west peers in east-b's hosts lines",
    )
    client = halves.daemons["east-b"]
    west = {name: halves.daemons[name] for name in WEST}
    jobs = builds_on_peers(client, west, halves.base, client.ws.address)
    print(f"\njobs on the west side: {jobs}")


def test_a_cut_splits_the_pool_and_healing_rejoins_it(halves: Halves) -> None:
    halves.router.cut()
    started = time.monotonic()
    try:
        wait_until(
            lambda: all(halves.alive_to(n) == set(_side(n)) - {n} for n in NAMES),
            60,
            "each half holding only itself alive",
        )
        print(f"\nsplit after {time.monotonic() - started:.1f} s")
    finally:
        halves.router.heal()
    started = time.monotonic()
    wait_until(
        lambda: all(halves.alive_to(name) == set(NAMES) - {name} for name in NAMES),
        60,
        "everyone alive to everyone again",
    )
    print(f"rejoined {time.monotonic() - started:.1f} s after healing")


def test_a_lone_node_restarted_with_its_seed_down_finds_the_pool_it_remembers(
    halves: Halves,
) -> None:
    east_b = halves.daemons["east-b"]
    kept = east_b.home / "members"
    wait_until(kept.exists, 60 + SAVE_INTERVAL, "east-b to keep the members beyond its link")
    for name in ("west-a", "east-a", "east-b"):  # the seed down; east-b alone on its link
        _stop(halves.daemons[name])
    print(f"\neast-b kept:\n{kept.read_text()}")
    assert f"{halves.daemons['west-b'].ws.address} " in kept.read_text()
    east_b.start()
    started = time.monotonic()
    wait_until(lambda: halves.alive_to("east-b") == {"west-b"}, 45, "east-b to find west-b")
    print(f"east-b found the pool {time.monotonic() - started:.1f} s after its restart")
    assert "member(s) remembered in" in east_b.log_text()
    wait_until(lambda: "east-b" in halves.alive_to("west-b"), 15, "west-b to hold east-b alive")


def _stop(daemon: Daemon) -> None:
    assert daemon.process is not None
    daemon.process.terminate()
    daemon.process.wait(timeout=30)


def _side(name: str) -> tuple[str, ...]:
    return WEST if name in WEST else EAST
