"""Two workstations on different subnets, where neither gossip's multicast nor mDNS
passes between them, form a pool through `gossip.seeds` once `gossip.networks` names the
other subnet; without it the seed's address is not used and the log says what to set.

The subnets share the bed's bridge (one link), so the test blocks both multicast groups
at each workstation's input: what still arrives is unicast, as across a router.  Also
checked: distccd's allow list and the door take the other subnet's member in.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from p2pcc.config.schema import DEFAULT_GROUP
from tests.integration.netbed import TestBed, Workstation
from tests.integration.pool import GOSSIP_PORT, Daemon, sees_all, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.netns]

MDNS_GROUP = "224.0.0.251"
#: beta's subnet: another /24 on the same bridge, reached by an on-link route.
BETA_ADDRESS, BETA_SUBNET = "10.213.9.12", "10.213.9.0/24"
ALPHA_SUBNET = "10.213.7.0/24"


def readdress(ws: Workstation, address: str) -> None:
    """Move `ws` to `address`/24 (its multicast route goes with the old address)."""
    run = ["ip", "-n", ws.netns]
    subprocess.run([*run, "addr", "flush", "dev", "eth0"], check=True)
    subprocess.run([*run, "addr", "add", f"{address}/24", "dev", "eth0"], check=True)
    subprocess.run([*run, "route", "replace", "224.0.0.0/4", "dev", "eth0"], check=True)
    ws.address = address


def route_to(ws: Workstation, subnet: str) -> None:
    """The other subnet is reachable on the link (what a router would give)."""
    subprocess.run(["ip", "-n", ws.netns, "route", "add", subnet, "dev", "eth0"], check=True)


def test_seeds_and_networks_join_two_subnets(bed: TestBed, shared_tmp: Path) -> None:
    alpha_ws, beta_ws = bed.add_workstation("alpha"), bed.add_workstation("beta")
    readdress(beta_ws, BETA_ADDRESS)
    route_to(alpha_ws, BETA_SUBNET)
    route_to(beta_ws, ALPHA_SUBNET)
    for ws in (alpha_ws, beta_ws):
        ws.block_multicast(DEFAULT_GROUP)
        ws.block_multicast(MDNS_GROUP)
    alpha = Daemon(alpha_ws, shared_tmp / "alpha", f'seeds = ["{BETA_ADDRESS}"]\n')
    beta = Daemon(beta_ws, shared_tmp / "beta", f'seeds = ["{alpha_ws.address}:{GOSSIP_PORT}"]\n')
    try:
        # Seeds alone: beta's address lies outside alpha's networks and is not used.
        alpha.start()
        wait_until(lambda: "address-outside" in alpha.log_text(), 20, "the outside warning")
        assert f"address {BETA_ADDRESS} is not used (address-outside)" in alpha.log_text()
        assert "add its network to gossip.networks" in alpha.log_text()
        alpha.stop()

        alpha.extra_config += f'networks = ["{BETA_SUBNET}"]\n'
        beta.extra_config += f'networks = ["{ALPHA_SUBNET}"]\n'
        started = time.monotonic()
        for daemon in (alpha, beta):
            daemon.start()
        names = ["alpha", "beta"]
        wait_until(lambda: all(sees_all(d, names) for d in (alpha, beta)), 30, "one pool")
        print(f"\nSEEDS-FIGURE: two subnets, start to one pool: {time.monotonic() - started:.2f} s")
        status = alpha.status()
        assert status is not None
        assert status["seeds"] == [
            {
                "seed": BETA_ADDRESS,
                "endpoints": [[BETA_ADDRESS, GOSSIP_PORT]],
                "problem": None,
                "unused": [],
            }
        ]
        assert status["peers"][0]["addresses"] == [BETA_ADDRESS]
        log = alpha.log_text()
        assert "gossip.networks widens the pool" in log
        door = status["node"]["door"]
        if door["problem"] is None:
            wait_until(
                lambda: (alpha.status() or {})["node"]["door"]["members"] == 1,  # beta's address
                10,
                "beta admitted by alpha's door",
            )
        if "starting distccd" in log:
            assert BETA_SUBNET in log.rsplit("allowing", 1)[1].splitlines()[0]  # this start's
        drops = alpha_ws.fault_drops()
        print(f"SEEDS-FIGURE: multicast dropped at alpha: {drops}")
        assert drops.get(f"group-{DEFAULT_GROUP}", 0) > 0  # beta's multicast never arrived
    finally:
        for daemon in (alpha, beta):
            daemon.stop()
            print(f"--- {daemon.ws.name} log tail\n{daemon.log_text()[-2000:]}")
