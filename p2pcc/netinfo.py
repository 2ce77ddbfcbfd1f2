"""Which interface gossip uses and which addresses it has.

The kernel is asked through `ip -json addr` and `/proc/net/route` (iproute2 is on every
Linux system distcc runs on); parsing is kept in pure functions so the choice rules are
tested on fixed data.  Explicit interface choice matters: on a multi-homed machine, or
in a network namespace without a default route, "let the kernel pick" sends multicast
nowhere.
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

from p2pcc.core.errors import P2pccError

IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface


class InterfaceError(P2pccError):
    """The gossip interface is missing, down or has no usable address."""


@dataclass(frozen=True, slots=True)
class InterfaceInfo:
    """An interface's name, index, state and addresses (with prefix lengths)."""

    name: str
    index: int
    up: bool
    loopback: bool
    addresses: tuple[IPInterface, ...]

    def ipv4(self) -> tuple[ipaddress.IPv4Interface, ...]:
        """The IPv4 addresses, in the kernel's order."""
        return tuple(a for a in self.addresses if isinstance(a, ipaddress.IPv4Interface))

    def ipv6(self) -> tuple[ipaddress.IPv6Interface, ...]:
        """The IPv6 addresses, in the kernel's order."""
        return tuple(a for a in self.addresses if isinstance(a, ipaddress.IPv6Interface))


def parse_ip_json(text: str) -> list[InterfaceInfo]:
    """Interfaces from the output of `ip -json addr show`."""
    interfaces = []
    for entry in json.loads(text):
        addresses: list[IPInterface] = [
            ipaddress.ip_interface(f"{info['local']}/{info['prefixlen']}")
            for info in entry.get("addr_info", [])
            if info.get("family") in ("inet", "inet6") and "local" in info
        ]
        flags = entry.get("flags", [])
        interfaces.append(
            InterfaceInfo(
                name=entry["ifname"],
                index=int(entry["ifindex"]),
                up="UP" in flags,
                loopback="LOOPBACK" in flags,
                addresses=tuple(addresses),
            )
        )
    return interfaces


def parse_default_route(text: str) -> str | None:
    """The interface of the IPv4 default route from `/proc/net/route`, if there is one."""
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 8 and fields[1] == "00000000" and fields[7] == "00000000":
            return fields[0]
    return None


def choose_interface(
    interfaces: list[InterfaceInfo], configured: str, default_route: str | None
) -> InterfaceInfo:
    """The configured interface, else the default route's, else the only usable one."""
    by_name = {interface.name: interface for interface in interfaces}
    if configured:
        chosen = by_name.get(configured)
        if chosen is None:
            raise InterfaceError(
                f"gossip.interface {configured!r} does not exist here "
                f"(have: {', '.join(sorted(by_name)) or 'none'})"
            )
    elif default_route in by_name:
        chosen = by_name[default_route]
    else:
        usable = [i for i in interfaces if i.up and not i.loopback and i.addresses]
        if len(usable) != 1:
            names = ", ".join(i.name for i in usable) or "none"
            raise InterfaceError(
                f"no default route and {len(usable)} usable interfaces ({names}): "
                "set gossip.interface in the configuration"
            )
        chosen = usable[0]
    if not chosen.up or not chosen.addresses:
        raise InterfaceError(f"interface {chosen.name} is down or has no address")
    return chosen


def read_interfaces() -> list[InterfaceInfo]:
    """Every interface of this network namespace, from `ip -json addr show`."""
    try:
        result = subprocess.run(
            ["ip", "-json", "addr", "show"], capture_output=True, text=True, check=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError) as error:
        raise InterfaceError(f"cannot list interfaces with `ip -json addr show`: {error}") from None
    return parse_ip_json(result.stdout)


def gossip_interface(configured: str) -> InterfaceInfo:
    """The interface gossip should use on this machine (see `choose_interface`)."""
    try:
        route = parse_default_route(Path("/proc/net/route").read_text())
    except OSError:
        route = None
    return choose_interface(read_interfaces(), configured, route)
