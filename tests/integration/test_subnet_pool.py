"""Daemons on two subnets joined by a router (tests/integration/router.py).

Gossip is multicast with hop limit 1 and the router forwards no multicast, so without
seeds each subnet is a pool of its own: each half sees its own members and never the
other half's, though unicast crosses the router.  Joining the halves through a seed is
tests/integration/test_seeded_subnets.py.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.multicast_probe import heard, listen
from tests.integration.netbed import TestBed
from tests.integration.pool import GOSSIP_PORT, INTERVAL, Daemon, sees_all, wait_until
from tests.integration.router import Router

pytestmark = [pytest.mark.integration, pytest.mark.netns]

WEST = ("west-a", "west-b")
EAST = ("east-a", "east-b")
GROUP = "239.192.74.70"


@pytest.fixture(scope="module")
def halves() -> Iterator[dict[str, Daemon]]:
    """Two daemons on the bed's first LAN, two on a second one, a router between (one
    bed for the module: the tests only watch)."""
    if os.geteuid() != 0:
        pytest.skip("network-namespace workstations need root")
    home = Path(tempfile.mkdtemp(prefix="p2pcc-subnets-"))
    home.chmod(0o755)  # distccd's user must reach the daemons' runtime directories
    with TestBed() as bed:
        east = bed.add_lan()
        Router(bed, bed.lans)
        daemons = {name: Daemon(bed.add_workstation(name), home / name) for name in WEST}
        for name in EAST:
            daemons[name] = Daemon(bed.add_workstation(name, east), home / name)
        for daemon in daemons.values():
            daemon.start()
        try:
            wait_until(lambda: _each_sees_its_half(daemons), 30, "each half's full table")
            yield daemons
        finally:
            for daemon in daemons.values():
                print(f"--- {daemon.ws.name} log tail\n{daemon.log_text()[-1500:]}")
            bed.close()
            shutil.rmtree(home, ignore_errors=True)


def _each_sees_its_half(daemons: dict[str, Daemon]) -> bool:
    return all(sees_all(d, WEST if name in WEST else EAST) for name, d in daemons.items())


def test_without_seeds_each_subnet_is_a_pool_of_its_own(halves: dict[str, Daemon]) -> None:
    time.sleep(4 * INTERVAL)  # several rounds of gossip: none may cross
    for name, daemon in halves.items():
        own_half = WEST if name in WEST else EAST
        assert set(daemon.peers_by_name()) == set(own_half) - {name}
    west, east = halves["west-a"].ws, halves["east-a"].ws
    ping = west.run(["ping", "-c", "1", "-W", "2", east.address], check=False, timeout=10)
    assert ping.returncode == 0, ping.stdout + ping.stderr  # unicast crosses


def test_gossip_leaves_each_daemon_with_hop_limit_one(halves: dict[str, Daemon]) -> None:
    listener = halves["west-a"].ws.bed.add_workstation("listener")
    got = heard(listen(listener, GROUP, GOSSIP_PORT, 5))
    assert got is not None
    assert got.source in {halves[name].ws.address for name in WEST}
    assert got.hops == 1
