"""The links of a test bed: a bridge in a namespace of its own and the private subnet on it.

A LAN is IPv4 (workstations get `SUBNET.11`, `.12`, … on a /24) or IPv6-only
(workstations get a global-scope address from a ULA /64, `PREFIX::11`, …, plus the
link-local address the kernel makes, and no IPv4 address at all).  Duplicate address
detection is switched off in IPv6 workstations (`accept_dad = 0`, before their
interface exists): otherwise every new address stays "tentative", unusable for
binding, for a second or more.  Without a default route, IPv4 multicast needs a route
of its own; IPv6 needs none, as the kernel adds `multicast ff00::/8 dev eth0` to the
local table when the interface comes up.

A router (tests/integration/router.py) sets a LAN's `gateway`: its workstations then
get a default route through it, those already plugged in and those plugged in later.
"""

from __future__ import annotations

import json
import subprocess
import time
from dataclasses import dataclass


def ip(*args: str) -> None:
    """Run `ip ARGS`; CalledProcessError (with its stderr) when it fails."""
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


def sysctl(netns: str, *settings: str) -> None:
    """Set `key=value` sysctls inside network namespace `netns`."""
    command = ["ip", "netns", "exec", netns, "sysctl", "-qw", *settings]
    subprocess.run(command, check=True, capture_output=True, text=True)


@dataclass
class Lan:
    """One bridge and its subnet; `ipv6_prefix` set means an IPv6-only LAN."""

    netns: str  # the bridge's namespace; the bridge is `br0` in it
    subnet: str | None  # the IPv4 /24's first three octets, "10.213.7"
    ipv6_prefix: str | None = None  # the ULA /64 of an IPv6-only LAN, "fd13:7:7::"
    gateway: str | None = None  # the router's address here, once a router is plugged in

    @property
    def ipv6_only(self) -> bool:
        return self.ipv6_prefix is not None

    def host_address(self, host: int) -> str:
        """The address of host number `host` on this LAN (IPv4, or the ULA one)."""
        if self.ipv6_prefix is not None:
            return f"{self.ipv6_prefix}{host}"
        return f"{self.subnet}.{host}"

    @property
    def network(self) -> str:
        """The LAN's network in CIDR form: "10.213.7.0/24" or "fd13:7:7::/64"."""
        if self.ipv6_prefix is not None:
            return f"{self.ipv6_prefix}/64"
        return f"{self.subnet}.0/24"


def make_bridge(lan: Lan) -> None:
    """Create the LAN's namespace and its bridge (no address, no multicast snooping:
    every group reaches every port, as on a dumb switch)."""
    ip("netns", "add", lan.netns)
    ip("-n", lan.netns, "link", "add", "br0", "type", "bridge", "mcast_snooping", "0")
    ip("-n", lan.netns, "link", "set", "br0", "up")


def plug(lan: Lan, netns: str, port: str, host: int) -> str:
    """Cable namespace `netns` (its `eth0`) into the LAN's bridge at `port`, address it as
    host number `host` and route it; its address (the ULA one on an IPv6 LAN)."""
    if lan.ipv6_only:
        # Before eth0 exists: `default` is what a new interface starts from.
        sysctl(netns, "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0")
    ip("-n", netns, "link", "add", "eth0", "type", "veth", "peer", "name", port)
    ip("-n", netns, "link", "set", port, "netns", lan.netns)
    ip("-n", lan.netns, "link", "set", port, "master", "br0", "up")
    address = lan.host_address(host)
    if lan.ipv6_only:
        ip("-n", netns, "addr", "add", f"{address}/64", "dev", "eth0", "nodad")
    else:
        ip("-n", netns, "addr", "add", f"{address}/24", "dev", "eth0")
    ip("-n", netns, "link", "set", "eth0", "up")
    ip("-n", netns, "link", "set", "lo", "up")
    if not lan.ipv6_only:
        # No default route yet: IPv4 multicast needs a route of its own to find eth0.
        ip("-n", netns, "route", "add", "224.0.0.0/4", "dev", "eth0")
    if lan.gateway is not None:
        route_through(netns, lan.gateway)
    return address


def route_through(netns: str, gateway: str) -> None:
    """Give namespace `netns` a default route through `gateway`."""
    ip("-n", netns, "route", "replace", "default", "via", gateway, "dev", "eth0")


def link_local_address(netns: str, timeout: float = 5.0) -> str:
    """The kernel-made link-local address of `netns`'s eth0 (no scope), once usable."""
    deadline = time.monotonic() + timeout
    while True:
        listed = subprocess.run(
            ["ip", "-n", netns, "-json", "-6", "addr", "show", "dev", "eth0", "scope", "link"],
            check=True,
            capture_output=True,
            text=True,
        )
        for entry in json.loads(listed.stdout):
            for info in entry.get("addr_info", []):
                # The filter leaves empty entries for the other addresses.
                if "local" in info and not info.get("tentative"):
                    return str(info["local"])
        if time.monotonic() > deadline:
            raise AssertionError(f"no usable link-local address in {netns} after {timeout} s")
        time.sleep(0.05)
