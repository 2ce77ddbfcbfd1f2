"""A router between a test bed's LANs: unicast crosses it, multicast never does.

The router is a namespace of its own with one veth on each LAN's bridge (`eth1` on the
first LAN given, `eth2` on the second, …), host address 1 of each subnet (`10.213.7.1`,
or `fd13:7:7::1` on an IPv6-only LAN), and IPv4 and IPv6 forwarding on.  Linux forwards
multicast only for a multicast routing daemon that fills the kernel's multicast routing
table (`mrouted`, `pimd`), and none runs here, so gossip's group stays on its own LAN
whatever its TTL (gossip's own TTL is 1 as well).
Every workstation of each LAN gets a default route through the router.

`cut()` drops everything the router would forward (an nftables forward chain whose
policy is drop, with a counter), `heal()` removes that chain: the router itself stays
up and answers on each LAN, like a router whose link between two sites went down.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence

from tests.integration.lans import Lan, ip, route_through, sysctl
from tests.integration.netbed import PREFIX, TestBed

#: The nftables table (family inet, in the router's namespace) of a cut.
CUT_TABLE = "p2t_cut"
#: The router's host number on every LAN it joins.
ROUTER_HOST = 1


class Router:
    """A router namespace joining `lans` of `bed`; removed with the bed."""

    def __init__(self, bed: TestBed, lans: Sequence[Lan], name: str = "rt") -> None:
        if len(lans) < 2:
            raise ValueError("a router joins two or more LANs")
        self.netns = f"{PREFIX}{bed.run_id}-{name}"
        self.lans = tuple(lans)
        bed.other_namespaces.append(self.netns)  # before anything can fail
        ip("netns", "add", self.netns)
        ip("-n", self.netns, "link", "set", "lo", "up")
        sysctl(
            self.netns,
            "net.ipv4.ip_forward=1",
            "net.ipv6.conf.all.forwarding=1",
            "net.ipv6.conf.all.accept_dad=0",
            "net.ipv6.conf.default.accept_dad=0",
        )
        for number, lan in enumerate(self.lans, start=1):
            self._plug(bed, lan, number)

    def _plug(self, bed: TestBed, lan: Lan, number: int) -> None:
        port = f"{self.netns.rsplit('-', 1)[1]}{number}"  # the bridge's end: "rt1", "rt2"
        inside = f"eth{number}"
        ip("-n", self.netns, "link", "add", inside, "type", "veth", "peer", "name", port)
        ip("-n", self.netns, "link", "set", port, "netns", lan.netns)
        ip("-n", lan.netns, "link", "set", port, "master", "br0", "up")
        address = lan.host_address(ROUTER_HOST)
        prefix = "/64" if lan.ipv6_only else "/24"
        ip("-n", self.netns, "addr", "add", address + prefix, "dev", inside)
        ip("-n", self.netns, "link", "set", inside, "up")
        lan.gateway = address
        for ws in bed.workstations:
            if ws.lan is lan:
                route_through(ws.netns, address)

    def address_on(self, lan: Lan) -> str:
        """The router's address on `lan` (its workstations' gateway)."""
        return lan.host_address(ROUTER_HOST)

    def cut(self) -> None:
        """Stop forwarding anything between the LANs (the router itself still answers)."""
        script = (
            f"table inet {CUT_TABLE} {{\n"
            "  chain forward {\n"
            "    type filter hook forward priority 0; policy drop;\n"
            '    counter drop comment "cut"\n'
            "  }\n"
            "}\n"
        )
        self._nft(["-f", "-"], script)

    def heal(self) -> None:
        """Forward again, as before `cut()`; harmless when not cut."""
        self._nft(["delete", "table", "inet", CUT_TABLE], check=False)

    def cut_packets(self) -> int:
        """Packets the cut has stopped so far (0 when not cut)."""
        listed = self._nft(["-j", "list", "table", "inet", CUT_TABLE], check=False)
        if listed.returncode != 0:
            return 0
        items = json.loads(listed.stdout)["nftables"]
        return sum(
            int(expr["counter"]["packets"])
            for item in items
            if "rule" in item
            for expr in item["rule"]["expr"]
            if "counter" in expr
        )

    def forwarded_multicast_routes(self) -> str:
        """The kernel's multicast forwarding cache (`ip mroute`): empty when the router
        forwards no multicast."""
        return subprocess.run(
            ["ip", "-n", self.netns, "mroute", "show"], capture_output=True, text=True, check=False
        ).stdout.strip()

    def _nft(
        self, args: list[str], script: str | None = None, *, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        command = ["ip", "netns", "exec", self.netns, "nft", *args]
        return subprocess.run(command, input=script, capture_output=True, text=True, check=check)
