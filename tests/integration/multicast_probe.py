"""Multicast seen from test-bed workstations: a listener on a group, a sender to it.

Both take an IPv4 or an IPv6 group and name `eth0` explicitly (the interface index in
the membership and as the sending interface), as the gossip sockets do, so they work
in workstations with no default route.  The listener also reports the hop limit (TTL)
a datagram arrived with: one sent with hop limit 1 arrives with 1.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

from tests.integration.netbed import Workstation

LISTENER = """
import ipaddress, json, socket, struct, sys
group, port, wait = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
index = socket.if_nametoindex("eth0")
if ipaddress.ip_address(group).version == 6:
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)  # beside a daemon's socket
    s.bind((group, port, 0, index))
    mreq = socket.inet_pton(socket.AF_INET6, group) + struct.pack("@I", index)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, mreq)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVHOPLIMIT, 1)
else:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    s.bind((group, port))
    mreq = struct.pack("4s4si", socket.inet_aton(group), bytes(4), index)
    s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
    s.setsockopt(socket.IPPROTO_IP, 12, 1)  # IP_RECVTTL (Linux), missing from `socket`
s.settimeout(wait)
print("ready", flush=True)
try:
    data, ancillary, _, addr = s.recvmsg(2048, socket.CMSG_SPACE(4))
except TimeoutError:
    print("null", flush=True)
else:
    hops = [int.from_bytes(item[2][:4], sys.byteorder) for item in ancillary] or [-1]
    text = data.decode("latin-1")
    print(json.dumps({"text": text, "source": addr[0], "hops": hops[0]}), flush=True)
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
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "ready"
    return process


def send(ws: Workstation, group: str, port: int, hops: int = 1) -> None:
    """Send 15 datagrams to `group` from `ws` over 1.5 s, with hop limit (TTL) `hops`."""
    ws.run([sys.executable, "-c", SENDER, group, str(port), str(hops)], timeout=20)


@dataclass(frozen=True)
class Heard:
    """The first datagram a listener got."""

    text: str  # its bytes as Latin-1
    source: str  # the sender's address (no scope)
    hops: int  # the hop limit (TTL) it arrived with; -1 if the kernel did not say


def heard(listener: subprocess.Popen[Any], timeout: float = 15) -> Heard | None:
    """What the listener got, or None when nothing came in its time."""
    out, err = listener.communicate(timeout=timeout)
    if not out.strip():
        raise AssertionError(
            f"the multicast listener said nothing (exit {listener.returncode}): {err.strip()}"
        )
    found = json.loads(out.splitlines()[-1])
    return None if found is None else Heard(found["text"], found["source"], found["hops"])
