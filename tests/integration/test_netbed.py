"""The namespace test bed itself: isolated hosts that reach each other, and nothing else.

Also the two-subnet bed (two bridges and a router that forwards unicast, never
multicast, and can be cut and healed) and the IPv6-only bed (link-local and ULA
addresses, no IPv4).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from p2pcc.config import parse_config
from tests.integration.multicast_probe import Heard, heard, listen, send
from tests.integration.netbed import TestBed, Workstation, remove_stale_beds
from tests.integration.router import Router

pytestmark = [pytest.mark.integration, pytest.mark.netns]

RECEIVER = """
import socket, struct, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("239.192.74.70", 47001))
mreq = struct.pack("4s4s", socket.inet_aton("239.192.74.70"), socket.inet_aton(sys.argv[1]))
s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
s.settimeout(10)
print("ready", flush=True)
data, addr = s.recvfrom(100)
print(data.decode(), addr[0], flush=True)
"""

SENDER = """
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
for _ in range(20):
    s.sendto(b"hello from " + socket.gethostname().encode(), ("239.192.74.70", 47001))
    time.sleep(0.1)
"""


def test_workstations_have_own_hostnames_and_reach_each_other(bed: TestBed) -> None:
    alpha, beta = bed.add_workstation("alpha"), bed.add_workstation("beta")
    assert alpha.run(["hostname"]).stdout.strip() == "alpha"
    assert beta.run(["hostname"]).stdout.strip() == "beta"
    ping = alpha.run(["ping", "-c", "1", "-W", "2", beta.address], check=False)
    assert ping.returncode == 0, ping.stdout + ping.stderr


def test_multicast_crosses_the_bridge(bed: TestBed) -> None:
    alpha, beta = bed.add_workstation("alpha"), bed.add_workstation("beta")
    receiver = alpha.start(
        [sys.executable, "-c", RECEIVER, alpha.address], stdout=subprocess.PIPE, text=True
    )
    assert receiver.stdout is not None
    assert receiver.stdout.readline().strip() == "ready"
    beta.run([sys.executable, "-c", SENDER], timeout=20)
    out, _ = receiver.communicate(timeout=15)
    assert out.split() == ["hello", "from", "beta", beta.address]


def test_unplugged_workstation_is_unreachable(bed: TestBed) -> None:
    alpha, beta = bed.add_workstation("alpha"), bed.add_workstation("beta")
    beta.set_link(up=False)
    assert alpha.run(["ping", "-c", "1", "-W", "1", beta.address], check=False).returncode != 0
    beta.set_link(up=True)
    assert alpha.run(["ping", "-c", "1", "-W", "2", beta.address], check=False).returncode == 0


def test_close_removes_every_namespace() -> None:
    if os.geteuid() != 0:
        pytest.skip("network-namespace workstations need root")
    with TestBed() as test_bed:
        east = test_bed.add_lan()
        router = Router(test_bed, test_bed.lans)
        names = [test_bed.add_workstation("gamma").netns, test_bed.bridge_ns]
        names += [test_bed.add_workstation("delta", east).netns, east.netns, router.netns]
        listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True)
        assert set(names) <= {line.split()[0] for line in listed.stdout.splitlines() if line}
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True)
    assert not set(names) & {line.split()[0] for line in listed.stdout.splitlines() if line}


def test_a_throttled_workstation_is_held_back_by_the_kernel(bed: TestBed) -> None:
    slow = bed.add_workstation("slow")
    slow.throttle(0.1)
    slow.run(
        [
            sys.executable,
            "-c",
            "import time\nend = time.monotonic() + 0.6\nwhile time.monotonic() < end: pass",
        ]
    )
    assert slow.throttled_periods() > 0
    cgroup = slow.cgroup
    assert cgroup is not None
    bed.close()
    assert not cgroup.exists()


# --- two subnets and a router ------------------------------------------------------------

GOSSIP_GROUP = "239.192.74.70"
IPV6_GROUP = "ff15::7063"  # site-local: a scope a multicast router would forward


def ping(ws: Workstation, address: str) -> subprocess.CompletedProcess[str]:
    return ws.run(["ping", "-c", "1", "-W", "2", address], check=False, timeout=10)


def hops_taken(reply: subprocess.CompletedProcess[str]) -> int:
    """Routers the echo reply crossed: Linux starts its TTL (hop limit) at 64."""
    assert reply.returncode == 0, reply.stdout + reply.stderr
    match = re.search(r"(?:ttl|hlim)=(\d+)", reply.stdout)
    assert match is not None, reply.stdout
    return 64 - int(match.group(1))


@dataclass
class Routed:
    """Two workstations on the bed's first LAN (west), one on a second LAN (east), and
    the router between the LANs."""

    west: Workstation
    neighbour: Workstation
    east: Workstation
    router: Router


@pytest.fixture(params=[False, True], ids=["ipv4", "ipv6"])
def routed(request: pytest.FixtureRequest) -> Iterator[Routed]:
    """The routed bed, on IPv4 LANs or (param True) IPv6-only ones."""
    if os.geteuid() != 0:
        pytest.skip("network-namespace workstations need root")
    with TestBed(ipv6_only=request.param) as test_bed:
        east = test_bed.add_lan(ipv6_only=request.param)
        west_a, west_b = test_bed.add_workstation("west-a"), test_bed.add_workstation("west-b")
        router = Router(test_bed, test_bed.lans)
        yield Routed(west_a, west_b, test_bed.add_workstation("east", east), router)


def test_unicast_crosses_the_router_both_ways(routed: Routed) -> None:
    west, east = routed.west, routed.east
    assert west.lan.network != east.lan.network
    assert hops_taken(ping(west, east.address)) == 1
    assert hops_taken(ping(east, west.address)) == 1
    assert hops_taken(ping(west, routed.neighbour.address)) == 0  # the same LAN: no router


def test_multicast_stays_on_its_lan(routed: Routed) -> None:
    west = routed.west
    group = IPV6_GROUP if west.lan.ipv6_only else GOSSIP_GROUP
    near, far = listen(routed.neighbour, group, 47002, 4), listen(routed.east, group, 47002, 4)
    send(west, group, 47002, hops=8)  # gossip uses 1; even 8 must not cross
    assert heard(near) == Heard("hello-from-west-a", west.address, 8)  # it was sent
    assert heard(far) is None
    assert routed.router.forwarded_multicast_routes() == ""


def test_gossip_leaves_its_link_with_hop_limit_one() -> None:
    assert parse_config("", "defaults").gossip.ttl == 1


def test_a_cut_router_stops_unicast_until_healed(routed: Routed) -> None:
    west, east, router = routed.west, routed.east, routed.router
    router.cut()
    assert ping(west, east.address).returncode != 0
    assert ping(east, west.address).returncode != 0
    assert router.cut_packets() >= 2
    assert hops_taken(ping(west, routed.neighbour.address)) == 0  # each half still works
    assert hops_taken(ping(west, router.address_on(west.lan))) == 0  # the router answers
    router.heal()
    assert hops_taken(ping(west, east.address)) == 1
    assert hops_taken(ping(east, west.address)) == 1
    assert router.cut_packets() == 0


# --- IPv6 only --------------------------------------------------------------------------


@pytest.fixture
def ipv6_pair() -> Iterator[tuple[Workstation, Workstation]]:
    if os.geteuid() != 0:
        pytest.skip("network-namespace workstations need root")
    with TestBed(ipv6_only=True) as test_bed:
        yield test_bed.add_workstation("six-a"), test_bed.add_workstation("six-b")


def test_ipv6_workstations_have_no_ipv4(ipv6_pair: tuple[Workstation, Workstation]) -> None:
    alpha, _ = ipv6_pair
    assert alpha.run(["ip", "-4", "addr", "show", "dev", "eth0"]).stdout.strip() == ""
    assert alpha.address.startswith("fd13:7:7::")
    assert alpha.link_local is not None
    assert alpha.link_local.startswith("fe80::")
    # No default route, yet IPv6 multicast needs no route of ours: the kernel adds one.
    local_table = alpha.run(["ip", "-6", "route", "show", "table", "local"]).stdout
    assert "multicast ff00::/8 dev eth0" in local_table
    assert alpha.run(["ip", "-6", "route", "show", "default"]).stdout.strip() == ""


def test_ipv6_workstations_reach_each_other(ipv6_pair: tuple[Workstation, Workstation]) -> None:
    alpha, beta = ipv6_pair
    assert beta.link_local is not None
    assert hops_taken(ping(alpha, beta.address)) == 0
    assert hops_taken(ping(alpha, f"{beta.link_local}%eth0")) == 0


def test_ipv6_multicast_crosses_the_bridge(ipv6_pair: tuple[Workstation, Workstation]) -> None:
    alpha, beta = ipv6_pair
    listener = listen(alpha, "ff12::7063", 47003, 10)
    send(beta, "ff12::7063", 47003)
    # Sent from the link-local address, with gossip's hop limit.
    assert heard(listener) == Heard("hello-from-six-b", beta.link_local or "", 1)


STALE_BED = """
import sys, time
sys.path.insert(0, sys.argv[1])
from tests.integration.netbed import TestBed
from tests.integration.router import Router
bed = TestBed()
east = bed.add_lan()
Router(bed, bed.lans)
bed.add_workstation("west")
bed.add_workstation("east", east)
print("ready", flush=True)
time.sleep(60)
"""


def test_a_killed_runs_subnets_and_router_are_removed_by_the_next_bed() -> None:
    if os.geteuid() != 0:
        pytest.skip("network-namespace workstations need root")
    root = str(Path(__file__).parents[2])
    command = [sys.executable, "-c", STALE_BED, root]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as run:
        try:
            assert run.stdout is not None
            assert run.stdout.readline().strip() == "ready"
            left = {name for name in namespaces() if name.startswith(f"p2t{run.pid}-")}
            assert len(left) == 5  # two bridges, a router, two workstations
        finally:
            run.kill()
    remove_stale_beds()
    assert not {name for name in namespaces() if name.startswith(f"p2t{run.pid}-")}


def namespaces() -> set[str]:
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True)
    return {line.split()[0] for line in listed.stdout.splitlines() if line.strip()}
