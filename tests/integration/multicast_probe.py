"""Multicast seen from test-bed workstations: a listener on a group, a sender to it.

Both take an IPv4 or an IPv6 group and name `eth0` explicitly (the interface index in
the membership and as the sending interface), as the gossip sockets do, so they work
in workstations with no default route.
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any

from tests.integration.netbed import Workstation

LISTENER = """
import ipaddress, socket, struct, sys
group, port, wait = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
index = socket.if_nametoindex("eth0")
if ipaddress.ip_address(group).version == 6:
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((group, port, 0, index))
    mreq = socket.inet_pton(socket.AF_INET6, group) + struct.pack("@I", index)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, mreq)
else:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((group, port))
    mreq = struct.pack("4s4si", socket.inet_aton(group), bytes(4), index)
    s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
s.settimeout(wait)
print("ready", flush=True)
try:
    data, addr = s.recvfrom(100)
    print(data.decode(), addr[0], flush=True)
except TimeoutError:
    print("nothing", flush=True)
"""

SENDER = """
import ipaddress, socket, sys, time
group, port, hops = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
index = socket.if_nametoindex("eth0")
if ipaddress.ip_address(group).version == 6:
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, index)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, hops)
    destination = (group, port, 0, index)
else:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, hops)
    destination = (group, port)
for _ in range(15):
    s.sendto(b"hello-from-" + socket.gethostname().encode(), destination)
    time.sleep(0.1)
"""


def listen(ws: Workstation, group: str, port: int, wait: float) -> subprocess.Popen[Any]:
    """Start a listener on `group` in `ws`; it is joined when this returns, and reports
    the first datagram it gets within `wait` seconds (see `heard`)."""
    process = ws.start(
        [sys.executable, "-c", LISTENER, group, str(port), str(wait)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "ready"
    return process


def send(ws: Workstation, group: str, port: int, hops: int = 1) -> None:
    """Send 15 datagrams to `group` from `ws` over 1.5 s, with hop limit (TTL) `hops`."""
    ws.run([sys.executable, "-c", SENDER, group, str(port), str(hops)], timeout=20)


def heard(listener: subprocess.Popen[Any], timeout: float = 15) -> tuple[str, str] | None:
    """What the listener got: (text, sender's address), or None when nothing came."""
    out, _ = listener.communicate(timeout=timeout)
    words = out.split()
    if words[-1:] == ["nothing"]:
        return None
    return words[-2], words[-1]
