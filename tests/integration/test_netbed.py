"""The namespace test bed itself: isolated hosts that reach each other, and nothing else."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.integration.netbed import TestBed

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
    if __import__("os").geteuid() != 0:
        pytest.skip("network-namespace workstations need root")
    with TestBed() as test_bed:
        names = [test_bed.add_workstation("gamma").netns, test_bed.bridge_ns]
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
